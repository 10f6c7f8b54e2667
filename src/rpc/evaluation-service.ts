/**
 * gRPC handlers of EvaluationService and RetentionService: wire ↔ domain only.
 */
import type { Logger } from "pino";
import type { EvaluationServiceHandlers } from "../../wire/gen/ckptd/v1/EvaluationService.js";
import type { EvaluationReportIn } from "../../wire/gen/ckptd/v1/EvaluationReport.js";
import type { RetentionPolicy as WirePolicy, RetentionPolicyIn } from "../../wire/gen/ckptd/v1/RetentionPolicy.js";
import type { RetentionServiceHandlers } from "../../wire/gen/ckptd/v1/RetentionService.js";
import type { Authorizer } from "./auth.js";
import type { Catalog } from "../catalog/catalog.js";
import { failedPrecondition, unavailable } from "../common/errors.js";
import type { EvaluationReport, Evaluations } from "../evaluation/evaluations.js";
import type { CheckpointEventRecord, EventLog } from "../catalog/events.js";
import { checkName } from "../common/names.js";
import type { Retention, RetentionPolicy } from "../evaluation/retention.js";
import { drained, rpcMethods, type RpcEnv } from "./handler.js";
import { checkpointMessage, timestamp } from "./messages.js";

export interface EvaluationDeps {
  catalog: Catalog;
  events: EventLog;
  evaluations: Evaluations;
  retention: Retention;
  log: Logger;
  auth: Authorizer;
  /** On a multi-node participant: why reports and retention must go to the coordinator. */
  notCoordinator: string | undefined;
  /** Aborted when the daemon drains: long-lived calls end with UNAVAILABLE so clients reconnect. */
  shutdown: AbortSignal;
}

export function evaluationServiceHandlers(deps: EvaluationDeps, env: RpcEnv): EvaluationServiceHandlers {
  const { events, evaluations, retention, catalog, log, shutdown, auth } = deps;
  const rpc = rpcMethods(env, "EvaluationService");
  const draining = () => unavailable("the daemon is shutting down; reconnect to its successor");
  return {
    WatchCheckpoints: rpc.serverStream("WatchCheckpoints", async (call) => {
      const r = call.request;
      const stop = new AbortController();
      call.on("cancelled", () => stop.abort());
      call.on("close", () => stop.abort());
      const onShutdown = () => stop.abort();
      shutdown.addEventListener("abort", onShutdown);
      {
        checkName("job", r.job);
        auth.check(call.metadata, { job: r.job });
        if (r.evaluator) checkName("evaluator", r.evaluator);
        await catalog.refresh(r.job);
        await events.refresh(r.job);
        let cursor =
          r.start === "afterSequence"
            ? r.afterSequence!
            : r.start === "fromStep"
              ? events.seqBeforeStep(r.job, r.fromStep!)
              : r.start === "fromNow"
                ? events.lastSeq(r.job)
                : 0;
        events.subscribers++;
        log.info({ job: r.job, evaluator: r.evaluator, after: cursor }, "subscriber connected");
        try {
          // Live from here: the subscriber learns it at once (headers and this marker), with
          // the head of the log, so it can act (commit, resume) knowing it misses nothing.
          call.write({ started: { headSequence: events.lastSeq(r.job), afterSequence: cursor } });
          while (!stop.signal.aborted) {
            const batch = events.after(r.job, cursor);
            if (batch.length === 0) {
              await events.waitAfter(r.job, cursor, stop.signal);
              continue;
            }
            for (const ev of batch) {
              if (stop.signal.aborted) return;
              // The lease is taken before the event leaves, so retention cannot race the evaluator.
              if (r.evaluator && ev.type === "COMMITTED" && catalog.has(r.job, ev.checkpointId))
                evaluations.grantLease(r.job, ev.checkpointId, r.evaluator);
              if (!call.write({ event: eventMessage(ev) })) await drained(call);
              cursor = ev.seq;
            }
          }
          if (shutdown.aborted) throw draining();
        } finally {
          shutdown.removeEventListener("abort", onShutdown);
          events.subscribers--;
          log.info({ job: r.job, evaluator: r.evaluator, at: cursor }, "subscriber left");
        }
      }
    }),

    ReportEvaluation: rpc.unary("ReportEvaluation", async (call) => {
      const r = call.request;
      auth.check(call.metadata, { job: r.job });
      coordinatorOnly(deps);
      const report = await evaluations.report({
        job: r.job,
        checkpointId: r.checkpointId,
        evaluator: r.evaluator,
        metrics: r.metrics,
        failed: r.status === "EVALUATION_STATUS_FAILED",
        message: r.message,
      });
      log.info({ job: r.job, checkpoint: report.checkpointId, evaluator: r.evaluator, metrics: r.metrics }, "evaluation reported");
      void retention.gc(r.job);
      return { report: reportMessage(report) };
    }),

    WaitForEvaluators: rpc.unary("WaitForEvaluators", async (call) => {
      const r = call.request;
      const stop = new AbortController();
      call.on("cancelled", () => stop.abort());
      const onShutdown = () => stop.abort();
      shutdown.addEventListener("abort", onShutdown);
      {
        checkName("job", r.job);
        auth.check(call.metadata, { job: r.job });
        coordinatorOnly(deps);
        // Answer a little before the caller's deadline so it hears who is missing.
        const deadline = call.getDeadline();
        const untilDeadline =
          deadline instanceof Date
            ? deadline.getTime() - Date.now() - 100
            : typeof deadline === "number" && Number.isFinite(deadline)
              ? deadline - Date.now() - 100
              : Infinity;
        const timeoutMs = Math.max(0, Math.min(r.timeoutMs > 0 ? r.timeoutMs : Infinity, untilDeadline, 2 ** 31 - 1));
        try {
          const reports = await evaluations.waitFor(r.job, r.checkpointId, r.evaluators, timeoutMs, stop.signal);
          return { reports: reports.map(reportMessage) };
        } catch (err) {
          throw shutdown.aborted ? draining() : err;
        } finally {
          shutdown.removeEventListener("abort", onShutdown);
        }
      }
    }),
  };
}

