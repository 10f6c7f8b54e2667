/**
 * S3Upload.appendFrom against an in-memory S3 (fake-s3.ts): the same parts and bytes as write,
 * the byte budget and its backpressure, and aborts part-way. The real RGW runs test/s3/multipart.test.ts.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ByteBudget } from "../../../../src/common/byte-budget.js";
import { SpareBuffers } from "../../../../src/store/buffer-pool.js";
import { MIN_PART_BYTES } from "../../../../src/store/s3/multipart.js";
import { FakeS3 } from "./fake-s3.js";

const MiB = 1024 * 1024;

/** Appends `data` with appendFrom, `pieces` bytes at a time, counting the fills. */
async function appendAll(up: { appendFrom: FakeAppend }, data: Buffer, pieces: number): Promise<number> {
  let fills = 0;
  for (let off = 0; off < data.length; off += pieces) {
    const end = Math.min(data.length, off + pieces);
    let at = off;
    await up.appendFrom(end - off, async (buf, offset, length) => {
      await Promise.resolve();
      data.copy(buf, offset, at, at + length);
      at += length;
      fills++;
    });
    expect(at, "every byte asked for was filled").toBe(end);
  }
  return fills;
}
type FakeAppend = (n: number, fill: (buf: Buffer, offset: number, length: number) => Promise<void>) => Promise<void>;

