/**
 * CommitCoordinator runs the two-phase commit of every checkpoint on this node.
 *
 * Per checkpoint and attempt:
 *   phase 1  each rank: beginSave → stage (per item, fsynced) … → vote (Commit) | abort
 *   decide   COMMIT once all world_size ranks voted and every item they named is staged;
 *            ABORT on an Abort, a vote naming a missing item, or the prepare timeout.
 *            The decision record is fsynced before anyone is told.
 *   phase 2  COMMIT: manifest written into the staging dir, staging renamed into
 *            checkpoints/ (publish); ABORT: staging removed.
 *
 * A checkpoint id that failed may be saved again as a new attempt (attempt number + 1);
 * messages naming an older attempt get that attempt's decision and never touch the new one.
 */
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import type { Logger } from "pino";
import type { Catalog } from "./catalog.js";
import { aborted, failedPrecondition, invalidArgument, alreadyExists, unavailable } from "./errors.js";
import {
  itemDirName,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  summarize,
  type CheckpointSummary,
  type ItemRecord,
  type Manifest,
  type RankRecord,
} from "./manifest.js";
import { abortReason, type Metrics } from "./metrics.js";
import { checkName } from "./names.js";
import { fsyncDir, removeTree, writeFileDurable, type DataDir } from "./storage.js";

export type Outcome = "COMMITTED" | "ABORTED";

export interface Decision {
  outcome: Outcome;
  reason: string;
  attempt: number;
  /** The published checkpoint (COMMITTED only). */
  checkpoint?: CheckpointSummary;
}

/** The durable decision record, decisions/<id>@<attempt>.json. */
interface DecisionRecord {
  outcome: Outcome;
  reason: string;
  attempt: number;
  decidedAt: string;
  manifest?: Manifest;
}

export interface CoordinatorOptions {
  /** An undecided attempt with no activity for this long is aborted. */
  prepareTimeoutMs: number;
  /** Test-only fault point. */
  fault?: "crash-after-decision" | undefined;
  /**
   * Called once a checkpoint is published, before the voters are told (so watchers
   * hear of a commit no later than the trainer does). Its failure is logged, not fatal.
   */
  onCommitted?: (checkpoint: CheckpointSummary) => Promise<void>;
  metrics?: Metrics;
}

/** Who is saving what: identifies one rank's checkpoint for Save and Commit. */
export interface CheckpointRef {
  job: string;
  checkpointId: string;
  step: number;
  rank: number;
  worldSize: number;
}

type AttemptState = "preparing" | "deciding" | "decided";

/** One attempt of one checkpoint as this daemon sees it. */
export class Attempt {
  state: AttemptState = "preparing";
  /** Completed, fsynced items per rank. */
  readonly staged = new Map<number, Map<string, ItemRecord>>();
  /** "rank/item" of saves in progress. */
  readonly inflight = new Set<string>();
  readonly votes = new Map<number, string[]>();
  lastActivity = Date.now();
  decision: Decision | undefined;
  failure: Error | undefined;
  /** Participant bookkeeping: a restart marker was written / the attempt predates a restart. */
  marked = false;
  restarted = false;
  private readonly waiters: { resolve: (d: Decision) => void; reject: (e: Error) => void }[] = [];
  /**
   * How to end each Save stream still open on this attempt. A stream that waits for its
   * client's next message would otherwise learn of the decision only when (if ever) that
   * message comes, holding its files and buffers meanwhile.
   */
  private readonly streams = new Set<(err: Error) => void>();

  constructor(
    readonly job: string,
    readonly checkpointId: string,
    readonly attempt: number,
    readonly step: number,
    readonly worldSize: number,
    readonly dir: string,
  ) {}

  /** Reserves (rank, item) for one Save stream; refuses duplicates and saves after the rank's vote. */
  reserve(rank: number, item: string): SaveTicket {
    const slot = `${rank}/${item}`;
    if (this.staged.get(rank)?.has(item))
      throw alreadyExists(`rank ${rank} already saved item '${item}' in checkpoint '${this.checkpointId}' (attempt ${this.attempt})`);
    if (this.inflight.has(slot))
      throw alreadyExists(`rank ${rank} is already saving item '${item}' of checkpoint '${this.checkpointId}' on another stream`);
    if (this.votes.has(rank))
      throw failedPrecondition(`rank ${rank} already voted on checkpoint '${this.checkpointId}'; it cannot save more items`);
    this.inflight.add(slot);
    this.lastActivity = Date.now();
    return { attempt: this, rank, item, dir: path.join(this.dir, itemDirName(rank, item)) };
  }

