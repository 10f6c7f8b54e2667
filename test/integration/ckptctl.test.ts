/**
 * ckptctl against a real daemon: `node dist/src/ckptctl/main.js` as a child process
 * (`npm test` builds first), its tables, its --json documents, its exit codes, and an
 * export whose files are the exact bytes that were saved.
 */
import { spawn } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CkptdClient, tensor, type SaveEntry } from "../../clients/ts/src/index.js";
import { makeTestCertificates, REPO_ROOT, startDaemon, tempDataDir, type Daemon } from "./harness.js";

const CKPTCTL = path.join(REPO_ROOT, "dist", "src", "ckptctl", "main.js");
const JOB = "ctl-job";
const MiB = 1 << 20;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs ckptctl with the given arguments; resolves when it exits. */
function ckptctl(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CKPTCTL, ...args], {
      // No CKPTD_* from the caller's shell may leak into what the test asserts.
      env: { ...withoutCkptdEnv(process.env), ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    proc.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    proc.on("error", reject);
    proc.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

function withoutCkptdEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !k.startsWith("CKPTD_")) out[k] = v;
  return out;
}

function json<T = any>(r: Run): T {
  expect(r.stderr, "stderr").toBe("");
  expect(r.code, `exit code; stdout: ${r.stdout}`).toBe(0);
  return JSON.parse(r.stdout) as T;
}

function randomBytes(n: number): Uint8Array {
  return randomFillSync(new Uint8Array(n));
}

