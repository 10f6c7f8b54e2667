/**
 * Evaluations: durable reports of evaluators on committed checkpoints, the leases
 * that keep a checkpoint alive while an evaluator works on it, and waiting for
 * reports (the push version of wait_for_evaluators).
 *
 *   <data>/jobs/<job>/evaluations.log   one JSON report per line, fsynced
 *
 * A report is acknowledged only once its whole line is durable (LineLog: a failed
 * append, e.g. on a full disk, is cut back out); at load only a torn tail is cut, never
 * the reports after a damaged line.
 */
import type { Logger } from "pino";
import type { Catalog } from "../catalog/catalog.js";
import { deadlineExceeded, invalidArgument, resourceExhausted } from "../common/errors.js";
import { quote } from "../common/limits.js";
import { checkName } from "../common/names.js";
import { LineLog } from "../store/line-log.js";
import { layout } from "../store/layout.js";
import { listJobs, type Storage } from "../store/storage.js";

/** Bounds of one report (what the daemon keeps in memory and in the log for it). */
export const MAX_METRICS = 256;
export const MAX_METRIC_NAME = 256;
export const MAX_MESSAGE = 4096;
/** Distinct evaluators that may report on one checkpoint. */
export const MAX_EVALUATORS = 64;

/**
 * JSON has no NaN or ±Infinity (stringify writes null): they are kept as {"$float": "NaN"},
 * so a diverged evaluation still reads NaN after a restart and keep_best ranks it as before.
 */
function keepFloat(_key: string, value: unknown): unknown {
  return typeof value === "number" && !Number.isFinite(value) ? { $float: String(value) } : value;
}

function reviveFloat(_key: string, value: unknown): unknown {
  if (typeof value === "object" && value !== null && "$float" in value && Object.keys(value).length === 1)
    return Number((value as { $float: unknown }).$float);
  return value;
}

export interface EvaluationReport {
  job: string;
  checkpointId: string;
  step: number;
  evaluator: string;
  metrics: Record<string, number>;
  failed: boolean;
  message: string;
  /** ISO-8601 time the report was recorded. */
  time: string;
}

interface JobEvaluations {
  /** checkpoint id → evaluator → report */
  readonly reports: Map<string, Map<string, EvaluationReport>>;
  /** checkpoint id → evaluator → lease expiry (ms since epoch) */
  readonly leases: Map<string, Map<string, number>>;
  readonly waiters: Set<() => void>;
  readonly file: LineLog;
}

/** A report's line: JSON (NaN and ±Infinity kept as {"$float": …}). */
function decodeReport(line: Buffer): EvaluationReport | undefined {
  try {
    const r = JSON.parse(line.toString("utf8"), reviveFloat) as EvaluationReport | null;
    return typeof r === "object" && r !== null ? r : undefined;
  } catch {
    return undefined;
  }
}

export class Evaluations {
  private readonly jobs = new Map<string, JobEvaluations>();
  private readonly startedAt = Date.now();

  constructor(
    private readonly storage: Storage,
    private readonly catalog: Catalog,
    readonly leaseTtlMs: number,
    private readonly log: Logger,
  ) {}

  private job(job: string): JobEvaluations {
    let j = this.jobs.get(job);
    if (!j) {
      const file = new LineLog(this.storage, layout.evaluations(job), "evaluation log");
      this.jobs.set(job, (j = { reports: new Map(), leases: new Map(), waiters: new Set(), file }));
    }
    return j;
  }

  async load(): Promise<void> {
    for (const job of await listJobs(this.storage))
      for (const r of await this.job(job).file.read(decodeReport, this.log, { job }))
        // Reports of deleted checkpoints stay in the log but not in memory.
        if (this.catalog.has(r.job, r.checkpointId)) this.index(r);
  }

  private index(r: EvaluationReport): void {
    const j = this.job(r.job);
    let byEval = j.reports.get(r.checkpointId);
    if (!byEval) j.reports.set(r.checkpointId, (byEval = new Map()));
    byEval.set(r.evaluator, r);
    j.leases.get(r.checkpointId)?.delete(r.evaluator);
  }