  /** Throws ABORTED once the attempt was decided (its staging is being removed). */
  checkLive(): void {
    this.lastActivity = Date.now();
    if (this.state !== "preparing")
      throw aborted(
        `checkpoint '${this.checkpointId}' attempt ${this.attempt} was decided while this item streamed: ${this.decision?.reason ?? "it is being decided"}`,
      );
  }

  /** Records a durably staged item; the rank may now vote for it. */
  stage(t: SaveTicket, record: ItemRecord): void {
    this.checkLive();
    this.inflight.delete(`${t.rank}/${t.item}`);
    let items = this.staged.get(t.rank);
    if (!items) this.staged.set(t.rank, (items = new Map()));
    items.set(t.item, record);
  }

  /** Releases a reservation whose save failed; the rank may save the item again. */
  release(t: SaveTicket): void {
    this.inflight.delete(`${t.rank}/${t.item}`);
  }

  /**
   * Registers an open Save stream: `stop` is called (once) with ABORTED when the attempt is
   * decided while the stream is open, at once if it already is. Returns the unregistration.
   */
  watchStream(stop: (err: Error) => void): () => void {
    if (this.state !== "preparing") {
      stop(this.streamAbort(this.decision?.reason ?? "it is being decided"));
      return () => undefined;
    }
    this.streams.add(stop);
    return () => this.streams.delete(stop);
  }

  /** Ends every Save stream still open on the attempt; `why` says what was decided. */
  closeStreams(why: string): void {
    if (this.streams.size === 0) return;
    const err = this.streamAbort(why);
    const stops = [...this.streams];
    this.streams.clear();
    for (const stop of stops) stop(err);
  }

  private streamAbort(why: string): Error {
    return aborted(`checkpoint '${this.checkpointId}' attempt ${this.attempt} was decided while this item streamed: ${why}`);
  }

