/**
 * S3Upload against a real RGW: parts uploaded in parallel within a byte budget, bit-exact objects,
 * small objects as one PutObject, aborts and recovery of incomplete uploads.
 */
import { createHash, randomBytes, randomFillSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ByteBudget } from "../../src/common/byte-budget.js";
import { cleanedAfterAll } from "./cleanup.js";
import { freshPrefix, testStore } from "./rgw.js";

const MiB = 1024 * 1024;
const keep = cleanedAfterAll();

/** A store whose requests are watched: commands sent, and the most UploadPart body bytes in flight at once. */
function watchedStore(name: string) {
  const s = testStore(freshPrefix(name));
  keep(s);
  const seen = { commands: [] as string[], partBytesInFlight: 0, maxPartBytesInFlight: 0, maxPartsInFlight: 0, partsInFlight: 0 };
  s.client.middlewareStack.add(
    (next, context) => async (args) => {
      seen.commands.push(context.commandName ?? "?");
      if (context.commandName !== "UploadPartCommand") return next(args);
      const len = (args.input as { ContentLength?: number }).ContentLength ?? 0;
      seen.partBytesInFlight += len;
      seen.partsInFlight++;
      seen.maxPartBytesInFlight = Math.max(seen.maxPartBytesInFlight, seen.partBytesInFlight);
      seen.maxPartsInFlight = Math.max(seen.maxPartsInFlight, seen.partsInFlight);
      try {
        return await next(args);
      } finally {
        seen.partBytesInFlight -= len;
        seen.partsInFlight--;
      }
    },
    { step: "initialize", name: "watchParts" },
  );
  return { s, seen };
}

