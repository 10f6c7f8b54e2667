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
import { PosixStorage } from "../../../src/store/posix.js";
import { testManifest } from "../catalog/manifest-fixture.js";

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
  return { loader: new CheckpointLoader(storage, catalog), dir, data, entry };
}

function planAll(loader: CheckpointLoader) {
  return loader.plan({
    job: "j",
    checkpointId: "c",
    rank: 0,
    localRank: 0,
    devices: [],
    mapLocation: {},
    items: [],
    sourceRank: undefined,
    worldSize: 0,
    boxes: [],
    shardAs: undefined,
  });
}

async function loadAll(loader: CheckpointLoader): Promise<Map<string, Buffer>> {
  const plan = await planAll(loader);
  const got = new Map<string, Buffer[]>();
  let key = "";
  for await (const part of loader.stream(plan)) {
    if (part.kind === "entry") got.set((key = part.entry.key), []);
    else got.get(key)!.push(Buffer.from(part.data));
  }
  return new Map([...got].map(([k, parts]) => [k, Buffer.concat(parts)]));
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
