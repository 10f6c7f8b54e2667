/**
 * PeerService attacked as a client would: a single-node daemon does
 * not serve it; a multi-node daemon wants its peer token (not an admin or a job token),
 * validates every field, never publishes an item record it did not verify; and a data
 * directory with broken checkpoints starts, quarantines them and serves the rest.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CkptdClient, isNotFound, tensor } from "../../clients/ts/src/index.js";
import type { PeerServiceClient } from "../../wire/gen/ckptd/v1/PeerService.js";
import type { StagedItemIn } from "../../wire/gen/ckptd/v1/StagedItem.js";
import { CLIENT_CHANNEL_OPTIONS } from "../../wire/index.js";
import { RAW_FRAME_OVERHEAD } from "../../src/codec/codec.js";
import { metricsAddress, REPO_ROOT, scrape, startDaemon, writePeerTokenFile, type Daemon } from "./harness.js";
import { serviceStub } from "./raw-wire.js";

const CKPTCTL = path.join(REPO_ROOT, "dist", "src", "ckptctl", "main.js");
const PEER_TOKEN = "peer-token-of-the-abuse-test-01";
const TOKENS = { admin: "admin-token-of-the-abuse-test", jobs: { ctl: "token-of-job-ctl-0001" } };

function peerClient(address: string): PeerServiceClient {
  return serviceStub("PeerService", address, CLIENT_CHANNEL_OPTIONS);
}

type Unary<Req, Res> = (req: Req, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown;

/** One unary call with an optional bearer token: the error or the response. */
// The responses are loosely typed: grpc-js's overloaded client methods lose their types through bind().
function call(fn: Unary<any, any>, req: object, token?: string): Promise<{ error?: grpc.ServiceError; res?: any }> {
  const md = new grpc.Metadata();
  if (token) md.set("authorization", `Bearer ${token}`);
  return new Promise((resolve) => fn(req, md, (error, res) => resolve(error ? { error } : { res: res! })));
}

/** Every PeerService RPC with a harmless request. */
function everyRpc(p: PeerServiceClient): [string, () => Unary<any, any>, object][] {
  const at = { job: "j", checkpointId: "c", attempt: 1 };
  return [
    ["OpenAttempt", () => p.OpenAttempt.bind(p), { ...at, step: 1, worldSize: 1, rank: 0, nodeId: "n2" }],
    ["Heartbeat", () => p.Heartbeat.bind(p), { ...at, nodeId: "n2" }],
    ["Vote", () => p.Vote.bind(p), { ...at, step: 1, worldSize: 1, rank: 0, nodeId: "n2", items: [] }],
    ["AbortAttempt", () => p.AbortAttempt.bind(p), { ...at, nodeId: "n2", reason: "x" }],
    ["GetDecision", () => p.GetDecision.bind(p), at],
  ];
}

/** A well-formed record of an item `name` with one 16-byte float32 tensor stored raw. */
function record(name = "m"): StagedItemIn {
  const stored = 16 + RAW_FRAME_OVERHEAD;
  return {
    name,
    rawBytes: 16,
    storedBytes: stored,
    entries: [
      {
        key: "w",
        tensor: { dtype: "DTYPE_FLOAT32", shape: [4], device: "cpu" },
        file: "000000.lz4",
        rawBytes: 16,
        storedBytes: stored,
        chunks: [{ offset: 0, rawBytes: 16, storedBytes: stored, crc32c: 1, raw: true }],
      },
    ],
  };
}

/** Everything under `dir`, as relative paths. */
function tree(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, encoding: "utf8" }).sort();
}

