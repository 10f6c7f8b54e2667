/**
 * Invariant 6: no client is trusted. Each test is an attack someone made on the daemon
 * (a symlinked shared-memory directory, a world of 2^32 ranks, 200,000-character fields,
 * huge report maps, names that are Object's own properties, a broken token file), and
 * checks the documented status, that nothing outside the daemon's directories was read
 * or written, that no message repeats more of the attacker's input than a bound, and that
 * the daemon still saves, commits and loads for everyone else.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CheckpointServiceClient } from "../../wire/gen/ckptd/v1/CheckpointService.js";
import type { LoadSharedResponse } from "../../wire/gen/ckptd/v1/LoadSharedResponse.js";
import { DAEMON_ENTRY, type Daemon, startDaemon, tempDataDir } from "./harness.js";
import {
  MiB,
  compressibleBytes,
  expectLoadsBitExact,
  expectStatus,
  f32Entry,
  saveAndCommit,
  tensorEntry,
  uniqueName,
  testClient,
} from "./wire-helpers.js";
import {
  commitRaw,
  entryMsg,
  expectOutcome,
  getCheckpointRaw,
  headerMsg,
  loadAll,
  rawClient,
  saveRaw,
  trailerFor,
  serviceStub,
} from "./raw-wire.js";
import { CkptdClient } from "../../clients/ts/src/index.js";

const JOB = "abuse-job";
let shmDir: string;
let outside: string;
let daemon: Daemon;
/** Stock stubs: default channel options (4 MiB messages), as a client nobody here wrote. */
let client: CheckpointServiceClient;
/** The TypeScript client, for the valid saves and loads around the attacks. */
let trainer: CkptdClient;
const services: Record<string, grpc.Client> = {};

type Unary = (req: unknown, cb: (err: grpc.ServiceError | null, res?: unknown) => void) => void;

/** Calls a unary RPC of any ckptd.v1 service; resolves with the error or the response. */
function unary(service: string, method: string, req: unknown): Promise<{ error?: grpc.ServiceError; response?: unknown }> {
  const c = services[service]!;
  const fn = (c as unknown as Record<string, Unary>)[method]!.bind(c);
  return new Promise((resolve) => fn(req, (err, res) => resolve(err ? { error: err } : { response: res })));
}

/** A committed control checkpoint: saved and loaded bit-exact after each attack. */
async function controlRoundTrip(): Promise<void> {
  const id = uniqueName("control");
  const ranks = [{ model: [f32Entry("w", compressibleBytes(256 * 1024, 3))] }];
  await saveAndCommit(trainer, JOB, id, 1, ranks);
  await expectLoadsBitExact(trainer, JOB, id, 0, ranks[0]!);
}

beforeAll(async () => {
  shmDir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-abuse-shm-"));
  outside = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-abuse-outside-"));
  daemon = await startDaemon({ args: ["--shared-memory-dir", shmDir, "--prepare-timeout-ms", "600000"] });
  for (const s of ["CheckpointService", "EvaluationService", "RetentionService", "AdminService"] as const)
    services[s] = serviceStub(s, daemon.address);
  client = services["CheckpointService"] as unknown as CheckpointServiceClient;
  trainer = testClient(daemon.address);
  await saveAndCommit(trainer, JOB, "base", 1, [{ model: [f32Entry("w", compressibleBytes(64 * 1024, 1))] }]);
});

afterAll(async () => {
  for (const c of Object.values(services)) c.close();
  trainer?.close();
  await daemon?.stop();
  fs.rmSync(shmDir, { recursive: true, force: true });
  fs.rmSync(outside, { recursive: true, force: true });
});

