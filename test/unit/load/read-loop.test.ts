import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { crc32c } from "@node-rs/crc32";
import { afterEach, describe, expect, it } from "vitest";
import { Catalog } from "../../../src/catalog/catalog.js";
import { summarize, type ItemRecord, type Manifest } from "../../../src/catalog/manifest.js";
import { CkptdError } from "../../../src/common/errors.js";
import { CheckpointLoader } from "../../../src/load/loader.js";
import { ItemWriter, itemWriterBuffers, PACK_MAX_ENTRY_BYTES, type EntrySpec } from "../../../src/save/item-writer.js";
import { BUFFERED_IO } from "../../../src/store/direct-io.js";
import { layout, PACK_FILE_NAME } from "../../../src/store/layout.js";
import { MemoryStorage } from "../../../src/store/memory.js";
import { PosixStorage } from "../../../src/store/posix.js";
import { testManifest } from "../catalog/manifest-fixture.js";
import { loadAll, planAll } from "./load-helpers.js";

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) fs.rmSync(r, { recursive: true, force: true });
});

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = ((i % 251) * 13 + seed) & 0xff;
  return b;
}

const spec = (key: string, sizeBytes: number): EntrySpec => ({ key, kind: "object", object: { sizeBytes, format: "raw" }, sizeBytes });

/**
 * A committed checkpoint "c" of job "j" on disk: rank 0's item "model" holds two packed
 * entries ("a", "b") and one entry file of three chunks ("big").
 */
async function checkpoint(
  data: Record<string, Buffer> = { a: bytes(1000, 1), b: bytes(2000, 2), big: bytes(PACK_MAX_ENTRY_BYTES + 2 * 65536, 3) },
) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-read-loop-"));
  roots.push(root);
  const storage = new PosixStorage(root);
  const base = storage.localPath!(layout.checkpoint("j", "c"))!;
  const dir = path.join(base, "rank-00000", "model");
  const w = new ItemWriter("model", dir, BUFFERED_IO, itemWriterBuffers());
  await w.open();
  for (const [key, d] of Object.entries(data)) {
    await w.beginEntry(spec(key, d.length));
    const step = d.length > PACK_MAX_ENTRY_BYTES ? Math.ceil(d.length / 3) : d.length;
    for (let off = 0; off < d.length; off += step) await w.writeChunk(d.subarray(off, off + step), undefined);
  }
  const all = Buffer.concat(Object.values(data));
  const item: ItemRecord = await w.finish({ entryCount: Object.keys(data).length, byteCount: all.length, crc32c: crc32c(all) });
  const manifest: Manifest = {
    ...testManifest("c", 1),
    rawBytes: item.rawBytes,
    storedBytes: item.storedBytes,
    ranks: [{ rank: 0, items: [item] }],
  };
  await storage.put(layout.manifest("j", "c"), JSON.stringify(manifest));
  const catalog = new Catalog(storage);
  catalog.add(summarize(manifest));
  const entry = (key: string) => item.entries.find((e) => e.key === key)!;
  return { loader: new CheckpointLoader(storage, catalog), dir, data, entry, manifest };
}

async function loadError(loader: CheckpointLoader): Promise<CkptdError> {
  const err = await loadAll(loader).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CkptdError);
  expect((err as CkptdError).kind).toBe("data_loss");
  return err as CkptdError;
}