/** The body rows of the tables in a command's output, as trimmed cells. */
function rows(stdout: string): string[][] {
  return stdout
    .split("\n")
    .filter((l) => l.startsWith("│"))
    .map((l) =>
      l
        .split("│")
        .slice(1, -1)
        .map((c) => c.trim()),
    );
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Entries of one rank of the test checkpoints, kept to compare exports with. */
type Saved = Record<
  string,
  { key: string; kind: "tensor" | "object"; bytes: Uint8Array; dtype?: string; shape?: number[]; device?: string; format?: string }[]
>;

function rankEntries(rank: number): Saved {
  const weight = randomBytes(6 * MiB + 12); // two chunks, the second one short
  const bias = randomBytes(2 * 1001);
  const state = Buffer.from(JSON.stringify({ lr: 0.001, rank, betas: [0.9, 0.999] }));
  const saved: Saved = {
    model: [
      { key: "layers.0.weight", kind: "tensor", bytes: weight, dtype: "float32", shape: [(6 * MiB + 12) / 4], device: `cuda:${rank}` },
      // A key that is not a file name: the export must sanitise it.
      { key: "decoder/layers.1/bias", kind: "tensor", bytes: bias, dtype: "bfloat16", shape: [1001], device: `cuda:${rank}` },
    ],
  };
  if (rank === 0) saved["optim"] = [{ key: "state", kind: "object", bytes: state, format: "json" }];
  return saved;
}

function toSaveEntries(entries: Saved[string]): SaveEntry[] {
  return entries.map((e) =>
    e.kind === "tensor"
      ? { key: e.key, tensor: tensor(e.bytes, { dtype: e.dtype as "float32", shape: e.shape!, device: e.device! }) }
      : { key: e.key, object: { data: e.bytes, format: e.format! } },
  );
}

/** Saves a 2-rank checkpoint with the TypeScript client and commits it. */
async function saveCheckpoint(client: CkptdClient, checkpointId: string, step: number): Promise<Saved[]> {
  const ranks = [rankEntries(0), rankEntries(1)];
  await Promise.all(
    ranks.map(async (items, rank) => {
      let attempt = 0;
      for (const [item, entries] of Object.entries(items)) {
        const r = await client.save({ job: JOB, checkpointId, step, rank, worldSize: 2, item, entries: toSaveEntries(entries) });
        attempt = r.attempt;
      }
      const c = await client.commit(
        { job: JOB, checkpointId, step, rank, worldSize: 2, items: Object.keys(items), attempt },
        { timeoutMs: 30_000 },
      );
      expect(c.outcome).toBe("COMMITTED");
    }),
  );
  return ranks;
}

interface ManifestChunk {
  offset: number;
  storedBytes: number;
}
interface ManifestJson {
  ranks: { rank: number; items: { name: string; entries: { key: string; file: string; chunks: ManifestChunk[] }[] }[] }[];
}

let daemon: Daemon;
let client: CkptdClient;
let saved: Saved[];
let A: string[];

beforeAll(async () => {
  daemon = await startDaemon();
  client = new CkptdClient(daemon.address);
  saved = await saveCheckpoint(client, "global_step100", 100);
  await saveCheckpoint(client, "global_step200", 200);
  A = ["--address", daemon.address];
});

afterAll(async () => {
  client?.close();
  await daemon?.stop();
});

describe("ckptctl reading", () => {
  it("list - --json lists the committed checkpoints newest first with their sizes", async () => {
    const doc = json(await ckptctl([...A, "--json", "list", JOB]));
    expect(doc.job).toBe(JOB);
    expect(doc.checkpoints.map((c: any) => c.checkpointId)).toEqual(["global_step200", "global_step100"]);
    const c = doc.checkpoints[1];
    expect(c).toMatchObject({ step: 100, worldSize: 2 });
    const raw = saved.flatMap((items) => Object.values(items).flat()).reduce((n, e) => n + e.bytes.byteLength, 0);
    expect(c.rawBytes).toBe(raw);
    expect(c.storedBytes).toBeGreaterThan(raw); // random bytes do not compress
    expect(Date.parse(c.commitTime)).toBeGreaterThan(Date.now() - 600_000);
    expect(json(await ckptctl([...A, "--json", "list", JOB, "--limit", "1"])).checkpoints.map((x: any) => x.checkpointId)).toEqual([
      "global_step200",
    ]);
  });

  it("list - without --json prints a table with the id, step, world size and sizes", async () => {
    const r = await ckptctl([...A, "list", JOB]);
    expect(r.code).toBe(0);
    const [head, ...body] = rows(r.stdout);
    expect(head).toEqual(["checkpoint", "step", "world size", "committed at", "raw", "stored", "ratio"]);
    expect(body.map((row) => row.slice(0, 3))).toEqual([
      ["global_step200", "200", "2"],
      ["global_step100", "100", "2"],
    ]);
    expect(body[1]![3]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(body[1]![4]).toBe("12.0 MiB");
    expect(body[1]![6]).toMatch(/^\d\.\d\dx$/);
  });

  it("global options - may come after the command, and the address can come from CKPTD_ADDRESS", async () => {
    const doc = json(await ckptctl(["list", JOB, "--json"], { CKPTD_ADDRESS: daemon.address }));
    expect(doc.checkpoints).toHaveLength(2);
  });

  it("show - --json gives the full manifest: per rank its items, per item its entries", async () => {
    const doc = json(await ckptctl([...A, "--json", "show", JOB, "global_step100"]));
    expect(doc).toMatchObject({ job: JOB, checkpointId: "global_step100", step: 100, worldSize: 2 });
    expect(doc.ranks.map((r: any) => r.rank)).toEqual([0, 1]);
    for (const [rank, items] of saved.entries()) {
      const r = doc.ranks.find((x: any) => x.rank === rank);
      expect(r.items.map((i: any) => i.name).sort()).toEqual(Object.keys(items).sort());
      for (const [item, entries] of Object.entries(items)) {
        const it = r.items.find((i: any) => i.name === item);
        expect(it.entryCount).toBe(entries.length);
        for (const e of entries) {
          const m = it.entries.find((x: any) => x.key === e.key);
          expect(m.rawBytes).toBe(e.bytes.byteLength);
          expect(m.chunkCount).toBe(Math.max(1, Math.ceil(e.bytes.byteLength / (4 * MiB))));
          if (e.kind === "tensor") expect(m.tensor).toMatchObject({ dtype: e.dtype, shape: e.shape, device: e.device });
          else expect(m.object).toEqual({ sizeBytes: e.bytes.byteLength, format: e.format });
        }
      }
    }
    // "latest" is the default checkpoint.
    expect(json(await ckptctl([...A, "--json", "show", JOB])).checkpointId).toBe("global_step200");
  });

  it("show - without --json prints one table per rank and item", async () => {
    const r = await ckptctl([...A, "show", JOB, "global_step100"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/rank 0 · item model · 2 entries/);
    expect(r.stdout).toMatch(/rank 0 · item optim · 1 entries/);
    const table = rows(r.stdout);
    expect(table).toContainEqual(["key", "kind", "dtype/format", "shape", "device", "raw", "stored", "chunks"]);
    expect(table).toContainEqual([
      "layers.0.weight",
      "tensor",
      "float32",
      "[1572867]",
      "cuda:0",
      "6.00 MiB",
      expect.stringMatching(/MiB$/),
      "2",
    ]);
    expect(table).toContainEqual([
      "decoder/layers.1/bias",
      "tensor",
      "bfloat16",
      "[1001]",
      "cuda:1",
      "1.96 KiB",
      expect.stringMatching(/B$/),
      "1",
    ]);
    expect(table).toContainEqual(["state", "object", "json", "", "", "41 B", expect.stringMatching(/B$/), "1"]);
  });

  it("verify - a clean checkpoint is OK with exit code 0", async () => {
    const doc = json(await ckptctl([...A, "--json", "verify", JOB, "global_step100"]));
    expect(doc).toMatchObject({ checkpointId: "global_step100", ok: true, damaged: [] });
    expect(doc.chunksChecked).toBe(2 * 3 + 1);
    const r = await ckptctl([...A, "verify", JOB, "global_step100"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/global_step100: OK, 7 chunks/);
  });

  it("status - --json reports the daemon and a SERVING health", async () => {
    const doc = json(await ckptctl([...A, "--json", "status"]));
    expect(doc).toMatchObject({
      address: daemon.address,
      health: "SERVING",
      state: "running",
      listenAddress: daemon.address,
      jobCount: 1,
      checkpointCount: 2,
    });
    expect(doc.dataDir).toBe(fs.realpathSync(daemon.dataDir));
    expect(doc.storedBytes).toBeGreaterThan(0);
    const r = await ckptctl([...A, "status"]);
    expect(r.code).toBe(0);
    expect(rows(r.stdout)).toContainEqual(["health", "SERVING"]);
  });

  it("jobs - lists the job with its latest checkpoint", async () => {
    const doc = json(await ckptctl([...A, "--json", "jobs"]));
    expect(doc.jobs).toEqual([
      expect.objectContaining({ job: JOB, checkpointCount: 2, latestCheckpointId: "global_step200", latestStep: 200 }),
    ]);
    const r = await ckptctl([...A, "jobs"]);
    expect(rows(r.stdout)).toEqual([
      ["job", "checkpoints", "latest", "latest step", "stored"],
      ["ctl-job", "2", "global_step200", "200", expect.stringMatching(/MiB$/)],
    ]);
  });

  it("watch - replays the job's events as JSON lines and stops on Ctrl-C with exit code 0", async () => {
    const proc = spawn(process.execPath, [CKPTCTL, ...A, "--json", "watch", JOB], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    proc.stderr.on("data", (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((resolve) => proc.on("close", (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no events after 20 s: ${out} ${err}`)), 20_000);
      proc.stdout.on("data", (b: Buffer) => {
        out += b.toString();
        if (out.split("\n").filter(Boolean).length >= 2) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    proc.kill("SIGINT");
    expect(await exited).toBe(0);
    const events = out
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(events.slice(0, 2)).toEqual([
      expect.objectContaining({ sequence: 1, type: "COMMITTED", checkpointId: "global_step100", step: 100 }),
      expect.objectContaining({ sequence: 2, type: "COMMITTED", checkpointId: "global_step200", step: 200 }),
    ]);
    expect(err).toBe("");
  });

  it("retention and pin - shows, changes only the rules given, pins and unpins", async () => {
    const before = json(await ckptctl([...A, "--json", "retention", JOB]));
    expect(before.policy).toMatchObject({ keepLast: 0, keepEverySteps: 0 });
    const set = json(await ckptctl([...A, "--json", "retention", JOB, "--keep-last", "5"]));
    expect(set.policy).toMatchObject({ keepLast: 5, keepEverySteps: 0 });
    expect(set.deletedCheckpointIds).toEqual([]);
    const set2 = json(await ckptctl([...A, "--json", "retention", JOB, "--keep-every-steps", "100"]));
    expect(set2.policy).toMatchObject({ keepLast: 5, keepEverySteps: 100 });
    expect(json(await ckptctl([...A, "--json", "pin", JOB, "global_step100"]))).toEqual({
      job: JOB,
      checkpointId: "global_step100",
      pinned: true,
    });
    expect(json(await ckptctl([...A, "--json", "retention", JOB])).pinnedCheckpointIds).toEqual(["global_step100"]);
    expect(json(await ckptctl([...A, "--json", "unpin", JOB, "global_step100"])).pinned).toBe(false);
    const table = await ckptctl([...A, "retention", JOB]);
    expect(rows(table.stdout)).toEqual([
      ["keep last", "5"],
      ["keep every steps", "100"],
      ["keep best", "off"],
      ["pinned", "none"],
    ]);
    // Back to keeping everything, so later tests see both checkpoints.
    json(await ckptctl([...A, "--json", "retention", JOB, "--keep-last", "0", "--keep-every-steps", "0"]));
  });
});

describe("ckptctl export", () => {
  it("export - writes every entry of every rank byte-identical, and an index.json describing them", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "ckptctl-export-"));
    const doc = json(await ckptctl([...A, "--json", "export", JOB, "global_step100", "--out", out]));
    expect(doc).toMatchObject({ job: JOB, checkpointId: "global_step100", step: 100, ranks: [0, 1], entries: 5 });
    const index = JSON.parse(fs.readFileSync(path.join(out, "index.json"), "utf8"));
    expect(index).toMatchObject({ job: JOB, checkpointId: "global_step100", step: 100, worldSize: 2, ranks: [0, 1] });
    expect(index.entries).toHaveLength(5);
    for (const [rank, items] of saved.entries()) {
      for (const [item, entries] of Object.entries(items)) {
        for (const e of entries) {
          const x = index.entries.find((i: any) => i.rank === rank && i.item === item && i.key === e.key);
          expect(x, `${rank}/${item}/${e.key} in index.json`).toBeDefined();
          const rankDir = `rank-${String(rank).padStart(5, "0")}`;
          expect(x.file.startsWith(`${rankDir}/${item}/`)).toBe(true);
          expect(x.file.endsWith(e.kind === "tensor" ? ".bin" : ".obj")).toBe(true);
          expect(x).toMatchObject({
            kind: e.kind,
            dtype: e.dtype ?? null,
            shape: e.shape ?? null,
            device: e.device ?? null,
            size: e.bytes.byteLength,
            format: e.format ?? null,
            sha256: sha256(e.bytes),
          });
          const file = path.join(out, x.file);
          expect(path.dirname(file)).toBe(path.join(out, rankDir, item));
          expect(Buffer.compare(fs.readFileSync(file), Buffer.from(e.bytes)), `bytes of ${x.file}`).toBe(0);
        }
      }
    }
    expect(index.entries.find((i: any) => i.key === "decoder/layers.1/bias" && i.rank === 0).file).toBe(
      "rank-00000/model/decoder_layers.1_bias.bin",
    );
    expect(index.entries.find((i: any) => i.key === "layers.0.weight" && i.rank === 1).file).toBe("rank-00001/model/layers.0.weight.bin");
    expect(index.entries.find((i: any) => i.key === "state").file).toBe("rank-00000/optim/state.obj");
  });

  it("export - --rank and --item select one rank's item; without --json it prints a summary", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "ckptctl-export-"));
    const r = await ckptctl([...A, "export", JOB, "global_step100", "--out", out, "--rank", "1", "--item", "model"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/exported 2 entries .* of ctl-job\/global_step100, rank 1, to /);
    const index = JSON.parse(fs.readFileSync(path.join(out, "index.json"), "utf8"));
    expect(index.entries.map((e: any) => `${e.rank}/${e.item}/${e.key}`).sort()).toEqual([
      "1/model/decoder/layers.1/bias",
      "1/model/layers.0.weight",
    ]);
    expect(fs.readdirSync(out).sort()).toEqual(["index.json", "rank-00001"]);
  });

  it("export - keys that are not file names, or that collide once sanitised, get distinct safe names", async () => {
    const keys = ["a/b", "a_b", "A_B", ".", "..", "../../escape", "x".repeat(300), "ключ"];
    const values = keys.map((_, i) => randomBytes(100 + i));
    const r = await client.save({
      job: "ctl-names",
      checkpointId: "s1",
      step: 1,
      rank: 0,
      worldSize: 1,
      item: "x",
      entries: keys.map((key, i) => ({ key, object: { data: values[i]!, format: "raw" } })),
    });
    expect(
      (await client.commit({ job: "ctl-names", checkpointId: "s1", step: 1, rank: 0, worldSize: 1, items: ["x"], attempt: r.attempt }))
        .outcome,
    ).toBe("COMMITTED");
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "ckptctl-export-"));
    json(await ckptctl([...A, "--json", "export", "ctl-names", "--out", out]));
    const index = JSON.parse(fs.readFileSync(path.join(out, "index.json"), "utf8"));
    const files: string[] = index.entries.map((e: any) => e.file);
    expect(new Set(files.map((f) => f.toLowerCase())).size).toBe(keys.length);
    for (const [i, key] of keys.entries()) {
      const e = index.entries.find((x: any) => x.key === key);
      expect(e.file).toMatch(/^rank-00000\/x\/[A-Za-z0-9_-][A-Za-z0-9._~-]*\.obj$/);
      expect(path.basename(e.file).length).toBeLessThanOrEqual(200);
      expect(Buffer.compare(fs.readFileSync(path.join(out, e.file)), Buffer.from(values[i]!))).toBe(0);
    }
    expect(fs.readdirSync(out).sort()).toEqual(["index.json", "rank-00000"]);
  });

  it("export - an item no rank saved is NOT_FOUND with the items there are", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "ckptctl-export-"));
    const r = await ckptctl([...A, "export", JOB, "--out", out, "--item", "nope"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^ckptctl: NOT_FOUND: no rank of checkpoint ctl-job\/global_step200 saved item nope \(items: model, optim\)\n$/,
    );
  });
});

describe("ckptctl damage and deletion", () => {
  it("verify - a flipped byte in a stored chunk is reported with its location and exit code 2", async () => {
    const dir = path.join(daemon.dataDir, "jobs", JOB, "checkpoints", "global_step200");
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")) as ManifestJson;
    const item = manifest.ranks.find((r) => r.rank === 1)!.items.find((i) => i.name === "model")!;
    const entry = item.entries.find((e) => e.key === "layers.0.weight")!;
    const chunk = entry.chunks[1]!;
    const rel = `rank-00001/model/${entry.file}`;
    const fd = fs.openSync(path.join(dir, rel), "r+");
    const at = chunk.offset + Math.floor(chunk.storedBytes / 2);
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, at);
    b[0] = b[0]! ^ 0xff;
    fs.writeSync(fd, b, 0, 1, at);
    fs.closeSync(fd);

    const r = await ckptctl([...A, "--json", "verify", JOB, "global_step200"]);
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout);
    expect(doc.ok).toBe(false);
    expect(doc.damaged).toEqual([
      expect.objectContaining({ rank: 1, item: "model", key: "layers.0.weight", chunkIndex: 1, file: rel, offset: chunk.offset }),
    ]);
    expect(doc.damaged[0].problem).not.toBe("");

    const human = await ckptctl([...A, "verify", JOB, "global_step200"]);
    expect(human.code).toBe(2);
    expect(human.stdout).toMatch(/global_step200: DAMAGED, 1 of 7 chunks failed verification/);
    expect(rows(human.stdout)).toEqual([
      ["rank", "item", "key", "chunk", "file", "offset", "problem"],
      ["1", "model", "layers.0.weight", "1", rel, String(chunk.offset), doc.damaged[0].problem],
    ]);
    // The other checkpoint is untouched.
    expect((await ckptctl([...A, "verify", JOB, "global_step100"])).code).toBe(0);
  });

  it("delete - refuses without --yes when there is no terminal to ask on", async () => {
    const r = await ckptctl([...A, "delete", JOB, "global_step200"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ckptctl: not deleting ctl-job\/global_step200: no terminal to confirm on; pass --yes/);
    expect(json(await ckptctl([...A, "--json", "list", JOB])).checkpoints).toHaveLength(2);
  });

  it("delete - --yes deletes the checkpoint", async () => {
    const doc = json(await ckptctl([...A, "--json", "delete", JOB, "global_step200", "--yes"]));
    expect(doc).toMatchObject({ job: JOB, checkpointId: "global_step200", deleted: true });
    expect(doc.freedBytes).toBeGreaterThan(0);
    const list = json(await ckptctl([...A, "--json", "list", JOB]));
    expect(list.checkpoints.map((c: any) => c.checkpointId)).toEqual(["global_step100"]);
    expect(fs.existsSync(path.join(daemon.dataDir, "jobs", JOB, "checkpoints", "global_step200"))).toBe(false);
  });
});

describe("ckptctl errors", () => {
  it("errors - an unknown checkpoint or job is one line 'ckptctl: NOT_FOUND: ...' and exit code 1", async () => {
    const r = await ckptctl([...A, "show", JOB, "global_step999"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^ckptctl: NOT_FOUND: .*global_step999.*\n$/);
    const job = await ckptctl([...A, "verify", "no-such-job"]);
    expect(job.code).toBe(1);
    expect(job.stderr).toMatch(/^ckptctl: NOT_FOUND: .*no-such-job.*\n$/);
    const invalid = await ckptctl([...A, "list", "../etc"]);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/^ckptctl: INVALID_ARGUMENT: .*\n$/);
  });

  it("errors - a bad command or argument says what is wrong, with exit code 1", async () => {
    const unknown = await ckptctl([...A, "lsit", JOB]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^ckptctl: unknown command 'lsit'/);
    expect(unknown.stderr).toMatch(/Did you mean list\?/);
    const missing = await ckptctl([...A, "show"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^ckptctl: missing required argument 'job'/);
    const badLimit = await ckptctl([...A, "list", JOB, "--limit", "many"]);
    expect(badLimit.code).toBe(1);
    expect(badLimit.stderr).toMatch(/--limit must be a positive integer/);
    const conflicting = await ckptctl([...A, "watch", JOB, "--from-now", "--from-step", "3"]);
    expect(conflicting.code).toBe(1);
    expect(conflicting.stderr).toMatch(/cannot be used with/);
  });

  it("errors - an unreachable daemon gets a hint naming the address", async () => {
    const r = await ckptctl(["--address", "127.0.0.1:1", "status"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^ckptctl: UNAVAILABLE: cannot reach ckptd at 127\.0\.0\.1:1 \(.*\)\. Is the daemon running there\? Set --address or CKPTD_ADDRESS\.\n$/,
    );
  });

  it("help - every command has --help", async () => {
    for (const cmd of ["status", "jobs", "list", "show", "verify", "export", "delete", "watch", "retention", "pin", "unpin"]) {
      const r = await ckptctl([cmd, "--help"]);
      expect(r.code, cmd).toBe(0);
      expect(r.stdout, cmd).toMatch(new RegExp(`^Usage: ckptctl ${cmd} `));
    }
    const top = await ckptctl(["--help"]);
    expect(top.stdout).toMatch(/--address <host:port>/);
    expect(top.stdout).toMatch(/CKPTD_ADDRESS/);
  });
});

describe("ckptctl with TLS, mTLS and tokens", () => {
  const dir = tempDataDir();
  const file = (n: string) => path.join(dir, n);
  const tokens = { admin: "admin-token-for-ckptctl", jobs: { "tls-job": "token-of-tls-job" } };
  let secure: Daemon | undefined;
  let S: string[];

  beforeAll(async () => {
    makeTestCertificates(dir, "ckptctl test CA");
    fs.writeFileSync(file("tokens.json"), JSON.stringify(tokens));
    secure = await startDaemon({
      args: [
        "--tls-cert",
        file("server.pem"),
        "--tls-key",
        file("server.key"),
        "--tls-ca",
        file("ca.pem"),
        "--auth-tokens",
        file("tokens.json"),
      ],
    });
    S = ["--address", secure.address, "--tls-ca", file("ca.pem"), "--tls-cert", file("client.pem"), "--tls-key", file("client.key")];
  });

  afterAll(async () => {
    await secure?.stop();
  });

  it("tls - with the CA, a client certificate and the admin token, status is served", async () => {
    const doc = json(await ckptctl([...S, "--token", tokens.admin, "--json", "status"]));
    expect(doc).toMatchObject({ health: "SERVING", state: "running" });
    // The token can come from the environment.
    expect(json(await ckptctl([...S, "--json", "jobs"], { CKPTD_TOKEN: tokens.admin })).jobs).toEqual([]);
  });

  it("auth - without a token the call is UNAUTHENTICATED with a hint; a job's token is scoped to its job", async () => {
    const r = await ckptctl([...S, "jobs"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ckptctl: UNAUTHENTICATED: .*\(the daemon wants a token: pass --token or set CKPTD_TOKEN\)\n$/);
    const own = await ckptctl([...S, "--token", tokens.jobs["tls-job"], "--json", "list", "tls-job"]);
    expect(json(own).checkpoints).toEqual([]);
    const other = await ckptctl([...S, "--token", tokens.jobs["tls-job"], "list", "other-job"]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/^ckptctl: PERMISSION_DENIED: /);
  });

  it("tls - plaintext against a TLS daemon, or no client certificate against mTLS, fails with UNAVAILABLE", async () => {
    const plain = await ckptctl(["--address", secure!.address, "--token", tokens.admin, "status"]);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/^ckptctl: UNAVAILABLE: /);
    const noCert = await ckptctl(["--address", secure!.address, "--tls-ca", file("ca.pem"), "--token", tokens.admin, "status"]);
    expect(noCert.code).toBe(1);
    expect(noCert.stderr).toMatch(/^ckptctl: UNAVAILABLE: /);
    const half = await ckptctl([...S.slice(0, 4), "--tls-cert", file("client.pem"), "status"]);
    expect(half.code).toBe(1);
    expect(half.stderr).toBe("ckptctl: mTLS needs both --tls-cert and --tls-key\n");
  });
});
