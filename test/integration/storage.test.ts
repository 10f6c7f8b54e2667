/**
 * Invariant 2 and the on-disk contract: committed data is never silently corrupted
 * (a flipped byte is a DATA_LOSS naming the chunk, never wrong bytes), stored files
 * are standard LZ4 frames anyone can decompress, and a data directory has one owner.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { crc32c } from "@node-rs/crc32";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DAEMON_ENTRY, type Daemon, startDaemon } from "./harness.js";
import { CkptdClient } from "../../clients/ts/src/index.js";
import {
  MiB,
  compressibleBytes,
  entryFile,
  expectLoadsBitExact,
  expectSameBytes,
  expectStatus,
  f32Entry,
  hashTree,
  incompressibleBytes,
  manifestEntry,
  objectEntry,
  type RankItems,
  readManifest,
  saveAndCommit,
  tensorEntry,
  uniqueName,
  testClient,
} from "./wire-helpers.js";
import { loadAll } from "./raw-wire.js";

const LZ4 = "/usr/bin/lz4";
const hasLz4 = fs.existsSync(LZ4);
const JOB = "storage-job";

let daemon: Daemon;
let client: CkptdClient;

beforeAll(async () => {
  daemon = await startDaemon();
  client = testClient(daemon.address);
});

afterAll(async () => {
  client?.close();
  await daemon?.stop();
});

/** Rank 0: a compressible 10 MiB tensor (3 chunks), a random 6 MiB tensor (2 chunks), an object. */
function corruptibleCheckpoint(): RankItems[] {
  return [
    {
      model: [f32Entry("layers.7.attn.weight", compressibleBytes(10 * MiB, 5)), f32Entry("embedding.weight", incompressibleBytes(6 * MiB))],
      optim: [objectEntry("state", compressibleBytes(64 * 1024, 6))],
    },
    { model: [f32Entry("layers.7.attn.weight", compressibleBytes(2 * MiB, 7))] },
  ];
}

/** Flips one byte in the middle of a stored chunk, using the manifest's offsets. */
function flipByteInChunk(checkpointId: string, rank: number, item: string, key: string, entryIndex: number, chunk: number) {
  const m = readManifest(daemon.dataDir, JOB, checkpointId);
  const e = manifestEntry(m, rank, item, key);
  const c = e.chunks[chunk];
  expect(c, `manifest has chunk ${chunk} of ${key}`).toBeDefined();
  // The entry's own file, or the item's pack file it shares with other small entries.
  const file = path.join(path.dirname(entryFile(daemon.dataDir, JOB, checkpointId, rank, item, entryIndex)), e.file);
  const at = c!.offset + Math.floor(c!.storedBytes / 2);
  const fd = fs.openSync(file, "r+");
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, at);
    b[0] = b[0]! ^ 0x5a;
    fs.writeSync(fd, b, 0, 1, at);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return { chunk: c!, entry: e };
}

