/**
 * The evaluation and retention side of the client: the domain types of
 * EvaluationService and RetentionService, their conversion from and to the wire, and
 * {@link followCheckpoints}, the reconnecting loop behind {@link CkptdClient.checkpoints}.
 *
 * Call order for an evaluator: `checkpoints(job, {evaluator})` (or `watch`) → for each
 * checkpoint: load → `reportEvaluation`. A trainer calls `waitForEvaluators` after a commit.
 */
import { Code, CkptdError, isUnavailable } from "./errors.js";
import type { Checkpoint } from "../../../wire/gen/ckptd/v1/Checkpoint.js";
import type { CheckpointEvent as WireCheckpointEvent } from "../../../wire/gen/ckptd/v1/CheckpointEvent.js";
import type { EvaluationReport as WireEvaluationReport } from "../../../wire/gen/ckptd/v1/EvaluationReport.js";
import type { MetricMode } from "../../../wire/gen/ckptd/v1/MetricMode.js";
import type { RetentionPolicy as WireRetentionPolicy, RetentionPolicyIn } from "../../../wire/gen/ckptd/v1/RetentionPolicy.js";
import type { Timestamp } from "../../../wire/gen/google/protobuf/Timestamp.js";

/** What happened to a checkpoint. */
export type CheckpointEventType = "COMMITTED" | "DELETED";

/** One entry of a job's durable event log, as {@link CkptdClient.watch} yields it. */
export interface CheckpointEvent {
  /** Position in the job's event log: starts at 1, grows by one per event. Resume with `afterSequence`. */
  sequence: number;
  type: CheckpointEventType;
  job: string;
  checkpointId: string;
  step: number;
  /** When the checkpoint was committed (also for DELETED events). */
  commitTime: Date;
  /** When the event happened: the commit or the deletion. */
  eventTime: Date;
  /** The manifest summary (ranks, items, raw and stored bytes); absent when the daemon sent none. */
  checkpoint?: Checkpoint;
  /** For DELETED events, why, e.g. `retention: keep_last=3` or `DeleteCheckpoint`; empty otherwise. */
  reason: string;
}

/**
 * Where a watch starts: at most one of `afterSequence`, `fromStep`, `fromNow`.
 * With none, the watch replays the job's log from its first event.
 */
export interface WatchStart {
  /** Only events with a sequence number greater than this: the last one the subscriber saw. */
  afterSequence?: number;
  /** From the first event about a checkpoint whose step is at least this. */
  fromStep?: number;
  /** Only events that happen after the subscription starts. */
  fromNow?: boolean;
}

/** Options of {@link CkptdClient.watch}. */
export interface WatchOptions extends WatchStart {
  /**
   * The evaluator's name ([A-Za-z0-9._-]). When set, every COMMITTED event the daemon
   * sends holds a lease on that checkpoint: retention keeps it until this evaluator
   * reports on it or the daemon's lease TTL passes. @default none (no leases)
   */
  evaluator?: string;
  /** Aborting it cancels the call and ends the iteration without an error. */
  signal?: AbortSignal;
  /**
   * Called once the subscription is live (the daemon's first message), with the last
   * sequence in the job's log then (0 for a job with no events yet) and the sequence after
   * which events follow. A commit made after this call is never missed, even with `fromNow`.
   */
  onStarted?: (started: { headSequence: number; afterSequence: number }) => void;
}

/** Options of {@link CkptdClient.checkpoints}. */
export interface CheckpointsOptions {
  /** The evaluator's name; it takes a lease on each checkpoint it is sent (see {@link WatchOptions.evaluator}). */
  evaluator: string;
  /** Resume after this sequence number (the `sequence` of the last checkpoint handled). @default from the first event */
  afterSequence?: number;
  /** Start at the first checkpoint whose step is at least this (ignored when `afterSequence` is given). */
  fromStep?: number;
  /**
   * End the iteration once no new checkpoint arrived for this long while the consumer
   * was waiting for one (time the consumer spends on a checkpoint does not count).
   * @default no timeout: follow the job until the loop is left or `signal` aborts
   */
  timeoutMs?: number;
  /** Aborting it ends the iteration without an error. */
  signal?: AbortSignal;
  /** First delay before reconnecting to a daemon that went away; doubles up to `maxBackoffMs`. @default 100 */
  minBackoffMs?: number;
  /** Longest delay between reconnection attempts. @default 5000 */
  maxBackoffMs?: number;
}

