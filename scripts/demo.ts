/**
 * Demo: a 4-rank trainer checkpoints to a running ckptd and restarts from it.
 *
 *   npm start                      # in one terminal: the daemon on 127.0.0.1:7070
 *   npm run demo [-- --address host:port]   # or CKPTD_ADDRESS=host:port
 *
 * Four CheckpointEngine instances (ranks 0..3, "on" cuda:0..3) save three checkpoints,
 * each with a `model` item (float32, bfloat16 and int64 tensors of a few MiB) and an
 * `optim` item. An evaluator in the same process follows the trainer live with
 * `checkpoints()`: it loads each committed checkpoint's rank-0 model, checks it and
 * reports metrics, while the trainer waits for its report after each commit
 * (`waitForEvaluators`). Then the checkpoints are listed and the latest is loaded back by
 * four ranks of a restarted job on a node with two GPUs, and compared bit for bit with
 * what was saved. Exits non-zero on any mismatch.
 */
import { parseArgs } from "node:util";
import {
  CheckpointEngine,
  CkptdClient,
  flattenStateDict,
  isUnavailable,
  tensor,
  tensorArray,
  type LoadedEntry,
  type StateDict,
} from "../clients/ts/src/index.js";
import { prng } from "./prng.js";

const WORLD_SIZE = 4;
const STEPS = [100, 200, 300];
const HIDDEN = 768;
const VOCAB = 1024;
/** The node the job restarts on has two GPUs, so the hints fold cuda:0..3 onto cuda:0..1. */
const RESTART_DEVICES = ["cuda:0", "cuda:1"];
const EVALUATOR = "eval-holdout";
/** How long the trainer waits for the evaluator's report on each checkpoint. */
const EVAL_TIMEOUT_MS = 60_000;

function seedOf(...parts: (string | number)[]): number {
  let h = 2166136261;
  for (const ch of parts.join("|")) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  return h >>> 0;
}

/** Roughly normal values (sum of uniforms), like trained weights. */
function normals(n: number, scale: number, seed: number): Float32Array {
  const rand = prng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() + rand() + rand() - 1.5) * scale;
  return out;
}

/** bfloat16 bits: the top half of each float32 (truncation is fine for test data). */
function bf16(values: Float32Array): Uint16Array {
  const u32 = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = u32[i]! >>> 16;
  return out;
}

function modelState(rank: number, step: number): StateDict {
  const device = `cuda:${rank}`;
  const s = (key: string) => seedOf("model", rank, step, key);
  const layers: StateDict = {};
  for (let l = 0; l < 2; l++) {
    layers[String(l)] = {
      attn: {
        qkv: tensor(bf16(normals(HIDDEN * 3 * HIDDEN, 0.02, s(`qkv${l}`))), { dtype: "bfloat16", shape: [3 * HIDDEN, HIDDEN], device }),
        bias: tensor(normals(3 * HIDDEN, 0.01, s(`bias${l}`)), { shape: [3 * HIDDEN], device }),
      },
      norm: { weight: tensor(new Float32Array(HIDDEN).fill(1 + l / 10), { device }) },
    };
  }
  return {
    embed: { weight: tensor(normals(VOCAB * HIDDEN, 0.02, s("embed")), { shape: [VOCAB, HIDDEN], device }) },
    layers,
    position_ids: tensor(
      BigInt64Array.from({ length: 4096 }, (_, i) => BigInt(i)),
      { shape: [1, 4096], device },
    ),
    num_batches_tracked: tensor(new BigInt64Array([BigInt(step)]), { shape: [], device }),
    config: { hidden: HIDDEN, vocab: VOCAB, layers: 2, dtype: "bfloat16" },
  };
}