describe("storage", () => {
  it("load - a flipped byte in a compressed chunk is DATA_LOSS naming the item, key and chunk, and no wrong bytes are streamed", async () => {
    const id = uniqueName("corrupt-lz4");
    const ranks = corruptibleCheckpoint();
    await saveAndCommit(client, JOB, id, 100, ranks);
    const { chunk } = flipByteInChunk(id, 0, "model", "layers.7.attn.weight", 0, 1);
    expect(chunk.raw, "a compressible chunk is stored LZ4-compressed, not raw").toBeFalsy();
    expect(chunk.storedBytes).toBeLessThan(chunk.rawBytes);

    const r = await loadAll(client, { job: JOB, checkpointId: id, rank: 0 });
    expectStatus(r, "DATA_LOSS", /chunk/i);
    expect(r.error!.details).toMatch(/model/);
    expect(r.error!.details).toMatch(/layers\.7\.attn\.weight/);
    expect(r.error!.details, "names chunk index 1").toMatch(/chunk\D{0,16}\b1\b/i);
    const original = ranks[0]!.model![0]!.data;
    const partial = r.entries.find((x) => x.entry.key === "layers.7.attn.weight");
    if (partial) {
      // Whatever arrived before the error is the verified chunk 0, and nothing of chunk 1.
      expect(partial.data.length, "bytes streamed before the corrupt chunk").toBeLessThanOrEqual(4 * MiB);
      expectSameBytes(partial.data, original.subarray(0, partial.data.length), "bytes streamed before the error");
    }
    expect(
      r.entries.some((x) => x.entry.key === "embedding.weight" && x.data.length > 0),
      "nothing after the corrupt chunk",
    ).toBe(false);

    // Everything else still loads: the other rank, and this rank's other item.
    await expectLoadsBitExact(client, JOB, id, 1, ranks[1]!);
    const optim = await loadAll(client, { job: JOB, checkpointId: id, rank: 0, items: ["optim"] });
    expect(optim.error, `optim: ${optim.error?.details}`).toBeUndefined();
    expectSameBytes(optim.entries[0]?.data, ranks[0]!.optim![0]!.data, "optim/state");
    expect(daemon.proc.exitCode).toBeNull();
  });

  it("load - a flipped byte in a raw (incompressible) chunk is DATA_LOSS naming the item, key and chunk", async () => {
    const id = uniqueName("corrupt-raw");
    const ranks = corruptibleCheckpoint();
    await saveAndCommit(client, JOB, id, 100, ranks);
    flipByteInChunk(id, 0, "model", "embedding.weight", 1, 0);

    const r = await loadAll(client, { job: JOB, checkpointId: id, rank: 0 });
    expectStatus(r, "DATA_LOSS", /chunk/i);
    expect(r.error!.details).toMatch(/model/);
    expect(r.error!.details).toMatch(/embedding\.weight/);
    expect(r.error!.details, "names chunk index 0").toMatch(/chunk\D{0,16}\b0\b/i);
    const partial = r.entries.find((x) => x.entry.key === "embedding.weight");
    expect(partial?.data.length ?? 0, "no byte of the corrupt chunk streamed").toBe(0);
    // The intact entry before it arrived whole and right, if the daemon streamed it.
    const first = r.entries.find((x) => x.entry.key === "layers.7.attn.weight");
    if (first) expectSameBytes(first.data, ranks[0]!.model![0]!.data, "intact entry before the corrupt one");
    await expectLoadsBitExact(client, JOB, id, 1, ranks[1]!);
  });

  it.skipIf(!hasLz4)("storage - lz4 -dc on every stored entry file returns exactly the raw bytes", async () => {
    const id = uniqueName("lz4-readable");
    const entries = [
      f32Entry("layers.0.weight", compressibleBytes(10 * MiB, 9)),
      f32Entry("ln.weight", compressibleBytes(3 * 1024, 4)),
      f32Entry("embedding.weight", incompressibleBytes(5 * MiB)),
      tensorEntry("step", "DTYPE_INT64", [], Buffer.from([42, 0, 0, 0, 0, 0, 0, 0])),
      objectEntry("config", Buffer.from(JSON.stringify({ lr: 3e-4, betas: [0.9, 0.95] })), "json"),
    ];
    await saveAndCommit(client, JOB, id, 7, [{ model: entries }]);
    const m = readManifest(daemon.dataDir, JOB, id);
    const itemDir = path.dirname(entryFile(daemon.dataDir, JOB, id, 0, "model", 0));

    // Small entries share pack.lz4, back to back in entry order; the others have a file each.
    const packed: Buffer[] = [];
    let packAt = 0;
    for (const [index, e] of entries.entries()) {
      const me = manifestEntry(m, 0, "model", e.key);
      const small = e.data.length <= 64 * 1024;
      expect(me.file, `${e.key}'s file`).toBe(small ? "pack.lz4" : `${String(index).padStart(6, "0")}.lz4`);
      const file = path.join(itemDir, me.file);
      expect(fs.existsSync(file), `${e.key} stored at ${path.relative(daemon.dataDir, file)}`).toBe(true);
      expect(me.rawBytes).toBe(e.data.length);
      const stored = fs.readFileSync(file);

      // One standard frame per chunk, back to back, each carrying its raw bytes' CRC-32C.
      let offset = small ? packAt : 0;
      let raw = 0;
      for (const [i, c] of me.chunks.entries()) {
        expect(c.offset, `${e.key} chunk ${i} offset`).toBe(offset);
        const slice = e.data.subarray(raw, raw + c.rawBytes);
        expect(c.crc32c >>> 0, `${e.key} chunk ${i} crc32c`).toBe(crc32c(slice));
        const frame = execFileSync(LZ4, ["-dc"], { input: stored.subarray(c.offset, c.offset + c.storedBytes), maxBuffer: 64 * MiB });
        expectSameBytes(frame, slice, `${e.key} chunk ${i} as its own frame`);
        offset += c.storedBytes;
        raw += c.rawBytes;
      }
      expect(raw, `${e.key}: chunks cover the raw bytes`).toBe(e.data.length);
      if (small) {
        packed.push(e.data);
        packAt = offset;
        continue;
      }
      expect(me.storedBytes).toBe(stored.length);
      expect(offset, `${e.key}: chunks cover the file`).toBe(stored.length);
      const whole = execFileSync(LZ4, ["-dc", file], { maxBuffer: 64 * MiB });
      expectSameBytes(whole, e.data, `lz4 -dc ${e.key}`);
    }
    // The pack decodes to the concatenation of its entries' raw bytes, and holds nothing else.
    const pack = path.join(itemDir, "pack.lz4");
    expect(fs.statSync(pack).size, "pack.lz4 is its entries' frames only").toBe(packAt);
    expectSameBytes(execFileSync(LZ4, ["-dc", pack]), Buffer.concat(packed), "lz4 -dc pack.lz4");
    expect(manifestEntry(m, 0, "model", "ln.weight").chunks[0]!.raw, "a compressible small entry is compressed").toBe(false);
    const big = manifestEntry(m, 0, "model", "layers.0.weight");
    expect(big.chunks.length, "10 MiB in chunks of at most 4 MiB").toBeGreaterThanOrEqual(3);
    expect(big.storedBytes, "compressible data is compressed").toBeLessThan(big.rawBytes / 2);
    expect(manifestEntry(m, 0, "model", "embedding.weight").chunks.length).toBeGreaterThanOrEqual(2);
    await expectLoadsBitExact(client, JOB, id, 0, { model: entries });
  });

  it("daemon - a second daemon on the same data dir refuses to start and harms nothing", async () => {
    const id = uniqueName("owned");
    const ranks: RankItems[] = [{ model: [f32Entry("w", compressibleBytes(1 * MiB, 11))] }];
    await saveAndCommit(client, JOB, id, 1, ranks);
    const before = hashTree(path.join(daemon.dataDir, "jobs", JOB, "checkpoints"));

    const second = spawn(process.execPath, [DAEMON_ENTRY, "--listen", "127.0.0.1:0", "--data-dir", daemon.dataDir], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    second.stdout.on("data", (b: Buffer) => (out += b.toString()));
    second.stderr.on("data", (b: Buffer) => (out += b.toString()));
    const exit = await new Promise<number | string>((resolve) => {
      const timer = setTimeout(() => {
        second.kill("SIGKILL");
        resolve("still running after 20s");
      }, 20_000);
      second.on("exit", (code, signal) => {
        clearTimeout(timer);
        resolve(code ?? signal ?? "unknown");
      });
    });
    expect(exit, `second daemon output:\n${out}`).toBeTypeOf("number");
    expect(exit, `second daemon output:\n${out}`).not.toBe(0);
    expect(out).toMatch(/data.?dir|already/i);
    expect(out, "the second daemon never served").not.toMatch(/listening on/);

    expect(daemon.proc.exitCode, "the first daemon keeps running").toBeNull();
    expect(hashTree(path.join(daemon.dataDir, "jobs", JOB, "checkpoints"))).toEqual(before);
    await expectLoadsBitExact(client, JOB, id, 0, ranks[0]!);
    const after: RankItems[] = [{ model: [f32Entry("w", compressibleBytes(1 * MiB, 12))] }];
    await saveAndCommit(client, JOB, uniqueName("owned-after"), 2, after);
  });

  it("cli - --help prints usage with --listen and --data-dir and exits 0", () => {
    const r = spawnSync(process.execPath, [DAEMON_ENTRY, "--help"], { encoding: "utf8", timeout: 20_000 });
    expect(r.status, `stderr:\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/--listen/);
    expect(r.stdout).toMatch(/--data-dir/);
  });
});