/** Options of {@link CkptdClient.reportEvaluation}. */
export interface ReportEvaluationRequest {
  job: string;
  /** The committed checkpoint evaluated. */
  checkpointId: string;
  /** The evaluator's name ([A-Za-z0-9._-]), the one it watches with. */
  evaluator: string;
  /** Metrics by name, e.g. `{ loss: 0.31 }`; retention's keep-best ranks by one of them. @default {} */
  metrics?: Readonly<Record<string, number>>;
  /** The evaluator gave up on the checkpoint; it still counts as having reported. @default false */
  failed?: boolean;
  /** Free text, e.g. why it failed. @default "" */
  message?: string;
}

/** How an evaluation ended. */
export type EvaluationStatus = "SUCCEEDED" | "FAILED";

/** A recorded (durable) evaluation report. */
export interface EvaluationReport {
  job: string;
  checkpointId: string;
  step: number;
  evaluator: string;
  metrics: Record<string, number>;
  status: EvaluationStatus;
  message: string;
  /** When the daemon recorded it. */
  reportTime: Date;
}

/** Options of {@link CkptdClient.waitForEvaluators}. */
export interface WaitForEvaluatorsRequest {
  job: string;
  /** The checkpoint's id, or `latest`. @default "latest" */
  checkpointId?: string;
  /** The evaluators that must report; at least one. */
  evaluators: readonly string[];
  /**
   * How long to wait, in ms; then the call fails with `DEADLINE_EXCEEDED` naming the
   * evaluators still missing. @default no limit
   */
  timeoutMs?: number;
}

/** Whether a smaller or a larger metric is better. */
export type MetricModeName = "min" | "max";

/**
 * A job's keep rules. A checkpoint is kept when any rule keeps it; every rule at 0
 * keeps everything. Whatever the rules, the daemon never deletes the latest committed
 * checkpoint, a pinned one, or one an evaluator holds a lease on.
 */
export interface RetentionPolicy {
  /** Keep the N checkpoints with the highest steps; 0 disables the rule. @default 0 */
  keepLast?: number;
  /** Keep every checkpoint whose step is a multiple of K; 0 disables the rule. @default 0 */
  keepEverySteps?: number;
  /** Keep the M checkpoints with the best reported `bestMetric`; 0 disables the rule. @default 0 */
  keepBest?: number;
  /** The reported metric keep-best ranks by, e.g. `loss`. @default "" */
  bestMetric?: string;
  /** `min` when smaller is better (a loss), `max` when larger is (an accuracy). @default unset (keep-best off) */
  bestMode?: MetricModeName;
}

/** A policy as the daemon reports it: every rule explicit. */
export type ResolvedRetentionPolicy = Required<Omit<RetentionPolicy, "bestMode">> & { bestMode: MetricModeName | undefined };

const EVENT_TYPES: Readonly<Partial<Record<string, CheckpointEventType>>> = {
  CHECKPOINT_EVENT_TYPE_COMMITTED: "COMMITTED",
  CHECKPOINT_EVENT_TYPE_DELETED: "DELETED",
};

const METRIC_MODES: Readonly<Record<MetricModeName, MetricMode>> = { min: "METRIC_MODE_MIN", max: "METRIC_MODE_MAX" };

/** A protobuf Timestamp as a Date (millisecond precision); the epoch when absent. */
export function dateOf(ts: Timestamp | null | undefined): Date {
  return ts ? new Date(ts.seconds * 1000 + Math.floor(ts.nanos / 1e6)) : new Date(0);
}

/** Converts a wire event; an event of an unknown type is a protocol error, not something to skip silently. */
export function eventOf(e: WireCheckpointEvent): CheckpointEvent {
  const type = EVENT_TYPES[e.type];
  if (!type) throw new CkptdError(Code.INTERNAL, `the daemon sent event ${e.sequence} of job ${e.job} with unknown type ${e.type}`);
  const event: CheckpointEvent = {
    sequence: e.sequence,
    type,
    job: e.job,
    checkpointId: e.checkpointId,
    step: e.step,
    commitTime: dateOf(e.commitTime ?? e.checkpoint?.commitTime),
    eventTime: dateOf(e.eventTime),
    reason: e.reason,
  };
  if (e.checkpoint) event.checkpoint = e.checkpoint;
  return event;
}

export function reportOf(r: WireEvaluationReport): EvaluationReport {
  return {
    job: r.job,
    checkpointId: r.checkpointId,
    step: r.step,
    evaluator: r.evaluator,
    metrics: { ...r.metrics },
    status: r.status === "EVALUATION_STATUS_FAILED" ? "FAILED" : "SUCCEEDED",
    message: r.message,
    reportTime: dateOf(r.reportTime),
  };
}

