import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { compress, uncompress } from "lz4-napi";
import { encodeZeroRuns, zeroRunBound } from "../../../src/codec/lz4-encode.js";
import { decodeBlockInto } from "../../../src/codec/lz4-decode.js";
import { encodeChunk } from "../../../src/codec/codec.js";

/** Float32 rows of 4 KiB, about half of them zero, the others small positive noise (Adam's exp_avg_sq). */
function sparseRows(bytes: number, zeroShare = 0.5): Buffer {
  const f = new Float32Array(bytes / 4);
  for (let r = 0; r < f.length / 1024; r++) {
    if (Math.random() < zeroShare) continue;
    for (let c = 0; c < 1024; c++) f[r * 1024 + c] = (Math.random() * 1e-3) ** 2 + 1e-9;
  }
  return Buffer.from(f.buffer);
}

function cases(): [string, Buffer][] {
  const tailZeros = Buffer.concat([randomBytes(5000), Buffer.alloc(3000)]);
  const headZeros = Buffer.concat([Buffer.alloc(3000), randomBytes(5000)]);
  const edges = Buffer.concat([
    randomBytes(100),
    Buffer.alloc(64),
    randomBytes(1),
    Buffer.alloc(63),
    randomBytes(7),
    Buffer.alloc(70),
    randomBytes(5),
  ]);
  return [
    ["one byte", Buffer.from([0])],
    ["twelve zeros", Buffer.alloc(12)],
    ["thirteen zeros", Buffer.alloc(13)],
    ["all zeros", Buffer.alloc(1 << 20)],
    ["random", randomBytes(100_000)],
    ["zeros at the end", tailZeros],
    ["zeros at the start", headZeros],
    ["runs around the 64-byte threshold", edges],
    ["half the rows zero", sparseRows(4 << 20)],
  ];
}

describe("lz4-encode", () => {
  it("writes blocks that lz4-napi, the load path's decoder and the lz4 CLI decode bit-exact", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-lz4enc-"));
    try {
      for (const [what, data] of cases()) {
        const out = Buffer.alloc(zeroRunBound(data.length));
        const z = encodeZeroRuns(data, out, out.length)!;
        expect(z, what).toBeDefined();
        const block = out.subarray(0, z.length);
        // lz4-napi's block format: the raw size first.
        const sized = Buffer.alloc(4 + block.length);
        sized.writeUInt32LE(data.length, 0);
        block.copy(sized, 4);
        expect((await uncompress(sized)).equals(data), `${what}: lz4-napi`).toBe(true);
        const back = Buffer.alloc(data.length);
        expect(decodeBlockInto(block, 0, block.length, back, 0), what).toBe(data.length);
        expect(back.equals(data), `${what}: decodeBlockInto`).toBe(true);
        const frame = Buffer.concat([Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x70, 0x73]), Buffer.alloc(4), block, Buffer.alloc(4)]);
        frame.writeUInt32LE(block.length, 7);
        const file = path.join(dir, "x.lz4");
        fs.writeFileSync(file, frame);
        expect(execFileSync("lz4", ["-d", "-c", file], { maxBuffer: 64 << 20 }).equals(data), `${what}: lz4 -d`).toBe(true);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("is no larger than lz4-napi's block on zero runs between noise, and reports the zeros it covered", async () => {
    const data = sparseRows(4 << 20);
    const out = Buffer.alloc(zeroRunBound(data.length));
    const z = encodeZeroRuns(data, out, out.length)!;
    const napi = (await compress(data)).length - 4;
    expect(z.length).toBeLessThanOrEqual(napi);
    expect(z.zeroBytes).toBeGreaterThan(data.length * 0.4);
    expect(z.literalStretches.length).toBeGreaterThan(0);
  });

  it("gives up (undefined) once the block would exceed the limit", () => {
    const data = randomBytes(10_000);
    const out = Buffer.alloc(zeroRunBound(data.length));
    expect(encodeZeroRuns(data, out, data.length - 1)).toBeUndefined();
  });

  it("encodeChunk uses it only for zero runs between noise; compressible stretches still get lz4-napi", async () => {
    const scratch = Buffer.alloc(zeroRunBound(4 << 20));
    const sparse = sparseRows(4 << 20);
    const viaScratch = await encodeChunk(sparse, true, undefined, scratch);
    expect(viaScratch.raw).toBe(false);
    expect(viaScratch.parts[1]!.buffer).toBe(scratch.buffer);
    // Zero runs between repetitive text: LZ4 proper shrinks the text too, so it must win.
    const text = Buffer.from("ckptd stores checkpoints; ".repeat(200));
    const mixed = Buffer.concat(Array.from({ length: 64 }, (_, i) => (i % 2 ? Buffer.alloc(4096) : text.subarray(0, 4096))));
    const viaNapi = await encodeChunk(mixed, true, undefined, scratch);
    expect(viaNapi.raw).toBe(false);
    expect(viaNapi.parts[1]!.buffer).not.toBe(scratch.buffer);
    expect(viaNapi.storedBytes).toBeLessThan(mixed.length / 10);
  });
});