describe("abuse - shared-memory paths", () => {
  it("a symlinked directory with '..' (lnk/../secret) reads nothing outside the directory, and says nothing of the file", async () => {
    const secretDir = path.join(outside, "deep");
    fs.mkdirSync(secretDir);
    const secret = path.join(outside, "secret.txt");
    fs.writeFileSync(secret, "admin-token-0123456789");
    fs.symlinkSync(secretDir, path.join(shmDir, "lnk"));
    // The kernel resolves lnk before "..": this names outside/secret.txt.
    const escape = path.join(shmDir, "lnk") + "/../secret.txt";
    expect(fs.readFileSync(escape, "utf8")).toBe("admin-token-0123456789");
    const data = Buffer.from("admin-token-0123456789");
    const r = await saveRaw(client, [
      headerMsg({ job: JOB, checkpointId: "steal", step: 2, rank: 0, worldSize: 1, item: "m", sharedMemoryPath: escape }),
      entryMsg(tensorEntry("k", "DTYPE_UINT8", [data.length])),
      { sharedChunk: { offset: 0, length: data.length, crc32c: 0 } },
      trailerFor([tensorEntry("k", "DTYPE_UINT8", [data.length], data)]),
    ]);
    expectStatus(r.error, "FAILED_PRECONDITION", /shared memory unavailable: .* is not a file directly in/);
    expect(r.error!.details).not.toMatch(/\b22\b|ends at|0x[0-9a-f]{8}/);
    expect(fs.existsSync(path.join(daemon.dataDir, "jobs", JOB, "checkpoints", "steal"))).toBe(false);
  });

  it("LoadShared through lnk/../victim.bin writes nothing outside the directory", async () => {
    const victim = path.join(outside, "victim.bin");
    const before = Buffer.alloc(8 * MiB, 7);
    fs.writeFileSync(victim, before);
    const escape = path.join(shmDir, "lnk") + "/../victim.bin";
    const outcome = await new Promise<{ error?: grpc.ServiceError; responses: LoadSharedResponse[] }>((resolve) => {
      const responses: LoadSharedResponse[] = [];
      const call = client.LoadShared();
      call.on("data", (m: LoadSharedResponse) => responses.push(m));
      call.on("error", (error: grpc.ServiceError) => resolve({ error, responses }));
      call.on("end", () => resolve({ responses }));
      call.write({ start: { request: { job: JOB, checkpointId: "base", rank: 0 }, sharedMemoryPath: escape } });
    });
    expectStatus(outcome.error, "FAILED_PRECONDITION", /shared memory unavailable/);
    expect(fs.readFileSync(victim).equals(before)).toBe(true);
  });

  it("a hard link in the directory to a file elsewhere is refused (one link only)", async () => {
    const target = path.join(outside, "linked.bin");
    fs.writeFileSync(target, Buffer.alloc(MiB, 1));
    const hard = path.join(shmDir, "ckptd-hard");
    fs.linkSync(target, hard);
    const r = await saveRaw(client, [
      headerMsg({ job: JOB, checkpointId: "hard", step: 3, rank: 0, worldSize: 1, item: "m", sharedMemoryPath: hard }),
    ]);
    expectStatus(r.error, "FAILED_PRECONDITION", /single link/);
  });

  it("offsets and lengths past 2^53 or past the file are INVALID_ARGUMENT without the file's size", async () => {
    const ring = path.join(shmDir, "ckptd-ring-offsets");
    fs.writeFileSync(ring, Buffer.alloc(MiB, 2));
    for (const offset of ["9007199254740993", "18446744073709551615", String(MiB - 10)]) {
      const r = await saveRaw(client, [
        headerMsg({ job: JOB, checkpointId: uniqueName("off"), step: 4, rank: 0, worldSize: 1, item: "m", sharedMemoryPath: ring }),
        entryMsg(tensorEntry("k", "DTYPE_UINT8", [64])),
        { sharedChunk: { offset, length: 64 } },
      ]);
      expectStatus(r.error, "INVALID_ARGUMENT", /does not lie inside the shared-memory file/);
      expect(r.error!.details, offset).not.toContain(String(MiB));
    }
    await controlRoundTrip();
  });
});

describe("abuse - world_size", () => {
  it("world_size 2^32-1 on a Save header and on a plain Commit is INVALID_ARGUMENT naming the bound; the daemon lives", async () => {
    const huge = 4294967295;
    const r = await saveRaw(client, [headerMsg({ job: JOB, checkpointId: "huge", step: 5, rank: 0, worldSize: huge, item: "m" })]);
    expectStatus(r.error, "INVALID_ARGUMENT", /world_size 4294967295 is out of range.*65536 \(--max-world-size\)/);
    const c = await commitRaw(client, { job: JOB, checkpointId: "huge", step: 5, rank: 3, worldSize: huge, items: [] });
    expectStatus(c.error, "INVALID_ARGUMENT", /world_size 4294967295 is out of range/);
    const c2 = await commitRaw(client, { job: JOB, checkpointId: "huge", step: 5, rank: 0, worldSize: 5e7, items: [] });
    expectStatus(c2.error, "INVALID_ARGUMENT", /world_size 50000000 is out of range/);
    expect(daemon.proc.exitCode).toBeNull();
    await controlRoundTrip();
  });

  it("a prepare timeout of the largest world reports the missing ranks as ranges, promptly", async () => {
    const small = await startDaemon({ args: ["--prepare-timeout-ms", "300"] });
    const c = rawClient(small.address);
    try {
      const started = Date.now();
      const res = await commitRaw(c, { job: JOB, checkpointId: "wide", step: 1, rank: 5, worldSize: 65536, items: [] });
      const d = expectOutcome(res, "ABORTED");
      expect(d.reason).toMatch(/rank\(s\) 0-4, 6-65535 \(65535 of 65536\) did not vote/);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      c.close();
      await small.stop();
    }
  });
});

