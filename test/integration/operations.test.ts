/**
 * The operable daemon: metrics, TLS and mTLS, per-job tokens, config file, drain on SIGTERM.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CkptdClient } from "../../clients/ts/src/index.js";
import type { CheckpointServiceClient } from "../../wire/gen/ckptd/v1/CheckpointService.js";
import { CLIENT_CHANNEL_OPTIONS } from "../../wire/index.js";
import { scrape, startDaemon, tempDataDir, DAEMON_ENTRY, makeTestCertificates, type Daemon } from "./harness.js";
import { compressibleBytes, f32Entry, MiB, saveItemOk, testClient } from "./wire-helpers.js";
import { chunkMsg, commitRaw, entryMsg, headerMsg, openSave, rawClient, trailerFor, serviceStub } from "./raw-wire.js";

function unaryWith<T>(fn: (md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: T) => void) => void, token?: string) {
  const md = new grpc.Metadata();
  if (token) md.set("authorization", `Bearer ${token}`);
  return new Promise<{ error?: grpc.ServiceError; response?: T }>((resolve) =>
    fn(md, (error, response) => resolve(error ? { error } : { response: response! })),
  );
}

describe("metrics", () => {
  let d: Daemon;
  let metricsAddress: string;
  beforeAll(async () => {
    d = await startDaemon({ args: ["--metrics-listen", "127.0.0.1:0"] });
    metricsAddress = /metrics on http:\/\/([\d.]+:\d+)\/metrics/.exec(d.output())![1]!;
  });
  afterAll(async () => {
    await d.stop();
  });

  it("metrics - counters move by the bytes saved, stored and loaded, and commits are counted", async () => {
    const before = await scrape(metricsAddress);
    expect(before.get("ckptd_bytes_received_total")).toBe(0);
    const client = new CkptdClient(d.address);
    const data = compressibleBytes(3 * MiB + 5);
    const entries = [{ key: "w", tensor: { dtype: "uint8" as const, shape: [data.length], device: "cpu", data } }];
    const saved = await client.save({ job: "m", checkpointId: "s1", step: 1, rank: 0, worldSize: 1, item: "model", entries });
    const c = await client.commit({
      job: "m",
      checkpointId: "s1",
      step: 1,
      rank: 0,
      worldSize: 1,
      items: ["model"],
      attempt: saved.attempt,
    });
    expect(c.outcome).toBe("COMMITTED");
    const loaded = await client.loadItems({ job: "m", rank: 0 });
    expect(loaded.items.get("model")?.size).toBe(1);
    const after = await scrape(metricsAddress);
    expect(after.get("ckptd_bytes_received_total")).toBe(data.length);
    expect(after.get("ckptd_bytes_written_total")).toBe(saved.bytesStored);
    expect(after.get("ckptd_bytes_sent_total")).toBe(data.length);
    expect(after.get("ckptd_commits_total")).toBe(1);
    expect(after.get("ckptd_stored_bytes")).toBe(saved.bytesStored);
    expect(after.get("ckptd_raw_bytes")).toBe(data.length);
    expect(after.get("ckptd_compression_ratio")).toBeCloseTo(data.length / saved.bytesStored, 5);
    expect(after.get('ckptd_save_duration_seconds_count{outcome="ok"}')).toBe(1);
    expect(after.get('ckptd_commit_duration_seconds_count{outcome="COMMITTED"}')).toBe(1);
    expect(after.get('ckptd_load_duration_seconds_count{outcome="ok"}')).toBe(1);
    expect(after.get("ckptd_checkpoints_in_flight")).toBe(0);
    client.close();
  });

  it("metrics - an aborted checkpoint is counted by reason", async () => {
    const client = new CkptdClient(d.address);
    await client.save({ job: "m", checkpointId: "s2", step: 2, rank: 0, worldSize: 2, item: "model", entries: [] });
    await client.abort({ job: "m", checkpointId: "s2", rank: 1, reason: "NaN loss" });
    const after = await scrape(metricsAddress);
    expect(after.get('ckptd_aborts_total{reason="rank_abort"}')).toBe(1);
    client.close();
  });
});

describe("TLS and mTLS", () => {
  const dir = tempDataDir();
  const file = (n: string) => path.join(dir, n);
  beforeAll(() => makeTestCertificates(dir));
  const read = (n: string) => fs.readFileSync(file(n));

  async function listWith(d: Daemon, creds: grpc.ChannelCredentials) {
    const c = serviceStub("CheckpointService", d.address, CLIENT_CHANNEL_OPTIONS, creds);
    const r = await unaryWith<{ checkpoints: unknown[] }>((md, cb) =>
      c.ListCheckpoints({ job: "t" }, md, { deadline: Date.now() + 5000 }, cb),
    );
    c.close();
    return r;
  }

  it("tls - a client that trusts the CA saves, commits and lists; a plaintext client cannot connect", async () => {
    const d = await startDaemon({ args: ["--tls-cert", file("server.pem"), "--tls-key", file("server.key")] });
    try {
      const client = new CkptdClient({ address: d.address, credentials: grpc.credentials.createSsl(read("ca.pem")) });
      const r = await client.save({
        job: "t",
        checkpointId: "s1",
        step: 1,
        rank: 0,
        worldSize: 1,
        item: "x",
        entries: [{ key: "o", object: { data: Buffer.from("hello") } }],
      });
      expect(
        (await client.commit({ job: "t", checkpointId: "s1", step: 1, rank: 0, worldSize: 1, items: ["x"], attempt: r.attempt })).outcome,
      ).toBe("COMMITTED");
      expect((await listWith(d, grpc.credentials.createSsl(read("ca.pem")))).response?.checkpoints.length).toBe(1);
      expect((await listWith(d, grpc.credentials.createInsecure())).error?.code).toBe(grpc.status.UNAVAILABLE);
      client.close();
    } finally {
      await d.stop();
    }
  });

  it("mtls - a client with a certificate from the CA is served; one without a certificate is refused", async () => {
    const d = await startDaemon({ args: ["--tls-cert", file("server.pem"), "--tls-key", file("server.key"), "--tls-ca", file("ca.pem")] });
    try {
      const withCert = await listWith(d, grpc.credentials.createSsl(read("ca.pem"), read("client.key"), read("client.pem")));
      expect(withCert.error).toBeUndefined();
      const without = await listWith(d, grpc.credentials.createSsl(read("ca.pem")));
      expect(without.error?.code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      await d.stop();
    }
  });

  it("tls - a key without a certificate is refused at start with a clear message", async () => {
    const out = await runDaemonExpectingExit(["--tls-key", file("server.key")]);
    expect(out.code).not.toBe(0);
    expect(out.output).toMatch(/--tls-cert and --tls-key must be given together/);
  });
});

describe("per-job tokens", () => {
  let d: Daemon;
  let raw: CheckpointServiceClient;
  const tokens = { admin: "admin-token-0001", jobs: { jobA: "token-of-job-a", jobB: "token-of-job-b" } };
  beforeAll(async () => {
    const dir = tempDataDir();
    fs.writeFileSync(path.join(dir, "tokens.json"), JSON.stringify(tokens));
    d = await startDaemon({ args: ["--auth-tokens", path.join(dir, "tokens.json")] });
    raw = rawClient(d.address);
  });
  afterAll(async () => {
    raw.close();
    await d.stop();
  });
  const list = (job: string, token?: string) => unaryWith((md, cb) => raw.ListCheckpoints({ job }, md, cb), token);

  it("auth - a call without a token is UNAUTHENTICATED, with a message saying what to send", async () => {
    const r = await list("jobA");
    expect(r.error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(r.error?.details).toMatch(/authorization: Bearer/);
    expect((await list("jobA", "not-a-token")).error?.code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it("auth - job A's token works on job A and is PERMISSION_DENIED on job B", async () => {
    expect((await list("jobA", tokens.jobs.jobA)).error).toBeUndefined();
    const r = await list("jobB", tokens.jobs.jobA);
    expect(r.error?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(r.error?.details).toMatch(/jobA.*jobB/);
  });

  it("auth - a save needs the job's token; deleting needs the admin token", async () => {
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${tokens.jobs.jobA}`);
    const data = compressibleBytes(64 << 10);
    const result = await new Promise<{ error?: grpc.ServiceError; attempt?: number }>((resolve) => {
      const call = raw.Save(md, (error, res) => resolve(error ? { error } : { attempt: res!.attempt }));
      const entries = [f32Entry("w", data)];
      call.write(headerMsg({ job: "jobA", checkpointId: "s1", step: 1, rank: 0, worldSize: 1, item: "m" }));
      call.write(entryMsg(entries[0]!));
      call.write(chunkMsg(data));
      call.write(trailerFor(entries));
      call.end();
    });
    expect(result.error).toBeUndefined();
    const commit = await unaryWith<{ outcome: string }>(
      (m, cb) =>
        raw.Commit({ job: "jobA", checkpointId: "s1", step: 1, rank: 0, worldSize: 1, items: ["m"], attempt: result.attempt! }, m, cb),
      tokens.jobs.jobA,
    );
    expect(commit.response?.outcome).toBe("COMMIT_OUTCOME_COMMITTED");
    const denied = await unaryWith((m, cb) => raw.DeleteCheckpoint({ job: "jobA", checkpointId: "s1" }, m, cb), tokens.jobs.jobA);
    expect(denied.error?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(denied.error?.details).toMatch(/admin/);
    const ok = await unaryWith((m, cb) => raw.DeleteCheckpoint({ job: "jobA", checkpointId: "s1" }, m, cb), tokens.admin);
    expect(ok.error).toBeUndefined();
    const saveB = await new Promise<grpc.ServiceError | null>((resolve) => {
      const call = raw.Save(md, (error) => resolve(error));
      call.on("error", () => undefined);
      call.write(headerMsg({ job: "jobB", checkpointId: "s1", step: 1, rank: 0, worldSize: 1, item: "m" }));
      call.end();
    });
    expect(saveB?.code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it("auth - the TypeScript client sends its token on every call", async () => {
    const withToken = new CkptdClient({ address: d.address, token: tokens.jobs.jobB });
    const saved = await withToken.save({
      job: "jobB",
      checkpointId: "s1",
      step: 1,
      rank: 0,
      worldSize: 1,
      item: "m",
      entries: [{ key: "o", object: { data: Buffer.from("x") } }],
    });
    const c = await withToken.commit({
      job: "jobB",
      checkpointId: "s1",
      step: 1,
      rank: 0,
      worldSize: 1,
      items: ["m"],
      attempt: saved.attempt,
    });
    expect(c.outcome).toBe("COMMITTED");
    expect((await withToken.listCheckpoints("jobB")).checkpoints).toHaveLength(1);
    await expect(withToken.listCheckpoints("jobA")).rejects.toThrow(/PERMISSION_DENIED|belongs to job 'jobB'/);
    withToken.close();
    const without = new CkptdClient(d.address);
    await expect(without.listCheckpoints("jobB")).rejects.toThrow(/UNAUTHENTICATED|requires a token/);
    without.close();
  });

  it("auth - health checks need no token", async () => {
    const health = new grpc.Client(d.address, grpc.credentials.createInsecure());
    const res = await new Promise<Buffer>((resolve, reject) =>
      health.makeUnaryRequest(
        "/grpc.health.v1.Health/Check",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        (err, r) => (err ? reject(err) : resolve(r!)),
      ),
    );
    // HealthCheckResponse{status: SERVING(1)} is field 1 varint 1.
    expect([...res]).toEqual([0x08, 0x01]);
    health.close();
  });
});

async function runDaemonExpectingExit(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
  const { spawn } = await import("node:child_process");
  const p = spawn(process.execPath, [DAEMON_ENTRY, "--listen", "127.0.0.1:0", "--data-dir", tempDataDir(), ...args], {
    env: { ...process.env, ...env },
  });
  let output = "";
  p.stdout.on("data", (b: Buffer) => (output += b.toString()));
  p.stderr.on("data", (b: Buffer) => (output += b.toString()));
  const code = await new Promise<number | null>((resolve) => p.on("exit", resolve));
  return { code, output };
}

describe("config", () => {
  it("config - a JSON config file sets options that flags and environment override", async () => {
    const dir = tempDataDir();
    const cfg = path.join(dir, "ckptd.json");
    fs.writeFileSync(cfg, JSON.stringify({ keepLast: 3, keepEverySteps: 100, prepareTimeoutMs: 5000 }));
    const d = await startDaemon({ args: ["--config", cfg, "--keep-every-steps", "50"] });
    try {
      const rt = serviceStub("RetentionService", d.address);
      const r = await unaryWith<{ policy: { keepLast: number; keepEverySteps: number } | null }>((md, cb) =>
        rt.GetRetentionPolicy({ job: "any" }, md, cb),
      );
      expect(r.response?.policy?.keepLast).toBe(3);
      expect(r.response?.policy?.keepEverySteps).toBe(50);
      rt.close();
    } finally {
      await d.stop();
    }
  });

  it("config - an unknown key or a bad value stops the daemon with a message naming it", async () => {
    const dir = tempDataDir();
    const cfg = path.join(dir, "bad.json");
    fs.writeFileSync(cfg, JSON.stringify({ keepLastt: 3 }));
    const r1 = await runDaemonExpectingExit(["--config", cfg]);
    expect(r1.code).not.toBe(0);
    expect(r1.output).toMatch(/unknown key 'keepLastt'/);
    fs.writeFileSync(cfg, JSON.stringify({ prepareTimeoutMs: -1 }));
    const r2 = await runDaemonExpectingExit(["--config", cfg]);
    expect(r2.code).not.toBe(0);
    expect(r2.output).toMatch(/prepareTimeoutMs.*positive integer/);
    const r3 = await runDaemonExpectingExit(["--prepare-timeout-ms", "soon"]);
    expect(r3.code).not.toBe(0);
    expect(r3.output).toMatch(/--prepare-timeout-ms must be a positive integer/);
  });

  it("help - documents every option with its default and environment variable", async () => {
    const r = await runDaemonExpectingExit(["--help"]);
    expect(r.code).toBe(0);
    for (const flag of [
      "--listen",
      "--data-dir",
      "--prepare-timeout-ms",
      "--metrics-listen",
      "--tls-cert",
      "--tls-ca",
      "--auth-tokens",
      "--config",
      "--keep-last",
      "--lease-ttl-ms",
    ])
      expect(r.output).toContain(flag);
    expect(r.output).toMatch(/CKPTD_DATA_DIR/);
  });
});

describe("graceful shutdown", () => {
  it("sigterm - an in-flight save completes and commits, new saves get UNAVAILABLE, the daemon exits 0", async () => {
    const d = await startDaemon();
    const raw = testClient(d.address);
    const data = compressibleBytes(8 * MiB);
    const entries = [f32Entry("w", data)];
    const ref = { job: "g", checkpointId: "s1", step: 1, rank: 0, worldSize: 1, item: "model" };
    const s = openSave(raw);
    await s.write(headerMsg(ref));
    await s.write(entryMsg(entries[0]!));
    await s.write(chunkMsg(data.subarray(0, 4 * MiB)));
    // Let the daemon take the first chunk before the signal.
    await new Promise((r) => setTimeout(r, 200));
    d.proc.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 200));
    const late = rawClient(d.address);
    const refused = await new Promise<grpc.ServiceError | null>((resolve) => {
      const call = late.Save((err) => resolve(err));
      call.on("error", () => undefined);
      call.write(headerMsg({ ...ref, checkpointId: "s2", step: 2 }));
      call.end();
    });
    expect(refused?.code).toBe(grpc.status.UNAVAILABLE);
    expect(refused?.details).toMatch(/shutting down/);
    await s.write(chunkMsg(data.subarray(4 * MiB)));
    await s.write(trailerFor(entries));
    const saved = await s.end();
    expect(saved.error).toBeUndefined();
    const commit = await commitRaw(raw, { ...ref, items: ["model"], attempt: saved.response!.attempt });
    expect(commit.response?.outcome).toBe("COMMIT_OUTCOME_COMMITTED");
    expect(await d.exited).toBe(0);
    raw.close();
    late.close();
    // The committed checkpoint is there for the next daemon.
    const next = await startDaemon({ dataDir: d.dataDir });
    try {
      const c = testClient(next.address);
      const list = await c.listCheckpoints("g");
      expect(list.checkpoints.map((x) => x.checkpointId)).toEqual(["s1"]);
      c.close();
    } finally {
      await next.stop();
    }
  });

  it("sigterm - checkpoints left open by trainers that died (staged, never voted) do not hold the daemon for the grace period", async () => {
    const d = await startDaemon({ args: ["--shutdown-grace-ms", "30000"] });
    const raw = testClient(d.address);
    // Rank 0 of each saved and died before voting; rank 1 never came.
    for (const id of ["left1", "left2", "left3"])
      await saveItemOk(raw, { job: "g2", checkpointId: id, step: Number(id.slice(4)), rank: 0, worldSize: 2, item: "model" }, [
        f32Entry("w", compressibleBytes(64 * 1024, 1)),
      ]);
    raw.close();
    // Past the 3 s of activity a drain still waits for (grace / 10).
    await new Promise((r) => setTimeout(r, 3_500));
    const started = Date.now();
    d.proc.kill("SIGTERM");
    expect(await d.exited).toBe(0);
    expect(Date.now() - started, "SIGTERM to exit").toBeLessThan(5_000);
    // Recovery aborts them at the next start and frees their staging.
    const next = await startDaemon({ dataDir: d.dataDir });
    try {
      expect(next.output()).toMatch(/recovery: aborted an undecided checkpoint/);
      expect(fs.readdirSync(path.join(d.dataDir, "jobs", "g2", "staging"))).toEqual([]);
    } finally {
      await next.stop();
    }
  });
});
