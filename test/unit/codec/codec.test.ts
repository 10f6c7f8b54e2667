import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { crc32c } from "@node-rs/crc32";
import { decompressFrame } from "lz4-napi";
import {
  ChunkCorruptError,
  CompressionPolicy,
  decodeChunk,
  encodeChunk,
  rawFrame,
  RAW_FRAME_OVERHEAD,
  type StoredChunk,
} from "../../../src/codec/codec.js";

function stored(parts: Buffer[]): Buffer {
  return Buffer.concat(parts);
}

function meta(data: Buffer, bytes: Buffer, raw: boolean): StoredChunk {
  return { offset: 0, storedBytes: bytes.length, rawBytes: data.length, crc32c: crc32c(data), raw };
}

describe("codec", () => {
  it("encodeChunk - compressible data becomes a smaller standard LZ4 frame", async () => {
    const data = Buffer.alloc(1 << 20, 0);
    data.fill(7, 1000, 2000);
    const enc = await encodeChunk(data, true);
    expect(enc.raw).toBe(false);
    expect(enc.storedBytes).toBeLessThan(data.length / 10);
    const bytes = stored(enc.parts);
    expect((await decompressFrame(bytes)).equals(data)).toBe(true);
    expect((await decodeChunk(bytes, meta(data, bytes, false))).equals(data)).toBe(true);
  });

  it("encodeChunk - random data is stored raw, as a frame any LZ4 decoder reads", async () => {
    const data = randomBytes(256 << 10);
    const enc = await encodeChunk(data, true);
    expect(enc.raw).toBe(true);
    expect(enc.storedBytes).toBe(data.length + RAW_FRAME_OVERHEAD);
    // The raw path must not copy the tensor bytes.
    expect(enc.parts[1]).toBe(data);
    const bytes = stored(enc.parts);
    expect((await decompressFrame(bytes)).equals(data)).toBe(true);
    expect((await decodeChunk(bytes, meta(data, bytes, true))).equals(data)).toBe(true);
  });

  it("encodeChunk - skipping compression still yields a raw frame", async () => {
    const data = Buffer.alloc(4096, 1);
    const enc = await encodeChunk(data, false);
    expect(enc.raw).toBe(true);
  });

  it("rawFrame - refuses chunks over the 4 MiB block size", () => {
    expect(() => rawFrame(Buffer.alloc((4 << 20) + 1))).toThrow(/4 MiB/);
  });

  it("decodeChunk - a flipped byte is reported, never returned", async () => {
    for (const data of [Buffer.alloc(1 << 16, 3), randomBytes(1 << 16)]) {
      const enc = await encodeChunk(data, true);
      const bytes = stored(enc.parts);
      const m = meta(data, bytes, enc.raw);
      const bad = Buffer.from(bytes);
      const at = Math.floor(bad.length / 2);
      bad[at] = bad[at]! ^ 0x40;
      await expect(decodeChunk(bad, m)).rejects.toBeInstanceOf(ChunkCorruptError);
    }
  });

  it("decodeChunk - a damaged raw frame header is reported", async () => {
    const data = randomBytes(1024);
    const bytes = stored(rawFrame(data).parts);
    bytes[4] = 0;
    await expect(decodeChunk(bytes, meta(data, bytes, true))).rejects.toThrow(/header/);
  });

  it("CompressionPolicy - a sample tells compressible chunks from noise, so dense weights skip compression", () => {
    const p = new CompressionPolicy();
    expect(p.shouldTry(randomBytes(4 << 20)), "random bytes (dense float weights)").toBe(false);
    const sparse = randomBytes(4 << 20);
    for (let row = 0; row < 1024; row += 2) sparse.fill(0, row * 4096, row * 4096 + 4096);
    expect(p.shouldTry(sparse), "half the rows zero (optimizer state)").toBe(true);
    expect(p.shouldTry(Buffer.alloc(1000)), "a small chunk is judged whole").toBe(true);
    expect(p.shouldTry(Buffer.alloc(0))).toBe(false);
  });
});
