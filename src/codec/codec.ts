/**
 * Chunk codec: every chunk is stored as one standard LZ4 frame, so `lz4 -d` on a
 * stored entry file gives back the raw bytes without ckptd. A chunk that does not
 * shrink is stored as a frame of *uncompressed* blocks (the frame format allows
 * them), flagged `raw` in the manifest: it costs 11 bytes and no CPU, and reading
 * it back is a slice.
 */
import { crc32c } from "@node-rs/crc32";
import { compress, compressSync, decompressFrame } from "lz4-napi";
import { MAX_CHUNK_BYTES } from "../../wire/index.js";
export { crc32cCombine } from "../../wire/crc.js";
import { decodeFrameInto } from "./lz4-decode.js";
import { encodeZeroRuns, zeroRunBound } from "./lz4-encode.js";

/**
 * Largest chunk: the wire's chunk limit, which is also the largest block an LZ4 frame
 * with BD=0x70 may hold (4 MiB); a chunk is always one block.
 */
export const LZ4_MAX_BLOCK = MAX_CHUNK_BYTES;
/** Magic, FLG=0x60 (v01, independent blocks, no checksums), BD=0x70 (4 MiB), HC. */
const FRAME_HEADER = Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x70, 0x73]);
const UNCOMPRESSED_BIT = 0x80000000;
const END_MARK = Buffer.alloc(4);
/** What every frame ends with (no content checksum). */
export const RAW_FRAME_END: Buffer = END_MARK;
/** A frame's header and its one block's size word. */
const FRAME_HEAD_BYTES = FRAME_HEADER.length + 4;
/** Frame header + block size + end mark around a raw block. */
export const RAW_FRAME_OVERHEAD = FRAME_HEAD_BYTES + END_MARK.length;

/** A frame's header and the size word of its one block of `blockBytes` (`raw`: an uncompressed block). */
function frameHead(blockBytes: number, raw: boolean): Buffer {
  const head = Buffer.allocUnsafe(FRAME_HEAD_BYTES);
  writeFrameHead(head, 0, blockBytes, raw);
  return head;
}

/** Writes a frame's header and block size word into `out` at `at`; returns where the block goes. */
function writeFrameHead(out: Buffer, at: number, blockBytes: number, raw: boolean): number {
  FRAME_HEADER.copy(out, at);
  out.writeUInt32LE(raw ? (blockBytes | UNCOMPRESSED_BIT) >>> 0 : blockBytes, at + FRAME_HEADER.length);
  return at + FRAME_HEAD_BYTES;
}

/** How one chunk was stored. */
export interface StoredChunk {
  /** Byte offset of the chunk's frame in the entry file. */
  offset: number;
  storedBytes: number;
  rawBytes: number;
  /** CRC-32C of the raw bytes. */
  crc32c: number;
  /** True when the frame holds an uncompressed block. */
  raw: boolean;
}

/** An encoded chunk ready for `writev`: the parts alias the input where possible. */
export interface EncodedChunk {
  parts: Buffer[];
  storedBytes: number;
  raw: boolean;
}

/** Frames `data` as one LZ4 frame with a single uncompressed block; no copy of `data`. */
export function rawFrame(data: Buffer): EncodedChunk {
  const head = rawFrameHead(data.length);
  const parts = data.length === 0 ? [head, RAW_FRAME_END] : [head, data, RAW_FRAME_END];
  return { parts, storedBytes: data.length + RAW_FRAME_OVERHEAD, raw: true };
}

/** What a raw frame of `length` bytes starts with: frame header and block size. */
export function rawFrameHead(length: number): Buffer {
  if (length > LZ4_MAX_BLOCK) throw new RangeError(`chunk of ${length} bytes exceeds the 4 MiB LZ4 block`);
  return frameHead(length, true);
}

/**
 * Compresses `data` into an LZ4 frame unless that does not pay, in which case it is
 * framed raw. `minSaving` is the fraction of bytes compression must save. With `scratch`
 * (at least zeroRunBound(data.length) bytes) a chunk of zero runs between noise may be
 * encoded into it, and the result then refers to it: use it before the scratch is reused.
 */
