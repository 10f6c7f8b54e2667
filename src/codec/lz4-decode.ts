/**
 * LZ4 decoding into a caller's buffer, for the load path.
 *
 * lz4-napi decodes into a fresh buffer per call: for every 4 MiB chunk of a load that is
 * an allocation whose pages fault in on first write and are only returned when V8
 * collects the buffer, which made decoding cost more than compressing and the daemon's
 * memory grow with the load rate. This decoder writes into a buffer the stream reuses.
 * Literals and matches are copied with Buffer.copy / copyWithin (memcpy), so the work per
 * byte is native; JavaScript only walks the sequences.
 *
 * It reads the frames ckptd writes (codec.ts: no checksums, no content size, no
 * dictionary, independent blocks) and returns undefined for any other frame, which the
 * caller then hands to lz4-napi. Malformed input throws RangeError; it never writes
 * outside `out`.
 */

const MAGIC = 0x184d2204;
const UNCOMPRESSED_BIT = 0x80000000;
const MIN_MATCH = 4;
/** Copies up to this many bytes are done in JavaScript; longer ones with memcpy. */
const SHORT_COPY = 48;
/**
 * After this many sequences a block whose sequences average fewer than MIN_AVG_SEQUENCE
 * bytes (scattered zeros, say) is left to lz4-napi, whose native loop is faster there;
 * this decoder wins on long runs (zero rows, incompressible stretches), 3-4x.
 */
const PROBE_SEQUENCES = 256;
const MIN_AVG_SEQUENCE = 96;

/** Thrown inside the decoder when the block is better left to lz4-napi. */
class FineGrained extends Error {}

/**
 * Decodes one LZ4 frame from `src` into `out`; returns the number of bytes written, or
 * undefined when the frame uses a feature this decoder leaves to lz4-napi, or its
 * sequences are so short that lz4-napi decodes it faster.
 */
export function decodeFrameInto(src: Buffer, out: Buffer): number | undefined {
  if (src.length < 7 || src.readUInt32LE(0) !== MAGIC) throw new RangeError("not an LZ4 frame (bad magic)");
  const flg = src[4]!;
  if (flg >> 6 !== 1) throw new RangeError(`unsupported LZ4 frame version ${flg >> 6}`);
  // Linked blocks, block checksums, content size, content checksum or a dictionary id: not ours.
  if ((flg & 0x3f) !== 0x20) return undefined;
  let pos = 7; // magic, FLG, BD, header checksum
  let written = 0;
  for (;;) {
    if (pos + 4 > src.length) throw new RangeError("LZ4 frame ends inside a block header");
    const word = src.readUInt32LE(pos);
    pos += 4;
    if (word === 0) break; // end mark
    const size = word & ~UNCOMPRESSED_BIT & 0x7fffffff;
    if (pos + size > src.length) throw new RangeError("LZ4 block runs past the end of the frame");
    if ((word & UNCOMPRESSED_BIT) !== 0) {
      if (written + size > out.length) throw new RangeError("LZ4 frame decodes to more bytes than expected");
      src.copy(out, written, pos, pos + size);
      written += size;
    } else {
      try {
        written += decodeBlockInto(src, pos, pos + size, out, written, true);
      } catch (err) {
        if (err instanceof FineGrained) return undefined;
        throw err;
      }
    }
    pos += size;
  }
  if (pos !== src.length) throw new RangeError(`${src.length - pos} bytes follow the LZ4 frame's end mark`);
  return written;
}

/** Decodes the LZ4 block src[start, end) into out at `at`; returns the bytes written. */
export function decodeBlockInto(src: Buffer, start: number, end: number, out: Buffer, at: number, probe = false): number {
  let ip = start;
  let op = at;
  const outEnd = out.length;
  let sequences = 0;
  for (;;) {
    if (probe && ++sequences === PROBE_SEQUENCES && op - at < PROBE_SEQUENCES * MIN_AVG_SEQUENCE) throw new FineGrained();
    if (ip >= end) throw new RangeError("LZ4 block ends without its last literals");
    const token = src[ip++]!;
    // Literals.
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (ip >= end) throw new RangeError("LZ4 block ends inside a literal length");
        b = src[ip++]!;
        lit += b;
      } while (b === 255);
    }
    if (ip + lit > end) throw new RangeError("LZ4 literals run past the end of the block");
    if (op + lit > outEnd) throw new RangeError("LZ4 block decodes to more bytes than expected");
    if (lit > SHORT_COPY) {
      src.copy(out, op, ip, ip + lit);
      ip += lit;
      op += lit;
    } else {
      for (let k = 0; k < lit; k++) out[op++] = src[ip++]!;
    }
    if (ip === end) return op - at; // the last sequence has literals only
    // Match.
    if (ip + 2 > end) throw new RangeError("LZ4 block ends inside a match offset");
    const offset = src[ip]! | (src[ip + 1]! << 8);
    ip += 2;
    if (offset === 0 || offset > op - at) throw new RangeError(`LZ4 match offset ${offset} points before the block`);
    let len = token & 15;
    if (len === 15) {
      let b: number;
      do {
        if (ip >= end) throw new RangeError("LZ4 block ends inside a match length");
        b = src[ip++]!;
        len += b;
      } while (b === 255);
    }
    len += MIN_MATCH;
    if (op + len > outEnd) throw new RangeError("LZ4 block decodes to more bytes than expected");
    copyMatch(out, op, offset, len);
    op += len;
  }
}

/** out[op, op+len) = the bytes `offset` back, repeating them when they overlap. */
function copyMatch(out: Buffer, op: number, offset: number, len: number): void {
  const from = op - offset;
  if (len <= SHORT_COPY) {
    // Byte by byte (which also repeats an overlapping pattern): cheaper than a native call.
    for (let k = 0; k < len; k++) out[op + k] = out[from + k]!;
    return;
  }
  if (offset >= len) {
    out.copyWithin(op, from, from + len);
    return;
  }
  if (offset === 1) {
    out.fill(out[from]!, op, op + len);
    return;
  }
  // Overlapping: the pattern of `offset` bytes repeats; copy it in doubling spans.
  let done = 0;
  let span = offset;
  while (done < len) {
    const n = Math.min(span, len - done);
    out.copyWithin(op + done, from, from + n);
    done += n;
    span += n;
  }
}