describe("abuse - unbounded fields", () => {
  const long = "x".repeat(200_000);
  const cases: [string, string, Record<string, unknown>][] = [
    ["CheckpointService", "GetCheckpoint", { job: JOB, checkpointId: long }],
    ["CheckpointService", "Abort", { job: JOB, checkpointId: "a", rank: 0, reason: long }],
    ["CheckpointService", "Commit", { job: JOB, checkpointId: "a", step: 1, rank: 0, worldSize: 1, items: [long] }],
    ["CheckpointService", "ListCheckpoints", { job: JOB, pageToken: long }],
    ["EvaluationService", "ReportEvaluation", { job: JOB, checkpointId: long, evaluator: "e" }],
    ["EvaluationService", "WaitForEvaluators", { job: JOB, checkpointId: long, evaluators: ["e"], timeoutMs: 10 }],
    ["RetentionService", "PinCheckpoint", { job: JOB, checkpointId: long, pinned: true }],
    ["AdminService", "VerifyCheckpoint", { job: JOB, checkpointId: long }],
  ];
  for (const [service, method, req] of cases)
    it(`${method} with a 200,000-character field is INVALID_ARGUMENT, quoted briefly, and the connection still works`, async () => {
      const r = await unary(service, method, req);
      expectStatus(r.error, "INVALID_ARGUMENT", /characters long|at most/);
      expect(r.error!.details.length).toBeLessThan(400);
      const next = await getCheckpointRaw(client, { job: JOB, checkpointId: "base" });
      expect(next.error, `${method}: the next call on the channel`).toBeUndefined();
    });

  it("a Load with 200,000-character items, map_location keys and devices is INVALID_ARGUMENT", async () => {
    for (const req of [
      { job: JOB, checkpointId: "base", items: [long] },
      { job: JOB, checkpointId: "base", mapLocation: { [long]: "cpu" } },
      { job: JOB, checkpointId: "base", devices: [long] },
      { job: JOB, checkpointId: "base", devices: Array.from({ length: 5000 }, () => "cuda:0") },
    ]) {
      const r = await loadAll(client, req);
      expectStatus(r.error, "INVALID_ARGUMENT", /characters long|at most/);
      expect(r.error!.details.length).toBeLessThan(400);
    }
  });

  it("a 200,000-character ring path is INVALID_ARGUMENT", async () => {
    const r = await saveRaw(client, [
      headerMsg({ job: JOB, checkpointId: "ring", step: 6, rank: 0, worldSize: 1, item: "m", sharedMemoryPath: `${shmDir}/${long}` }),
    ]);
    expectStatus(r.error, "INVALID_ARGUMENT", /shared_memory_path is 200\d+ characters long/);
  });

  it("a report of 150,000 metrics is INVALID_ARGUMENT and the daemon keeps nothing of it", async () => {
    const metrics = Object.fromEntries(Array.from({ length: 150_000 }, (_, i) => [`m${i}`, i]));
    const r = await unary("EvaluationService", "ReportEvaluation", { job: JOB, checkpointId: "base", evaluator: "e", metrics });
    expectStatus(r.error, "INVALID_ARGUMENT", /metrics has 150000 entries; at most 1024/);
    const r2 = await unary("EvaluationService", "ReportEvaluation", {
      job: JOB,
      checkpointId: "base",
      evaluator: "e",
      metrics: Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`m${i}`, i])),
    });
    expectStatus(r2.error, "INVALID_ARGUMENT", /1000 metrics; at most 256/);
    const log = path.join(daemon.dataDir, "jobs", JOB, "evaluations.log");
    expect(fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "").not.toContain('"m999"');
  });

  it("path-like, NUL and over-long checkpoint ids and items on read RPCs are INVALID_ARGUMENT, not NOT_FOUND or INTERNAL", async () => {
    for (const id of ["../base", "a/b", "bad\u0000id", "y".repeat(4096), ".hidden"]) {
      for (const [service, method, req] of [
        ["CheckpointService", "GetCheckpoint", { job: JOB, checkpointId: id }],
        ["RetentionService", "PinCheckpoint", { job: JOB, checkpointId: id, pinned: true }],
        ["EvaluationService", "ReportEvaluation", { job: JOB, checkpointId: id, evaluator: "e" }],
        ["AdminService", "VerifyCheckpoint", { job: JOB, checkpointId: id }],
      ] as const) {
        const r = await unary(service, method, req);
        expectStatus(r.error, "INVALID_ARGUMENT", /checkpoint_id|characters long/);
      }
      const l = await loadAll(client, { job: JOB, checkpointId: id });
      expectStatus(l.error, "INVALID_ARGUMENT", /checkpoint_id|characters long/);
    }
    const item = await loadAll(client, { job: JOB, checkpointId: "base", items: ["../model"] });
    expectStatus(item.error, "INVALID_ARGUMENT", /item/);
    const job = await getCheckpointRaw(client, { job: "../../etc", checkpointId: "latest" });
    expectStatus(job.error, "INVALID_ARGUMENT", /job/);
  });
});

