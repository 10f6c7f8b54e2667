/**
 * Benchmark: how long after a commit its event reaches the subscribers of WatchCheckpoints.
 *
 *   npm run bench:events [-- --commits 100 --interval-ms 20 --subscribers 1,16]
 *
 * Starts a daemon (`dist/src/cli.js`) on a temporary data directory, then per case opens
 * N subscribers (each its own client and connection, in this process) on a fresh job and
 * commits small checkpoints (world size 1, one 4 KiB tensor) one at a time with a pause
 * between them. For every event received it records, on this process's monotonic clock:
 *
 *   after reply   event received − Commit reply received (negative: the event won the race,
 *                 since the daemon appends the event before it replies to Commit)
 *   after call    event received − Commit call started
 *
 * and prints p50 / p99 / max per case, then one JSON line with every figure.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { CkptdClient, tensor } from "../clients/ts/src/index.js";
import { startDaemon } from "./daemon-process.js";

interface Stats {
  p50: number;
  p99: number;
  max: number;
  min: number;
}

/** Nearest-rank percentiles, in ms with 0.01 ms resolution. */
function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
  const r = (v: number) => Math.round(v * 100) / 100;
  return { p50: r(at(50)), p99: r(at(99)), max: r(sorted[sorted.length - 1] ?? NaN), min: r(sorted[0] ?? NaN) };
}

interface CaseResult {
  subscribers: number;
  commits: number;
  events: number;
  afterReplyMs: Stats;
  afterCallMs: Stats;
  commitMs: Stats;
}

async function commitOne(client: CkptdClient, job: string, step: number): Promise<{ callStart: number; reply: number }> {
  const checkpointId = `global_step${step}`;
  await client.save({
    job,
    checkpointId,
    step,
    rank: 0,
    worldSize: 1,
    item: "model",
    entries: [{ key: "w", tensor: tensor(new Float32Array(1024).fill(step), { shape: [1024], device: "cpu" }) }],
  });
  const callStart = performance.now();
  const res = await client.commit({ job, checkpointId, step, rank: 0, worldSize: 1, items: ["model"] }, { timeoutMs: 30_000 });
  const reply = performance.now();
  if (res.outcome !== "COMMITTED") throw new Error(`${job}/${checkpointId} was aborted: ${res.reason}`);
  return { callStart, reply };
}

async function runCase(address: string, subscribers: number, commits: number, intervalMs: number): Promise<CaseResult> {
  const job = `bench-events-${subscribers}-${Date.now().toString(36)}`;
  const trainer = new CkptdClient(address);
  const subs = Array.from({ length: subscribers }, () => new CkptdClient(address));
  // One controller per subscriber: sixteen listeners on one signal would trip Node's leak warning.
  const stops = subs.map(() => new AbortController());
  // received[s].get(step) = when subscriber s received the COMMITTED event of that step.
  const received = subs.map(() => new Map<number, number>());
  const loops = subs.map(async (client, i) => {
    for await (const ev of client.watch(job, { signal: stops[i]!.signal })) {
      if (ev.type === "COMMITTED") received[i]!.set(ev.step, performance.now());
    }
  });
  const waitAll = async (step: number, timeoutMs: number) => {
    const end = Date.now() + timeoutMs;
    while (!received.every((m) => m.has(step))) {
      if (Date.now() > end) throw new Error(`not every subscriber got step ${step} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  try {
    // Step 0 warms up every connection and stream; it is not measured.
    await commitOne(trainer, job, 0);
    await waitAll(0, 20_000);
    const times = new Map<number, { callStart: number; reply: number }>();
    for (let step = 1; step <= commits; step++) {
      times.set(step, await commitOne(trainer, job, step));
      await new Promise((r) => setTimeout(r, intervalMs));
    }
    await waitAll(commits, 20_000);
    const afterReply: number[] = [];
    const afterCall: number[] = [];
    for (const m of received) {
      for (const [step, t] of times) {
        const at = m.get(step);
        if (at === undefined) throw new Error(`a subscriber missed step ${step}`);
        afterReply.push(at - t.reply);
        afterCall.push(at - t.callStart);
      }
    }
    return {
      subscribers,
      commits,
      events: afterReply.length,
      afterReplyMs: stats(afterReply),
      afterCallMs: stats(afterCall),
      commitMs: stats([...times.values()].map((t) => t.reply - t.callStart)),
    };
  } finally {
    for (const s of stops) s.abort();
    await Promise.allSettled(loops);
    for (const c of subs) c.close();
    trainer.close();
  }
}

function fmt(s: Stats): string {
  return [s.p50, s.p99, s.max].map((v) => v.toFixed(2).padStart(8)).join(" ");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      commits: { type: "string", default: "100" },
      "interval-ms": { type: "string", default: "20" },
      subscribers: { type: "string", default: "1,16" },
    },
  });
  const commits = Number(values.commits);
  const intervalMs = Number(values["interval-ms"]);
  const cases = values.subscribers.split(",").map(Number);
  if (!Number.isSafeInteger(commits) || commits < 1) throw new Error(`--commits must be a positive integer, got ${values.commits}`);
  if (!Number.isFinite(intervalMs) || intervalMs < 0)
    throw new Error(`--interval-ms must be a non-negative number, got ${values["interval-ms"]}`);
  if (cases.some((n) => !Number.isSafeInteger(n) || n < 1))
    throw new Error(`--subscribers must list positive integers, got ${values.subscribers}`);

  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-bench-events-"));
  const daemon = await startDaemon(dataDir);
  const results: CaseResult[] = [];
  try {
    console.log(
      `ckptd event latency: ${commits} commits per case (world size 1, 4 KiB), ${intervalMs} ms apart; daemon ${daemon.address}, data ${dataDir}`,
    );
    console.log(`node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}), ${os.platform()} ${os.release()}\n`);
    for (const n of cases) results.push(await runCase(daemon.address, n, commits, intervalMs));
  } finally {
    daemon.proc.kill("SIGTERM");
    await daemon.exited;
    fs.rmSync(dataDir, { recursive: true, force: true });
  }

  console.log("                         event − Commit reply (ms)   event − Commit call (ms)   Commit call (ms)");
  console.log("subscribers  events       p50      p99      max       p50      p99      max       p50      p99      max");
  for (const r of results) {
    console.log(
      `${String(r.subscribers).padStart(11)} ${String(r.events).padStart(7)}  ${fmt(r.afterReplyMs)}  ${fmt(r.afterCallMs)}  ${fmt(r.commitMs)}`,
    );
  }
  console.log(JSON.stringify({ benchmark: "commit-to-event latency", commits, intervalMs, cases: results }));
}

main().catch((err: unknown) => {
  console.error(`bench-events failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
