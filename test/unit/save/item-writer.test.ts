import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { crc32c } from "@node-rs/crc32";
import { afterEach, describe, expect, it, vi } from "vitest";
import { decodeChunk, LZ4_MAX_BLOCK } from "../../../src/codec/codec.js";
import type { EntryRecord } from "../../../src/catalog/manifest.js";
import { entryFileName, PACK_FILE_NAME } from "../../../src/store/layout.js";
import { ItemWriter, itemWriterBuffers, PACK_MAX_ENTRY_BYTES, type EntrySpec } from "../../../src/save/item-writer.js";
import { BUFFERED_IO } from "../../../src/store/direct-io.js";
import { MemoryStorage } from "../../../src/store/memory.js";
import type { SharedSegment } from "../../../src/store/shared-memory.js";
import type { ObjectWriter } from "../../../src/store/storage.js";
import { ByteBudget } from "../../../src/common/byte-budget.js";
import { SpareBuffers } from "../../../src/store/buffer-pool.js";
import { MIN_PART_BYTES } from "../../../src/store/s3/multipart.js";
import { FakeS3 } from "../store/s3/fake-s3.js";

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) fs.rmSync(r, { recursive: true, force: true });
});

/** A fresh item directory, as the save path lays it out: <attempt>/<rank>/<item>. */
function itemDir(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-item-writer-"));
  roots.push(root);
  return path.join(root, "attempt-1", "rank-0", "model");
}

function f32(key: string, bytes: number): EntrySpec {
  return {
    key,
    kind: "tensor",
    tensor: { dtype: "DTYPE_FLOAT32", shape: [bytes / 4], device: "cpu", globalShape: [], globalOffsets: [] },
    sizeBytes: bytes,
  };
}

/** Bytes LZ4 shrinks (a repeating pattern), distinct per seed. */
function compressible(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = ((i % 61) * 7 + seed) & 0xff;
  return b;
}

