/**
 * Benchmark: ckptd's save, load and trainer stall against what trainers do today, on the
 * same bytes, in the same run.
 *
 *   npm run bench [-- --ranks 4 --mib 256 --kinds dense,bf16,sparse --memory-budget-mib 256 --keep]
 *   npm run bench:large          # 8 ranks × 512 MiB
 *
 * Starts a daemon (`dist/src/cli.js`) on a temporary data directory, generates R ranks ×
 * S MiB of data per kind (dense float32 weights, bfloat16 weights, optimizer-like sparse
 * float32 state with about half its rows zero, and `transformer`: a GPT-2-small-shaped model
 * with its AdamW state, 592 tensors from 4 bytes to S/8 MiB, the hidden size scaled to fit S
 * MiB) and, per kind, measures:
 *
 *   ckptd save       R Python ranks (`clients/python`, the trainer path): Save + Commit
 *                    (durable); the same through the TypeScript client (R node processes);
 *                    and the async mode (save returns once the bytes are with the daemon)
 *   disk             the same bytes written by R parallel `dd bs=4M oflag=direct conv=fsync`
 *   lz4 CLI          `lz4 -1` of the same bytes: its output size is the compression yardstick
 *   torch.save       per rank, with flush + fsync (DeepSpeed's TorchCheckpointEngine)
 *   torch DCP        torch.distributed._shard.checkpoint.save_state_dict, FileSystemWriter
 *                    (sync_files=True), R ranks on gloo (when torch is installed)
 *   load             ckptd Load into CPU tensors vs torch.load / DCP load_state_dict of the
 *                    peers' files, all read cold: every file is fsynced and dropped from the
 *                    page cache (POSIX_FADV_DONTNEED) right before each load
 *   disk read        the raw bytes read cold by R parallel `dd bs=4M` (iflag=direct, and
 *                    buffered): the disk's ceiling, and from it the best load ÷ torch.load a
 *                    reader of ckptd's stored bytes could reach (load_ceiling_vs_torch_load)
 *   daemon RSS       sampled every 20 ms, peak per case and overall
 *
 * and for the transformer kind also:
 *
 *   step slow-down   R ranks time CPU training steps, start an async save (snapshot mode) and keep stepping
 *                    until it is durable: the mean step's slow-down while the save uploads
 *   per tensor       Save + Commit of 1,000 one-element tensors (one rank): µs per tensor, and
 *                    per tensor added to a one-tensor save
 *
 * A case's time runs from a barrier that every rank passed (tensors in memory, connection
 * open) to the last rank's end. Prints a table, then one JSON line with every figure and
 * ratio (keys in docs/performance.md). The Python side is scripts/bench_ranks.py, run with
 * /usr/bin/python3 (CKPTD_BENCH_PYTHON overrides).
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CkptdClient, tensor, type SaveEntry } from "../clients/ts/src/index.js";
import {
  cpuSeconds,
  dirBytes,
  GB,
  generateState,
  KINDS,
  lineReader,
  lz4Cli,
  parallel,
  PYTHON,
  rankFile,
  RANKS_PY,
  readLayout,
  run,
  timed,
  type Kind,
} from "./bench-common.js";
import { startDaemon, type DaemonProcess } from "./daemon-process.js";

interface PyResult {
  seconds: number;
  bytes: number;
  stall_max?: number;
  stored_sum?: number;
  cpu_sum?: number;
  step_base_mean?: number;
  step_during_mean?: number;
  steps_during_mean?: number;
  us_per_tensor?: number;
  us_per_added_tensor?: number;
}

// -- processes -------------------------------------------------------------------------

async function py(mode: string, args: string[]): Promise<PyResult> {
  const out = await run(PYTHON, [RANKS_PY, mode, ...args]);
  const line = out.trim().split("\n").pop() ?? "";
  return JSON.parse(line) as PyResult;
}

// -- the daemon ------------------------------------------------------------------------

/** The daemon's count of stored (on-disk) bytes its loads have read so far. */
async function storedBytesRead(daemon: DaemonProcess): Promise<number> {
  const text = await (await fetch(`http://${daemon.metricsAddress}/metrics`)).text();
  const m = /^ckptd_load_stored_bytes_read_total(?:\{[^}]*\})? (\S+)$/m.exec(text);
  if (!m) throw new Error("the daemon's metrics have no ckptd_load_stored_bytes_read_total");
  return Number(m[1]);
}