  /** Records a report durably, releases the evaluator's lease and wakes waiters. */
  report(input: Omit<EvaluationReport, "step" | "time">): Promise<EvaluationReport> {
    checkName("job", input.job);
    checkName("evaluator", input.evaluator);
    const metrics = Object.entries(input.metrics);
    if (metrics.length > MAX_METRICS) throw invalidArgument(`a report has ${metrics.length} metrics; at most ${MAX_METRICS} are allowed`);
    for (const [k, v] of metrics) {
      if (!k || typeof v !== "number") throw invalidArgument(`metric ${quote(k)} must have a numeric value`);
      if (k.length > MAX_METRIC_NAME) throw invalidArgument(`metric name ${quote(k)} is longer than ${MAX_METRIC_NAME} characters`);
    }
    if (input.message.length > MAX_MESSAGE) throw invalidArgument(`a report's message is longer than ${MAX_MESSAGE} characters`);
    const checkpoint = this.catalog.get(input.job, input.checkpointId);
    const already = this.reportsFor(input.job, checkpoint.checkpointId);
    if (!already.has(input.evaluator) && already.size >= MAX_EVALUATORS)
      throw resourceExhausted(
        `checkpoint '${checkpoint.checkpointId}' already has reports of ${already.size} evaluators, the most one checkpoint keeps`,
      );
    const r: EvaluationReport = { ...input, checkpointId: checkpoint.checkpointId, step: checkpoint.step, time: new Date().toISOString() };
    const j = this.job(input.job);
    return j.file.serial(async () => {
      // A job first reported on after the start has no log yet, or one load() did not read: write() appends at its end.
      await j.file.write(Buffer.from(JSON.stringify(r, keepFloat) + "\n", "utf8"));
      this.index(r);
      for (const w of [...j.waiters]) w();
      return r;
    });
  }

  reportsFor(job: string, checkpointId: string): Map<string, EvaluationReport> {
    return this.jobs.get(job)?.reports.get(checkpointId) ?? new Map<string, EvaluationReport>();
  }

  /** The latest reported value of `metric` for a checkpoint, if any evaluator reported it. */
  metric(job: string, checkpointId: string, metric: string): number | undefined {
    let best: EvaluationReport | undefined;
    for (const r of this.reportsFor(job, checkpointId).values())
      if (metric in r.metrics && !r.failed && (!best || r.time > best.time)) best = r;
    return best?.metrics[metric];
  }

  /** An evaluator was sent a checkpoint: it holds a lease until it reports or the TTL passes. */
  grantLease(job: string, checkpointId: string, evaluator: string): void {
    if (this.reportsFor(job, checkpointId).has(evaluator)) return;
    const j = this.job(job);
    let byEval = j.leases.get(checkpointId);
    if (!byEval) j.leases.set(checkpointId, (byEval = new Map()));
    byEval.set(evaluator, Date.now() + this.leaseTtlMs);
  }

  /**
   * Who keeps a checkpoint from retention: evaluators with unexpired leases, or
   * "restart grace" for a checkpoint committed before this daemon started and not
   * reported on, while the leases lost in the restart could still be live.
   */
  holders(job: string, checkpoint: { checkpointId: string; commitTime: string }, now = Date.now()): string[] {
    const leases = this.jobs.get(job)?.leases.get(checkpoint.checkpointId);
    const live = [...(leases?.entries() ?? [])].filter(([, exp]) => exp > now).map(([e]) => e);
    if (
      live.length === 0 &&
      now < this.startedAt + this.leaseTtlMs &&
      Date.parse(checkpoint.commitTime) < this.startedAt &&
      this.reportsFor(job, checkpoint.checkpointId).size === 0
    )
      return ["(restart grace)"];
    return live;
  }

  /** Forgets a deleted checkpoint's leases and reports (the reports stay in the log). */
  forget(job: string, checkpointId: string): void {
    this.jobs.get(job)?.leases.delete(checkpointId);
    this.jobs.get(job)?.reports.delete(checkpointId);
  }

  /**
   * Resolves with the named evaluators' reports once all reported; rejects with
   * DEADLINE_EXCEEDED naming the missing ones after `timeoutMs`.
   */
  async waitFor(
    job: string,
    checkpointId: string,
    evaluators: string[],
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<EvaluationReport[]> {
    if (evaluators.length === 0) throw invalidArgument("name at least one evaluator to wait for");
    for (const e of evaluators) checkName("evaluator", e);
    const id = this.catalog.get(job, checkpointId).checkpointId;
    const j = this.job(job);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const reports = this.reportsFor(job, id);
      const missing = evaluators.filter((e) => !reports.has(e));
      if (missing.length === 0) return evaluators.map((e) => reports.get(e)!);
      const left = deadline - Date.now();
      if (left <= 0 || signal.aborted)
        throw deadlineExceeded(
          `waited ${timeoutMs} ms for checkpoint '${id}' of job '${job}': missing evaluator(s) ${missing.map((m) => `'${m}'`).join(", ")}` +
            (reports.size > 0 ? ` (reported: ${[...reports.keys()].map((m) => `'${m}'`).join(", ")})` : ""),
        );
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          j.waiters.delete(done);
          signal.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, left);
        j.waiters.add(done);
        signal.addEventListener("abort", done);
      });
    }
  }
}