/** Bytes LZ4 cannot shrink. */
function incompressible(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** Reads an entry back from its file through its recorded chunks, checking every recorded CRC on the way. */
async function readBack(dir: string, e: EntryRecord): Promise<Buffer> {
  const file = fs.readFileSync(path.join(dir, e.file));
  const parts: Buffer[] = [];
  for (const c of e.chunks) parts.push(Buffer.from(await decodeChunk(file.subarray(c.offset, c.offset + c.storedBytes), c)));
  return Buffer.concat(parts);
}

/** Byte equality without a deep compare of megabytes (which takes seconds). */
function expectSame(actual: Buffer, expected: Buffer): void {
  expect(actual.length).toBe(expected.length);
  expect(actual.equals(expected), "bytes read back differ from those written").toBe(true);
}

/** Writes `entries` (each split into chunks of at most `chunkBytes`) and finishes with a correct trailer. */
async function writeItem(dir: string, entries: Array<[EntrySpec, Buffer]>, chunkBytes = LZ4_MAX_BLOCK, io = BUFFERED_IO) {
  const w = new ItemWriter("model", dir, io, itemWriterBuffers());
  await w.open();
  let crc = 0;
  let bytes = 0;
  const all: Buffer[] = [];
  for (const [spec, data] of entries) {
    await w.beginEntry(spec);
    for (let off = 0; off < data.length; off += chunkBytes) {
      const chunk = data.subarray(off, Math.min(data.length, off + chunkBytes));
      await w.writeChunk(chunk, crc32c(chunk));
    }
    all.push(data);
    bytes += data.length;
  }
  crc = crc32c(Buffer.concat(all));
  const record = await w.finish({ entryCount: entries.length, byteCount: bytes, crc32c: crc });
  return { w, record };
}

describe("item writer", () => {
  it("item writer - on a storage without local files every file is a data object written through it, and discard removes them", async () => {
    const storage = new MemoryStorage("item-writer-objects");
    const io = { ...BUFFERED_IO, objects: storage };
    const dir = "jobs/j/staging/c@1/rank-00000/model";
    const small = compressible(4096, 1);
    const large = incompressible(PACK_MAX_ENTRY_BYTES + 4096, 3);
    const { record } = await writeItem(
      dir,
      [
        [f32("ln.weight", small.length), small],
        [f32("fc.weight", large.length), large],
      ],
      LZ4_MAX_BLOCK,
      io,
    );
    expect((await storage.list(dir)).sort()).toEqual([entryFileName(1), PACK_FILE_NAME].sort());
    for (const [e, want] of [
      [record.entries[0]!, small],
      [record.entries[1]!, large],
    ] as const) {
      const file = (await storage.get(`${dir}/${e.file}`))!;
      const parts: Buffer[] = [];
      for (const c of e.chunks) parts.push(Buffer.from(await decodeChunk(file.subarray(c.offset, c.offset + c.storedBytes), c)));
      expectSame(Buffer.concat(parts), want);
    }
    const crashed = storage.crash();
    expect((await crashed.list(dir)).length, "finished objects are durable").toBe(2);
    const w = new ItemWriter("model", dir, io, itemWriterBuffers());
    await w.open();
    expect(await storage.list(dir), "open starts the item afresh").toEqual([]);
    await w.beginEntry(f32("x", large.length));
    await w.writeChunk(large.subarray(0, 1 << 20), undefined);
    await w.discard();
    expect(await storage.list(dir)).toEqual([]);
  });

  it("item writer - small entries share the pack file, large ones get their own file; every entry reads back bit-exact", async () => {
    const dir = itemDir();
    const small1 = compressible(4096, 1);
    const small2 = incompressible(1000, 2);
    const large = compressible(PACK_MAX_ENTRY_BYTES + 4096, 3);
    const { record } = await writeItem(dir, [
      [f32("ln.weight", small1.length), small1],
      [{ key: "step", kind: "object", object: { sizeBytes: small2.length, format: "pickle" }, sizeBytes: small2.length }, small2],
      [f32("fc.weight", large.length), large],
    ]);
    expect(record.name).toBe("model");
    expect(record.entries.map((e) => [e.key, e.kind, e.file])).toEqual([
      ["ln.weight", "tensor", PACK_FILE_NAME],
      ["step", "object", PACK_FILE_NAME],
      ["fc.weight", "tensor", entryFileName(2)],
    ]);
    expect(fs.readdirSync(dir).sort()).toEqual([entryFileName(2), PACK_FILE_NAME].sort());
    // Packed entries lie one after the other in the pack file.
    const [a, b] = record.entries;
    expect(a!.chunks[0]!.offset).toBe(0);
    expect(b!.chunks[0]!.offset).toBe(a!.storedBytes);
    expect(fs.statSync(path.join(dir, PACK_FILE_NAME)).size).toBe(a!.storedBytes + b!.storedBytes);
    expect(fs.statSync(path.join(dir, entryFileName(2))).size).toBe(record.entries[2]!.storedBytes);
    expectSame(await readBack(dir, a!), small1);
    expectSame(await readBack(dir, b!), small2);
    expectSame(await readBack(dir, record.entries[2]!), large);
    expect(record.rawBytes).toBe(small1.length + small2.length + large.length);
    expect(record.storedBytes).toBe(record.entries.reduce((n, e) => n + e.storedBytes, 0));
    // The compressible data is stored compressed, the random bytes raw.
    expect(record.entries[0]!.chunks[0]!.raw).toBe(false);
    expect(record.entries[1]!.chunks[0]!.raw).toBe(true);
  });

  it("item writer - a large entry is stored as one frame per chunk, each with its offset, sizes and the CRC-32C of its bytes", async () => {
    const dir = itemDir();
    const data = compressible(3 * 1024 * 1024 + 123, 7);
    const chunkBytes = 1024 * 1024;
    const { record } = await writeItem(
      dir,
      [[f32("w", data.length - (data.length % 4)), data.subarray(0, data.length - (data.length % 4))]],
      chunkBytes,
    );
    const e = record.entries[0]!;
    expect(e.chunks).toHaveLength(4);
    let offset = 0;
    let raw = 0;
    for (const [i, c] of e.chunks.entries()) {
      const expected = data.subarray(i * chunkBytes, Math.min(e.rawBytes, (i + 1) * chunkBytes));
      expect(c.offset, `chunk ${i} starts where the previous ended`).toBe(offset);
      expect(c.rawBytes).toBe(expected.length);
      expect(c.crc32c, `chunk ${i} records the CRC-32C of its raw bytes`).toBe(crc32c(expected));
      offset += c.storedBytes;
      raw += c.rawBytes;
    }
    expect(raw).toBe(e.rawBytes);
    expect(offset).toBe(e.storedBytes);
    expect(e.storedBytes).toBeLessThan(e.rawBytes);
    expectSame(await readBack(dir, e), data.subarray(0, e.rawBytes));
  });

  it("item writer - a chunk whose CRC does not match, too many bytes, a duplicate key or a wrong trailer is refused", async () => {
    const dir = itemDir();
    const w = new ItemWriter("model", dir, BUFFERED_IO, itemWriterBuffers());
    await w.open();
    const data = compressible(4096, 1);
    await expect(w.writeChunk(data, crc32c(data))).rejects.toThrow(/before any entry header/);
    await w.beginEntry(f32("a", 4096));
    await expect(w.writeChunk(data, (crc32c(data) ^ 1) >>> 0)).rejects.toThrow(/chunk 0 of entry 'a' failed its checksum/);
    await w.writeChunk(data, crc32c(data));
    await expect(w.writeChunk(Buffer.alloc(4), undefined)).rejects.toThrow(/got 4100 bytes so far but expects 4096 bytes/);
    await expect(w.beginEntry(f32("a", 8))).rejects.toThrow(/duplicate entry key "a"/);
    await expect(w.finish({ entryCount: 2, byteCount: 4096, crc32c: crc32c(data) })).rejects.toThrow(/trailer says 2 entries but 1/);

    const w2 = new ItemWriter("model", itemDir(), BUFFERED_IO, itemWriterBuffers());
    await w2.open();
    await w2.beginEntry(f32("a", 4096));
    await w2.writeChunk(data, crc32c(data));
    await expect(w2.finish({ entryCount: 1, byteCount: 4096, crc32c: (crc32c(data) + 1) >>> 0 })).rejects.toThrow(
      /item 'model' failed its checksum/,
    );
    await w2.discard();
  });

  it("item writer - an entry left short when the next begins is refused", async () => {
    const w = new ItemWriter("model", itemDir(), BUFFERED_IO, itemWriterBuffers());
    await w.open();
    await w.beginEntry(f32("a", PACK_MAX_ENTRY_BYTES + 4096));
    const part = compressible(4096, 1);
    await w.writeChunk(part, crc32c(part));
    await expect(w.beginEntry(f32("b", 8))).rejects.toThrow(/'a'/);
    await w.discard();
  });

  it("item writer - discard closes the open files and removes the item's directory; open clears what a previous attempt left", async () => {
    const dir = itemDir();
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "leftover"), "x");
    const w = new ItemWriter("model", dir, BUFFERED_IO, itemWriterBuffers());
    await w.open();
    expect(fs.readdirSync(dir), "open starts from an empty directory").toEqual([]);
    const small = compressible(100, 1);
    const large = compressible(PACK_MAX_ENTRY_BYTES + 8, 2);
    await w.beginEntry(f32("s", small.length));
    await w.writeChunk(small, crc32c(small));
    await w.beginEntry(f32("l", large.length));
    await w.writeChunk(large.subarray(0, 4096), undefined);
    expect(fs.existsSync(path.join(dir, entryFileName(1)))).toBe(true);
    await w.discard();
    expect(fs.existsSync(dir)).toBe(false);
    expect(fs.existsSync(path.dirname(dir)), "only the item's own directory goes").toBe(true);
  });

  it("item writer - the pack and encode buffers come from the daemon's buffers and go back to them on finish and discard", async () => {
    const buffers = itemWriterBuffers();
    const lent = new Set<Buffer>();
    for (const pool of [buffers.pack, buffers.encodeScratch]) {
      const take = pool.take.bind(pool);
      const give = pool.give.bind(pool);
      vi.spyOn(pool, "take").mockImplementation(() => {
        const b = take();
        lent.add(b);
        return b;
      });
      vi.spyOn(pool, "give").mockImplementation((b) => {
        expect(lent.delete(b), "only a lent buffer is given back").toBe(true);
        give(b);
      });
    }
    const small = compressible(100, 1);
    const large = compressible(PACK_MAX_ENTRY_BYTES + 8, 2);
    const finished = new ItemWriter("model", itemDir(), BUFFERED_IO, buffers);
    await finished.open();
    await finished.beginEntry(f32("s", small.length));
    await finished.writeChunk(small, crc32c(small));
    await finished.beginEntry(f32("l", large.length));
    await finished.writeChunk(large, crc32c(large));
    expect(buffers.encodeScratch.take).toHaveBeenCalled();
    expect(lent.size, "the pack buffer is held until finish").toBe(1);
    await finished.finish({ entryCount: 2, byteCount: small.length + large.length, crc32c: crc32c(Buffer.concat([small, large])) });
    expect(lent.size).toBe(0);

    const discarded = new ItemWriter("model", itemDir(), BUFFERED_IO, buffers);
    await discarded.open();
    await discarded.beginEntry(f32("s", small.length));
    await discarded.writeChunk(small, crc32c(small));
    expect(lent.size).toBe(1);
    await discarded.discard();
    expect(lent.size).toBe(0);
    expect(buffers.pack.take).toHaveBeenCalledTimes(2);
  });
});