/** Samples the daemon's resident set every 20 ms; `mark()` starts a new case's peak. */
class RssSampler {
  peakMib = 0;
  casePeakMib = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly pid: number) {
    this.timer = setInterval(() => this.sample(), 20);
  }
  private sample(): void {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${this.pid}/status`, "utf8"));
      if (!m) return;
      const mib = Number(m[1]) / 1024;
      if (mib > this.peakMib) this.peakMib = mib;
      if (mib > this.casePeakMib) this.casePeakMib = mib;
    } catch {
      // The daemon is gone; the run reports that elsewhere.
    }
  }
  mark(): void {
    this.sample();
    this.casePeakMib = 0;
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

// -- TypeScript client ranks -------------------------------------------------------------

/** One TypeScript rank (a child process): load the tensors, say "ready", wait for "go", save + commit. */
async function tsRank(spec: {
  dir: string;
  kind: Kind;
  rank: number;
  ranks: number;
  address: string;
  job: string;
  ckpt: string;
  async: boolean;
}): Promise<void> {
  const layout = readLayout(spec.dir, spec.kind);
  const raw = fs.readFileSync(rankFile(spec.dir, spec.kind, spec.rank));
  const entries: SaveEntry[] = layout.map((t) => ({
    key: t.name,
    tensor: tensor(raw.subarray(t.offset, t.offset + t.nbytes), { dtype: t.dtype, shape: t.shape }),
  }));
  const client = new CkptdClient(spec.address);
  await client.listCheckpoints(spec.job);
  process.stdout.write("ready\n");
  await new Promise<void>((resolve) =>
    process.stdin.once("data", () => {
      process.stdin.pause();
      resolve();
    }),
  );
  const t0 = performance.now();
  const req = { job: spec.job, checkpointId: spec.ckpt, step: 1, rank: spec.rank, worldSize: spec.ranks, item: "model", entries };
  let stall: number;
  let res;
  if (spec.async) {
    const pending = await client.saveAsync(req);
    stall = performance.now() - t0;
    res = await pending.durable;
  } else {
    res = await client.save(req);
    stall = performance.now() - t0;
  }
  const c = await client.commit({
    job: spec.job,
    checkpointId: spec.ckpt,
    step: 1,
    rank: spec.rank,
    worldSize: spec.ranks,
    items: ["model"],
    attempt: res.attempt,
  });
  const t1 = performance.now();
  if (c.outcome !== "COMMITTED") throw new Error(`commit ${c.outcome}: ${c.reason}`);
  client.close();
  process.stdout.write(
    JSON.stringify({ seconds: (t1 - t0) / 1000, stall: stall / 1000, bytes: raw.length, stored: res.bytesStored }) + "\n",
  );
}

async function tsSave(opts: {
  dir: string;
  kind: Kind;
  ranks: number;
  address: string;
  job: string;
  ckpt: string;
  async: boolean;
}): Promise<PyResult> {
  const children = Array.from({ length: opts.ranks }, (_, rank) =>
    spawn(process.execPath, [fileURLToPath(import.meta.url), "--ts-rank", JSON.stringify({ ...opts, rank })], {
      stdio: ["pipe", "pipe", "inherit"],
    }),
  );
  const readers = children.map((c) => lineReader(c));
  // Every rank has its tensors in memory and its connection open: start them together.
  await Promise.all(readers.map((next) => next()));
  for (const c of children) c.stdin!.end("go\n");
  const reports = (await Promise.all(readers.map((next) => next()))).map(
    (l) => JSON.parse(l) as { seconds: number; stall: number; bytes: number; stored: number },
  );
  await Promise.all(children.map((c) => (c.exitCode !== null ? undefined : new Promise((r) => c.on("exit", r)))));
  return {
    seconds: Math.max(...reports.map((r) => r.seconds)),
    bytes: reports.reduce((n, r) => n + r.bytes, 0),
    stall_max: Math.max(...reports.map((r) => r.stall)),
    stored_sum: reports.reduce((n, r) => n + r.stored, 0),
  };
}

// -- one kind --------------------------------------------------------------------------

interface Figures {
  [key: string]: number;
}

async function benchKind(ctx: Context, kind: Kind): Promise<Figures> {
  const { ranks, data, work, daemon, rss } = ctx;
  const f: Figures = {};
  // The transformer kind fills at most --mib per rank: rates count the bytes there are.
  const layoutBytes = readLayout(data, kind).reduce((n, t) => n + t.nbytes, 0);
  const total = ranks * layoutBytes;
  f["bytes_per_rank"] = layoutBytes;
  const gbps = (s: number) => total / s / GB;
  const base = ["--dir", data, "--kind", kind, "--ranks", String(ranks)];
  const step = (name: string) => process.stderr.write(`  ${kind}: ${name}\n`);
  const ckptDir = (id: string) => path.join(ctx.daemonDir, "jobs", "bench", "checkpoints", id);
  const client = new CkptdClient(daemon.address);

  step("disk (dd oflag=direct conv=fsync)");
  const ddOut = fs.mkdtempSync(path.join(work, "dd-"));
  f["disk_direct_gbps"] = gbps(
    await timed(() =>
      parallel(ranks, (r) =>
        run("dd", [
          `if=${rankFile(data, kind, r)}`,
          `of=${path.join(ddOut, `r${r}`)}`,
          "bs=4M",
          "oflag=direct",
          "conv=fsync",
          "status=none",
        ]),
      ),
    ),
  );
  fs.rmSync(ddOut, { recursive: true, force: true });

  step("lz4 -1 CLI");
  const lz = await lz4Cli(
    Array.from({ length: ranks }, (_, r) => rankFile(data, kind, r)),
    work,
  );
  f["lz4cli_stored_bytes"] = lz.bytes;
  f["lz4cli_gbps"] = gbps(lz.seconds);

  step("torch.save");
  const tsOut = fs.mkdtempSync(path.join(work, "torch-"));
  const torchSave = await py("torch-save", [...base, "--out", tsOut]);
  f["torch_save_gbps"] = gbps(torchSave.seconds);
  f["torch_save_s"] = torchSave.seconds;
  f["torch_save_stall_s"] = torchSave.stall_max!;
  f["torch_stored_bytes"] = torchSave.stored_sum!;

  let dcpOut = "";
  if (ctx.dcp) {
    step("torch DCP save_state_dict");
    dcpOut = fs.mkdtempSync(path.join(work, "dcp-"));
    const dcp = await py("dcp-save", [...base, "--out", dcpOut]);
    f["torch_dcp_gbps"] = gbps(dcp.seconds);
    f["torch_dcp_s"] = dcp.seconds;
  }

  step("ckptd save (Python client)");
  rss.mark();
  const daemonCpu0 = cpuSeconds(daemon.proc.pid!);
  const save = await py("ckptd-save", [...base, "--address", daemon.address, "--ckpt", `${kind}-py`]);
  f["save_daemon_cpu_s"] = cpuSeconds(daemon.proc.pid!) - daemonCpu0;
  f["save_client_cpu_s"] = save.cpu_sum ?? 0;
  f["save_gbps"] = gbps(save.seconds);
  // A synchronous save blocks the trainer for all of it.
  f["save_s"] = save.seconds;
  f["save_rss_mib"] = rss.casePeakMib;
  f["stored_bytes"] = save.stored_sum!;
  f["stored_on_disk_bytes"] = dirBytes(ckptDir(`${kind}-py`));

  step("ckptd save (TypeScript client)");
  const tsSaveRes = await tsSave({ dir: data, kind, ranks, address: daemon.address, job: "bench", ckpt: `${kind}-ts`, async: false });
  f["ts_save_gbps"] = gbps(tsSaveRes.seconds);
  await client.deleteCheckpoint("bench", `${kind}-ts`);

  step("ckptd async save (Python client)");
  rss.mark();
  const asyncSave = await py("ckptd-save", [...base, "--address", daemon.address, "--ckpt", `${kind}-async`, "--async-save"]);
  f["async_stall_s"] = asyncSave.stall_max!;
  f["async_save_gbps"] = gbps(asyncSave.seconds);
  f["async_rss_mib"] = rss.casePeakMib;
  await client.deleteCheckpoint("bench", `${kind}-async`);

  step("ckptd async save, snapshot mode (Python client)");
  const snap = await py("ckptd-save", [
    ...base,
    "--address",
    daemon.address,
    "--ckpt",
    `${kind}-snapshot`,
    "--async-save",
    "--snapshot-budget-mib",
    String(ctx.mib),
  ]);
  f["snapshot_stall_s"] = snap.stall_max!;
  f["snapshot_save_gbps"] = gbps(snap.seconds);
  await client.deleteCheckpoint("bench", `${kind}-snapshot`);

  step("ckptd async save (TypeScript client)");
  const tsAsync = await tsSave({ dir: data, kind, ranks, address: daemon.address, job: "bench", ckpt: `${kind}-ts-async`, async: true });
  f["ts_async_stall_s"] = tsAsync.stall_max!;
  await client.deleteCheckpoint("bench", `${kind}-ts-async`);

  step("loads (cold: fsync + POSIX_FADV_DONTNEED on every file first)");
  await py("evict", [ckptDir(`${kind}-py`)]);
  rss.mark();
  const load = await py("ckptd-load", [...base, "--address", daemon.address, "--ckpt", `${kind}-py`, ...(ctx.check ? ["--check"] : [])]);
  f["load_gbps"] = gbps(load.seconds);
  f["load_s"] = load.seconds;
  f["load_rss_mib"] = rss.casePeakMib;
  await py("evict", [tsOut]);
  const torchLoad = await py("torch-load", [...base, "--out", tsOut]);
  f["torch_load_gbps"] = gbps(torchLoad.seconds);
  f["torch_load_s"] = torchLoad.seconds;
  // What the disk gives a reader of these bytes, cold, the best of direct and buffered reads: with
  // it, the best load ÷ torch.load a daemon reading its stored bytes (and doing nothing else) could reach.
  const rawFiles = Array.from({ length: ranks }, (_, r) => rankFile(data, kind, r));
  const readAll = (extra: string[]) =>
    timed(() => parallel(ranks, (r) => run("dd", [`if=${rawFiles[r]}`, "of=/dev/null", "bs=4M", ...extra, "status=none"])));
  await py("evict", [path.join(data, kind)]);
  f["disk_read_direct_gbps"] = gbps(await readAll(["iflag=direct"]));
  await py("evict", [path.join(data, kind)]);
  f["disk_read_buffered_gbps"] = gbps(await readAll([]));
  const diskRead = Math.max(f["disk_read_direct_gbps"], f["disk_read_buffered_gbps"]) * GB;
  f["load_ceiling_vs_torch_load"] = f["torch_load_s"] / (f["stored_on_disk_bytes"]! / diskRead);
  if (ctx.dcp) {
    await py("evict", [dcpOut]);
    const dcpLoad = await py("dcp-load", [...base, "--out", dcpOut]);
    f["torch_dcp_load_gbps"] = gbps(dcpLoad.seconds);
  }

  if (kind === "dense" && ctx.reshardRanks > 0) {
    const to = ctx.reshardRanks;
    step(`resharded load: ${ranks} saving ranks → ${to} loading ranks (row blocks, cold)`);
    await py("ckptd-save", [...base, "--address", daemon.address, "--ckpt", "dense-sharded", "--sharded"]);
    await py("evict", [ckptDir("dense-sharded")]);
    const read0 = await storedBytesRead(daemon);
    const reshardArgs = ["--dir", data, "--kind", kind, "--ranks", String(to), "--saved-ranks", String(ranks)];
    const reshard = await py("ckptd-reshard-load", [
      ...reshardArgs,
      "--address",
      daemon.address,
      "--ckpt",
      "dense-sharded",
      ...(ctx.check ? ["--check"] : []),
    ]);
    const read = (await storedBytesRead(daemon)) - read0;
    f["reshard_load_gbps"] = reshard.bytes / reshard.seconds / GB;
    f["reshard_load_s"] = reshard.seconds;
    f["reshard_requested_bytes"] = reshard.bytes;
    f["reshard_stored_bytes_read"] = read;
    await client.deleteCheckpoint("bench", "dense-sharded");
    if (ctx.dcp) {
      await py("evict", [dcpOut]);
      const dcpReshard = await py("dcp-reshard-load", [...reshardArgs, "--out", dcpOut]);
      f["torch_dcp_reshard_load_gbps"] = dcpReshard.bytes / dcpReshard.seconds / GB;
      f["torch_dcp_reshard_load_s"] = dcpReshard.seconds;
      // The best resharded load ÷ DCP a reader of only the stored bytes it needs could reach on this disk.
      f["reshard_ceiling_vs_torch_dcp"] = dcpReshard.seconds / (read / diskRead);
    }
  }

  if (kind === "transformer") {
    step("training steps during an async save (Python client)");
    const steps = await py("ckptd-steps", [...base, "--address", daemon.address, "--ckpt", `${kind}-steps`]);
    f["step_base_s"] = steps.step_base_mean!;
    f["step_during_upload_s"] = steps.step_during_mean!;
    f["step_slowdown_s"] = steps.step_during_mean! - steps.step_base_mean!;
    f["steps_during_upload"] = steps.steps_during_mean!;
    f["steps_async_stall_s"] = steps.stall_max!;
    await client.deleteCheckpoint("bench", `${kind}-steps`);
    step("fixed cost per tensor (1,000 one-element tensors)");
    const tiny = await py("ckptd-tiny", ["--address", daemon.address, "--job", "bench-tiny", "--ckpt", "tiny"]);
    f["us_per_tensor"] = tiny.us_per_tensor!;
    f["us_per_added_tensor"] = tiny.us_per_added_tensor!;
  }

  await client.deleteCheckpoint("bench", `${kind}-py`);
  client.close();
  fs.rmSync(tsOut, { recursive: true, force: true });
  if (dcpOut) fs.rmSync(dcpOut, { recursive: true, force: true });
  return f;
}

interface Context {
  ranks: number;
  mib: number;
  data: string;
  work: string;
  daemonDir: string;
  daemon: DaemonProcess;
  rss: RssSampler;
  dcp: boolean;
  check: boolean;
  /** Loading ranks of the resharded load of the dense kind's row-sharded state; 0: no such case. */
  reshardRanks: number;
}

// -- report ----------------------------------------------------------------------------

function ratio(a: number | undefined, b: number | undefined): number {
  return a !== undefined && b !== undefined && b > 0 ? a / b : NaN;
}

function summarize(byKind: Record<string, Figures>, ctx: Context, rssPeak: number): Record<string, number | string | null> {
  const out: Record<string, number | string | null> = { ranks: ctx.ranks, mib_per_rank: ctx.mib, total_gib: (ctx.ranks * ctx.mib) / 1024 };
  for (const [kind, f] of Object.entries(byKind)) {
    const p = kind === "dense" ? "" : `${kind}_`;
    for (const [k, v] of Object.entries(f)) out[p + k] = v;
    out[`${p}save_vs_torch_save`] = ratio(f["save_gbps"], f["torch_save_gbps"]);
    out[`${p}save_vs_torch_dcp`] = ratio(f["save_gbps"], f["torch_dcp_gbps"]);
    out[`${p}save_vs_disk`] = ratio(f["save_gbps"], f["disk_direct_gbps"]);
    out[`${p}ts_save_vs_torch_save`] = ratio(f["ts_save_gbps"], f["torch_save_gbps"]);
    out[`${p}stored_vs_lz4cli`] = ratio(f["stored_bytes"], f["lz4cli_stored_bytes"]);
    out[`${p}load_vs_torch_load`] = ratio(f["load_gbps"], f["torch_load_gbps"]);
    out[`${p}load_vs_torch_dcp`] = ratio(f["load_gbps"], f["torch_dcp_load_gbps"]);
    out[`${p}stall_vs_torch_save`] = ratio(f["async_stall_s"], f["torch_save_stall_s"]);
    out[`${p}ts_stall_vs_torch_save`] = ratio(f["ts_async_stall_s"], f["torch_save_stall_s"]);
    out[`${p}snapshot_stall_vs_torch_save`] = ratio(f["snapshot_stall_s"], f["torch_save_stall_s"]);
    out[`${p}reshard_load_vs_torch_dcp`] = ratio(f["reshard_load_gbps"], f["torch_dcp_reshard_load_gbps"]);
    out[`${p}reshard_read_vs_requested`] = ratio(f["reshard_stored_bytes_read"], f["reshard_requested_bytes"]);
    if (kind === "transformer") out[`${p}step_slowdown_vs_torch_save`] = ratio(f["step_slowdown_s"], f["torch_save_s"]);
  }
  out["daemon_peak_rss_mib"] = rssPeak;
  out["load_cache_state"] = "cold";
  for (const [k, v] of Object.entries(out)) if (typeof v === "number" && !Number.isFinite(v)) out[k] = null;
  return out;
}

function fmt(v: number | undefined, digits = 2): string {
  return v === undefined || !Number.isFinite(v) ? "-" : v.toFixed(digits);
}

function printTable(byKind: Record<string, Figures>, ctx: Context, rssPeak: number): void {
  const rows: Array<[string, (f: Figures) => string]> = [
    ["ckptd save, Python client (GB/s)", (f) => fmt(f["save_gbps"])],
    ["ckptd save, TypeScript client (GB/s)", (f) => fmt(f["ts_save_gbps"])],
    ["torch.save + fsync (GB/s)", (f) => fmt(f["torch_save_gbps"])],
    ["torch DCP save_state_dict (GB/s)", (f) => fmt(f["torch_dcp_gbps"])],
    ["disk: dd bs=4M oflag=direct (GB/s)", (f) => fmt(f["disk_direct_gbps"])],
    ["  save ÷ torch.save", (f) => fmt(ratio(f["save_gbps"], f["torch_save_gbps"]))],
    ["  save ÷ torch DCP", (f) => fmt(ratio(f["save_gbps"], f["torch_dcp_gbps"]))],
    ["  save ÷ disk", (f) => fmt(ratio(f["save_gbps"], f["disk_direct_gbps"]))],
    ["stored entry files ÷ lz4 -1 CLI output", (f) => fmt(ratio(f["stored_bytes"], f["lz4cli_stored_bytes"]), 4)],
    ["stored ÷ raw", (f) => fmt(f["stored_on_disk_bytes"]! / (ctx.ranks * f["bytes_per_rank"]!), 3)],
    ["ckptd load, cold (GB/s)", (f) => fmt(f["load_gbps"])],
    ["torch.load, cold (GB/s)", (f) => fmt(f["torch_load_gbps"])],
    [
      "disk read, cold: dd iflag=direct / buffered (GB/s)",
      (f) => `${fmt(f["disk_read_direct_gbps"])}/${fmt(f["disk_read_buffered_gbps"])}`,
    ],
    ["  ceiling: stored bytes at disk read ÷ torch.load", (f) => fmt(f["load_ceiling_vs_torch_load"])],
    ["torch DCP load_state_dict, cold (GB/s)", (f) => fmt(f["torch_dcp_load_gbps"])],
    ["ckptd resharded load, R → R-1 ranks, cold (GB/s)", (f) => fmt(f["reshard_load_gbps"])],
    ["torch DCP resharded load_state_dict, cold (GB/s)", (f) => fmt(f["torch_dcp_reshard_load_gbps"])],
    ["  resharded load ÷ torch DCP", (f) => fmt(ratio(f["reshard_load_gbps"], f["torch_dcp_reshard_load_gbps"]))],
    ["  ceiling: stored bytes read at disk read ÷ torch DCP", (f) => fmt(f["reshard_ceiling_vs_torch_dcp"])],
    ["  stored bytes read ÷ bytes asked", (f) => fmt(ratio(f["reshard_stored_bytes_read"], f["reshard_requested_bytes"]), 3)],
    ["  load ÷ torch.load", (f) => fmt(ratio(f["load_gbps"], f["torch_load_gbps"]))],
    ["trainer stall: torch.save (s)", (f) => fmt(f["torch_save_stall_s"])],
    ["trainer stall: ckptd async hand-off, Python (s)", (f) => fmt(f["async_stall_s"])],
    ["trainer stall: ckptd async hand-off, TS (s)", (f) => fmt(f["ts_async_stall_s"])],
    ["trainer stall: ckptd async snapshot, Python (s)", (f) => fmt(f["snapshot_stall_s"])],
    ["  async (hand-off) stall ÷ torch.save", (f) => fmt(ratio(f["async_stall_s"], f["torch_save_stall_s"]))],
    ["  async (snapshot) stall ÷ torch.save", (f) => fmt(ratio(f["snapshot_stall_s"], f["torch_save_stall_s"]))],
    [
      "daemon peak RSS: save / async / load (MiB)",
      (f) => `${fmt(f["save_rss_mib"], 0)}/${fmt(f["async_rss_mib"], 0)}/${fmt(f["load_rss_mib"], 0)}`,
    ],
    ["daemon CPU / client CPU during save (s)", (f) => `${fmt(f["save_daemon_cpu_s"], 1)}/${fmt(f["save_client_cpu_s"], 1)}`],
    [
      "save, sync stall: ckptd / torch.save / DCP (s)",
      (f) => `${fmt(f["save_s"], 3)}/${fmt(f["torch_save_s"], 3)}/${fmt(f["torch_dcp_s"], 3)}`,
    ],
    ["load, cold: ckptd / torch.load (s)", (f) => `${fmt(f["load_s"], 3)}/${fmt(f["torch_load_s"], 3)}`],
    ["training step: alone / during async save (s)", (f) => `${fmt(f["step_base_s"], 3)}/${fmt(f["step_during_upload_s"], 3)}`],
    ["  step slow-down ÷ torch.save", (f) => fmt(ratio(f["step_slowdown_s"], f["torch_save_s"]))],
    ["1,000 one-element tensors: µs per tensor / per added", (f) => `${fmt(f["us_per_tensor"], 0)}/${fmt(f["us_per_added_tensor"], 0)}`],
  ];
  const kinds = Object.keys(byKind);
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const cells = rows.map(([label, get]) => [label, kinds.map((k) => get(byKind[k]!))] as const);
  // Wide enough for the widest cell (the "a/b/c" rows), with a gap between columns.
  const w = Math.max(16, ...cells.flatMap(([, cs]) => cs.map((c) => c.length + 2)));
  const header = `${ctx.ranks} ranks × ${ctx.mib} MiB`.padEnd(w0) + kinds.map((k) => k.padStart(w)).join("");
  console.log(header);
  console.log("-".repeat(header.length));
  for (const [label, cs] of cells) console.log(label.padEnd(w0) + cs.map((c) => c.padStart(w)).join(""));
  console.log(`daemon peak RSS over the run: ${rssPeak.toFixed(0)} MiB`);
}

// -- main ------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ranks: { type: "string", default: "4" },
      mib: { type: "string", default: "256" },
      kinds: { type: "string", default: KINDS.join(",") },
      dir: { type: "string" },
      "memory-budget-mib": { type: "string" },
      "direct-io": { type: "string" },
      "no-torch": { type: "boolean", default: false },
      check: { type: "boolean", default: false },
      "reshard-ranks": { type: "string" },
      keep: { type: "boolean", default: false },
      "ts-rank": { type: "string" },
    },
  });
  if (values["ts-rank"]) return tsRank(JSON.parse(values["ts-rank"]) as Parameters<typeof tsRank>[0]);
  const ranks = Number(values.ranks);
  const mib = Number(values.mib);
  const kinds = values.kinds.split(",").filter(Boolean) as Kind[];
  for (const k of kinds) if (!KINDS.includes(k)) throw new Error(`unknown kind '${k}' (known: ${KINDS.join(", ")})`);
  const work = values.dir ? path.resolve(values.dir) : fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-bench-"));
  fs.mkdirSync(work, { recursive: true });
  const data = path.join(work, "data");
  const daemonDir = path.join(work, "daemon");
  const started = performance.now();
  process.stderr.write(`bench: ${ranks} ranks × ${mib} MiB, kinds ${kinds.join(", ")}, in ${work}\n`);

  const probe = await py("probe", []).catch(() => ({ torch: null }) as unknown as PyResult);
  const haveTorch = (probe as unknown as { torch: string | null }).torch !== null;
  if (!haveTorch)
    throw new Error(
      `the bench needs torch and numpy in ${PYTHON} (Debian: apt-get install python3-torch python3-numpy python3-grpcio python3-protobuf)`,
    );
  const dcp = !values["no-torch"] && (probe as unknown as { dcp?: boolean }).dcp === true;

  process.stderr.write("bench: generating data\n");
  await generateState(data, ranks, mib, kinds);

  const extra: string[] = [];
  if (values["memory-budget-mib"]) extra.push("--memory-budget-mib", values["memory-budget-mib"]);
  if (values["direct-io"]) extra.push("--direct-io", values["direct-io"]);
  const daemon = await startDaemon(daemonDir, extra, { metrics: true });
  const rss = new RssSampler(daemon.proc.pid!);
  // By default the state of R ranks is loaded resharded into R - 1.
  const reshardRanks = values["reshard-ranks"] !== undefined ? Number(values["reshard-ranks"]) : ranks > 1 ? ranks - 1 : 0;
  if (!Number.isSafeInteger(reshardRanks) || reshardRanks < 0)
    throw new Error(`--reshard-ranks must be a count, got ${values["reshard-ranks"]}`);
  const ctx: Context = { ranks, mib, data, work, daemonDir, daemon, rss, dcp, check: values.check, reshardRanks };
  const byKind: Record<string, Figures> = {};
  try {
    for (const kind of kinds) byKind[kind] = await benchKind(ctx, kind);
  } finally {
    rss.stop();
    daemon.proc.kill("SIGTERM");
    await daemon.exited;
    if (!values.keep) fs.rmSync(work, { recursive: true, force: true });
  }
  const summary = summarize(byKind, ctx, rss.peakMib);
  summary["bench_seconds"] = (performance.now() - started) / 1000;
  summary["cpus"] = os.cpus().length;
  summary["loadavg_1m_at_end"] = os.loadavg()[0]!;
  printTable(byKind, ctx, rss.peakMib);
  console.log(JSON.stringify(summary));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