describe("load and verify read loop", () => {
  it("read loop - an intact checkpoint loads bit-exact and verifies with every chunk counted", async () => {
    const { loader, data, entry } = await checkpoint();
    const got = await loadAll(loader);
    for (const [key, d] of Object.entries(data)) expect(got.get(key)?.equals(d), key).toBe(true);
    expect(entry("big").chunks).toHaveLength(3);
    const v = await loader.verify("j", "c");
    expect(v).toMatchObject({ chunks: 5, bytes: Object.values(data).reduce((n, d) => n + d.length, 0), damaged: [] });
  });

  it("read loop - a missing entry file: the load fails with DATA_LOSS naming it, verify lists each of its chunks and checks the rest", async () => {
    const { loader, dir, entry } = await checkpoint();
    const big = entry("big");
    fs.rmSync(path.join(dir, big.file));
    expect((await loadError(loader)).message).toBe(
      `item 'model' key 'big': stored file ${big.file} is missing (or the checkpoint was deleted during the load)`,
    );
    const v = await loader.verify("j", "c");
    expect(v.chunks).toBe(2);
    expect(v.damaged).toEqual(
      big.chunks.map((c, i) => ({
        rank: 0,
        item: "model",
        key: "big",
        chunkIndex: i,
        file: `rank-00000/model/${big.file}`,
        offset: c.offset,
        problem: "file is missing",
      })),
    );
  });

  it("read loop - a truncated entry file and a corrupt packed chunk: the load fails at the first, verify reports both and goes on", async () => {
    const { loader, dir, entry } = await checkpoint();
    const b = entry("b");
    const big = entry("big");
    expect(b.file).toBe(PACK_FILE_NAME);
    const pack = path.join(dir, PACK_FILE_NAME);
    const packBytes = fs.readFileSync(pack);
    packBytes[b.chunks[0]!.offset + Math.floor(b.chunks[0]!.storedBytes / 2)]! ^= 0xff;
    fs.writeFileSync(pack, packBytes);
    const last = big.chunks[2]!;
    fs.truncateSync(path.join(dir, big.file), last.offset + 10);
    expect((await loadError(loader)).message).toMatch(
      new RegExp(
        `^checkpoint 'c' rank 0 item 'model' key 'b' chunk 0 \\(file ${PACK_FILE_NAME}, offset ${b.chunks[0]!.offset}\\) is corrupt: `,
      ),
    );
    const v = await loader.verify("j", "c");
    expect(v.chunks).toBe(5);
    expect(v.bytes).toBe(entry("a").rawBytes + big.chunks[0]!.rawBytes + big.chunks[1]!.rawBytes);
    expect(v.damaged.map((d) => [d.key, d.chunkIndex, d.offset])).toEqual([
      ["b", 0, b.chunks[0]!.offset],
      ["big", 2, last.offset],
    ]);
    expect(v.damaged[1]!.problem).toBe(`file is truncated (10 of ${last.storedBytes} bytes)`);
    expect(v.damaged[0]!.problem).not.toBe("");
  });

  it("read loop - packed entries side by side load with one read of their pack file; one cut short there fails as truncated", async () => {
    const small = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`t${i}`, bytes(100 + 37 * i, i)]));
    const { loader, dir, data, entry } = await checkpoint({ ...small, big: bytes(PACK_MAX_ENTRY_BYTES + 2 * 65536, 3) });
    const pack = path.join(dir, PACK_FILE_NAME);
    const reads = await packReads(pack);
    try {
      const got = await loadAll(loader);
      for (const [key, d] of Object.entries(data)) expect(got.get(key)?.equals(d), key).toBe(true);
      expect(reads.count).toBe(1);
    } finally {
      reads.restore();
    }
    // Cut inside t7's chunk: t0..t6 come out whole, then the load fails naming t7's chunk.
    const t7 = entry("t7").chunks[0]!;
    fs.truncateSync(pack, t7.offset + 5);
    const keys: string[] = [];
    const plan = await planAll(loader);
    const err = await (async () => {
      for await (const part of loader.stream(plan)) if (part.kind === "entry") keys.push(part.entry.key);
    })().then(
      () => undefined,
      (e: unknown) => e as CkptdError,
    );
    expect(keys).toEqual(Array.from({ length: 8 }, (_, i) => `t${i}`));
    expect(err?.kind).toBe("data_loss");
    expect(err?.message).toBe(
      `checkpoint 'c' rank 0 item 'model' key 't7' chunk 0 (file ${PACK_FILE_NAME}, offset ${t7.offset}) is corrupt: ` +
        `file is truncated (5 of ${t7.storedBytes} bytes)`,
    );
  });

  it("read loop - a pack file opened with O_DIRECT (its first entry is 1 MiB) is read in whole blocks, its end and a cut in it too", async () => {
    const small = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`t${i}`, bytes(300 + 101 * i, i)]));
    const { loader, dir, data, entry } = await checkpoint({ one: crypto.randomBytes(PACK_MAX_ENTRY_BYTES), ...small });
    expect(entry("one").file).toBe(PACK_FILE_NAME);
    const pack = path.join(dir, PACK_FILE_NAME);
    expect(fs.statSync(pack).size % 4096).not.toBe(0);
    const reads = await packReads(pack);
    try {
      const got = await loadAll(loader);
      for (const [key, d] of Object.entries(data)) expect(got.get(key)?.equals(d), key).toBe(true);
      expect(reads.count).toBe(1);
      expect(reads.direct).toBe(1);
    } finally {
      reads.restore();
    }
    const t5 = entry("t5").chunks[0]!;
    fs.truncateSync(pack, t5.offset + 7);
    expect((await loadError(loader)).message).toBe(
      `checkpoint 'c' rank 0 item 'model' key 't5' chunk 0 (file ${PACK_FILE_NAME}, offset ${t5.offset}) is corrupt: ` +
        `file is truncated (7 of ${t5.storedBytes} bytes)`,
    );
  });

  it("read loop - a stream stopped while the next entry's file is read ahead closes every file it opened", async () => {
    const { loader, dir } = await checkpoint({
      big: bytes(PACK_MAX_ENTRY_BYTES + 2 * 65536, 3),
      big2: bytes(PACK_MAX_ENTRY_BYTES + 2 * 65536, 4),
    });
    const plan = await planAll(loader);
    let chunks = 0;
    for await (const part of loader.stream(plan)) {
      if (part.kind === "chunk" && ++chunks === 1) {
        // big2 is opened while big's chunks go out.
        await new Promise((r) => setTimeout(r, 50));
        expect(openFilesUnder(dir).length).toBe(2);
        break;
      }
    }
    expect(openFilesUnder(dir)).toEqual([]);
  });
});

