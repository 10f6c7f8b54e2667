/**
 * Retention: which committed checkpoints a job keeps, and the only code that deletes
 * them (DeleteCheckpoint goes through here too, so every deletion is an event).
 *
 * A checkpoint is kept when any rule keeps it (keep_last, keep_every_steps,
 * keep_best); whatever the rules, the latest committed checkpoint, pinned ones and
 * ones an evaluator holds a lease on are never deleted.
 *
 *   <data>/jobs/<job>/retention.json   {policy, pinned} when set by RPC
 */
import type { Logger } from "pino";
import type { Catalog } from "../catalog/catalog.js";
import type { Evaluations } from "./evaluations.js";
import type { EventLog } from "../catalog/events.js";
import { shrinkDecision } from "../commit/decisions.js";
import { failedPrecondition, invalidArgument, unavailable } from "../common/errors.js";
import type { CheckpointSummary } from "../catalog/manifest.js";
import type { Metrics } from "../common/metrics.js";
import { checkName } from "../common/names.js";
import { layout } from "../store/layout.js";
import { ensureJob, getText, listJobs, type Storage } from "../store/storage.js";

export interface RetentionPolicy {
  keepLast: number;
  keepEverySteps: number;
  keepBest: number;
  bestMetric: string;
  bestMode: "MIN" | "MAX" | "";
}

export const KEEP_EVERYTHING: RetentionPolicy = { keepLast: 0, keepEverySteps: 0, keepBest: 0, bestMetric: "", bestMode: "" };

interface JobRetention {
  policy: RetentionPolicy | undefined;
  pinned: Set<string>;
  /** Deletions and GC of one job run one at a time. */
  chain: Promise<unknown>;
  /** Deletions done (out of the catalog and checkpoints/) whose DELETED event is not logged yet, by id. */
  unfinished: Map<string, { summary: CheckpointSummary; trash: string; data: string; reason: string; error?: Error }>;
}

