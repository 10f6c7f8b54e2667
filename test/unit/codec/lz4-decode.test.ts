import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { compress, compressFrame } from "lz4-napi";
import { decodeBlockInto, decodeFrameInto } from "../../../src/codec/lz4-decode.js";
import { encodeChunk } from "../../../src/codec/codec.js";

/** Test inputs that exercise literals only, long and overlapping matches, and their mixes. */
function samples(): [string, Buffer][] {
  const sparseRows = randomBytes(1 << 20);
  for (let row = 0; row < 256; row += 2) sparseRows.fill(0, row * 4096, row * 4096 + 4096);
  const pattern = Buffer.alloc(1 << 20);
  for (let i = 0; i < pattern.length; i++) pattern[i] = (i % 7) * 31 + (i % 3);
  const text = Buffer.from("the quick brown fox jumps over the lazy dog; ".repeat(20000));
  const mixed = Buffer.concat([randomBytes(70000), Buffer.alloc(200000, 9), randomBytes(13), text.subarray(0, 100000)]);
  return [
    ["empty", Buffer.alloc(0)],
    ["one byte", Buffer.from([42])],
    ["zeros", Buffer.alloc(4 << 20)],
    ["random", randomBytes(300000)],
    ["half the rows zero", sparseRows],
    ["short repeating pattern", pattern],
    ["text", text],
    ["mixed", mixed],
  ];
}

describe("lz4-decode", () => {
  it("decodes lz4-napi blocks bit-exact, into a buffer of the exact size", async () => {
    for (const [what, data] of samples()) {
      const block = (await compress(data)).subarray(4); // lz4-napi prefixes the raw size
      const out = Buffer.alloc(data.length);
      expect(decodeBlockInto(block, 0, block.length, out, 0), what).toBe(data.length);
      expect(out.equals(data), what).toBe(true);
    }
  });

  it("decodes ckptd's frames (compressed and raw blocks), and leaves other frames to lz4-napi", async () => {
    for (const [what, data] of samples()) {
      if (data.length === 0) continue;
      const frame = Buffer.concat((await encodeChunk(data, true)).parts);
      const out = Buffer.alloc(data.length + 16, 0xee);
      expect(decodeFrameInto(frame, out), what).toBe(data.length);
      expect(out.subarray(0, data.length).equals(data), what).toBe(true);
      expect(out[data.length], `${what}: nothing written past the data`).toBe(0xee);
    }
    // A frame with a content checksum (lz4 CLI's default) is left to lz4-napi.
    const withChecksum = Buffer.concat((await encodeChunk(Buffer.alloc(1000, 1), true)).parts);
    withChecksum[4] = withChecksum[4]! | 0x04;
    expect(decodeFrameInto(withChecksum, Buffer.alloc(1000))).toBeUndefined();
    // lz4-napi's frames without the extras decode here too.
    const napi = await compressFrame(samples()[7]![1]);
    if ((napi[4]! & 0x1f) === 0) expect(decodeFrameInto(napi, Buffer.alloc(samples()[7]![1].length))).toBe(samples()[7]![1].length);
  });

  it("throws on damaged input and never writes past the output", async () => {
    const data = samples()[4]![1];
    const frame = Buffer.concat((await encodeChunk(data, true)).parts);
    // Too small an output.
    expect(() => decodeFrameInto(frame, Buffer.alloc(data.length - 1))).toThrow(RangeError);
    // Truncated frames.
    for (const cut of [3, 8, 12, 100, frame.length - 5, frame.length - 1])
      expect(() => decodeFrameInto(frame.subarray(0, cut), Buffer.alloc(data.length)), `cut at ${cut}`).toThrow(RangeError);
    // Random damage: either a RangeError or some output of the right size (the CRC catches that).
    // Random damage, over data dense in sequences (text) so that control bytes get hit:
    // either a RangeError or output of the right size (the CRC catches that), and never a
    // byte written past the output.
    const text = samples()[6]![1];
    const textFrame = Buffer.concat((await encodeChunk(text, true)).parts);
    for (let i = 0; i < 300; i++) {
      const bad = Buffer.from(textFrame);
      const at = 11 + Math.floor(Math.random() * (bad.length - 15));
      bad[at] = bad[at]! ^ (1 + Math.floor(Math.random() * 255));
      const out = Buffer.alloc(text.length + 8, 0xee);
      try {
        decodeFrameInto(bad, out.subarray(0, text.length));
      } catch (err) {
        expect(err).toBeInstanceOf(RangeError);
      }
      expect(out.subarray(text.length).every((b) => b === 0xee)).toBe(true);
    }
    // Damage that must be caught: a block size past the frame, a literal run past the block.
    const badSize = Buffer.from(frame);
    badSize.writeUInt32LE(frame.length, 7);
    expect(() => decodeFrameInto(badSize, Buffer.alloc(data.length))).toThrow(/past the end/);
    const badLiterals = Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x70, 0x73, 3, 0, 0, 0, 0xf0, 0xff, 0xff, 0, 0, 0, 0]);
    expect(() => decodeFrameInto(badLiterals, Buffer.alloc(100))).toThrow(RangeError);
    // A match reaching before the start of the block.
    const evil = Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x70, 0x73, 4, 0, 0, 0, 0x10, 0x41, 0x05, 0x00, 0, 0, 0, 0]);
    expect(() => decodeFrameInto(evil, Buffer.alloc(100))).toThrow(/offset/);
  });
});
