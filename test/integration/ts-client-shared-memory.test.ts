/**
 * The TypeScript client's shared-memory paths (SaveShared, LoadShared): chunks are copied
 * into (or, for loads, read out of) a ring file in the shared-memory directory and the
 * stream carries only where they are. Round trips must be bit-exact while the ring wraps,
 * the ring file must never outlive a save or load, a daemon that refuses the file must
 * get (or send) the bytes on the stream instead, and saveAsync must return once the bytes
 * are in the ring.
 */
import { randomFillSync } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { crc32c } from "@node-rs/crc32";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SaveRequest as SaveRequestMsg } from "../../wire/gen/ckptd/v1/SaveRequest.js";
import { loadWire } from "../../wire/index.js";
import { CkptdClient, Code, tensor, type CkptdError, type SaveEntry, type SaveRequest } from "../../clients/ts/src/index.js";
import { metricsAddress, scrape, startDaemon, type Daemon } from "./harness.js";

const KiB = 1 << 10;
const MiB = 1 << 20;
/** Small chunks: 8 slots of 64 KiB, so any item above 512 KiB wraps the ring. */
const CHUNK = 64 * KiB;

let shmDir: string;
let daemon: Daemon;
let refusing: Daemon;

beforeAll(async () => {
  shmDir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-ts-shm-"));
  [daemon, refusing] = await Promise.all([
    startDaemon({
      args: ["--shared-memory-dir", shmDir, "--log-level", "debug", "--prepare-timeout-ms", "600000", "--metrics-listen", "127.0.0.1:0"],
    }),
    startDaemon({ args: ["--shared-memory-dir", "", "--log-level", "debug", "--prepare-timeout-ms", "600000"] }),
  ]);
});

afterAll(async () => {
  await Promise.all([daemon?.stop(), refusing?.stop()]);
  fs.rmSync(shmDir, { recursive: true, force: true });
});

function randomBytes(n: number): Uint8Array {
  return randomFillSync(new Uint8Array(n));
}

function jobName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
}

/** Entries of a few shapes: several ring laps, a short unaligned tail, an empty tensor, an object. */
function testEntries(): SaveEntry[] {
  return [
    { key: "big", tensor: tensor(new Float32Array(randomBytes(2 * 1024 * KiB + 4 * 333).buffer), { device: "cuda:0" }) },
    { key: "odd", tensor: tensor(randomBytes(3 * CHUNK + 7), { dtype: "uint8" }) },
    { key: "empty", tensor: tensor(new Float32Array(0), { shape: [0, 4] }) },
    { key: "meta", object: { data: Buffer.from(JSON.stringify({ step: 7, lr: 3e-4 })), format: "json" } },
  ];
}