export class Retention {
  private readonly jobs = new Map<string, JobRetention>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly storage: Storage,
    private readonly catalog: Catalog,
    private readonly events: EventLog,
    private readonly evaluations: Evaluations,
    private readonly defaults: RetentionPolicy,
    private readonly log: Logger,
    private readonly metrics?: Metrics,
  ) {}

  private job(job: string): JobRetention {
    let j = this.jobs.get(job);
    if (!j) this.jobs.set(job, (j = { policy: undefined, pinned: new Set(), chain: Promise.resolve(), unfinished: new Map() }));
    return j;
  }

  async load(): Promise<void> {
    for (const job of await listJobs(this.storage)) {
      const text = await getText(this.storage, layout.retention(job));
      if (text === undefined) continue;
      const saved = JSON.parse(text) as { policy?: RetentionPolicy; pinned?: string[] };
      const j = this.job(job);
      j.policy = saved.policy;
      j.pinned = new Set(saved.pinned ?? []);
    }
  }

  /** Runs GC over every job on a timer (leases expire without any other trigger). */
  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      const jobs = new Set(this.catalog.jobsWithCheckpoints());
      for (const [job, j] of this.jobs) if (j.unfinished.size > 0) jobs.add(job);
      for (const job of jobs) void this.gc(job);
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  policy(job: string): RetentionPolicy {
    return this.jobs.get(job)?.policy ?? this.defaults;
  }

  pinned(job: string): string[] {
    return [...(this.jobs.get(job)?.pinned ?? [])].sort();
  }

  /** Replaces the job's policy durably, then applies it (one step: no GC sees it before it is on disk). */
  async setPolicy(job: string, policy: RetentionPolicy): Promise<string[]> {
    checkName("job", job);
    if (policy.keepBest > 0 && (!policy.bestMetric || !policy.bestMode))
      throw invalidArgument("keep_best needs best_metric and best_mode (METRIC_MODE_MIN or METRIC_MODE_MAX)");
    return this.serial(job, async () => {
      const j = this.job(job);
      const previous = j.policy;
      j.policy = policy;
      try {
        await this.persist(job);
      } catch (err) {
        j.policy = previous;
        throw err;
      }
      this.log.info({ job, policy }, "retention policy set");
      return this.collect(job);
    });
  }

  async pin(job: string, checkpointId: string, pinned: boolean): Promise<boolean> {
    checkName("job", job);
    const id = this.catalog.get(job, checkpointId).checkpointId;
    await this.serial(job, async () => {
      const j = this.job(job);
      if (pinned) j.pinned.add(id);
      else j.pinned.delete(id);
      await this.persist(job);
    });
    if (!pinned) void this.gc(job);
    return pinned;
  }

  private async persist(job: string): Promise<void> {
    await ensureJob(this.storage, job);
    const j = this.job(job);
    await this.storage.put(layout.retention(job), JSON.stringify({ policy: j.policy, pinned: [...j.pinned] }));
  }

  /**
   * Deletes one committed checkpoint: out of the catalog, renamed out of
   * checkpoints/ (atomic: it is listed whole or not at all), a DELETED event, then
   * its bytes are removed. Returns the bytes freed.
   */
  delete(job: string, checkpointId: string, reason: string): Promise<number> {
    checkName("job", job);
    checkName("checkpoint_id", checkpointId);
    return this.serial(job, () => this.deleteNow(job, checkpointId, reason));
  }

  private async deleteNow(job: string, checkpointId: string, reason: string): Promise<number> {
    const j = this.job(job);
    const unfinished = j.unfinished.get(checkpointId);
    if (unfinished) {
      // A retried DeleteCheckpoint of a deletion whose event failed: finish it, then answer.
      await this.finishDelete(job, checkpointId);
      return unfinished.summary.storedBytes;
    }
    const summary = this.catalog.get(job, checkpointId);
    if (j.pinned.has(checkpointId))
      throw failedPrecondition(`checkpoint '${checkpointId}' of job '${job}' is pinned; unpin it before deleting it`);
    const trash = layout.trashEntry(job, checkpointId, Date.now());
    // Its manifest goes first (with the checkpoint's prefix, to the trash): from then on it is no checkpoint.
    await this.storage.move(layout.checkpoint(job, checkpointId), trash);
    // Where its data is, when not moved with it (an object store leaves it in the attempt's staging).
    const data = this.storage.dataPrefix(job, checkpointId, summary.attempt);
    this.catalog.remove(job, checkpointId);
    this.evaluations.forget(job, checkpointId);
    // Gone from the listing: from here the deletion only completes (event, freed bytes),
    // in the background if a step fails, never half-undone.
    j.unfinished.set(checkpointId, { summary, trash, data, reason });
    await this.finishDelete(job, checkpointId);
    this.log.info({ job, checkpoint: checkpointId, step: summary.step, reason }, "checkpoint deleted");
    return summary.storedBytes;
  }

  /**
   * The rest of a deletion: the bytes go first (a full disk is the likeliest reason to
   * delete, and the event needs room), then the DELETED event, then the decision record
   * shrinks to a tombstone. A failure leaves it unfinished: retried by GC and by a
   * retried DeleteCheckpoint; a restart finishes it too (recovery empties the trash, the
   * event log adds the DELETED event, the coordinator shrinks the record).
   */
  private async finishDelete(job: string, checkpointId: string): Promise<void> {
    const u = this.job(job).unfinished.get(checkpointId);
    if (!u) return;
    try {
      await this.storage.syncList(layout.checkpoints(job));
      // The data before the trash: while the trash entry is left, recovery knows the staged data is a deletion's.
      if (u.data !== layout.checkpoint(job, checkpointId)) await this.storage.deletePrefix(u.data);
      await this.storage.deletePrefix(u.trash);
      if (!this.events.isLogged(job, checkpointId, "DELETED")) await this.events.append(job, "DELETED", u.summary, u.reason);
    } catch (err) {
      u.error = err as Error;
      this.log.error({ err, job, checkpoint: checkpointId }, "a deletion is not finished (its event is not logged); retrying");
      throw unavailable(
        `checkpoint '${checkpointId}' was deleted but its DELETED event could not be logged yet (${u.error.message}); it is retried in the background`,
      );
    }
    this.job(job).unfinished.delete(checkpointId);
    await shrinkDecision(this.storage, job, checkpointId, u.summary.attempt).catch((err: unknown) =>
      this.log.warn({ err, job, checkpoint: checkpointId }, "could not shrink a deleted checkpoint's decision record; the next start does"),
    );
  }

  /** Applies the job's policy; returns the ids it deleted. */
  gc(job: string): Promise<string[]> {
    return this.serial(job, () => this.collect(job)).catch((err: unknown) => {
      this.log.error({ err, job }, "retention failed");
      return [];
    });
  }

  /** The body of a GC; runs inside the job's serial chain. */
  private async collect(job: string): Promise<string[]> {
    for (const id of [...this.job(job).unfinished.keys()]) await this.finishDelete(job, id).catch(() => {});
    const policy = this.policy(job);
    const deleted: string[] = [];
    for (const c of this.plan(job, policy)) {
      try {
        await this.deleteNow(job, c.checkpointId, `retention: ${describe(policy)}`);
        this.metrics?.deletions.inc({ by: "retention" });
        deleted.push(c.checkpointId);
      } catch (err) {
        this.log.error({ err, job, checkpoint: c.checkpointId }, "retention could not delete a checkpoint");
      }
    }
    return deleted;
  }

  /** The checkpoints the policy would delete now. */
  plan(job: string, policy: RetentionPolicy): CheckpointSummary[] {
    if (policy.keepLast === 0 && policy.keepEverySteps === 0 && policy.keepBest === 0) return [];
    const all = this.catalog.list(job); // newest first
    const keep = new Set<string>();
    if (all[0]) keep.add(all[0].checkpointId); // the latest, always
    for (const c of all.slice(0, policy.keepLast)) keep.add(c.checkpointId);
    if (policy.keepEverySteps > 0) for (const c of all) if (c.step % policy.keepEverySteps === 0) keep.add(c.checkpointId);
    if (policy.keepBest > 0 && policy.bestMetric) {
      const scored = all
        .map((c) => ({ c, v: this.evaluations.metric(job, c.checkpointId, policy.bestMetric) }))
        .filter((x): x is { c: CheckpointSummary; v: number } => x.v !== undefined && !Number.isNaN(x.v))
        .sort((a, b) => (policy.bestMode === "MAX" ? b.v - a.v : a.v - b.v));
      for (const x of scored.slice(0, policy.keepBest)) keep.add(x.c.checkpointId);
    }
    const pinned = this.job(job).pinned;
    return all.filter((c) => !keep.has(c.checkpointId) && !pinned.has(c.checkpointId) && this.evaluations.holders(job, c).length === 0);
  }

  private serial<T>(job: string, fn: () => Promise<T>): Promise<T> {
    const j = this.job(job);
    const run = j.chain.then(fn);
    j.chain = run.catch(() => {});
    return run;
  }
}

function describe(p: RetentionPolicy): string {
  const rules: string[] = [];
  if (p.keepLast) rules.push(`keep_last=${p.keepLast}`);
  if (p.keepEverySteps) rules.push(`keep_every_steps=${p.keepEverySteps}`);
  if (p.keepBest) rules.push(`keep_best=${p.keepBest} by ${p.bestMode === "MAX" ? "max" : "min"} ${p.bestMetric}`);
  return `not kept by ${rules.join(", ")}`;
}