/**
 * The checkpoint of `checkpoint()` on a storage without local files (as on an object store): its
 * files as objects of a MemoryStorage, whose ranged reads and stats are counted.
 */
async function objectCheckpoint(data?: Record<string, Buffer>) {
  const local = await checkpoint(data);
  const storage = new MemoryStorage("read-loop", true);
  const prefix = storage.dataPrefix("j", "c", 1);
  for (const name of fs.readdirSync(local.dir))
    storage.write(`${prefix}/rank-00000/model/${name}`, fs.readFileSync(path.join(local.dir, name)));
  await storage.put(layout.manifest("j", "c"), JSON.stringify(local.manifest));
  const ranges: { key: string; offset: number; length: number }[] = [];
  let stats = 0;
  const getRange = storage.getRange.bind(storage);
  storage.getRange = (key, offset, length, into) => {
    ranges.push({ key: key.slice(prefix.length + 1), offset, length });
    return getRange(key, offset, length, into);
  };
  const stat = storage.stat.bind(storage);
  storage.stat = (key) => {
    stats++;
    return stat(key);
  };
  const catalog = new Catalog(storage);
  catalog.add(summarize(local.manifest));
  return { ...local, storage, prefix, ranges, stats: () => stats, loader: new CheckpointLoader(storage, catalog) };
}