/** A client's shared-memory file holding `file`, its reads recorded (where to, how many bytes). */
function sharedFile(file: Buffer) {
  const reads: { into: Buffer; length: number }[] = [];
  const segment = {
    read: (offset: number, length: number, into: Buffer) => {
      file.copy(into, 0, offset, offset + length);
      reads.push({ into, length });
      return Promise.resolve(into.subarray(0, length));
    },
    readSync: (offset: number, length: number, into: Buffer, at: number) => {
      file.copy(into, at, offset, offset + length);
      reads.push({ into, length });
    },
  };
  return { segment: segment as unknown as SharedSegment, reads };
}

/** A storage whose data objects are S3Uploads to an in-memory S3 (appendFrom fills their part buffers). */
class FakeS3Storage extends MemoryStorage {
  readonly s3 = new FakeS3();
  readonly shared = new ByteBudget(64 * 1024 * 1024);
  /** Part buffers reused from one object to the next, as S3Storage's. */
  readonly partBuffers = new SpareBuffers(MIN_PART_BYTES, 4);
  readonly writers: (ObjectWriter & { upload: { peakBytes: number } })[] = [];
  /** Calls of the writers' `write` (the copying way in). */
  writeCalls = 0;

  override createObjectWriter(key: string): ObjectWriter {
    const w = this.s3.objectWriter(key, {
      partBytes: MIN_PART_BYTES,
      budgetBytes: 2 * MIN_PART_BYTES,
      shared: this.shared,
      buffers: this.partBuffers,
    });
    this.writers.push(w);
    return {
      ...w,
      write: (data) => {
        this.writeCalls++;
        return w.write(data);
      },
      abort: async () => {
        await w.abort();
        this.s3.objects.delete(key);
      },
    };
  }