const count = (list: string[], name: string) => list.filter((c) => c === name).length;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("S3Upload", () => {
  it("uploads sharing a budget of one part: each still gets its first part, none more; all is given back", async () => {
    const { s, seen } = watchedStore("shared-budget");
    const shared = new ByteBudget(5 * MiB);
    const data = [randomBytes(21 * MiB), randomBytes(21 * MiB)];
    const ups = data.map((_, i) => s.createUpload(`shared-${i}.bin`, { partBytes: 5 * MiB, budgetBytes: 20 * MiB, shared }));
    let maxInUse = 0;
    await Promise.all(
      ups.map(async (up, i) => {
        for (let at = 0; at < data[i]!.length; at += MiB) {
          await up.write(data[i]!.subarray(at, at + MiB));
          maxInUse = Math.max(maxInUse, shared.inUse);
        }
        await up.finish();
      }),
    );
    expect(maxInUse, "one forced part per upload, nothing past that while the budget is full").toBeLessThanOrEqual(2 * 5 * MiB);
    expect(seen.maxPartsInFlight, "two uploads, one part each at a time").toBeLessThanOrEqual(2);
    expect(shared.inUse, "every part buffer given back").toBe(0);
    for (const [i, d] of data.entries()) expect(sha((await s.get(`shared-${i}.bin`))!)).toBe(sha(d));
  });

  it("40 MiB from two reused 4 MiB buffers: bit-exact, parts in parallel, in-flight bytes within the budget", async () => {
    const { s, seen } = watchedStore("multipart");
    const budget = 24 * MiB;
    const up = s.createUpload("big.bin", { partBytes: 8 * MiB, budgetBytes: budget });
    const pool = [Buffer.alloc(4 * MiB), Buffer.alloc(4 * MiB)];
    const hash = createHash("sha256");
    for (let i = 0; i < 10; i++) {
      // The same two buffers again and again: write must have copied them by the time it resolves.
      const buf = randomFillSync(pool[i % 2]!);
      hash.update(buf);
      await up.write(buf);
    }
    const res = await up.finish();
    expect(res.size).toBe(40 * MiB);
    expect(count(seen.commands, "UploadPartCommand")).toBe(5);
    expect(count(seen.commands, "CompleteMultipartUploadCommand")).toBe(1);
    expect(seen.maxPartBytesInFlight).toBeLessThanOrEqual(budget);
    expect(up.peakBytes).toBeLessThanOrEqual(budget);
    expect(seen.maxPartsInFlight).toBeGreaterThanOrEqual(2);
    // RGW 16 completes with an empty ETag; the upload reads the real one back.
    expect(res.etag).toMatch(/^[0-9a-f]{32}-5$/);
    expect(await s.head("big.bin")).toEqual({ size: 40 * MiB, etag: res.etag });
    const back = await s.get("big.bin");
    expect(back!.length).toBe(40 * MiB);
    expect(sha(back!)).toBe(hash.digest("hex"));
    expect(await s.listIncompleteUploads("")).toEqual([]);
  });

  it("appendFrom fills the part buffers in place: bit-exact, the same parts as write, mixed with write", async () => {
    const { s, seen } = watchedStore("append-from");
    const up = s.createUpload("filled.bin", { partBytes: 5 * MiB, budgetBytes: 10 * MiB });
    const data = randomBytes(13 * MiB + 5);
    let fills = 0;
    for (let off = 0, i = 0; off < data.length; off += MiB + 3, i++) {
      const piece = data.subarray(off, Math.min(data.length, off + MiB + 3));
      if (i % 3 === 0) {
        await up.write(piece);
        continue;
      }
      let at = 0;
      await up.appendFrom(piece.length, async (buf, offset, length) => {
        await Promise.resolve();
        piece.copy(buf, offset, at, at + length);
        at += length;
        fills++;
      });
    }
    expect(fills).toBeGreaterThan(0);
    expect((await up.finish()).size).toBe(data.length);
    expect(count(seen.commands, "UploadPartCommand")).toBe(3);
    expect((await s.get("filled.bin"))!.equals(data)).toBe(true);
    expect(await s.listIncompleteUploads("")).toEqual([]);
  });

  it("writes of odd sizes make parts of exactly the part size, and a short last part", async () => {
    const { s, seen } = watchedStore("odd");
    const up = s.createUpload("odd.bin", { partBytes: 5 * MiB, budgetBytes: 10 * MiB });
    const data = randomBytes(13 * MiB + 5);
    for (let off = 0; off < data.length; off += MiB + 3) await up.write(data.subarray(off, Math.min(data.length, off + MiB + 3)));
    expect((await up.finish()).size).toBe(data.length);
    expect(count(seen.commands, "UploadPartCommand")).toBe(3);
    expect((await s.get("odd.bin"))!.equals(data)).toBe(true);
  });

  it("an object smaller than one part is a single PutObject", async () => {
    const { s, seen } = watchedStore("small");
    const up = s.createUpload("small.bin", { partBytes: 8 * MiB });
    const data = randomBytes(3 * MiB + 1);
    await up.write(data.subarray(0, MiB));
    await up.write(data.subarray(MiB));
    const res = await up.finish();
    expect(seen.commands.filter((c) => c !== "PutObjectCommand")).toEqual([]);
    expect(res.etag).toBe(createHash("md5").update(data).digest("hex"));
    expect((await s.get("small.bin"))!.equals(data)).toBe(true);
    const empty = s.createUpload("empty.bin");
    expect((await empty.finish()).size).toBe(0);
    expect(await s.head("empty.bin")).toMatchObject({ size: 0 });
  });

  it("abort leaves no incomplete upload and no object; writing after abort is refused", async () => {
    const { s } = watchedStore("abort");
    const up = s.createUpload("gone.bin", { partBytes: 5 * MiB, budgetBytes: 10 * MiB });
    const chunk = randomBytes(4 * MiB);
    for (let i = 0; i < 5; i++) await up.write(chunk);
    expect((await s.listIncompleteUploads("")).map((u) => u.key)).toEqual(["gone.bin"]);
    await up.abort();
    expect(await s.listIncompleteUploads("")).toEqual([]);
    expect(await s.head("gone.bin")).toBeUndefined();
    await expect(up.write(chunk)).rejects.toThrow(/aborted/);
    await up.abort(); // idempotent
  });

  it("abortIncompleteUploads clears uploads a process left behind", async () => {
    const { s } = watchedStore("recover");
    const left = s.createUpload("left.bin", { partBytes: 5 * MiB, budgetBytes: 5 * MiB });
    // With room for one part only, each write waits for the part before it: the upload exists by now.
    await left.write(randomBytes(11 * MiB));
    const listed = await s.listIncompleteUploads("");
    expect(listed.map((u) => u.key)).toEqual(["left.bin"]);
    expect(listed[0]!.uploadId).toBeTruthy();
    expect(await s.abortIncompleteUploads("", { olderThan: new Date(Date.now() - 3_600_000) })).toBe(0);
    expect(await s.abortIncompleteUploads("")).toBe(1);
    expect(await s.listIncompleteUploads("")).toEqual([]);
    await left.abort(); // the upload is already gone: not an error
  });
});