function optimState(rank: number, step: number): StateDict {
  const device = `cuda:${rank}`;
  const s = (key: string) => seedOf("optim", rank, step, key);
  const n = VOCAB * HIDDEN;
  return {
    state: {
      "0": {
        step: tensor(new Float32Array([step]), { shape: [], device: "cpu" }),
        exp_avg: tensor(normals(n, 1e-3, s("exp_avg")), { shape: [VOCAB, HIDDEN], device }),
        exp_avg_sq: tensor(normals(n, 1e-6, s("exp_avg_sq")).map(Math.abs), { shape: [VOCAB, HIDDEN], device }),
      },
    },
    param_groups: [{ lr: 1e-4, betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0.01, params: [0] }],
    rng_state: Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37 + rank + step) & 0xff)),
  };
}

/** Compares two state dicts entry by entry; returns the differences. */
function diff(expected: StateDict, actual: StateDict): string[] {
  const index = (d: StateDict) => new Map(flattenStateDict(d).map((e) => [e.key, e] as const));
  const exp = index(expected);
  const act = index(actual);
  const problems: string[] = [];
  for (const [key, e] of exp) {
    const a = act.get(key);
    if (!a) {
      problems.push(`${key}: missing`);
      continue;
    }
    if ("tensor" in e) {
      if (!("tensor" in a)) problems.push(`${key}: not a tensor`);
      else if (a.tensor.dtype !== e.tensor.dtype || a.tensor.shape.join() !== e.tensor.shape.join()) {
        problems.push(`${key}: ${a.tensor.dtype}[${a.tensor.shape.join(",")}] instead of ${e.tensor.dtype}[${e.tensor.shape.join(",")}]`);
      } else if (Buffer.compare(a.tensor.data, e.tensor.data) !== 0) problems.push(`${key}: tensor bytes differ`);
    } else if (!("object" in a) || Buffer.compare(a.object.data, e.object.data) !== 0 || a.object.format !== e.object.format) {
      problems.push(`${key}: object differs`);
    }
  }
  for (const key of act.keys()) if (!exp.has(key)) problems.push(`${key}: unexpected`);
  return problems;
}

function mib(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
}

/** The target device of every tensor in a loaded state dict, saved device → targets. */
function hintsOf(dict: StateDict, savedDevice: (key: string) => string, into: Map<string, Set<string>>): void {
  for (const e of flattenStateDict(dict)) {
    if (!("tensor" in e)) continue;
    const from = savedDevice(e.key);
    let targets = into.get(from);
    if (!targets) into.set(from, (targets = new Set()));
    targets.add(e.tensor.device);
  }
}

/** Root mean square of a float32 tensor. */
function rms(entry: LoadedEntry | undefined): number {
  if (entry?.kind !== "tensor" || entry.tensor.dtype !== "float32") return NaN;
  const values = tensorArray(entry.tensor) as Float32Array;
  let sum = 0;
  for (const v of values) sum += v * v;
  return Math.sqrt(sum / Math.max(values.length, 1));
}

/**
 * The evaluator: follows the job's commits as they happen, loads each checkpoint's rank-0
 * model, checks it against what rank 0 saved and reports metrics. It stops after the
 * last step, or when no checkpoint came for a minute.
 */