export function retentionServiceHandlers(deps: EvaluationDeps, env: RpcEnv): RetentionServiceHandlers {
  const { retention, auth } = deps;
  const rpc = rpcMethods(env, "RetentionService");
  return {
    SetRetentionPolicy: rpc.unary("SetRetentionPolicy", async (call) => {
      const r = call.request;
      const policy = fromWire(r.policy);
      auth.check(call.metadata, { job: r.job, admin: true });
      coordinatorOnly(deps);
      const deleted = await retention.setPolicy(r.job, policy);
      return { policy: toWire(policy), deletedCheckpointIds: deleted };
    }),
    GetRetentionPolicy: rpc.unary("GetRetentionPolicy", async (call) => {
      const job = call.request.job;
      checkName("job", job);
      auth.check(call.metadata, { job });
      return { policy: toWire(retention.policy(job)), pinnedCheckpointIds: retention.pinned(job) };
    }),
    PinCheckpoint: rpc.unary("PinCheckpoint", async (call) => {
      const r = call.request;
      auth.check(call.metadata, { job: r.job, admin: true });
      coordinatorOnly(deps);
      return { pinned: await retention.pin(r.job, r.checkpointId, r.pinned) };
    }),
  };
}

function coordinatorOnly(deps: EvaluationDeps): void {
  if (deps.notCoordinator) throw failedPrecondition(deps.notCoordinator);
}

function fromWire(p: WirePolicy | null): RetentionPolicy {
  return {
    keepLast: p?.keepLast ?? 0,
    keepEverySteps: p?.keepEverySteps ?? 0,
    keepBest: p?.keepBest ?? 0,
    bestMetric: p?.bestMetric ?? "",
    bestMode: p?.bestMode === "METRIC_MODE_MAX" ? "MAX" : p?.bestMode === "METRIC_MODE_MIN" ? "MIN" : "",
  };
}

function toWire(p: RetentionPolicy): RetentionPolicyIn {
  return {
    keepLast: p.keepLast,
    keepEverySteps: p.keepEverySteps,
    keepBest: p.keepBest,
    bestMetric: p.bestMetric,
    bestMode: p.bestMode === "MAX" ? "METRIC_MODE_MAX" : p.bestMode === "MIN" ? "METRIC_MODE_MIN" : "METRIC_MODE_UNSPECIFIED",
  };
}

function eventMessage(ev: CheckpointEventRecord) {
  return {
    sequence: ev.seq,
    type: ev.type === "COMMITTED" ? ("CHECKPOINT_EVENT_TYPE_COMMITTED" as const) : ("CHECKPOINT_EVENT_TYPE_DELETED" as const),
    job: ev.job,
    checkpointId: ev.checkpointId,
    step: ev.step,
    commitTime: timestamp(ev.commitTime),
    eventTime: timestamp(ev.time),
    checkpoint: checkpointMessage(ev.checkpoint),
    reason: ev.reason,
  };
}

function reportMessage(r: EvaluationReport): EvaluationReportIn {
  return {
    job: r.job,
    checkpointId: r.checkpointId,
    step: r.step,
    evaluator: r.evaluator,
    metrics: r.metrics,
    status: r.failed ? "EVALUATION_STATUS_FAILED" : "EVALUATION_STATUS_SUCCEEDED",
    message: r.message,
    reportTime: timestamp(r.time),
  };
}