  override async deletePrefix(prefix: string): Promise<void> {
    for (const k of [...this.s3.objects.keys()]) if (k.startsWith(`${prefix}/`)) this.s3.objects.delete(k);
    await super.deletePrefix(prefix);
  }
}

describe("item writer on an object store", () => {
  const packMedium = 600 * 1024;
  /** Entries of every kind the writer tells apart: packed inline, packed and gathered, entry objects raw and compressed. */
  const entries: Array<[EntrySpec, Buffer]> = [
    [f32("ln.weight", 4096), compressible(4096, 1)],
    [f32("ln.bias", 1000), incompressible(1000, 2)],
    [f32("attn.scale", packMedium), incompressible(packMedium, 3)],
    [f32("mask", 300 * 1024), compressible(300 * 1024, 4)],
    [f32("fc.weight", 9 * 1024 * 1024 + 4096), incompressible(9 * 1024 * 1024 + 4096, 5)],
    [f32("exp_avg_sq", 3 * 1024 * 1024), compressible(3 * 1024 * 1024, 6)],
    [f32("step", 8), incompressible(8, 7)],
    [f32("head.weight", 2 * 1024 * 1024 + 12), incompressible(2 * 1024 * 1024 + 12, 8)],
  ];
  const file = Buffer.concat(entries.map(([, d]) => d));
  const offsets = entries.map((_, i) => entries.slice(0, i).reduce((n, [, d]) => n + d.length, 0));
  /** Chunks of at most 1 MiB + 3 bytes, so chunks and part boundaries fall anywhere. */
  const CHUNK = 1024 * 1024 + 3;

  /** Writes the item, its chunks sent inline or (`shared`) named in the shared-memory file; the reads into the read buffer counted. */
  async function write(dir: string, io: typeof BUFFERED_IO, shared: boolean, buffers = itemWriterBuffers()) {
    const w = new ItemWriter("model", dir, io, buffers);
    await w.open();
    const { segment, reads } = sharedFile(file);
    const readBuffer = Buffer.allocUnsafe(LZ4_MAX_BLOCK);
    for (const [i, [spec, data]] of entries.entries()) {
      await w.beginEntry(spec);
      for (let off = 0; off < data.length; off += CHUNK) {
        const n = Math.min(CHUNK, data.length - off);
        const crc = crc32c(data.subarray(off, off + n));
        if (shared) await w.writeSharedChunk(segment, offsets[i]! + off, n, crc, readBuffer);
        else await w.writeChunk(data.subarray(off, off + n), crc);
      }
    }
    const record = await w.finish({ entryCount: entries.length, byteCount: file.length, crc32c: crc32c(file) });
    // Bytes read somewhere other than the read buffer, leaving out the policy's 4 KiB samples.
    const sample = (r: { into: Buffer; length: number }) => r.into.length === 16 * 4096 && r.length === 4096;
    const inPlace = reads.filter((r) => r.into.buffer !== readBuffer.buffer && !sample(r)).reduce((n, r) => n + r.length, 0);
    return { record, inPlace };
  }

  it("item writer - frames and objects are byte-identical to the files, whether the writer takes appendFrom or not, shared or inline", async () => {
    const dir = itemDir();
    const reference = await write(dir, BUFFERED_IO, false);
    const files = new Map(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f))]));
    expect([...files.keys()].sort()).toEqual([PACK_FILE_NAME, entryFileName(4), entryFileName(5), entryFileName(7)].sort());
    for (const [e, [, data]] of reference.record.entries.map((e, i) => [e, entries[i]!] as const)) expectSame(await readBack(dir, e), data);
    // The raw and the compressed paths are both taken.
    const chunks = reference.record.entries.flatMap((e) => e.chunks);
    expect(chunks.some((c) => c.raw) && chunks.some((c) => !c.raw)).toBe(true);

    const key = "jobs/j/staging/c@1/rank-00000/model";
    for (const shared of [false, true]) {
      const posix = await write(itemDir(), BUFFERED_IO, shared);
      expect(posix.record, `POSIX, ${shared ? "shared" : "inline"} chunks`).toEqual(reference.record);
      expect(posix.inPlace, "buffered files: every shared chunk goes through the read buffer").toBe(0);

      const memory = new MemoryStorage("item-writer-plain");
      const plain = await write(key, { ...BUFFERED_IO, objects: memory }, shared);
      expect(plain.record, `write-only objects, ${shared ? "shared" : "inline"} chunks`).toEqual(reference.record);
      for (const [f, bytes] of files) expect((await memory.get(`${key}/${f}`))!.equals(bytes), `${f} as written`).toBe(true);

      const s3 = new FakeS3Storage("item-writer-s3");
      const buffers = itemWriterBuffers();
      const packTake = vi.spyOn(buffers.pack, "take");
      const got = await write(key, { ...BUFFERED_IO, objects: s3 }, shared, buffers);
      expect(got.record, `appendFrom objects, ${shared ? "shared" : "inline"} chunks`).toEqual(reference.record);
      for (const [f, bytes] of files) expect(s3.s3.objects.get(`${key}/${f}`)!.equals(bytes), `${f} as uploaded`).toBe(true);
      expect(packTake, "no pack buffer: the part buffers gather the pack's frames").not.toHaveBeenCalled();
      expect(s3.writeCalls, "every byte went in through appendFrom").toBe(0);
      // Raw chunks of entries and of packed entries, past the size the policy samples, were
      // read straight into the part buffers; shorter ones through the read buffer.
      const rawShared = got.record.entries
        .flatMap((e) => e.chunks)
        .filter((c) => c.raw && c.rawBytes > 2 * 16 * 4096)
        .reduce((n, c) => n + c.rawBytes, 0);
      expect(rawShared).toBeGreaterThan(10 * 1024 * 1024);
      expect(got.inPlace).toBe(shared ? rawShared : 0);
      for (const [f, sizes] of s3.s3.partSizes) {
        for (const n of sizes.slice(0, -1)) expect(n, `${f}: parts but the last are full`).toBe(MIN_PART_BYTES);
      }
      expect(s3.s3.partSizes.get(`${key}/${entryFileName(4)}`)!.length, "the large entry went out in parts").toBeGreaterThan(1);
      for (const w of s3.writers) expect(w.upload.peakBytes).toBeLessThanOrEqual(2 * MIN_PART_BYTES);
      expect(s3.shared.inUse, "every part buffer is given back").toBe(0);
      expect(s3.s3.uploads.size).toBe(0);
    }
  });

  it("item writer - discarded part-way on an object store, it leaves no object and no upload behind", async () => {
    const storage = new FakeS3Storage("item-writer-discard");
    const key = "jobs/j/staging/c@1/rank-00000/model";
    const w = new ItemWriter("model", key, { ...BUFFERED_IO, objects: storage }, itemWriterBuffers());
    await w.open();
    const { segment } = sharedFile(file);
    const readBuffer = Buffer.allocUnsafe(LZ4_MAX_BLOCK);
    // The packed entries in full, then 7 MiB of the large one: the pack's upload open, and the
    // large entry's with a part out.
    for (const [i, [spec, data]] of entries.slice(0, 5).entries()) {
      await w.beginEntry(spec);
      const end = spec.key === "fc.weight" ? 7 * 1024 * 1024 : data.length;
      for (let off = 0; off < end; off += CHUNK)
        await w.writeSharedChunk(segment, offsets[i]! + off, Math.min(CHUNK, end - off), undefined, readBuffer);
    }
    expect(storage.s3.uploads.size, "the large entry's upload has parts out").toBeGreaterThan(0);
    await w.discard();
    expect(storage.s3.uploads.size).toBe(0);
    expect([...storage.s3.objects.keys()].filter((k) => k.startsWith(key))).toEqual([]);
    expect(storage.shared.inUse).toBe(0);
  });
});