  decided(): Promise<Decision> {
    if (this.decision) return Promise.resolve(this.decision);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  settle(d: Decision): void {
    this.decision = d;
    this.state = "decided";
    this.closeStreams(d.outcome === "COMMITTED" ? "it was committed without this item" : d.reason || "it was aborted");
    for (const w of this.waiters.splice(0)) w.resolve(d);
  }

  /** The decision could not be recorded: voters learn that, never a guess. */
  fail(err: Error): void {
    this.failure = err;
    this.state = "decided";
    this.closeStreams(err.message);
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}

/** A reservation of (attempt, rank, item) held by one Save stream. */
export interface SaveTicket {
  readonly attempt: Attempt;
  readonly rank: number;
  readonly item: string;
  /** Staging directory of the item. */
  readonly dir: string;
}

/**
 * What the gRPC handlers need from the commit protocol. Implemented by the
 * coordinator (single node, or the coordinating node of a multi-node job) and by
 * ParticipantCoordinator (the other nodes, which relay to the coordinator).
 *
 * Call order per rank and checkpoint, for each item: beginSave, then on the ticket's
 * attempt checkLive per message and stage | release; then vote | abort.
 */
export interface CheckpointCoordinator {
  recover(): Promise<{ published: number; aborted: number }>;
  start(): void;
  stop(): void;
  inFlight(): number;
  hasUndecidedWork(): boolean;
  beginSave(ref: CheckpointRef, item: string): Promise<SaveTicket>;
  vote(ref: CheckpointRef, items: string[], attemptNo: number): Promise<Decision>;
  abort(ref: Omit<CheckpointRef, "step" | "worldSize">, reason: string, attemptNo: number): Promise<Decision>;
}

export class CommitCoordinator implements CheckpointCoordinator {
  /** The open (undecided or deciding) attempt of each checkpoint, by "job/id". */
  private readonly open = new Map<string, Attempt>();
  /** Highest attempt number ever used per "job/id" (from the decision records). */
  private readonly lastAttempt = new Map<string, number>();
  /** Attempts being created, by "job/id". */
  private readonly opening = new Map<string, Promise<Attempt>>();
  /** Decisions of recently closed attempts, by "job/id@n", for idempotent replies. */
  private readonly recent = new Map<string, Decision>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly dataDir: DataDir,
    private readonly catalog: Catalog,
    private readonly options: CoordinatorOptions,
    private readonly log: Logger,
  ) {}

  /**
   * Recovery at start (before serving): publishes decided-COMMIT attempts whose
   * rename did not happen, aborts every undecided attempt (presumed abort) and frees
   * its staging, and empties the trash.
   */
  async recover(): Promise<{ published: number; aborted: number }> {
    let published = 0;
    let abortedCount = 0;
    for (const job of await this.dataDir.listJobs()) {
      await this.dataDir.ensureJob(job);
      for (const f of await fsp.readdir(this.dataDir.decisionsDir(job))) {
        const m = /^(.+)@(\d+)\.json$/.exec(f);
        if (m?.[1] && m[2]) this.noteAttempt(`${job}/${m[1]}`, Number(m[2]));
        else if (f.includes(".tmp-")) await fsp.rm(path.join(this.dataDir.decisionsDir(job), f), { force: true });
      }
      for (const name of await fsp.readdir(this.dataDir.stagingRoot(job))) {
        const dir = path.join(this.dataDir.stagingRoot(job), name);
        const m = /^(.+)@(\d+)$/.exec(name);
        if (!m?.[1] || !m[2]) {
          await removeTree(dir);
          continue;
        }
        const [id, attempt] = [m[1], Number(m[2])];
        this.noteAttempt(`${job}/${id}`, attempt);
        const record = await this.readDecision(job, id, attempt);
        if (record?.outcome === "COMMITTED" && record.manifest) {
          if (!this.catalog.has(job, id)) {
            await this.publish(record.manifest);
            published++;
            this.log.info({ job, checkpoint: id, attempt }, "recovery: published a checkpoint whose COMMIT decision was durable");
            continue;
          }
        } else if (!record) {
          await this.writeDecision(job, id, {
            outcome: "ABORTED",
            reason: "the daemon restarted before the checkpoint was decided (presumed abort)",
            attempt,
            decidedAt: new Date().toISOString(),
          });
          abortedCount++;
          this.options.metrics?.aborts.inc({ reason: "restart" });
          this.log.info({ job, checkpoint: id, attempt }, "recovery: aborted an undecided checkpoint and freed its staging");
        }
        await removeTree(dir);
      }
      await fsyncDir(this.dataDir.stagingRoot(job));
      for (const name of await fsp.readdir(this.dataDir.trashDir(job))) await removeTree(path.join(this.dataDir.trashDir(job), name));
    }
    return { published, aborted: abortedCount };
  }

  /** Starts the prepare-timeout sweep. */
  start(): void {
    const every = Math.max(50, Math.min(1000, Math.floor(this.options.prepareTimeoutMs / 5)));
    this.timer = setInterval(() => this.sweep(), every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Checkpoints with an undecided attempt. */
  inFlight(): number {
    return this.open.size;
  }

  /** True while some attempt holds staged data or votes: a drain waits for these to be decided. */
  hasUndecidedWork(): boolean {
    for (const a of this.open.values())
      if (a.state !== "preparing" || a.staged.size > 0 || a.votes.size > 0 || a.inflight.size > 0) return true;
    return false;
  }

  /** Reserves (rank, item) in the checkpoint's open attempt, creating the attempt if needed. */
  async beginSave(ref: CheckpointRef, item: string): Promise<SaveTicket> {
    checkName("item", item);
    const attempt = await this.openAttempt(ref);
    return attempt.reserve(ref.rank, item);
  }

  /**
   * A rank's yes-vote. Resolves with the decision once it is durable; the caller
   * stops waiting when its deadline passes (the vote stays recorded).
   */
  async vote(ref: CheckpointRef, items: string[], attemptNo: number): Promise<Decision> {
    this.checkRef(ref);
    for (const item of items) checkName("item", item);
    const key = `${ref.job}/${ref.checkpointId}`;
    const current = this.open.get(key);
    if (attemptNo !== 0 && attemptNo !== current?.attempt) return this.pastDecision(ref, attemptNo);
    if (!current && this.catalog.has(ref.job, ref.checkpointId)) return this.committedDecision(ref);
    if (!current && items.length > 0) {
      // A vote naming items with no open attempt cannot belong to a new attempt (its
      // saves would have opened it): it is a retry, and gets the last decision.
      const last = this.lastAttempt.get(key) ?? (await this.scanAttempts(ref.job, ref.checkpointId));
      if (last > 0) return this.pastDecision(ref, last);
    }
    const attempt = current ?? (await this.openAttempt(ref));
    this.checkAgreement(attempt, ref);
    if (attempt.state === "preparing" && !attempt.votes.has(ref.rank)) {
      attempt.votes.set(ref.rank, [...new Set(items)]);
      attempt.lastActivity = Date.now();
      const staged = attempt.staged.get(ref.rank);
      const missing = items.filter((i) => !staged?.has(i));
      if (missing.length > 0) {
        void this.decide(
          attempt,
          "ABORTED",
          `rank ${ref.rank} voted for item(s) ${missing.map((m) => `'${m}'`).join(", ")} that it did not stage in attempt ${attempt.attempt}`,
        );
      } else if (attempt.votes.size === attempt.worldSize) {
        void this.decide(attempt, "COMMITTED", "");
      }
    }
    return attempt.decided();
  }

  /** A rank's no-vote: aborts the open attempt (or reports the decision already made). */
  async abort(ref: Omit<CheckpointRef, "step" | "worldSize">, reason: string, attemptNo: number): Promise<Decision> {
    checkName("job", ref.job);
    checkName("checkpoint_id", ref.checkpointId);
    const key = `${ref.job}/${ref.checkpointId}`;
    const current = this.open.get(key);
    if (attemptNo !== 0 && attemptNo !== current?.attempt) return this.pastDecision(ref, attemptNo);
    if (!current) {
      if (this.catalog.has(ref.job, ref.checkpointId)) return this.committedDecision(ref);
      const last = this.lastAttempt.get(key);
      if (last) return this.pastDecision(ref, last);
      throw failedPrecondition(`checkpoint '${ref.checkpointId}' of job '${ref.job}' has no attempt to abort`);
    }
    if (current.state === "preparing") void this.decide(current, "ABORTED", `rank ${ref.rank} aborted${reason ? `: ${reason}` : ""}`);
    return current.decided();
  }

  // --- Participants of a multi-node job call these through PeerService. ---

  /** The attempt a participant's rank stages into (opened if needed). */
  async openForPeer(ref: CheckpointRef): Promise<number> {
    const attempt = await this.openAttempt(ref);
    attempt.lastActivity = Date.now();
    return attempt.attempt;
  }

  /** Activity on a participant keeps the attempt from timing out; returns the decision once made. */
  async heartbeat(job: string, id: string, attemptNo: number, active: boolean): Promise<Decision | undefined> {
    const current = this.open.get(`${job}/${id}`);
    if (current?.attempt === attemptNo) {
      if (active) current.lastActivity = Date.now();
      return current.decision;
    }
    return this.pastDecision({ job, checkpointId: id }, attemptNo);
  }

  /** A rank's vote relayed by the participant that staged (and fsynced) its items. */
  async peerVote(ref: CheckpointRef, attemptNo: number, records: ItemRecord[]): Promise<Decision> {
    this.checkRef(ref);
    const current = this.open.get(`${ref.job}/${ref.checkpointId}`);
    if (!current || current.attempt !== attemptNo) return this.pastDecision(ref, attemptNo);
    this.checkAgreement(current, ref);
    if (current.state === "preparing" && !current.votes.has(ref.rank)) {
      const items = new Map<string, ItemRecord>();
      for (const r of records) {
        checkName("item", r.name);
        items.set(r.name, r);
      }
      current.staged.set(ref.rank, items);
    }
    return this.vote(
      ref,
      records.map((r) => r.name),
      attemptNo,
    );
  }

  /** A participant's no-vote on an attempt. */
  async peerAbort(job: string, id: string, attemptNo: number, reason: string): Promise<Decision> {
    const current = this.open.get(`${job}/${id}`);
    if (!current || current.attempt !== attemptNo) return this.pastDecision({ job, checkpointId: id }, attemptNo);
    if (current.state === "preparing") void this.decide(current, "ABORTED", reason);
    return current.decided();
  }

  /** The durable decision of an attempt, or undefined while it is open. */
  async decisionOf(job: string, id: string, attemptNo: number): Promise<Decision | undefined> {
    const current = this.open.get(`${job}/${id}`);
    if (current?.attempt === attemptNo) return current.decision;
    return this.pastDecision({ job, checkpointId: id }, attemptNo);
  }

  private checkRef(ref: CheckpointRef): void {
    checkName("job", ref.job);
    checkName("checkpoint_id", ref.checkpointId);
    if (ref.checkpointId === "latest") throw invalidArgument(`checkpoint_id 'latest' is reserved; name the checkpoint after its step`);
    if (!Number.isInteger(ref.worldSize) || ref.worldSize < 1) throw invalidArgument(`world_size must be at least 1 (rank ${ref.rank})`);
    if (!Number.isInteger(ref.rank) || ref.rank >= ref.worldSize)
      throw invalidArgument(`rank ${ref.rank} is out of range for world_size ${ref.worldSize}`);
    if (!Number.isSafeInteger(ref.step) || ref.step < 0) throw invalidArgument(`step ${ref.step} must be a non-negative integer`);
  }

  private checkAgreement(attempt: Attempt, ref: CheckpointRef): void {
    if (attempt.worldSize !== ref.worldSize)
      throw failedPrecondition(
        `rank ${ref.rank} says world_size ${ref.worldSize} but checkpoint '${ref.checkpointId}' attempt ${attempt.attempt} has world_size ${attempt.worldSize}`,
      );
    if (attempt.step !== ref.step)
      throw failedPrecondition(
        `rank ${ref.rank} says step ${ref.step} but checkpoint '${ref.checkpointId}' attempt ${attempt.attempt} is at step ${attempt.step}`,
      );
  }

  /** The open attempt of a checkpoint, or a new one; refuses committed checkpoints. */
  private async openAttempt(ref: CheckpointRef): Promise<Attempt> {
    this.checkRef(ref);
    const key = `${ref.job}/${ref.checkpointId}`;
    let attempt = this.open.get(key);
    if (!attempt) {
      // One opener per checkpoint at a time: concurrent ranks share its result.
      let opening = this.opening.get(key);
      if (!opening) {
        opening = this.createAttempt(ref, key).finally(() => this.opening.delete(key));
        this.opening.set(key, opening);
      }
      attempt = await opening;
    }
    this.checkAgreement(attempt, ref);
    if (attempt.state !== "preparing") {
      const d = await attempt.decided();
      if (d.outcome === "COMMITTED")
        throw failedPrecondition(
          `checkpoint '${ref.checkpointId}' of job '${ref.job}' is already committed; committed checkpoints are never overwritten`,
        );
      return this.openAttempt(ref);
    }
    return attempt;
  }

  private async createAttempt(ref: CheckpointRef, key: string): Promise<Attempt> {
    if (this.catalog.has(ref.job, ref.checkpointId))
      throw failedPrecondition(
        `checkpoint '${ref.checkpointId}' of job '${ref.job}' is already committed; committed checkpoints are never overwritten`,
      );
    await this.dataDir.ensureJob(ref.job);
    const prev = this.lastAttempt.get(key) ?? (await this.scanAttempts(ref.job, ref.checkpointId));
    if (prev > 0 && (await this.readDecision(ref.job, ref.checkpointId, prev))?.outcome === "COMMITTED")
      throw failedPrecondition(
        `checkpoint '${ref.checkpointId}' of job '${ref.job}' was committed (and since deleted); committed ids are never reused`,
      );
    const n = prev + 1;
    this.noteAttempt(key, n);
    // The staging directory exists before anyone hears the attempt number, so a
    // restart finds it, records ABORT for it and never hands the number out again.
    const dir = this.dataDir.stagingDir(ref.job, ref.checkpointId, n);
    await fsp.mkdir(dir, { recursive: true });
    await fsyncDir(this.dataDir.stagingRoot(ref.job));
    const attempt = new Attempt(ref.job, ref.checkpointId, n, ref.step, ref.worldSize, dir);
    this.open.set(key, attempt);
    this.log.info(
      { job: ref.job, checkpoint: ref.checkpointId, attempt: n, step: ref.step, worldSize: ref.worldSize },
      "checkpoint attempt opened",
    );
    return attempt;
  }

  private noteAttempt(key: string, n: number): void {
    if (n > (this.lastAttempt.get(key) ?? 0)) this.lastAttempt.set(key, n);
  }

  private async scanAttempts(job: string, id: string): Promise<number> {
    let max = 0;
    const files = await fsp.readdir(this.dataDir.decisionsDir(job)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return [] as string[];
      throw err;
    });
    for (const f of files) {
      const m = /^(.+)@(\d+)\.json$/.exec(f);
      if (m?.[1] === id) max = Math.max(max, Number(m[2]));
    }
    return max;
  }

  private async decide(attempt: Attempt, outcome: Outcome, reason: string): Promise<void> {
    if (attempt.state !== "preparing") return;
    attempt.state = "deciding";
    // Streams still open cannot take part any more: they end now, not at their next message.
    attempt.closeStreams(outcome === "COMMITTED" ? "it is being committed without this item" : reason);
    const { job, checkpointId: id, attempt: n } = attempt;
    const logCtx = { job, checkpoint: id, attempt: n };
    let decision: Decision;
    let durable = false;
    try {
      const record: DecisionRecord = { outcome, reason, attempt: n, decidedAt: new Date().toISOString() };
      if (outcome === "COMMITTED") record.manifest = this.buildManifest(attempt, record.decidedAt);
      await this.writeDecision(job, id, record);
      durable = true;
      if (this.options.fault === "crash-after-decision" && outcome === "COMMITTED") {
        this.log.warn(logCtx, "fault point crash-after-decision: killing the daemon");
        process.kill(process.pid, "SIGKILL");
        await new Promise(() => {});
      }
      if (record.manifest) {
        const summary = await this.publish(record.manifest);
        decision = { outcome, reason, attempt: n, checkpoint: summary };
        await this.options.onCommitted?.(summary).catch((err: unknown) => this.log.error({ ...logCtx, err }, "post-commit hook failed"));
        this.log.info(
          { ...logCtx, step: attempt.step, rawBytes: summary.rawBytes, storedBytes: summary.storedBytes },
          "checkpoint committed",
        );
        this.options.metrics?.commits.inc();
      } else {
        decision = { outcome, reason, attempt: n };
        this.log.warn({ ...logCtx, reason }, "checkpoint aborted");
        this.options.metrics?.aborts.inc({ reason: abortReason(reason) });
        void removeTree(attempt.dir).catch((err: unknown) => this.log.error({ ...logCtx, err }, "could not free aborted staging"));
      }
    } catch (err) {
      // Nobody may be told an outcome that is not durable. A durable COMMIT whose
      // publish failed is published by recovery at the next start.
      this.log.error({ ...logCtx, err, outcome, durable }, "could not record or apply the decision");
      this.open.delete(`${job}/${id}`);
      attempt.fail(
        unavailable(
          durable
            ? `checkpoint '${id}' was decided ${outcome} but publishing failed (${(err as Error).message}); it is published when the daemon restarts`
            : `the daemon could not record the decision for checkpoint '${id}' (${(err as Error).message}); retry the checkpoint`,
        ),
      );
      return;
    }
    this.open.delete(`${job}/${id}`);
    this.remember(`${job}/${id}@${n}`, decision);
    attempt.settle(decision);
  }

  private buildManifest(attempt: Attempt, decidedAt: string): Manifest {
    const ranks: RankRecord[] = [];
    let rawBytes = 0;
    let storedBytes = 0;
    for (const [rank, names] of [...attempt.votes.entries()].sort((a, b) => a[0] - b[0])) {
      const items = names.map((name) => attempt.staged.get(rank)!.get(name)!);
      for (const i of items) {
        rawBytes += i.rawBytes;
        storedBytes += i.storedBytes;
      }
      ranks.push({ rank, items });
    }
    return {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      job: attempt.job,
      checkpointId: attempt.checkpointId,
      step: attempt.step,
      worldSize: attempt.worldSize,
      attempt: attempt.attempt,
      commitTime: decidedAt,
      rawBytes,
      storedBytes,
      ranks,
    };
  }

  /** Phase 2 of a COMMIT: drop unvoted items, write the manifest last, rename into checkpoints/. */
  private async publish(manifest: Manifest): Promise<CheckpointSummary> {
    const { job, checkpointId: id, attempt } = manifest;
    const staging = this.dataDir.stagingDir(job, id, attempt);
    const keep = new Set(manifest.ranks.flatMap((r) => r.items.map((i) => itemDirName(r.rank, i.name))));
    for (const rankDir of await fsp.readdir(staging).catch(() => [] as string[])) {
      if (!rankDir.startsWith("rank-")) {
        await removeTree(path.join(staging, rankDir));
        continue;
      }
      for (const item of await fsp.readdir(path.join(staging, rankDir)))
        if (!keep.has(`${rankDir}/${item}`)) await removeTree(path.join(staging, rankDir, item));
    }
    await fsp.mkdir(staging, { recursive: true });
    await writeFileDurable(path.join(staging, "manifest.json"), JSON.stringify(manifest));
    await fsp.rename(staging, this.dataDir.checkpointDir(job, id));
    await fsyncDir(this.dataDir.checkpointsDir(job));
    await fsyncDir(this.dataDir.stagingRoot(job));
    const summary = summarize(manifest);
    this.catalog.add(summary);
    return summary;
  }

  private async writeDecision(job: string, id: string, record: DecisionRecord): Promise<void> {
    await writeFileDurable(this.dataDir.decisionFile(job, id, record.attempt), JSON.stringify(record));
  }

  private async readDecision(job: string, id: string, attempt: number): Promise<DecisionRecord | undefined> {
    try {
      return JSON.parse(await fsp.readFile(this.dataDir.decisionFile(job, id, attempt), "utf8")) as DecisionRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  /** The decision of a closed attempt, from memory or from its durable record. */
  private async pastDecision(ref: { job: string; checkpointId: string }, attemptNo: number): Promise<Decision> {
    const key = `${ref.job}/${ref.checkpointId}@${attemptNo}`;
    const hit = this.recent.get(key);
    if (hit) return hit;
    const record = await this.readDecision(ref.job, ref.checkpointId, attemptNo);
    if (!record) throw failedPrecondition(`checkpoint '${ref.checkpointId}' of job '${ref.job}' has no attempt ${attemptNo}`);
    if (record.outcome === "COMMITTED" && this.catalog.has(ref.job, ref.checkpointId)) return this.committedDecision(ref);
    return { outcome: record.outcome, reason: record.reason || (record.outcome === "COMMITTED" ? "" : "aborted"), attempt: attemptNo };
  }

  private committedDecision(ref: { job: string; checkpointId: string }): Decision {
    const checkpoint = this.catalog.get(ref.job, ref.checkpointId);
    return { outcome: "COMMITTED", reason: "", attempt: checkpoint.attempt, checkpoint };
  }

  private remember(key: string, d: Decision): void {
    this.recent.set(key, d);
    if (this.recent.size > 10_000) this.recent.delete(this.recent.keys().next().value!);
  }

  private sweep(): void {
    const now = Date.now();
    for (const attempt of this.open.values()) {
      if (attempt.state !== "preparing") continue;
      if (now - attempt.lastActivity < this.options.prepareTimeoutMs) continue;
      const missing: number[] = [];
      for (let r = 0; r < attempt.worldSize; r++) if (!attempt.votes.has(r)) missing.push(r);
      void this.decide(
        attempt,
        "ABORTED",
        `prepare timeout: no activity for ${this.options.prepareTimeoutMs} ms and rank(s) ${summarizeRanks(missing)} did not vote`,
      );
    }
  }
}

function summarizeRanks(ranks: number[]): string {
  return ranks.length > 16 ? `${ranks.slice(0, 16).join(", ")}, … (${ranks.length} in all)` : ranks.join(", ");
}