export async function encodeChunk(data: Buffer, tryCompress: boolean, minSaving = 0.03, scratch?: Buffer): Promise<EncodedChunk> {
  if (tryCompress && data.length > 0) {
    if (data.length > LZ4_MAX_BLOCK) throw new RangeError(`chunk of ${data.length} bytes exceeds the 4 MiB LZ4 block`);
    const maxBlock = Math.floor(data.length * (1 - minSaving)) - RAW_FRAME_OVERHEAD;
    if (scratch && scratch.length >= zeroRunBound(data.length) && maxBlock > 0) {
      // Zero runs between stretches of noise: encoded without hashing the noise.
      const z = encodeZeroRuns(data, scratch, maxBlock);
      if (z && z.zeroBytes >= data.length / 8 && literalsAreNoise(data, z.literalStretches)) {
        const head = frameHead(z.length, false);
        return {
          parts: [head, scratch.subarray(0, z.length), END_MARK],
          storedBytes: head.length + z.length + END_MARK.length,
          raw: false,
        };
      }
    }
    // The whole chunk as one block of a frame written here, so the frame's layout (4 MiB
    // blocks, as lz4 -1 writes them) does not depend on lz4-napi's frame defaults.
    // lz4-napi's block output starts with the raw size, which the frame does not carry.
    const block = (await compress(data)).subarray(4);
    if (pays(block.length, data.length, minSaving)) return compressedFrame(block);
  }
  return rawFrame(data);
}

/** Whether an LZ4 block of `blockBytes` saves `minSaving` of the `rawBytes` it encodes, frame included. */
const pays = (blockBytes: number, rawBytes: number, minSaving: number): boolean =>
  blockBytes + RAW_FRAME_OVERHEAD <= rawBytes * (1 - minSaving);

/** The frame of an LZ4 block, as parts. */
function compressedFrame(block: Buffer): EncodedChunk {
  return { parts: [frameHead(block.length, false), block, END_MARK], storedBytes: block.length + RAW_FRAME_OVERHEAD, raw: false };
}

/** Below this many bytes a chunk is not worth an LZ4 attempt: the frame's 11 bytes eat any saving. */
const MIN_COMPRESS_BYTES = 64;

/**
 * encodeChunk for a small chunk, compressed on the calling thread: for a few KiB a hop to
 * the thread pool costs more than the compression, and a stream of hundreds of small
 * entries pays it per entry.
 */
export function encodeSmallChunk(data: Buffer, minSaving = 0.03): EncodedChunk {
  const block = smallBlock(data, minSaving);
  return block ? compressedFrame(block) : rawFrame(data);
}

/**
 * encodeSmallChunk, its frame written into `out` at `at` (room for data.length +
 * RAW_FRAME_OVERHEAD bytes) with nothing allocated for its header.
 */
export function encodeSmallChunkInto(data: Buffer, out: Buffer, at: number, minSaving = 0.03): { storedBytes: number; raw: boolean } {
  const block = smallBlock(data, minSaving);
  const body = block ?? data;
  const to = writeFrameHead(out, at, body.length, !block);
  END_MARK.copy(out, to + body.copy(out, to));
  return { storedBytes: body.length + RAW_FRAME_OVERHEAD, raw: !block };
}

/** A small chunk's LZ4 block (compressed on the calling thread) when it saves `minSaving`; undefined when it does not pay. */
function smallBlock(data: Buffer, minSaving: number): Buffer | undefined {
  if (data.length < MIN_COMPRESS_BYTES) return undefined;
  const block = compressSync(data).subarray(4);
  return pays(block.length, data.length, minSaving) ? block : undefined;
}

/** Bytes of each literal stretch that literalsAreNoise compresses. */
const NOISE_SAMPLE_BYTES = 8192;

/**
 * Whether the literal stretches a zero-run block kept are noise that LZ4 would not shrink
 * (then the zero-run block is as small as LZ4's): a few samples of them are compressed.
 */
function literalsAreNoise(data: Buffer, stretches: readonly [number, number][]): boolean {
  let raw = 0;
  let packed = 0;
  for (const [start, end] of stretches.slice(0, 4)) {
    const sample = data.subarray(start, Math.min(end, start + NOISE_SAMPLE_BYTES));
    raw += sample.length;
    packed += compressSync(sample).length - 4;
  }
  return packed >= raw * 0.97;
}

/** Reasons a stored chunk does not decode, as a short phrase for DATA_LOSS messages. */
export class ChunkCorruptError extends Error {}

/**
 * Decodes one stored chunk and verifies its length and CRC-32C. Throws
 * ChunkCorruptError (never returns wrong bytes). With `out` (at least the chunk's raw
 * size), a compressed chunk is decoded into it and the result is a view of it; a raw
 * chunk's result is always a view of `stored`.
 */