async function evaluate(
  address: string,
  job: string,
  lastStep: number,
  log: string[],
  signal: AbortSignal,
): Promise<{ failures: number; steps: number[] }> {
  const client = new CkptdClient(address);
  let failures = 0;
  const steps: number[] = [];
  try {
    for await (const ev of client.checkpoints(job, { evaluator: EVALUATOR, timeoutMs: 60_000, signal })) {
      steps.push(ev.step);
      const lag = Date.now() - ev.commitTime.getTime();
      const started = performance.now();
      const { items } = await client.loadItems({ job, checkpointId: ev.checkpointId, rank: 0, items: ["model"] });
      const model = items.get("model");
      const expected = modelState(0, ev.step);
      const savedEmbed = flattenStateDict(expected).find((e) => e.key === "embed/weight");
      const loadedEmbed = model?.get("embed/weight");
      const exact =
        savedEmbed !== undefined &&
        "tensor" in savedEmbed &&
        loadedEmbed?.kind === "tensor" &&
        Buffer.compare(loadedEmbed.tensor.data, savedEmbed.tensor.data) === 0;
      const embedRms = rms(loadedEmbed);
      const biasRms = rms(model?.get("layers/0/attn/bias"));
      const failed = !exact;
      if (failed) failures++;
      // Logged before the report, so the trainer, which prints once the report is in, never prints ahead of it.
      log.push(
        `  [${EVALUATOR}] event #${ev.sequence}: ${ev.checkpointId} (step ${ev.step}) committed ${lag} ms ago; loaded rank 0 model ` +
          `(${model?.size ?? 0} entries) in ${(performance.now() - started).toFixed(0)} ms, embed_rms ${embedRms.toFixed(5)}, ${failed ? "MISMATCH" : "bit-exact"}; reporting`,
      );
      await client.reportEvaluation({
        job,
        checkpointId: ev.checkpointId,
        evaluator: EVALUATOR,
        metrics: { embed_rms: embedRms, bias_rms: biasRms, entries: model?.size ?? 0 },
        failed,
        message: failed ? "rank-0 embed/weight differs from what was saved" : "",
      });
      if (ev.step >= lastStep) break;
    }
  } finally {
    client.close();
  }
  return { failures, steps };
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { address: { type: "string" } } });
  const address = values.address ?? process.env["CKPTD_ADDRESS"] ?? "127.0.0.1:7070";
  const job = `demo-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  console.log(`ckptd demo: job ${job}, ${WORLD_SIZE} ranks, daemon at ${address}\n`);

  // The evaluator prints through this log, so its lines come out between the trainer's.
  const evalLog: string[] = [];
  const flushEvalLog = () => {
    for (const line of evalLog.splice(0)) console.log(line);
  };
  const stopEvaluator = new AbortController();
  const evaluator = evaluate(address, job, STEPS[STEPS.length - 1]!, evalLog, stopEvaluator.signal);
  // Awaited after training; this keeps an early failure from being reported as unhandled first.
  evaluator.catch(() => undefined);
  const trainerClient = new CkptdClient(address);
  const trainers = Array.from({ length: WORLD_SIZE }, (_, rank) => new CheckpointEngine({ address, job, rank, worldSize: WORLD_SIZE }));
  try {
    for (const step of STEPS) {
      const tag = `global_step${step}`;
      // Generated before the clock starts: the throughput shown is the checkpoint's, not the PRNG's.
      const states = trainers.map((engine) => ({ model: modelState(engine.rank, step), optim: optimState(engine.rank, step) }));
      const started = performance.now();
      await Promise.all(
        trainers.map(async (engine) => {
          const state = states[engine.rank]!;
          engine.create(tag);
          await Promise.all([engine.save(state.model, `/checkpoints/${tag}/model`), engine.save(state.optim, `/checkpoints/${tag}/optim`)]);
          await engine.commit(tag);
        }),
      );
      const secs = (performance.now() - started) / 1000;
      const ckpt = trainers[0]!.lastCommitted;
      const raw = ckpt?.rawBytes ?? 0;
      const stored = ckpt?.storedBytes ?? 0;
      console.log(
        `saved ${tag}: ${mib(raw)} raw → ${mib(stored)} stored (ratio ${(raw / Math.max(stored, 1)).toFixed(2)}), ` +
          `${secs.toFixed(2)} s, ${mib(raw / secs)}/s, committed attempt ${ckpt?.attempt ?? "?"}`,
      );
      // tml's wait_for_evaluators: the trainer goes on once the evaluator has reported on this step.
      const waitStarted = performance.now();
      const [report] = await trainerClient.waitForEvaluators({
        job,
        checkpointId: tag,
        evaluators: [EVALUATOR],
        timeoutMs: EVAL_TIMEOUT_MS,
      });
      flushEvalLog();
      const metrics = Object.entries(report?.metrics ?? {})
        .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(5)}`)
        .join(", ");
      console.log(
        `  trainer: ${EVALUATOR} reported ${report?.status ?? "?"} on ${tag} after ${(performance.now() - waitStarted).toFixed(0)} ms of waiting: ${metrics}`,
      );
    }
  } catch (err) {
    // Without this the evaluator would keep the process alive until its idle timeout.
    stopEvaluator.abort();
    throw err;
  } finally {
    for (const t of trainers) t.close();
    trainerClient.close();
  }
  const evaluated = await evaluator;
  flushEvalLog();
  if (evaluated.failures > 0) {
    console.log(`\nFAILED: the evaluator found ${evaluated.failures} checkpoints whose rank-0 model differs from what was saved`);
    return 1;
  }
  if (evaluated.steps.join() !== STEPS.join()) {
    console.log(`\nFAILED: the evaluator saw steps [${evaluated.steps.join(", ")}], expected [${STEPS.join(", ")}] once each`);
    return 1;
  }
  console.log(`\n${EVALUATOR} followed the trainer live: steps ${STEPS.join(", ")} evaluated once each, in commit order`);

  const client = new CkptdClient(address);
  const restarted = Array.from(
    { length: WORLD_SIZE },
    (_, rank) => new CheckpointEngine({ client, job, rank, worldSize: WORLD_SIZE, localRank: rank, devices: RESTART_DEVICES }),
  );
  try {
    console.log(`\ncheckpoints of ${job}, newest first:`);
    for await (const c of client.listAllCheckpoints(job)) {
      const items = c.ranks.reduce((n, r) => n + r.items.length, 0);
      console.log(
        `  ${c.checkpointId.padEnd(16)} step ${String(c.step).padStart(4)}  ${c.worldSize} ranks, ${items} items, ${mib(c.rawBytes)} raw, ${mib(c.storedBytes)} stored`,
      );
    }

    const latest = await client.getCheckpoint(job, "latest");
    const step = latest.step;
    console.log(`\nrestart on a node with devices [${RESTART_DEVICES.join(", ")}]: loading latest (${latest.checkpointId}) on every rank`);
    let failures = 0;
    const results = await Promise.all(
      restarted.map(async (engine) => {
        const [model, optim] = await Promise.all([engine.load("model"), engine.load("optim")]);
        const problems = [
          ...diff(modelState(engine.rank, step), model).map((p) => `model/${p}`),
          ...diff(optimState(engine.rank, step), optim).map((p) => `optim/${p}`),
        ];
        const hints = new Map<string, Set<string>>();
        const saved = (key: string) => (key === "state/0/step" ? "cpu" : `cuda:${engine.rank}`);
        hintsOf(model, saved, hints);
        hintsOf(optim, saved, hints);
        const tensors = [...flattenStateDict(model), ...flattenStateDict(optim)].filter((e) => "tensor" in e).length;
        return { rank: engine.rank, problems, hints, tensors };
      }),
    );
    for (const r of results) {
      const hints = [...r.hints].map(([from, to]) => `${from} → ${[...to].join("|")}`).join(", ");
      const verdict = r.problems.length === 0 ? `${r.tensors} tensors bit-exact` : `${r.problems.length} MISMATCHES`;
      console.log(`  rank ${r.rank} (local rank ${r.rank}): ${verdict}; device hints ${hints}`);
      for (const p of r.problems.slice(0, 10)) console.log(`    ${p}`);
      failures += r.problems.length;
    }
    if (failures > 0) {
      console.log(`\nFAILED: ${failures} mismatches`);
      return 1;
    }
    console.log(
      `\nOK: ${WORLD_SIZE} ranks restored ${latest.checkpointId} bit-exact (${mib(latest.rawBytes)} raw, ${mib(latest.storedBytes)} on disk)`,
    );
    return 0;
  } finally {
    client.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    if (isUnavailable(err)) console.error("is the daemon running? start it with `npm start`, or pass --address / CKPTD_ADDRESS");
    process.exitCode = 1;
  },
);