describe("S3Upload appendFrom", () => {
  it("makes the same parts and object as write, filling the part buffers in place (one fill per buffer spanned)", async () => {
    const data = randomBytes(17 * MiB + 12345);
    const s3 = new FakeS3();
    const byWrite = s3.upload("write.bin", { partBytes: 5 * MiB, budgetBytes: 10 * MiB });
    for (let off = 0; off < data.length; off += 3 * MiB + 7)
      await byWrite.write(data.subarray(off, Math.min(data.length, off + 3 * MiB + 7)));
    await byWrite.finish();
    const byAppend = s3.upload("append.bin", { partBytes: 5 * MiB, budgetBytes: 10 * MiB });
    const fills = await appendAll(byAppend, data, 3 * MiB + 7);
    const res = await byAppend.finish();
    expect(res.size).toBe(data.length);
    expect(s3.objects.get("append.bin")!.equals(data), "bytes as appended").toBe(true);
    expect(s3.objects.get("write.bin")!.equals(data)).toBe(true);
    expect(s3.partSizes.get("append.bin")).toEqual([5 * MiB, 5 * MiB, 5 * MiB, 2 * MiB + 12345]);
    expect(s3.partSizes.get("append.bin")).toEqual(s3.partSizes.get("write.bin"));
    // 6 appends of 3 MiB + 7 over 5 MiB parts (and a first buffer that grows): more fills than appends.
    expect(fills).toBeGreaterThan(6);
    expect(s3.uploads.size).toBe(0);
  });

  it("mixed with write, every part but the last is at least 5 MiB; a small object is one PutObject", async () => {
    const s3 = new FakeS3();
    const up = s3.upload("mixed.bin", { partBytes: MIN_PART_BYTES, budgetBytes: 3 * MIN_PART_BYTES });
    const pieces: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      const piece = randomBytes(((i * 7919) % (700 * 1024)) + 1);
      pieces.push(piece);
      if (i % 2 === 0) await up.write(piece);
      else await appendAll(up, piece, piece.length);
    }
    await up.finish();
    const all = Buffer.concat(pieces);
    expect(s3.objects.get("mixed.bin")!.equals(all)).toBe(true);
    const sizes = s3.partSizes.get("mixed.bin")!;
    expect(sizes.length).toBeGreaterThan(1);
    for (const n of sizes.slice(0, -1)) expect(n).toBe(MIN_PART_BYTES);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(all.length);

    const small = s3.upload("small.bin", { partBytes: 8 * MiB });
    const bytes = randomBytes(100_000);
    await appendAll(small, bytes, 30_000);
    await small.finish();
    expect(s3.commands.filter((c) => c !== "PutObjectCommand" && c !== "UploadPartCommand" && !c.includes("Multipart"))).toEqual([]);
    expect(s3.partSizes.get("small.bin")).toEqual([100_000]);
    expect(s3.objects.get("small.bin")!.equals(bytes)).toBe(true);
  });

  it("waits while the budget is spent: parts held in flight stop appendFrom; the budgets are given back", async () => {
    const s3 = new FakeS3();
    const shared = new ByteBudget(100 * MiB);
    const budget = 10 * MiB;
    const up = s3.upload("budget.bin", { partBytes: 5 * MiB, budgetBytes: budget, shared });
    s3.hold();
    const data = randomBytes(23 * MiB);
    let done = false;
    const appending = appendAll(up, data, MiB).then(() => (done = true));
    // Two parts fill the budget; the third buffer must wait for one of them to be sent.
    for (let i = 0; i < 50 && s3.heldParts < 2; i++) await new Promise((go) => setImmediate(go));
    await new Promise((go) => setTimeout(go, 20));
    expect(s3.heldParts).toBe(2);
    expect(done, "appendFrom waits for a part buffer").toBe(false);
    expect(up.peakBytes).toBeLessThanOrEqual(budget);
    expect(shared.inUse).toBe(budget);
    s3.release();
    await appending;
    await up.finish();
    expect(up.peakBytes).toBeLessThanOrEqual(budget);
    expect(s3.maxPartBytesInFlight).toBeLessThanOrEqual(budget);
    expect(shared.inUse, "every part buffer given back").toBe(0);
    expect(s3.objects.get("budget.bin")!.equals(data)).toBe(true);
  });

  it("abort part-way, even while a fill runs, leaves no upload and no object; later appends are refused", async () => {
    const s3 = new FakeS3();
    const shared = new ByteBudget(100 * MiB);
    const up = s3.upload("gone.bin", { partBytes: 5 * MiB, budgetBytes: 10 * MiB, shared });
    await appendAll(up, randomBytes(12 * MiB), 4 * MiB);
    expect(s3.uploads.size, "parts went out: the multipart upload exists").toBe(1);
    let started!: () => void;
    const filling = new Promise<void>((go) => (started = go));
    let finishFill!: () => void;
    const pending = up.appendFrom(MiB, async () => {
      started();
      await new Promise<void>((go) => (finishFill = go));
    });
    await filling;
    const aborting = up.abort();
    finishFill();
    await expect(pending).rejects.toThrow(/aborted/);
    await aborting;
    expect(s3.uploads.size).toBe(0);
    expect(s3.objects.has("gone.bin")).toBe(false);
    expect(s3.commands).toContain("AbortMultipartUploadCommand");
    expect(shared.inUse, "the part buffers are given back").toBe(0);
    await expect(up.appendFrom(10, () => Promise.resolve())).rejects.toThrow(/aborted/);
  });

  it("uploads sharing part buffers reuse them from one object to the next, bytes exact; one still being filled is not handed on", async () => {
    const s3 = new FakeS3();
    const buffers = new SpareBuffers(5 * MiB, 4);
    const taken = new Set<Buffer>();
    const take = buffers.take.bind(buffers);
    buffers.take = () => {
      const b = take();
      taken.add(b);
      return b;
    };
    const opts = { partBytes: 5 * MiB, budgetBytes: 10 * MiB, buffers };
    expect(() => s3.upload("x", { ...opts, partBytes: 6 * MiB })).toThrow(/buffers of 5242880 bytes for parts of 6291456/);
    const objects = [randomBytes(12 * MiB), randomBytes(3 * MiB + 1), randomBytes(100), randomBytes(11 * MiB)];
    for (const [i, data] of objects.entries()) {
      const up = s3.upload(`o${i}`, opts);
      await appendAll(up, data, MiB + 1);
      await up.finish();
      expect(s3.objects.get(`o${i}`)!.equals(data), `object ${i}`).toBe(true);
    }
    expect(taken.size, "four objects, 26 MiB: the same few buffers over and over").toBeLessThanOrEqual(3);

    const up = s3.upload("aborted", opts);
    let inFill: Buffer | undefined;
    let finishFill!: () => void;
    const pending = up.appendFrom(MiB, async (buf) => {
      inFill = buf;
      await new Promise<void>((go) => (finishFill = go));
    });
    await new Promise((go) => setImmediate(go));
    const aborting = up.abort();
    await new Promise((go) => setImmediate(go));
    finishFill();
    await expect(pending).rejects.toThrow(/aborted/);
    await aborting;
    const next = [take(), take(), take(), take(), take()];
    expect(next.includes(inFill!), "the buffer a fill was writing into is not lent again").toBe(false);
  });
});