/** Checks a policy before it is sent, so a typo fails here with the rule named. */
export function policyToWire(p: RetentionPolicy): RetentionPolicyIn {
  const count = (name: keyof RetentionPolicy, v: number | undefined): number => {
    const n = v ?? 0;
    if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff) {
      throw new CkptdError(Code.INVALID_ARGUMENT, `retention ${name} must be an integer in [0, 2^32), got ${String(v)}`);
    }
    return n;
  };
  const keepBest = count("keepBest", p.keepBest);
  if (p.bestMode !== undefined && !(p.bestMode in METRIC_MODES)) {
    throw new CkptdError(Code.INVALID_ARGUMENT, `retention bestMode must be "min" or "max", got ${JSON.stringify(p.bestMode)}`);
  }
  if (keepBest > 0 && (!p.bestMetric || p.bestMode === undefined)) {
    throw new CkptdError(Code.INVALID_ARGUMENT, `retention keepBest=${keepBest} needs a bestMetric and a bestMode ("min" or "max")`);
  }
  return {
    keepLast: count("keepLast", p.keepLast),
    keepEverySteps: count("keepEverySteps", p.keepEverySteps),
    keepBest,
    bestMetric: p.bestMetric ?? "",
    bestMode: p.bestMode === undefined ? "METRIC_MODE_UNSPECIFIED" : METRIC_MODES[p.bestMode],
  };
}

export function policyOf(p: WireRetentionPolicy | null | undefined): ResolvedRetentionPolicy {
  const mode = p?.bestMode;
  return {
    keepLast: p?.keepLast ?? 0,
    keepEverySteps: p?.keepEverySteps ?? 0,
    keepBest: p?.keepBest ?? 0,
    bestMetric: p?.bestMetric ?? "",
    bestMode: mode === "METRIC_MODE_MIN" ? "min" : mode === "METRIC_MODE_MAX" ? "max" : undefined,
  };
}

/** A watch as {@link followCheckpoints} needs it: a fresh call per (re)connection. */
export type WatchFn = (options: WatchOptions) => AsyncIterable<CheckpointEvent>;

/**
 * Yields each COMMITTED event once, in log order, reconnecting with the cursor (the last
 * sequence seen, COMMITTED or DELETED) whenever the daemon goes away (`UNAVAILABLE`, or a
 * stream that ends, which a live watch never does). Any other error is thrown.
 */
export async function* followCheckpoints(watch: WatchFn, options: CheckpointsOptions): AsyncGenerator<CheckpointEvent, void, undefined> {
  const minBackoff = options.minBackoffMs ?? 100;
  const maxBackoff = Math.max(options.maxBackoffMs ?? 5_000, minBackoff);
  const { timeoutMs, signal } = options;
  let cursor = options.afterSequence;
  let backoff = minBackoff;
  // Set while the consumer waits for the next checkpoint; reset each time one is yielded.
  let idleDeadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;

  while (!signal?.aborted) {
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    const armTimer = () => {
      if (idleDeadline === Infinity) return;
      // Aborting the watch (not return()) is the only way to end a pending next() of an async generator.
      timer = setTimeout(
        () => {
          timedOut = true;
          stop.abort();
        },
        Math.max(0, idleDeadline - Date.now()),
      );
    };
    const start: WatchStart =
      cursor !== undefined ? { afterSequence: cursor } : options.fromStep !== undefined ? { fromStep: options.fromStep } : {};
    let failure: unknown;
    try {
      armTimer();
      for await (const event of watch({ ...start, evaluator: options.evaluator, signal: stop.signal })) {
        backoff = minBackoff;
        // The daemon resumes strictly after the cursor; this guards "never twice" against anything else.
        if (cursor !== undefined && event.sequence <= cursor) continue;
        cursor = event.sequence;
        if (event.type !== "COMMITTED") continue;
        clearTimeout(timer);
        yield event;
        if (timeoutMs !== undefined) idleDeadline = Date.now() + timeoutMs;
        armTimer();
      }
    } catch (err) {
      failure = err;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      // Reached early when the consumer left the loop: this ends the inner watch and its call.
      stop.abort();
    }
    if (timedOut || signal?.aborted) return;
    if (failure !== undefined && !isUnavailable(failure)) throw CkptdError.from(failure);
    const wait = Math.min(backoff, idleDeadline - Date.now());
    if (wait < 0) return;
    // Jitter keeps many evaluators from reconnecting to a restarted daemon in lockstep.
    if (!(await sleep(wait * (0.5 + Math.random() / 2), signal))) return;
    if (Date.now() >= idleDeadline) return;
    backoff = Math.min(backoff * 2, maxBackoff);
  }
}

/** Resolves true after `ms`, or false as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
