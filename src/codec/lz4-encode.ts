/**
 * A fast LZ4 block encoder for one kind of chunk that dominates optimizer state: long
 * runs of zero bytes (rows of an embedding table the step never touched, masked or
 * pruned blocks) between stretches of noise (float mantissas). LZ4 finds nothing to
 * match in the noise, so a general encoder spends its time hashing it in vain.
 *
 * This one finds zero runs of at least ZERO_RUN bytes with memmem and memcmp (Buffer
 * indexOf / compare), stores everything else as literals (one memcpy per stretch), and
 * encodes each zero run as one zero literal followed by an offset-1 match. The output is
 * a standard LZ4 block (`lz4 -d` and every decoder read it) that is as small as the
 * reference encoder's on such data, usually a little smaller, at several times its speed.
 *
 * It is only worth it when the stretches between the zero runs really are noise:
 * `encodeZeroRuns` reports what share of the input it covered with zero runs so the
 * caller can decide, and the caller checks the literals with a sample before trusting it.
 */

/** Shortest zero run encoded as a match. */
const ZERO_RUN = 64;
const ZEROS = Buffer.alloc(ZERO_RUN);
/** Zero runs are measured against this (memcmp), a page at a time. */
const ZERO_PAGE = Buffer.alloc(4096);
/** LZ4: the last 5 bytes of a block are literals, and the last match starts 12 bytes before its end. */
const LAST_LITERALS = 5;
const MF_LIMIT = 12;

/** The worst-case size of an encoded block of `n` bytes (all literals), for sizing `out`. */
export function zeroRunBound(n: number): number {
  return n + Math.ceil(n / 255) + 16;
}

export interface ZeroRunBlock {
  /** Bytes of the block written to `out`. */
  length: number;
  /** Input bytes covered by zero-run matches. */
  zeroBytes: number;
  /** Up to a few [start, end) stretches of literals, for the caller's sample. */
  literalStretches: [number, number][];
}

/**
 * Encodes `src` as one LZ4 block into `out` (at least zeroRunBound(src.length) bytes).
 * Returns undefined, having written partial output, when the block would not be smaller
 * than `maxLength`.
 */
export function encodeZeroRuns(src: Buffer, out: Buffer, maxLength: number): ZeroRunBlock | undefined {
  const end = src.length;
  const lastMatchStart = end - MF_LIMIT;
  let op = 0;
  let anchor = 0;
  let pos = 0;
  let zeroBytes = 0;
  const literalStretches: [number, number][] = [];

  const sequence = (literalEnd: number, matchLength: number): boolean => {
    const lit = literalEnd - anchor;
    if (op + 1 + Math.ceil(lit / 255) + lit + 2 + Math.ceil(matchLength / 255) > maxLength) return false;
    const token = op++;
    let t = (lit >= 15 ? 15 : lit) << 4;
    if (lit >= 15) op = lengthBytes(out, op, lit - 15);
    if (lit > 0) {
      src.copy(out, op, anchor, literalEnd);
      op += lit;
      if (lit > ZERO_RUN && literalStretches.length < 8) literalStretches.push([anchor, literalEnd]);
    }
    if (matchLength > 0) {
      out[op++] = 1; // offset 1, little-endian
      out[op++] = 0;
      const ml = matchLength - 4;
      t |= ml >= 15 ? 15 : ml;
      if (ml >= 15) op = lengthBytes(out, op, ml - 15);
    }
    out[token] = t;
    return true;
  };

  while (pos < lastMatchStart) {
    let z = src.indexOf(ZEROS, pos);
    if (z < 0 || z >= lastMatchStart) break;
    while (z > anchor && src[z - 1] === 0) z--;
    // The run's end: whole pages, then halving spans (a few memcmp calls per run), then bytes.
    let e = z + ZERO_RUN;
    while (e + ZERO_PAGE.length <= end && src.compare(ZERO_PAGE, 0, ZERO_PAGE.length, e, e + ZERO_PAGE.length) === 0) e += ZERO_PAGE.length;
    for (let span = ZERO_PAGE.length >> 1; span >= 8; span >>= 1)
      if (e + span <= end && src.compare(ZERO_PAGE, 0, span, e, e + span) === 0) e += span;
    while (e < end && src[e] === 0) e++;
    // One zero literal at z seeds the match, which repeats it (offset 1) up to the run's end.
    const matchStart = z + 1;
    const matchEnd = Math.min(e, end - LAST_LITERALS);
    if (matchStart > lastMatchStart || matchEnd - matchStart < 4) break;
    if (!sequence(matchStart, matchEnd - matchStart)) return undefined;
    zeroBytes += matchEnd - matchStart;
    anchor = matchEnd;
    pos = matchEnd;
  }
  if (!sequence(end, 0)) return undefined;
  return { length: op, zeroBytes, literalStretches };
}

function lengthBytes(out: Buffer, op: number, rest: number): number {
  while (rest >= 255) {
    out[op++] = 255;
    rest -= 255;
  }
  out[op++] = rest;
  return op;
}