describe("PeerService on a single-node daemon", () => {
  let daemon: Daemon;
  beforeAll(async () => {
    daemon = await startDaemon();
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it("peer - a single-node daemon does not serve PeerService: every call is UNIMPLEMENTED and touches nothing", async () => {
    const p = peerClient(daemon.address);
    try {
      const before = tree(daemon.dataDir);
      for (const [rpc, fn, req] of everyRpc(p)) {
        const r = await call(fn(), req);
        expect(r.error?.code, rpc).toBe(grpc.status.UNIMPLEMENTED);
      }
      // The attack: OpenAttempt then Vote with an item named "m".
      const open = await call(p.OpenAttempt.bind(p), { job: "j", checkpointId: "c", step: 1, worldSize: 1, rank: 0, nodeId: "n2" });
      expect(open.error?.code).toBe(grpc.status.UNIMPLEMENTED);
      expect(tree(daemon.dataDir)).toEqual(before);
    } finally {
      p.close();
    }
  });
});

describe("PeerService on a multi-node daemon", () => {
  let parent: string;
  let dataDir: string;
  let args: string[];
  let daemon: Daemon;
  let p: PeerServiceClient;

  beforeAll(async () => {
    // The data directory sits inside `parent`, so a path that escapes it lands where the test can look.
    parent = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-peer-abuse-"));
    dataDir = path.join(parent, "data");
    fs.writeFileSync(path.join(parent, "tokens.json"), JSON.stringify(TOKENS));
    args = [
      "--node-id",
      "n1",
      "--peers",
      "n1,n2",
      "--peer-token-file",
      writePeerTokenFile(PEER_TOKEN),
      "--auth-tokens",
      path.join(parent, "tokens.json"),
      "--prepare-timeout-ms",
      "60000",
    ];
    daemon = await startDaemon({ dataDir, args });
    p = peerClient(daemon.address);
  });
  afterAll(async () => {
    p?.close();
    await daemon?.stop();
  });

  it("peer - no token, an unknown token, the admin token or a job token: every PeerService call is refused", async () => {
    for (const [rpc, fn, req] of everyRpc(p)) {
      expect((await call(fn(), req)).error?.code, `${rpc} without a token`).toBe(grpc.status.UNAUTHENTICATED);
      expect((await call(fn(), req, "not-a-token-of-this-job")).error?.code, `${rpc} unknown token`).toBe(grpc.status.UNAUTHENTICATED);
      const admin = await call(fn(), req, TOKENS.admin);
      expect(admin.error?.code, `${rpc} admin token`).toBe(grpc.status.PERMISSION_DENIED);
      expect(admin.error?.details).toMatch(/peer token/);
      expect((await call(fn(), req, TOKENS.jobs.ctl)).error?.code, `${rpc} job token`).toBe(grpc.status.PERMISSION_DENIED);
    }
    expect(fs.existsSync(path.join(dataDir, "jobs", "j")), "no refused call created the job").toBe(false);
  });

  it("peer - the peer token opens no other service", async () => {
    const client = new CkptdClient({ address: daemon.address, token: PEER_TOKEN });
    try {
      await expect(client.listCheckpoints("ctl")).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    } finally {
      client.close();
    }
  });

  it("peer - path-like job or checkpoint id on every RPC is INVALID_ARGUMENT and no file outside the data dir is read or created", async () => {
    // What the GetDecision read: a decision record planted where "../../outside" leads.
    const planted = path.join(parent, "outside", "decisions");
    fs.mkdirSync(planted, { recursive: true });
    fs.writeFileSync(path.join(planted, "c@1.json"), JSON.stringify({ outcome: "COMMITTED", reason: "planted", attempt: 1 }));
    const deep = path.resolve(dataDir, "jobs", "../../../../outside");
    const deepExisted = fs.existsSync(deep);
    const before = tree(parent);
    for (const bad of ["../../../../outside", "../../outside", "a/b", "..", ""]) {
      for (const field of ["job", "checkpointId"] as const)
        for (const [rpc, fn, req] of everyRpc(p)) {
          const r = await call(fn(), { ...req, [field]: bad }, PEER_TOKEN);
          expect(r.error?.code, `${rpc} ${field}=${JSON.stringify(bad)}: ${JSON.stringify(r.res)}`).toBe(grpc.status.INVALID_ARGUMENT);
        }
    }
    expect(tree(parent)).toEqual(before);
    expect(fs.existsSync(deep)).toBe(deepExisted);
  });

  it("peer - out-of-range world_size, rank, step, attempt and unknown node ids are INVALID_ARGUMENT", async () => {
    const open = { job: "bounds", checkpointId: "c", step: 1, worldSize: 2, rank: 0, nodeId: "n2" };
    const cases: [string, object][] = [
      ["world_size 2^32-1", { ...open, worldSize: 4294967295 }],
      ["world_size 0", { ...open, worldSize: 0 }],
      ["rank = world_size", { ...open, rank: 2 }],
      ["negative step", { ...open, step: -1 }],
      ["unknown node", { ...open, nodeId: "n9" }],
      ["its own node id", { ...open, nodeId: "n1" }],
      ["path-like node id", { ...open, nodeId: "../n2" }],
    ];
    for (const [what, req] of cases)
      expect((await call(p.OpenAttempt.bind(p), req, PEER_TOKEN)).error?.code, what).toBe(grpc.status.INVALID_ARGUMENT);
    for (const [rpc, fn, req] of everyRpc(p))
      if (rpc !== "OpenAttempt")
        expect((await call(fn(), { ...req, attempt: 0 }, PEER_TOKEN)).error?.code, `${rpc} attempt 0`).toBe(grpc.status.INVALID_ARGUMENT);
    const longReason = await call(
      p.AbortAttempt.bind(p),
      { job: "j", checkpointId: "c", attempt: 1, nodeId: "n2", reason: "x".repeat(5000) },
      PEER_TOKEN,
    );
    expect(longReason.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it("peer - malformed item records are INVALID_ARGUMENT and nothing is published", async () => {
    const at = { job: "votes", checkpointId: "c1", step: 1, worldSize: 1, rank: 0, nodeId: "n2" };
    const opened = await call(p.OpenAttempt.bind(p), at, PEER_TOKEN);
    expect(opened.error).toBeUndefined();
    const attempt = opened.res!.attempt;
    const good = record();
    const entry = good.entries![0]!;
    const bad: [string, StagedItemIn[]][] = [
      ["an empty record (the protobuf [null])", [{}]],
      ["an entry with every field missing", [{ ...good, entries: [{}] }]],
      ["an entry of neither kind", [{ ...good, entries: [{ ...entry, tensor: null }] }]],
      ["item sizes that do not add up", [{ ...good, rawBytes: 1000 }]],
      ["entry sizes that do not add up", [{ ...good, entries: [{ ...entry, storedBytes: 5 }] }]],
      ["a tensor shape that is not its bytes", [{ ...good, entries: [{ ...entry, tensor: { dtype: "DTYPE_FLOAT32", shape: [5] } }] }]],
      ["a chunk list with a gap", [{ ...good, entries: [{ ...entry, chunks: [{ ...entry.chunks![0]!, offset: 3 }] }] }]],
      ["a size above 2^53", [{ ...good, rawBytes: "1152921504606846976" }]],
      ["a path-like entry file", [{ ...good, entries: [{ ...entry, file: "../../../../etc/passwd" }] }]],
      ["a path-like item name", [{ ...good, name: "../m" }]],
      ["the same item twice", [good, good]],
    ];
    for (const [what, items] of bad) {
      const r = await call(p.Vote.bind(p), { ...at, attempt, items }, PEER_TOKEN);
      expect(r.error?.code, `${what}: ${JSON.stringify(r.res ?? r.error?.details)}`).toBe(grpc.status.INVALID_ARGUMENT);
    }
    // A vote in the old shape (records as JSON in field 7, none in items) is refused naming the field, not taken
    // for a vote with no items.
    const old = await call(p.Vote.bind(p), { ...at, attempt, itemsJson: Buffer.from(JSON.stringify([good])), items: [] }, PEER_TOKEN);
    expect(old.error?.code, JSON.stringify(old.res ?? old.error?.details)).toBe(grpc.status.INVALID_ARGUMENT);
    expect(old.error?.details).toMatch(/items_json \(VoteRequest field 7\), which is no longer read/);
    expect(fs.existsSync(path.join(dataDir, "jobs", "votes", "checkpoints", "c1"))).toBe(false);
    const client = new CkptdClient({ address: daemon.address, token: TOKENS.admin });
    try {
      await expect(client.getCheckpoint("votes", "c1")).rejects.toSatisfy(isNotFound);
    } finally {
      client.close();
    }
  });

  it("peer - a well-formed record whose files are not staged, or not of the declared size, aborts the attempt and publishes nothing", async () => {
    // The Vote: one item "m" that was never staged.
    const base = { job: "verify", step: 1, worldSize: 1, rank: 0, nodeId: "n2" };
    for (const [id, items] of [
      ["c-issue", [{ name: "m" }]],
      ["c-missing", [record()]],
      ["c-size", [record()]],
    ] as [string, StagedItemIn[]][]) {
      const opened = await call(p.OpenAttempt.bind(p), { ...base, checkpointId: id }, PEER_TOKEN);
      const attempt = opened.res!.attempt;
      if (id === "c-size") {
        // A staged file one byte short of what the record declares.
        const dir = path.join(dataDir, "jobs", "verify", "staging", `${id}@${attempt}`, "rank-00000", "m");
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, "000000.lz4"), Buffer.alloc(16 + RAW_FRAME_OVERHEAD - 1));
      }
      const r = await call(p.Vote.bind(p), { ...base, checkpointId: id, attempt, items }, PEER_TOKEN);
      expect(r.error, id).toBeUndefined();
      expect(r.res?.outcome, id).toBe("COMMIT_OUTCOME_ABORTED");
      const stored = 16 + RAW_FRAME_OVERHEAD;
      expect(r.res?.reason, id).toMatch(id === "c-size" ? `holds ${stored - 1} bytes, the record says ${stored}` : /not staged/);
      expect(fs.existsSync(path.join(dataDir, "jobs", "verify", "checkpoints", id)), id).toBe(false);
    }
  });

  it("peer - after the attacks the daemon restarts, and a job saves, commits and loads through it", async () => {
    p.close();
    await daemon.stop();
    daemon = await startDaemon({ dataDir, args });
    p = peerClient(daemon.address);
    const client = new CkptdClient({ address: daemon.address, token: TOKENS.jobs.ctl });
    try {
      const data = new Float32Array([1, 2, 3, 4]);
      const saved = await client.save({
        job: "ctl",
        checkpointId: "s1",
        step: 1,
        rank: 0,
        worldSize: 1,
        item: "model",
        entries: [{ key: "w", tensor: tensor(data) }],
      });
      const d = await client.commit({
        job: "ctl",
        checkpointId: "s1",
        step: 1,
        rank: 0,
        worldSize: 1,
        items: ["model"],
        attempt: saved.attempt,
      });
      expect(d.outcome).toBe("COMMITTED");
      const loaded = await client.loadItems({ job: "ctl", checkpointId: "s1", rank: 0 });
      const w = loaded.items.get("model")?.get("w");
      expect(w?.kind === "tensor" && Buffer.from(w.tensor.data).equals(Buffer.from(data.buffer))).toBe(true);
    } finally {
      client.close();
    }
  });
});

describe("multi-node start-up without a peer credential", () => {
  it("peer - a multi-node daemon without --peer-token-file refuses to start with one clear line", async () => {
    await expect(startDaemon({ args: ["--node-id", "n1", "--peers", "n1,n2"] })).rejects.toThrow(
      /ckptd: a multi-node daemon \(--node-id\) needs --peer-token-file/,
    );
  });

  it("peer - a peer token that is also the admin token, or too short, refuses the start with one line", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-peer-tokens-"));
    fs.writeFileSync(path.join(dir, "tokens.json"), JSON.stringify({ admin: PEER_TOKEN }));
    const same = startDaemon({
      args: [
        "--node-id",
        "n1",
        "--peers",
        "n1,n2",
        "--peer-token-file",
        writePeerTokenFile(PEER_TOKEN),
        "--auth-tokens",
        path.join(dir, "tokens.json"),
      ],
    });
    await expect(same).rejects.toThrow(/ckptd: the peer token is also the admin token; give peers a token of their own\n/);
    await expect(
      startDaemon({ args: ["--node-id", "n1", "--peers", "n1,n2", "--peer-token-file", writePeerTokenFile("short")] }),
    ).rejects.toThrow(/at least 16 characters/);
  });
});

/** Runs ckptctl; resolves with its exit code and output. */
function ckptctl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("CKPTD_")));
    const proc = spawn(process.execPath, [CKPTCTL, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    proc.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    proc.on("error", reject);
    proc.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("start-up quarantine", () => {
  let daemon: Daemon | undefined;
  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
  });

  it("quarantine - broken manifests (truncated JSON, the issue's ranks:[{items:[{name:'m'}]}], missing) are set aside; the daemon starts and serves the rest", async () => {
    daemon = await startDaemon();
    const dataDir = daemon.dataDir;
    const client = new CkptdClient(daemon.address);
    const data = new Float32Array([5, 6, 7, 8]);
    try {
      for (const [step, id] of ["good", "trunc", "short", "gone"].entries()) {
        const saved = await client.save({
          job: "q",
          checkpointId: id,
          step,
          rank: 0,
          worldSize: 1,
          item: "model",
          entries: [{ key: "w", tensor: tensor(data) }],
        });
        await client.commit({ job: "q", checkpointId: id, step, rank: 0, worldSize: 1, items: ["model"], attempt: saved.attempt });
      }
    } finally {
      client.close();
    }
    await daemon.stop();

    const cp = (id: string) => path.join(dataDir, "jobs", "q", "checkpoints", id);
    const manifestText = fs.readFileSync(path.join(cp("trunc"), "manifest.json"), "utf8");
    fs.writeFileSync(path.join(cp("trunc"), "manifest.json"), manifestText.slice(0, manifestText.length / 2));
    const short = JSON.parse(fs.readFileSync(path.join(cp("short"), "manifest.json"), "utf8")) as Record<string, unknown>;
    fs.writeFileSync(path.join(cp("short"), "manifest.json"), JSON.stringify({ ...short, ranks: [{ items: [{ name: "m" }] }] }));
    fs.rmSync(path.join(cp("gone"), "manifest.json"));

    daemon = await startDaemon({ dataDir, args: ["--metrics-listen", "127.0.0.1:0"] });
    const after = new CkptdClient(daemon.address);
    try {
      expect((await after.listCheckpoints("q")).checkpoints.map((c) => c.checkpointId)).toEqual(["good"]);
      const loaded = await after.loadItems({ job: "q", checkpointId: "good", rank: 0 });
      const w = loaded.items.get("model")?.get("w");
      expect(w?.kind === "tensor" && Buffer.from(w.tensor.data).equals(Buffer.from(data.buffer))).toBe(true);
    } finally {
      after.close();
    }
    for (const id of ["trunc", "short", "gone"]) expect(fs.existsSync(cp(id)), id).toBe(false);
    const moved = fs.readdirSync(path.join(dataDir, "jobs", "q", "quarantine"));
    expect(moved.map((m) => m.replace(/-\d{8}T\d+Z(-\d+)?$/, "")).sort()).toEqual(["gone", "short", "trunc"]);
    expect(daemon.output()).toMatch(/checkpoint 'short' of job 'q' is unusable and was moved to/);

    const metrics = await scrape(metricsAddress(daemon));
    expect(metrics.get("ckptd_quarantined_checkpoints_total")).toBe(3);

    const listed = await ckptctl(["--address", daemon.address, "--json", "quarantine"]);
    expect(listed.stderr).toBe("");
    const doc = JSON.parse(listed.stdout) as {
      quarantined: { checkpointId: string; reason: string; path: string }[];
      quarantinedCount: number;
    };
    expect(doc.quarantinedCount).toBe(3);
    const reasons = new Map(doc.quarantined.map((q) => [q.checkpointId, q.reason]));
    expect(reasons.get("trunc")).toMatch(/not a valid manifest/);
    expect(reasons.get("short")).toMatch(/ranks\[0\]/);
    expect(reasons.get("gone")).toMatch(/is missing/);
    for (const q of doc.quarantined) expect(fs.existsSync(path.join(q.path, "quarantine.json")), q.path).toBe(true);
    const status = await ckptctl(["--address", daemon.address, "status"]);
    expect(status.stdout).toMatch(/quarantined.*3 \(see: ckptctl quarantine\)/);

    // Quarantine is not repeated: a second start finds nothing more to set aside.
    await daemon.stop();
    daemon = await startDaemon({ dataDir, args: ["--metrics-listen", "127.0.0.1:0"] });
    expect((await scrape(metricsAddress(daemon))).get("ckptd_quarantined_checkpoints_total")).toBe(0);
  });

  it("quarantine - damaged decision records of staged attempts (an invalid manifest, not JSON, no outcome) do not block recovery", async () => {
    daemon = await startDaemon();
    const dataDir = daemon.dataDir;
    await daemon.stop();
    const job = path.join(dataDir, "jobs", "r");
    const records: Record<string, string> = {
      invalid: JSON.stringify({ outcome: "COMMITTED", attempt: 1, manifest: { format: "ckptd.manifest", version: 1, ranks: [null] } }),
      truncated: '{"outcome":"COMM',
      nothing: "null",
    };
    fs.mkdirSync(path.join(job, "decisions"), { recursive: true });
    for (const [id, text] of Object.entries(records)) {
      fs.mkdirSync(path.join(job, "staging", `${id}@1`, "rank-00000", "model"), { recursive: true });
      fs.writeFileSync(path.join(job, "decisions", `${id}@1.json`), text);
    }
    daemon = await startDaemon({ dataDir });
    for (const id of Object.keys(records)) {
      expect(fs.existsSync(path.join(job, "staging", `${id}@1`)), id).toBe(false);
      expect(fs.existsSync(path.join(job, "checkpoints", id)), id).toBe(false);
    }
    expect(fs.readdirSync(path.join(job, "quarantine"))).toHaveLength(3);
    expect(daemon.output()).toMatch(/recovery: quarantined a staged attempt/);
  });
});