describe("load read loop on a storage without local files", () => {
  it("read loop on objects - no stat; an entry's side-by-side chunks in runs of one ranged read, the packed entries in one; bit-exact", async () => {
    const { loader, data, entry, ranges, stats } = await objectCheckpoint();
    const got = await loadAll(loader);
    for (const [key, d] of Object.entries(data)) expect(got.get(key)?.equals(d), key).toBe(true);
    expect(stats()).toBe(0);
    const big = entry("big");
    expect(big.chunks).toHaveLength(3);
    const end = (i: number) => big.chunks[i]!.offset + big.chunks[i]!.storedBytes;
    // Two runs: chunks 0 and 1 with one read, chunk 2 with another, each exactly their bytes.
    expect(ranges.filter((r) => r.key.endsWith(big.file))).toEqual([
      { key: `rank-00000/model/${big.file}`, offset: 0, length: end(1) },
      { key: `rank-00000/model/${big.file}`, offset: end(1), length: end(2) - end(1) },
    ]);
    expect(ranges.filter((r) => r.key.endsWith(PACK_FILE_NAME))).toHaveLength(1);
    const v = await loader.verify("j", "c");
    expect(v).toMatchObject({ chunks: 5, damaged: [] });
  });

  it("read loop on objects - a pack of 12 MiB is read in two runs (7 and 5 entries of 1 MiB), the second while the first's entries are sent; bit-exact", async () => {
    const data = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`p${i}`, crypto.randomBytes(PACK_MAX_ENTRY_BYTES)]));
    const { loader, entry, ranges } = await objectCheckpoint(data);
    const plan = await planAll(loader);
    const got = new Map<string, Buffer[]>();
    let key = "";
    let readsAtFirstChunk = -1;
    for await (const part of loader.stream(plan)) {
      if (part.kind === "entry") got.set((key = part.entry.key), []);
      else {
        if (readsAtFirstChunk < 0) {
          await new Promise((r) => setTimeout(r, 10));
          readsAtFirstChunk = ranges.length;
        }
        got.get(key)!.push(Buffer.from(part.data));
      }
    }
    for (const [k, d] of Object.entries(data)) expect(Buffer.concat(got.get(k)!).equals(d), k).toBe(true);
    expect(readsAtFirstChunk, "the second run is asked for while the first's entries go out").toBe(2);
    const end = (k: string) => entry(k).chunks[0]!.offset + entry(k).chunks[0]!.storedBytes;
    expect(ranges.map((r) => [r.offset, r.offset + r.length])).toEqual([
      [0, end("p6")],
      [end("p6"), end("p11")],
    ]);
  });

  it("read loop on objects - a missing object is DATA_LOSS naming the entry; a byte flipped in a run's second chunk names that chunk", async () => {
    const missing = await objectCheckpoint();
    await missing.storage.delete(`${missing.prefix}/rank-00000/model/${missing.entry("big").file}`);
    expect((await loadError(missing.loader)).message).toBe(
      `item 'model' key 'big': stored file ${missing.entry("big").file} is missing (or the checkpoint was deleted during the load)`,
    );
    const v = await missing.loader.verify("j", "c");
    expect(v.damaged.map((d) => `${d.key} ${d.chunkIndex} ${d.problem}`)).toEqual([0, 1, 2].map((i) => `big ${i} file is missing`));

    const flipped = await objectCheckpoint();
    const big = flipped.entry("big");
    const key = `${flipped.prefix}/rank-00000/model/${big.file}`;
    const stored = (await flipped.storage.get(key))!;
    stored[big.chunks[1]!.offset + 100] = stored[big.chunks[1]!.offset + 100]! ^ 0xff;
    flipped.storage.write(key, stored);
    expect((await loadError(flipped.loader)).message).toMatch(
      new RegExp(
        `^checkpoint 'c' rank 0 item 'model' key 'big' chunk 1 \\(file ${big.file}, offset ${big.chunks[1]!.offset}\\) is corrupt`,
      ),
    );
    // Whole again, then cut short inside its second run: the chunk there is truncated.
    stored[big.chunks[1]!.offset + 100] = stored[big.chunks[1]!.offset + 100]! ^ 0xff;
    flipped.storage.write(key, stored.subarray(0, big.chunks[2]!.offset + 10));
    expect((await loadError(flipped.loader)).message).toMatch(
      new RegExp(
        `key 'big' chunk 2 \\(file ${big.file}, offset ${big.chunks[2]!.offset}\\) is corrupt: file is truncated \\(10 of ${big.chunks[2]!.storedBytes} bytes\\)$`,
      ),
    );
  });
});

/** The files under `dir` this process holds open. */
function openFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync("/proc/self/fd")) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir + path.sep)) out.push(target);
    } catch {
      // Closed meanwhile.
    }
  }
  return out;
}

/** Counts FileHandle reads of `file` (and those through O_DIRECT) until restored. */
async function packReads(file: string): Promise<{ readonly count: number; readonly direct: number; restore(): void }> {
  const probe = await fs.promises.open(file, "r");
  const proto = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => unknown };
  await probe.close();
  const original = proto.read;
  let count = 0;
  let direct = 0;
  proto.read = function (this: fs.promises.FileHandle, ...args: unknown[]) {
    if (fs.readlinkSync(`/proc/self/fd/${this.fd}`) === file) {
      count++;
      const flags = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${this.fd}`, "utf8"))![1]!;
      if (parseInt(flags, 8) & fs.constants.O_DIRECT) direct++;
    }
    return original.apply(this, args);
  };
  return {
    get count() {
      return count;
    },
    get direct() {
      return direct;
    },
    restore: () => {
      proto.read = original;
    },
  };
}
