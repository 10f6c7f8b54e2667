/**
 * CRC-32C arithmetic the Save stream's trailer needs on both sides (the daemon and the
 * TypeScript client): the CRC of A‖B from CRC(A), CRC(B) and |B|, so the stream checksum
 * costs no second pass over the bytes.
 */
// zlib's crc32_combine over the Castagnoli polynomial.
const CRC32C_POLY_REFLECTED = 0x82f63b78;

function gf2Times(mat: Uint32Array, vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i]!;
  return sum >>> 0;
}

function gf2Square(mat: Uint32Array): Uint32Array {
  const sq = new Uint32Array(32);
  for (let n = 0; n < 32; n++) sq[n] = gf2Times(mat, mat[n]!);
  return sq;
}

/** Operators that append 2^k zero bytes to a CRC, k = 0..52, built once at load (53 squarings of a 32×32 bit matrix). */
const ZERO_BYTE_OPERATORS: readonly Uint32Array[] = buildZeroByteOperators();

function buildZeroByteOperators(): Uint32Array[] {
  // One zero bit, then square three times: one zero byte.
  let op: Uint32Array = new Uint32Array(32);
  op[0] = CRC32C_POLY_REFLECTED;
  for (let n = 1; n < 32; n++) op[n] = (1 << (n - 1)) >>> 0;
  for (let i = 0; i < 3; i++) op = gf2Square(op);
  const ops = [op];
  for (let k = 1; k < 53; k++) ops.push(gf2Square(ops[k - 1]!));
  return ops;
}

/**
 * CRC-32C of A‖B given crcA = CRC(A), crcB = CRC(B) and lenB = |B|. The operators of the
 * set bits of lenB are applied to the CRC one after the other (a few hundred word
 * operations) rather than multiplied into one operator first (tens of thousands): a save
 * combines once per chunk, and chunk lengths are as many as a state dict's tensor sizes.
 */
export function crc32cCombine(crcA: number, crcB: number, lenB: number): number {
  if (lenB === 0) return crcA >>> 0;
  const ops = ZERO_BYTE_OPERATORS;
  let v = crcA >>> 0;
  for (let k = 0, rest = lenB; rest > 0; k++, rest = Math.floor(rest / 2)) if (rest % 2 === 1) v = gf2Times(ops[k]!, v);
  return (v ^ crcB) >>> 0;
}