export async function decodeChunk(stored: Buffer, chunk: StoredChunk, out?: Buffer): Promise<Buffer> {
  let data: Buffer;
  if (chunk.raw) {
    const head = FRAME_HEADER.length;
    if (
      stored.length !== chunk.rawBytes + RAW_FRAME_OVERHEAD ||
      !stored.subarray(0, head).equals(FRAME_HEADER) ||
      stored.readUInt32LE(head) !== (chunk.rawBytes | UNCOMPRESSED_BIT) >>> 0 ||
      stored.readUInt32LE(stored.length - 4) !== 0
    ) {
      throw new ChunkCorruptError("raw LZ4 frame header or end mark is damaged");
    }
    data = stored.subarray(head + 4, head + 4 + chunk.rawBytes);
  } else {
    try {
      const n = out && out.length >= chunk.rawBytes ? decodeFrameInto(stored, out.subarray(0, chunk.rawBytes)) : undefined;
      data = n === undefined ? await decompressFrame(stored) : out!.subarray(0, n);
    } catch (err) {
      throw new ChunkCorruptError(`LZ4 frame does not decode (${err instanceof Error ? err.message : String(err)})`);
    }
  }
  if (data.length !== chunk.rawBytes) throw new ChunkCorruptError(`decoded ${data.length} bytes where ${chunk.rawBytes} were stored`);
  const crc = crc32c(data);
  if (crc !== chunk.crc32c) throw new ChunkCorruptError(`CRC-32C is ${hex(crc)} where ${hex(chunk.crc32c)} was recorded`);
  return data;
}

export function hex(n: number): string {
  return "0x" + (n >>> 0).toString(16).padStart(8, "0");
}

/** Bytes of a chunk the compression estimate looks at: SAMPLE_SLICES slices spread over it. */
const SAMPLE_SLICES = 16;
const SAMPLE_SLICE_BYTES = 4096;

/**
 * Decides per chunk whether to spend CPU on compression, from a sample: LZ4 does not
 * shrink dense float32/bfloat16 weights (ratio ≈ 1.0), and compressing a 4 MiB chunk to
 * throw the result away costs ~8 ms of a thread the disk writes need too. Compressing
 * 32 KiB spread over the chunk costs ~50 µs and tells zeros and repeated values (optimizer
 * state, masks, embeddings never touched) from noise; such chunks are stored raw at no CPU
 * cost. A chunk the sample over-rated still falls back to raw in encodeChunk.
 */
export class CompressionPolicy {
  private readonly sample = Buffer.allocUnsafe(SAMPLE_SLICES * SAMPLE_SLICE_BYTES);
  /** Chunks tried and chunks that compression shrank, for this entry. */
  tried = 0;
  paid = 0;
  /** `maxRatio`: the estimated stored/raw ratio below which a chunk is compressed. */
  constructor(private readonly maxRatio = 0.9) {}

  shouldTry(data: Buffer): boolean {
    if (data.length <= this.sample.length * 2) {
      if (data.length === 0) return false;
      if (this.keepsPaying()) return true;
      return compressSync(data).length <= data.length * this.maxRatio;
    }
    return this.shouldTryGathered(data.length, (into, at, from, n) => data.copy(into, at, from, from + n));
  }

  /**
   * shouldTry for a chunk of `length` bytes (more than 2 × the sample) that is not in
   * memory: `gather` copies bytes [from, from + n) of it into `into` at `at`.
   */
  shouldTryGathered(length: number, gather: (into: Buffer, at: number, from: number, n: number) => void): boolean {
    if (this.keepsPaying()) return true;
    const stride = Math.floor((length - SAMPLE_SLICE_BYTES) / (SAMPLE_SLICES - 1));
    for (let i = 0; i < SAMPLE_SLICES; i++) gather(this.sample, i * SAMPLE_SLICE_BYTES, i * stride, SAMPLE_SLICE_BYTES);
    return compressSync(this.sample).length <= this.sample.length * this.maxRatio;
  }

  /** Smallest chunk shouldTryGathered takes. */
  get gatherMinBytes(): number {
    return this.sample.length * 2 + 1;
  }

  /**
   * An entry whose chunks have been paying keeps being compressed: a sample that missed
   * the zeros of one chunk must not store it raw (it cost 0.4% on sparse optimizer state).
   */
  private keepsPaying(): boolean {
    return this.tried >= 2 && this.paid * 2 > this.tried;
  }

  record(tried: boolean, compressed: boolean): void {
    if (!tried) return;
    this.tried++;
    if (compressed) this.paid++;
  }
}