describe("abuse - client-named keys", () => {
  it("devices named constructor, __proto__ and toString map like any device name", async () => {
    const entries = ["constructor", "__proto__", "toString"].map((d, i) =>
      tensorEntry(`t${i}`, "DTYPE_FLOAT32", [4], compressibleBytes(16, i), `${d}:0`),
    );
    await saveAndCommit(trainer, JOB, "protos", 7, [{ model: entries }]);
    const r = await loadAll(client, { job: JOB, checkpointId: "protos", mapLocation: { toString: "cuda:1" } });
    expect(r.error).toBeUndefined();
    expect(r.plan!.mapLocation).toEqual({ "constructor:0": "cpu", "__proto__:0": "cpu", "toString:0": "cpu" });
    for (const p of r.plan!.placements) expect(p.targetDevice).toBe("cpu");
  });
});

describe("abuse - evaluation metrics", () => {
  it("NaN and ±Infinity metrics read back the same after a restart", async () => {
    const dataDir = tempDataDir();
    let d = await startDaemon({ dataDir });
    let cp = testClient(d.address);
    await saveAndCommit(cp, "nan-job", "c1", 1, [{ m: [f32Entry("w", compressibleBytes(1024, 1))] }]);
    let ev = serviceStub("EvaluationService", d.address);
    const metrics = { loss: NaN, up: Infinity, down: -Infinity, ok: 1.5 };
    const reported = await new Promise<grpc.ServiceError | null>((resolve) =>
      ev.ReportEvaluation({ job: "nan-job", checkpointId: "c1", evaluator: "e", metrics }, (err) => resolve(err)),
    );
    expect(reported).toBeNull();
    cp.close();
    ev.close();
    await d.stop();
    d = await startDaemon({ dataDir });
    cp = testClient(d.address);
    ev = serviceStub("EvaluationService", d.address);
    try {
      const res = await new Promise<{ reports: { metrics: Record<string, number> }[] }>((resolve, reject) =>
        ev.WaitForEvaluators({ job: "nan-job", checkpointId: "c1", evaluators: ["e"], timeoutMs: 1000 }, (err, r) =>
          err ? reject(err) : resolve(r as never),
        ),
      );
      const m = res.reports[0]!.metrics;
      expect(Number.isNaN(m["loss"])).toBe(true);
      expect(m["up"]).toBe(Infinity);
      expect(m["down"]).toBe(-Infinity);
      expect(m["ok"]).toBe(1.5);
    } finally {
      cp.close();
      ev.close();
      await d.stop();
    }
  });
});

describe("abuse - operator mistakes", () => {
  for (const [what, content] of [
    ["not JSON", "{admin:"],
    ["null", "null"],
    ["an array", "[1]"],
    ["jobs: null", '{"jobs": null}'],
    ["a short admin token", '{"admin": "x"}'],
  ] as const)
    it(`a token file that is ${what} stops the daemon with one line, no stack trace`, () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-tokens-"));
      const file = path.join(dir, "tokens.json");
      fs.writeFileSync(file, content);
      const r = spawnSync(process.execPath, [DAEMON_ENTRY, "--listen", "127.0.0.1:0", "--data-dir", dir, "--auth-tokens", file], {
        encoding: "utf8",
        timeout: 20_000,
      });
      fs.rmSync(dir, { recursive: true, force: true });
      expect(r.status, r.stderr).toBe(1);
      const lines = r.stderr.trim().split("\n");
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^ckptd: .*auth token file/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
});