function bytesOf(e: SaveEntry): Buffer {
  const data = "tensor" in e ? e.tensor.data : e.object.data;
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** The daemon's "item staged" log records of one job. */
function stagedLogs(d: Daemon, job: string): { item: string; shared: boolean; bytes: number }[] {
  return d
    .output()
    .split("\n")
    .filter((l) => l.includes('"item staged"') && l.includes(job))
    .map((l) => JSON.parse(l) as { item: string; shared: boolean; bytes: number });
}

/** Saves, commits (one rank) and loads the item back; expects every byte as saved. */
async function roundTrip(client: CkptdClient, job: string, checkpointId: string, entries: SaveEntry[], copies?: Buffer[]): Promise<void> {
  const expected = copies ?? entries.map((e) => Buffer.from(bytesOf(e)));
  const c = await client.commit({ job, checkpointId, step: 1, rank: 0, worldSize: 1, items: ["model"] });
  expect(c.outcome).toBe("COMMITTED");
  const { items } = await client.loadItems({ job, checkpointId, rank: 0 });
  const model = items.get("model")!;
  expect([...model.keys()].sort()).toEqual(entries.map((e) => e.key).sort());
  entries.forEach((e, i) => {
    const got = model.get(e.key)!;
    const data = got.kind === "tensor" ? got.tensor.data : got.data;
    expect(Buffer.compare(Buffer.from(data.buffer, data.byteOffset, data.byteLength), expected[i]!), e.key).toBe(0);
  });
}

/**
 * Saves `req`, retrying while the daemon still holds the stream of a cancelled save of the
 * same item (it releases it once it has seen the cancellation).
 */
async function saveOnceReleased(client: CkptdClient, req: SaveRequest): Promise<void> {
  for (let tries = 0; ; tries++) {
    try {
      await client.save(req);
      return;
    } catch (err) {
      if ((err as CkptdError).code !== Code.ALREADY_EXISTS || tries >= 100) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function request(job: string, checkpointId: string, entries: SaveRequest["entries"]): SaveRequest {
  return { job, checkpointId, step: 1, rank: 0, worldSize: 1, item: "model", entries };
}

/** Bytes `daemon` has written into clients' load rings so far. */
async function sharedLoadBytes(): Promise<number> {
  return (await scrape(metricsAddress(daemon))).get('ckptd_shared_memory_bytes_total{direction="load"}') ?? 0;
}

/** Entries for loads: one larger than a load ring (8 × 4 MiB) so it wraps, an unaligned one, an empty tensor, an object. */
function loadEntries(): SaveEntry[] {
  return [
    { key: "huge", tensor: tensor(new Float32Array(randomBytes(40 * MiB).buffer), { shape: [10 * MiB], device: "cuda:0" }) },
    { key: "odd", tensor: tensor(randomBytes(5 * MiB + 3), { dtype: "uint8" }) },
    { key: "empty", tensor: tensor(new Float32Array(0), { shape: [0, 4] }) },
    { key: "meta", object: { data: Buffer.from(JSON.stringify({ step: 9 })), format: "json" } },
  ];
}

/** Saves `entries` as item "model" of a one-rank checkpoint over the gRPC stream and commits it. */
async function committed(address: string, job: string, checkpointId: string, entries: SaveEntry[]): Promise<void> {
  const saver = new CkptdClient({ address, sharedMemory: false });
  try {
    await saver.save(request(job, checkpointId, entries));
    const c = await saver.commit({ job, checkpointId, step: 1, rank: 0, worldSize: 1, items: ["model"] });
    expect(c.outcome).toBe("COMMITTED");
  } finally {
    saver.close();
  }
}

/** Loads item "model" and expects every entry bit-exact. */
async function expectLoadsBitExact(client: CkptdClient, job: string, checkpointId: string, entries: SaveEntry[]): Promise<void> {
  const { plan, items } = await client.loadItems({ job, checkpointId, rank: 0 });
  expect(plan.totalBytes).toBe(entries.reduce((n, e) => n + bytesOf(e).byteLength, 0));
  const model = items.get("model")!;
  expect([...model.keys()].sort()).toEqual(entries.map((e) => e.key).sort());
  for (const e of entries) {
    const got = model.get(e.key)!;
    const data = got.kind === "tensor" ? got.tensor.data : got.data;
    expect(data.byteLength, e.key).toBe(bytesOf(e).byteLength);
    expect(Buffer.compare(Buffer.from(data.buffer, data.byteOffset, data.byteLength), bytesOf(e)), e.key).toBe(0);
    if (got.kind === "tensor" && "tensor" in e) {
      expect(got.tensor.dtype).toBe(e.tensor.dtype);
      expect(got.tensor.shape).toEqual(e.tensor.shape);
    }
  }
}

describe("CkptdClient over shared memory", () => {
  it("is on by default for a daemon on this node, off for another node or when asked", () => {
    const local = new CkptdClient({ address: daemon.address, sharedMemoryDir: shmDir });
    const remote = new CkptdClient({ address: "10.1.2.3:7070", sharedMemoryDir: shmDir });
    const off = new CkptdClient({ address: daemon.address, sharedMemoryDir: shmDir, sharedMemory: false });
    const noDir = new CkptdClient({ address: daemon.address, sharedMemoryDir: path.join(shmDir, "missing") });
    try {
      expect(local.sharedMemory).toBe(true);
      expect(remote.sharedMemory).toBe(false);
      expect(off.sharedMemory).toBe(false);
      expect(noDir.sharedMemory).toBe(false);
    } finally {
      for (const c of [local, remote, off, noDir]) c.close();
    }
  });

  it("saves bit-exact through a ring that wraps, and leaves no ring file behind", async () => {
    const client = new CkptdClient({ address: daemon.address, sharedMemoryDir: shmDir, chunkBytes: CHUNK });
    try {
      const job = jobName("shm-rt");
      const entries = testEntries();
      const total = entries.reduce((n, e) => n + bytesOf(e).byteLength, 0);
      expect(total).toBeGreaterThan(8 * CHUNK * 4); // at least four laps of the ring
      // An async generator: entries are pulled only once the daemon has the ring file open.
      async function* gen(): AsyncGenerator<SaveEntry> {
        yield* entries;
      }
      const res = await client.save(request(job, "rt", gen()));
      expect(res).toMatchObject({ bytesReceived: total, entryCount: entries.length, attempt: 1 });
      expect(client.sharedMemory).toBe(true);
      expect(fs.readdirSync(shmDir)).toEqual([]);
      expect(stagedLogs(daemon, job)).toEqual([expect.objectContaining({ item: "model", shared: true, bytes: total })]);
      await roundTrip(client, job, "rt", entries);
    } finally {
      client.close();
    }
  });

  it("removes the ring file when a save fails, and stays on shared memory", async () => {
    const client = new CkptdClient({ address: daemon.address, sharedMemoryDir: shmDir, chunkBytes: CHUNK });
    try {
      const job = jobName("shm-bad");
      const entries: SaveEntry[] = [
        { key: "w", tensor: tensor(randomBytes(20 * CHUNK), { dtype: "uint8" }) },
        { key: "w", tensor: tensor(randomBytes(10), { dtype: "uint8" }) }, // a duplicate key
      ];
      const err = (await client.save(request(job, "bad", entries)).catch((e: unknown) => e)) as CkptdError;
      expect(err.code).toBe(Code.INVALID_ARGUMENT);
      expect(err.details).toContain("appears twice");
      expect(fs.readdirSync(shmDir)).toEqual([]);
      expect(client.sharedMemory).toBe(true);
      // The daemon discards the partial item once it sees the cancellation: the same item saves again.
      const good = [entries[0]!];
      await saveOnceReleased(client, request(job, "bad", good));
      await roundTrip(client, job, "bad", good);
    } finally {
      client.close();
    }
  });

  it("reports the daemon's own errors as the save's error, without falling back", async () => {
    const client = new CkptdClient({ address: daemon.address, sharedMemoryDir: shmDir, chunkBytes: CHUNK });
    try {
      const err = (await client
        .save({ ...request("bad job name!", "x", [{ key: "w", tensor: tensor(randomBytes(8), { dtype: "uint8" }) }]) })
        .catch((e: unknown) => e)) as CkptdError;
      expect(err.code).toBe(Code.INVALID_ARGUMENT);
      expect(client.sharedMemory).toBe(true);
      expect(fs.readdirSync(shmDir)).toEqual([]);
    } finally {
      client.close();
    }
  });

  it("falls back to the stream for good when the daemon refuses shared memory", async () => {
    const client = new CkptdClient({ address: refusing.address, sharedMemoryDir: shmDir, chunkBytes: CHUNK });
    try {
      expect(client.sharedMemory).toBe(true);
      const job = jobName("shm-refused");
      const entries = testEntries();
      let pulled = 0;
      // A generator can be iterated once: the fallback works only if nothing was pulled before it.
      function* gen(): Generator<SaveEntry> {
        for (const e of entries) {
          pulled++;
          yield e;
        }
      }
      const res = await client.save(request(job, "fb", gen()));
      expect(pulled).toBe(entries.length);
      expect(res.entryCount).toBe(entries.length);
      expect(client.sharedMemory).toBe(false);
      expect(fs.readdirSync(shmDir)).toEqual([]);
      await roundTrip(client, job, "fb", entries);
      // The next save streams at once.
      await client.save({ ...request(job, "fb2", testEntries()), item: "optim" });
      const c = await client.commit({ job, checkpointId: "fb2", step: 1, rank: 0, worldSize: 1, items: ["optim"] });
      expect(c.outcome).toBe("COMMITTED");
      expect(stagedLogs(refusing, job).map((l) => [l.item, l.shared])).toEqual([
        ["model", false],
        ["optim", false],
      ]);
    } finally {
      client.close();
    }
  });

  it("falls back to the stream when the ring file cannot be created", async () => {
    const missing = path.join(shmDir, "does-not-exist");
    const client = new CkptdClient({ address: daemon.address, sharedMemory: true, sharedMemoryDir: missing, chunkBytes: CHUNK });
    try {
      expect(client.sharedMemory).toBe(true);
      const job = jobName("shm-nodir");
      const entries = testEntries();
      await client.save(request(job, "nd", entries));
      expect(client.sharedMemory).toBe(false);
      expect(stagedLogs(daemon, job)).toEqual([expect.objectContaining({ item: "model", shared: false })]);
      await roundTrip(client, job, "nd", entries);
    } finally {
      client.close();
    }
  });

  it("saveAsync returns once every byte is in the ring: the trainer may overwrite its tensors", async () => {
    const client = new CkptdClient({ address: daemon.address, sharedMemoryDir: shmDir, chunkBytes: CHUNK });
    try {
      const job = jobName("shm-async");
      const entries = testEntries();
      const copies = entries.map((e) => Buffer.from(bytesOf(e)));
      const pending = await client.saveAsync(request(job, "as", entries));
      // The next training step overwrites the tensors while the daemon stages the item.
      for (const e of entries) bytesOf(e).fill(0xa5);
      const res = await pending.durable;
      expect(res.entryCount).toBe(entries.length);
      expect(client.sharedMemory).toBe(true);
      expect(fs.readdirSync(shmDir)).toEqual([]);
      expect(stagedLogs(daemon, job)).toEqual([expect.objectContaining({ item: "model", shared: true })]);
      await roundTrip(client, job, "as", entries, copies);
    } finally {
      client.close();
    }
  });

  it("runs concurrent saves, each with its own ring", async () => {
    const client = new CkptdClient({ address: daemon.address, sharedMemoryDir: shmDir, chunkBytes: CHUNK });
    try {
      const job = jobName("shm-many");
      const ranks = 4;
      const perRank = Array.from({ length: ranks }, () => testEntries());
      const results = await Promise.all(
        perRank.map((entries, rank) => client.save({ job, checkpointId: "many", step: 3, rank, worldSize: ranks, item: "model", entries })),
      );
      const commits = await Promise.all(
        results.map((r, rank) =>
          client.commit({ job, checkpointId: "many", step: 3, rank, worldSize: ranks, items: ["model"], attempt: r.attempt }),
        ),
      );
      expect(commits.map((c) => c.outcome)).toEqual(Array(ranks).fill("COMMITTED"));
      for (let rank = 0; rank < ranks; rank++) {
        const { items } = await client.loadItems({ job, checkpointId: "many", rank });
        for (const e of perRank[rank]!) {
          const got = items.get("model")!.get(e.key)!;
          const data = got.kind === "tensor" ? got.tensor.data : got.data;
          expect(Buffer.compare(Buffer.from(data.buffer, data.byteOffset, data.byteLength), bytesOf(e)), `${rank}/${e.key}`).toBe(0);
        }
      }
      expect(stagedLogs(daemon, job).every((l) => l.shared)).toBe(true);
      expect(fs.readdirSync(shmDir)).toEqual([]);
    } finally {
      client.close();
    }
  });

  it("loadItems reads bit-exact through a load ring that wraps, and leaves no ring file behind", async () => {
    const job = jobName("shm-load");
    const entries = loadEntries();
    const total = entries.reduce((n, e) => n + bytesOf(e).byteLength, 0);
    expect(bytesOf(entries[0]!).byteLength).toBeGreaterThan(8 * 4 * MiB);
    await committed(daemon.address, job, "ld", entries);
    const client = new CkptdClient({ address: daemon.address, sharedMemoryDir: shmDir });
    try {
      const before = await sharedLoadBytes();
      await expectLoadsBitExact(client, job, "ld", entries);
      // Every byte came through the ring, none on the stream.
      expect((await sharedLoadBytes()) - before).toBe(total);
      expect(client.sharedMemory).toBe(true);
      expect(fs.readdirSync(shmDir)).toEqual([]);
      // Concurrent loads, each with its own ring.
      await Promise.all([0, 1, 2].map(() => expectLoadsBitExact(client, job, "ld", entries)));
      expect((await sharedLoadBytes()) - before).toBe(4 * total);
      expect(fs.readdirSync(shmDir)).toEqual([]);
    } finally {
      client.close();
    }
  });

  it("loadItems with verifySharedLoads checks each chunk and loads bit-exact", async () => {
    const job = jobName("shm-verify");
    const entries = loadEntries();
    await committed(daemon.address, job, "vf", entries);
    const client = new CkptdClient({ address: daemon.address, sharedMemoryDir: shmDir, verifySharedLoads: true });
    try {
      expect(client.verifySharedLoads).toBe(true);
      const before = await sharedLoadBytes();
      await expectLoadsBitExact(client, job, "vf", entries);
      expect((await sharedLoadBytes()) - before).toBe(entries.reduce((n, e) => n + bytesOf(e).byteLength, 0));
      expect(fs.readdirSync(shmDir)).toEqual([]);
    } finally {
      client.close();
    }
  });

  it("reports the daemon's load errors as the load's error, without falling back, and leaves no ring file", async () => {
    const job = jobName("shm-load-err");
    const entries = loadEntries();
    await committed(daemon.address, job, "le", entries);
    const client = new CkptdClient({ address: daemon.address, sharedMemoryDir: shmDir });
    try {
      const missing = (await client.loadItems({ job, checkpointId: "nope", rank: 0 }).catch((e: unknown) => e)) as CkptdError;
      expect(missing.code).toBe(Code.NOT_FOUND);
      expect(client.sharedMemory).toBe(true);
      expect(fs.readdirSync(shmDir)).toEqual([]);
      // A load that ends early (its deadline) cancels the call and removes the ring.
      const late = (await client
        .loadItems({ job, checkpointId: "le", rank: 0 }, { deadlineMs: 10 })
        .catch((e: unknown) => e)) as CkptdError;
      expect(late.code).toBe(Code.DEADLINE_EXCEEDED);
      expect(client.sharedMemory).toBe(true);
      expect(fs.readdirSync(shmDir)).toEqual([]);
      await expectLoadsBitExact(client, job, "le", entries);
    } finally {
      client.close();
    }
  });

  it("loadItems falls back to the Load stream for good when the daemon refuses shared memory", async () => {
    const job = jobName("shm-load-refused");
    const entries = loadEntries();
    await committed(refusing.address, job, "lr", entries);
    const client = new CkptdClient({ address: refusing.address, sharedMemoryDir: shmDir });
    try {
      expect(client.sharedMemory).toBe(true);
      await expectLoadsBitExact(client, job, "lr", entries);
      expect(client.sharedMemory).toBe(false);
      expect(fs.readdirSync(shmDir)).toEqual([]);
      await expectLoadsBitExact(client, job, "lr", entries);
    } finally {
      client.close();
    }
  });

  it("loadItems falls back to the Load stream when the load ring cannot be created", async () => {
    const job = jobName("shm-load-nodir");
    const entries = loadEntries();
    await committed(daemon.address, job, "ln", entries);
    const client = new CkptdClient({ address: daemon.address, sharedMemory: true, sharedMemoryDir: path.join(shmDir, "does-not-exist") });
    try {
      const before = await sharedLoadBytes();
      await expectLoadsBitExact(client, job, "ln", entries);
      expect(client.sharedMemory).toBe(false);
      expect(await sharedLoadBytes()).toBe(before);
    } finally {
      client.close();
    }
  });

  it("falls back to the streams for a daemon without SaveShared and LoadShared (UNIMPLEMENTED)", async () => {
    // A server that only knows Save and Load, as a daemon from before the shared-memory path
    // does: grpc-js answers UNIMPLEMENTED for the methods it lacks.
    const data = Buffer.from(new Float32Array([1, 2, 3, 4]).buffer);
    let received = 0;
    const server = new grpc.Server();
    server.addService(loadWire().grpcObject.ckptd.v1.CheckpointService.service, {
      Save(call: grpc.ServerReadableStream<SaveRequestMsg, unknown>, callback: grpc.sendUnaryData<unknown>) {
        call.on("data", (m: SaveRequestMsg) => {
          if (m.msg === "chunk") received += m.chunk!.data.length;
        });
        call.on("end", () => callback(null, { bytesReceived: received, bytesStored: received, entryCount: 1, attempt: 1 }));
      },
      Load(call: grpc.ServerWritableStream<unknown, unknown>) {
        call.write({ plan: { sourceRank: 0, totalBytes: data.length, mapLocation: { cpu: "cpu" } } });
        call.write({
          entry: {
            item: "model",
            key: "w",
            tensor: { dtype: "DTYPE_FLOAT32", shape: [4], device: "cpu" },
            sizeBytes: data.length,
            targetDevice: "cpu",
          },
        });
        call.write({ chunk: { data } });
        call.end();
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const address = `127.0.0.1:${port}`;
    try {
      const saver = new CkptdClient({ address, sharedMemory: true, sharedMemoryDir: shmDir });
      try {
        await saver.save(request("old-daemon", "s1", [{ key: "w", tensor: tensor(new Float32Array([1, 2, 3, 4])) }]));
        expect(saver.sharedMemory).toBe(false);
        expect(received).toBe(data.length);
      } finally {
        saver.close();
      }
      const loader = new CkptdClient({ address, sharedMemory: true, sharedMemoryDir: shmDir });
      try {
        const got = await loader.loadItems({ job: "old-daemon", checkpointId: "s1", rank: 0 });
        expect(loader.sharedMemory).toBe(false);
        const w = got.items.get("model")!.get("w")!;
        expect(
          w.kind === "tensor" && Buffer.from(w.tensor.data.buffer, w.tensor.data.byteOffset, w.tensor.data.byteLength).equals(data),
        ).toBe(true);
      } finally {
        loader.close();
      }
      expect(fs.readdirSync(shmDir).filter((f) => f.startsWith("ckptd-"))).toEqual([]);
    } finally {
      server.forceShutdown();
    }
  });

  it("names its ring by a handle: an unnamed file the daemon reopens, for saves and loads, bit-exact", async () => {
    const client = new CkptdClient({ address: daemon.address, sharedMemoryDir: shmDir, chunkBytes: CHUNK });
    // What the client sends first on each shared stream.
    const firsts: Record<string, unknown>[] = [];
    const raw = client.raw as unknown as Record<string, (...a: unknown[]) => { write: (m: unknown, ...r: unknown[]) => boolean }>;
    for (const method of ["saveShared", "loadShared"]) {
      const original = raw[method]!.bind(client.raw);
      raw[method] = (...args: unknown[]) => {
        const call = original(...args);
        const write = call.write.bind(call);
        let first = true;
        call.write = (m: unknown, ...rest: unknown[]) => {
          if (first) firsts.push(m as Record<string, unknown>);
          first = false;
          return write(m, ...rest);
        };
        return call;
      };
    }
    try {
      const job = jobName("shm-handle");
      const entries = testEntries();
      const total = entries.reduce((n, e) => n + bytesOf(e).byteLength, 0);
      await client.save(request(job, "h", entries));
      expect(stagedLogs(daemon, job)).toEqual([expect.objectContaining({ item: "model", shared: true, bytes: total })]);
      await roundTrip(client, job, "h", entries);
      expect(client.sharedMemory).toBe(true);
      expect((client as unknown as { unnamedRings: boolean }).unnamedRings).toBe(true);
      const header = (firsts[0] as { request: { header: { sharedMemoryHandle?: unknown; sharedMemoryPath?: unknown } } }).request.header;
      const start = (firsts[1] as { start: { sharedMemoryHandle?: unknown; sharedMemoryPath?: unknown } }).start;
      for (const named of [header, start]) {
        expect(named.sharedMemoryPath).toBeUndefined();
        expect(named.sharedMemoryHandle).toEqual({
          pid: process.pid,
          fd: expect.any(Number),
          token: expect.stringMatching(/^[0-9a-f]{32}$/),
        });
      }
      expect(fs.readdirSync(shmDir)).toEqual([]);
    } finally {
      client.close();
    }
  });

  it("sends shared chunks without a CRC when the daemon checksums them itself; with verifySharedSaves, or to a daemon that does not, each has one", async () => {
    // A SaveShared that reads the ring through its handle and records, per shared chunk, whether
    // it came with a CRC-32C and whether that was right, and the trailer's CRC.
    const runs: { withCrc: number; withoutCrc: number; wrongCrc: number; data: Buffer; trailerCrc: number; checkedCrc: number }[] = [];
    let optional = true;
    const server = new grpc.Server();
    server.addService(loadWire().grpcObject.ckptd.v1.CheckpointService.service, {
      SaveShared(call: grpc.ServerDuplexStream<{ request: SaveRequestMsg }, unknown>) {
        let ring: number | undefined;
        const run = { withCrc: 0, withoutCrc: 0, wrongCrc: 0, data: Buffer.alloc(0), trailerCrc: -1, checkedCrc: 0 };
        const parts: Buffer[] = [];
        let released = 0;
        call.on("data", ({ request: m }: { request: SaveRequestMsg }) => {
          if (m.msg === "header") {
            const h = m.header!.sharedMemoryHandle!;
            ring = fs.openSync(`/proc/${h.pid}/fd/${h.fd}`, "r");
            call.write({ progress: { sharedBytesReleased: 0, sharedMemoryHandleOpen: true, sharedChunkCrcOptional: optional } });
          } else if (m.msg === "sharedChunk") {
            const c = m.sharedChunk!;
            const b = Buffer.alloc(c.length);
            fs.readSync(ring!, b, 0, c.length, Number(c.offset));
            parts.push(b);
            if (c.crc32c === undefined || c.crc32c === null) run.withoutCrc++;
            else {
              run.withCrc++;
              if (c.crc32c !== crc32c(b)) run.wrongCrc++;
              run.checkedCrc = crc32c(b, run.checkedCrc);
            }
            released += c.length;
            call.write({ progress: { sharedBytesReleased: released } });
          } else if (m.msg === "trailer") run.trailerCrc = m.trailer!.crc32c;
        });
        call.on("end", () => {
          if (ring !== undefined) fs.closeSync(ring);
          run.data = Buffer.concat(parts);
          runs.push(run);
          call.write({ result: { bytesReceived: run.data.length, bytesStored: run.data.length, entryCount: 2, attempt: 1 } });
          call.end();
        });
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const a = randomBytes(3 * CHUNK + 5);
    const b = randomBytes(CHUNK - 7);
    const entries = () => [
      { key: "a", tensor: tensor(a, { dtype: "uint8" }) },
      { key: "b", tensor: tensor(b, { dtype: "uint8" }) },
    ];
    const chunks = 5;
    const save = async (verifySharedSaves: boolean) => {
      const client = new CkptdClient({
        address: `127.0.0.1:${port}`,
        sharedMemory: true,
        sharedMemoryDir: shmDir,
        chunkBytes: CHUNK,
        verifySharedSaves,
      });
      try {
        await client.save(request("crc", "s1", entries()));
      } finally {
        client.close();
      }
      const run = runs[runs.length - 1]!;
      expect(run.data.equals(Buffer.concat([a, b]))).toBe(true);
      expect(run.wrongCrc).toBe(0);
      expect(run.trailerCrc, "the trailer's CRC covers exactly the chunks sent with one").toBe(run.checkedCrc);
      return run;
    };
    try {
      expect(await save(false)).toMatchObject({ withCrc: 0, withoutCrc: chunks, trailerCrc: 0 });
      expect(await save(true)).toMatchObject({ withCrc: chunks, withoutCrc: 0, trailerCrc: crc32c(Buffer.concat([a, b])) });
      optional = false;
      expect(await save(false)).toMatchObject({ withCrc: chunks, withoutCrc: 0, trailerCrc: crc32c(Buffer.concat([a, b])) });
    } finally {
      server.forceShutdown();
    }
  });

  it("saves through a daemon that predates handles: chunks on the stream, then ring files", async () => {
    // A SaveShared that ignores SharedMemoryHandle and never says it opened it, as a daemon
    // from before handles does; it reads shared chunks from a named ring file.
    const saves: { path: string; kinds: Set<string>; data: Buffer }[] = [];
    const server = new grpc.Server();
    server.addService(loadWire().grpcObject.ckptd.v1.CheckpointService.service, {
      SaveShared(call: grpc.ServerDuplexStream<{ request: SaveRequestMsg }, unknown>) {
        let ring: number | undefined;
        let ringPath = "";
        const kinds = new Set<string>();
        const parts: Buffer[] = [];
        let released = 0;
        let count = 0;
        call.on("data", ({ request: m }: { request: SaveRequestMsg }) => {
          if (count++ === 0) {
            ringPath = m.header!.sharedMemoryPath;
            if (ringPath) ring = fs.openSync(ringPath, "r");
            call.write({ progress: { sharedBytesReleased: 0 } });
            return;
          }
          kinds.add(m.msg!);
          if (m.msg === "chunk") parts.push(Buffer.from(m.chunk!.data));
          else if (m.msg === "sharedChunk") {
            const c = m.sharedChunk!;
            const b = Buffer.alloc(c.length);
            fs.readSync(ring!, b, 0, c.length, Number(c.offset));
            parts.push(b);
            released += c.length;
            call.write({ progress: { sharedBytesReleased: released } });
          }
        });
        call.on("end", () => {
          if (ring !== undefined) fs.closeSync(ring);
          const data = Buffer.concat(parts);
          saves.push({ path: ringPath, kinds, data });
          call.write({ result: { bytesReceived: data.length, bytesStored: data.length, entryCount: 1, attempt: 1 } });
          call.end();
        });
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const client = new CkptdClient({ address: `127.0.0.1:${port}`, sharedMemory: true, sharedMemoryDir: shmDir, chunkBytes: CHUNK });
    try {
      const a = randomBytes(5 * CHUNK + 3);
      const b = randomBytes(3 * CHUNK + 1);
      await client.save(request("old", "s1", [{ key: "a", tensor: tensor(a, { dtype: "uint8" }) }]));
      expect(client.sharedMemory).toBe(true);
      expect((client as unknown as { unnamedRings: boolean }).unnamedRings).toBe(false);
      await client.save(request("old", "s1", [{ key: "b", tensor: tensor(b, { dtype: "uint8" }) }]));
      expect(client.sharedMemory).toBe(true);
      expect(saves[0]!.path).toBe("");
      expect([...saves[0]!.kinds].sort()).toEqual(["chunk", "entry", "trailer"]);
      expect(saves[0]!.data.equals(Buffer.from(a))).toBe(true);
      expect(saves[1]!.path.startsWith(fs.realpathSync(shmDir))).toBe(true);
      expect([...saves[1]!.kinds].sort()).toEqual(["entry", "sharedChunk", "trailer"]);
      expect(saves[1]!.data.equals(Buffer.from(b))).toBe(true);
      expect(fs.readdirSync(shmDir)).toEqual([]);
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
