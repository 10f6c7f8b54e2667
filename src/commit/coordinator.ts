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
 *
 * Faults (a full disk) at each step:
 *   decision record not written   the COMMIT cannot have happened: the attempt is aborted
 *                                 (staging freed, an ABORT record written, or retried in the
 *                                 background) and voters hear ABORTED with the reason.
 *   manifest / publish / event    the decision is durable: voters hear UNAVAILABLE
 *                                 ("decided COMMITTED, not yet visible; retry Commit") and
 *                                 the publish and event append are retried, in commit order,
 *                                 in the background and on every retried Commit; a COMMIT is
 *                                 acknowledged only once it is listed and its event logged.
 */
import type { Logger } from "pino";
import type { Catalog } from "../catalog/catalog.js";
import { CkptdError, dataLoss, failedPrecondition, invalidArgument, unavailable } from "../common/errors.js";
import {
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  storedFileSizes,
  summarize,
  validateManifest,
  type CheckpointSummary,
  type ItemRecord,
  type Manifest,
  type RankRecord,
} from "../catalog/manifest.js";
import { injectFault } from "../common/faults.js";
import type { AbortReason, Metrics } from "../common/metrics.js";
import { checkRef, DEFAULT_MAX_WORLD_SIZE, missingRanks } from "../common/limits.js";
import { checkName } from "../common/names.js";
import { isTmpName, itemDirName, joinKey, layout, parseAttemptName, parseDecisionName } from "../store/layout.js";
import { ensureJob, getText, listJobs, quarantine, type Storage } from "../store/storage.js";
import { Attempt } from "./attempt.js";
import { shrinkDecision, type Decision, type DecisionRecord, type Outcome } from "./decisions.js";
import type { CheckpointCoordinator, CheckpointRef, PeerCoordinator, SaveTicket } from "./protocol.js";

/** A durable COMMIT not yet listed and logged (publish or event append failed). */
interface InvisibleCommit {
  attempt: Attempt;
  manifest: Manifest;
  /** Set once the staging directory is renamed into checkpoints/. */
  summary?: CheckpointSummary;
  lastError?: Error;
}

export interface CoordinatorOptions {
  /** An undecided attempt with no activity for this long is aborted. */
  prepareTimeoutMs: number;
  /** Largest world_size a checkpoint may have. @default 65536 */
  maxWorldSize?: number;
  /**
   * Most (checkpoint, rank) incarnations remembered for refusing late messages of dead
   * incarnations once their attempt is closed; the least recently fenced checkpoints are
   * forgotten first (an open attempt still fences with its own record). @default 262144
   */
  maxRememberedIncarnations?: number;
  /** Test-only fault point. */
  fault?: "crash-after-decision" | undefined;
  /**
   * Called once a checkpoint is published, before the voters are told (so watchers
   * hear of a commit no later than the trainer does): appends its event, calling
   * `beforeWake` once the event is durable and before subscribers wake. Part of the
   * commit: while it fails, the commit is not acknowledged and it is retried.
   */
  onCommitted?: (checkpoint: CheckpointSummary, beforeWake: () => void) => Promise<void>;
  /** Called once a commit is visible (listed and logged), e.g. to run retention. */
  onVisible?: (checkpoint: CheckpointSummary) => void;
  metrics?: Metrics;
}

const DEFAULT_MAX_REMEMBERED_INCARNATIONS = 262_144;

export class CommitCoordinator implements CheckpointCoordinator, PeerCoordinator {
  /** The open (undecided or deciding) attempt of each checkpoint, by "job/id". */
  private readonly open = new Map<string, Attempt>();
  /** Highest attempt number ever used per "job/id" (from the decision records). */
  private readonly lastAttempt = new Map<string, number>();
  /** Attempts being created, by "job/id". */
  private readonly opening = new Map<string, Promise<Attempt>>();
  /** Decisions of recently closed attempts, by "job/id@n", for idempotent replies. */
  private readonly recent = new Map<string, Decision>();
  /** Per job, durable COMMITs not yet visible, in decision order (events keep commit order). */
  private readonly invisible = new Map<string, InvisibleCommit[]>();
  /** Per job, the chain that publishes and logs invisible COMMITs one at a time. */
  private readonly visibleChain = new Map<string, Promise<void>>();
  /** Jobs whose chain is running, so the background retry does not pile up behind it. */
  private readonly makingVisible = new Set<string>();
  /**
   * Per "job/id", the newest incarnation each rank used for the checkpoint, in any
   * attempt: older ones are refused. Bounded (maxRememberedIncarnations); lost on a
   * daemon restart, when recovery aborts every undecided attempt anyway.
   */
  private readonly incarnations = new Map<string, Map<number, number>>();
  private rememberedIncarnations = 0;
  /** ABORT records that could not be written yet, by "job/id@n" (the abort holds anyway: its staging is gone). */
  private readonly unwrittenAborts = new Map<string, { job: string; id: string; record: DecisionRecord }>();
  /** Staging of aborted attempts that could not be freed (the storage was unreachable): retried by the sweep. */
  private readonly unfreedStaging = new Map<string, { job: string; checkpoint: string; attempt: number }>();
  /** Staging being freed right now (a sweep does not start a second deletion of it). */
  private readonly freeing = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly storage: Storage,
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
    for (const job of await listJobs(this.storage)) {
      await ensureJob(this.storage, job);
      const records: { id: string; attempt: number }[] = [];
      for (const f of await this.storage.list(layout.decisions(job))) {
        const parsed = parseDecisionName(f);
        if (parsed) {
          this.noteAttempt(`${job}/${parsed.checkpointId}`, parsed.attempt);
          records.push({ id: parsed.checkpointId, attempt: parsed.attempt });
        } else if (isTmpName(f)) await this.storage.delete(joinKey(layout.decisions(job), f));
      }
      const staged = new Set<string>();
      for (const name of await this.storage.list(layout.stagingRoot(job))) {
        const parsed = parseAttemptName(name);
        if (parsed) this.noteAttempt(`${job}/${parsed.checkpointId}`, parsed.attempt);
      }
      // Checkpoints whose deletion had begun (their manifest is in the trash, emptied below).
      const trashed = new Set((await this.storage.list(layout.trash(job))).map((n) => n.slice(0, n.lastIndexOf("."))));
      for (const name of await this.storage.list(layout.stagingRoot(job))) {
        const dir = joinKey(layout.stagingRoot(job), name);
        const parsed = parseAttemptName(name);
        if (!parsed) {
          await this.storage.deletePrefix(dir);
          continue;
        }
        const { checkpointId: id, attempt } = parsed;
        // On an object store a published checkpoint's data stays in its attempt's staging
        // (Storage.dataPrefix): kept while the checkpoint is, freed when its deletion had begun.
        if (this.storage.dataPrefix(job, id, attempt) === dir) {
          if (this.catalog.has(job, id) && this.catalog.get(job, id).attempt === attempt) continue;
          if (trashed.has(id)) {
            await this.storage.deletePrefix(dir);
            this.log.info({ job, checkpoint: id, attempt }, "recovery: freed the data of a checkpoint whose deletion had begun");
            continue;
          }
        }
        staged.add(`${id}@${attempt}`);
        let record: DecisionRecord | undefined;
        let manifest: Manifest | undefined;
        try {
          record = await this.readDecision(job, id, attempt);
          if (record?.outcome === "COMMITTED" && record.manifest && !this.catalog.has(job, id)) {
            manifest = validateManifest(record.manifest, `the manifest in ${this.storage.where(layout.decision(job, id, attempt))}`);
            // Publishing renames the staging the manifest names: it must be this one.
            if (manifest.job !== job || manifest.checkpointId !== id || manifest.attempt !== attempt)
              throw invalidArgument(
                `its manifest describes attempt ${manifest.attempt} of '${manifest.checkpointId}' of job '${manifest.job}'`,
              );
          }
        } catch (err) {
          if (!(err instanceof SyntaxError || err instanceof CkptdError)) throw err;
          // A damaged decision record must not keep the daemon from starting, nor may
          // its staging be published or thrown away on a guess: it is set aside.
          const reason = `the decision record of attempt ${attempt} is unusable: ${(err as Error).message}`;
          const to = this.storage.where(await quarantine(this.storage, job, id, dir, reason));
          this.options.metrics?.quarantined.inc();
          this.log.warn({ job, checkpoint: id, attempt, quarantinedTo: to, reason }, "recovery: quarantined a staged attempt");
          continue;
        }
        if (record?.outcome === "COMMITTED" && record.manifest) {
          if (manifest) {
            this.catalog.add(await this.publish(manifest));
            published++;
            this.log.info({ job, checkpoint: id, attempt }, "recovery: published a checkpoint whose COMMIT decision was durable");
            continue;
          }
        } else if (!record && attempt < (this.lastAttempt.get(`${job}/${id}`) ?? 0)) {
          // A later attempt exists, so this one was decided ABORTED (its record pruned, or
          // never written on a full disk): only its staging is left to free.
          this.log.info({ job, checkpoint: id, attempt }, "recovery: freed the staging of a superseded attempt");
        } else if (!record) {
          const held = await this.writeDecision(job, id, {
            outcome: "ABORTED",
            reason: "the daemon restarted before the checkpoint was decided (presumed abort)",
            attempt,
            decidedAt: new Date().toISOString(),
          });
          // Another coordinator committed it meanwhile: its staging is that checkpoint's data.
          if (held?.outcome === "COMMITTED") continue;
          abortedCount++;
          this.options.metrics?.aborts.inc({ reason: "restart" });
          this.log.info({ job, checkpoint: id, attempt }, "recovery: aborted an undecided checkpoint and freed its staging");
        }
        await this.storage.deletePrefix(dir);
      }
      await this.storage.syncList(layout.stagingRoot(job));
      for (const name of await this.storage.list(layout.trash(job))) await this.storage.deletePrefix(joinKey(layout.trash(job), name));
      await this.compactDecisions(job, records, staged);
    }
    return { published, aborted: abortedCount };
  }

  /**
   * Keeps decisions/ bounded: per checkpoint id only the highest attempt's record stays
   * (lower attempts were necessarily aborted, and the highest keeps numbers from being
   * reused), and a deleted checkpoint's COMMIT record becomes a tombstone (a crash
   * between a deletion and its shrink left it whole).
   */
  private async compactDecisions(job: string, records: { id: string; attempt: number }[], staged: Set<string>): Promise<void> {
    for (const { id, attempt } of records) {
      if (attempt < (this.lastAttempt.get(`${job}/${id}`) ?? 0)) {
        await this.storage.delete(layout.decision(job, id, attempt));
      } else if (!this.catalog.has(job, id) && !staged.has(`${id}@${attempt}`)) {
        await shrinkDecision(this.storage, job, id, attempt).catch((err: unknown) =>
          this.log.warn({ err, job, checkpoint: id }, "could not shrink a deleted checkpoint's decision record"),
        );
      }
    }
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
    let n = this.open.size;
    for (const q of this.invisible.values()) n += q.length;
    return n;
  }

  /**
   * True while some attempt holds staged data or votes and saw activity in the last
   * `activeWithinMs`: a drain waits for these to be decided. One nobody touched for that
   * long was left by trainers that died (a drain refuses new saves, so it cannot complete):
   * the drain does not wait for it, and recovery aborts it at the next start.
   */
  hasUndecidedWork(activeWithinMs = Infinity): boolean {
    // A durable COMMIT still being published is work a drain lets finish.
    for (const q of this.invisible.values()) if (q.length > 0) return true;
    const since = Date.now() - activeWithinMs;
    for (const a of this.open.values()) {
      if (a.state !== "preparing" || a.savesInProgress > 0) return true;
      if ((a.staged.size > 0 || a.votes.size > 0) && a.lastActivity >= since) return true;
    }
    return false;
  }

  /** Reserves (rank, item) in the checkpoint's open attempt, creating the attempt if needed. */
  async beginSave(ref: CheckpointRef, item: string): Promise<SaveTicket> {
    checkName("item", item);
    for (;;) {
      await this.fence(ref);
      const attempt = await this.openAttempt(ref);
      if (this.enter(attempt, ref)) return attempt.reserve(ref.rank, item);
    }
  }

  /**
   * A rank's yes-vote. Resolves with the decision once it is durable; the caller
   * stops waiting when its deadline passes (the vote stays recorded).
   */
  async vote(ref: CheckpointRef, items: string[], attemptNo: number): Promise<Decision> {
    this.checkRef(ref);
    for (const item of items) checkName("item", item);
    await this.fence(ref);
    const key = `${ref.job}/${ref.checkpointId}`;
    const current = this.open.get(key);
    // An attempt being opened has its number but is not open yet: vote once it is.
    const opening = current ? undefined : this.opening.get(key);
    if (opening) {
      await opening.catch(() => undefined);
      return this.vote(ref, items, attemptNo);
    }
    const invisible = this.invisibleCommit(ref.job, ref.checkpointId);
    if (invisible && (attemptNo === 0 || attemptNo === invisible.attempt.attempt)) return this.awaitVisible(invisible);
    if (attemptNo !== 0 && attemptNo !== current?.attempt) return this.pastDecision(ref, attemptNo);
    if (!current && this.catalog.has(ref.job, ref.checkpointId)) return this.committedDecision(ref);
    if (!current && items.length > 0) {
      // A vote naming items with no open attempt cannot belong to a new attempt (its
      // saves would have opened it): it is a retry, and gets the last decision.
      const last = this.lastAttempt.get(key) ?? (await this.scanAttempts(ref.job, ref.checkpointId));
      if (last > 0) return this.pastDecision(ref, last);
    }
    if (current && attemptNo === 0 && items.length > 0 && ref.incarnation && current.attempt > 1 && !current.incarnations.has(ref.rank)) {
      // This incarnation saved nothing into the open attempt (its saves would have entered
      // it), so its vote names items of an earlier one, e.g. a retry from before a daemon
      // restart: it gets that attempt's decision and has no say in this one.
      return this.pastDecision(ref, current.attempt - 1);
    }
    const attempt = current ?? (await this.openAttempt(ref));
    this.checkAgreement(attempt, ref);
    // A newer incarnation of the rank entered meanwhile (or this one must fence first).
    if (!this.enter(attempt, ref)) return this.vote(ref, items, attemptNo);
    if (attempt.state === "preparing" && !attempt.votes.has(ref.rank)) {
      attempt.recordVote(ref.rank, [...new Set(items)]);
      attempt.touch();
      const staged = attempt.staged.get(ref.rank);
      const missing = items.filter((i) => !staged?.has(i));
      if (missing.length > 0) {
        void this.decide(
          attempt,
          "ABORTED",
          `rank ${ref.rank} voted for item(s) ${missing.map((m) => `'${m}'`).join(", ")} that it did not stage in attempt ${attempt.attempt}`,
          "missing_item",
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
    const fenced = await this.fence(ref);
    // A restarted rank's Abort is about the attempt its previous process left open, which
    // the fence just aborted: a fresh attempt another rank opened meanwhile is not its to abort.
    if (fenced && attemptNo === 0) return fenced;
    const key = `${ref.job}/${ref.checkpointId}`;
    const current = this.open.get(key);
    if (attemptNo !== 0 && attemptNo !== current?.attempt) return this.pastDecision(ref, attemptNo);
    if (!current) {
      // An attempt being opened has its number but is not open yet: abort it once it is.
      const opening = this.opening.get(key);
      if (opening) {
        await opening.catch(() => undefined);
        return this.abort(ref, reason, attemptNo);
      }
      if (this.catalog.has(ref.job, ref.checkpointId)) return this.committedDecision(ref);
      const last = this.lastAttempt.get(key) ?? (await this.scanAttempts(ref.job, ref.checkpointId));
      if (last) return this.pastDecision(ref, last);
      return this.abortUnopened(ref, reason);
    }
    if (current.state === "preparing")
      void this.decide(current, "ABORTED", `rank ${ref.rank} aborted${reason ? `: ${reason}` : ""}`, "rank_abort");
    return current.decided();
  }

  /**
   * A rank that fails before anything was saved still votes no: the checkpoint gets an
   * attempt decided ABORTED at once (durably, so its number is never reused), and the
   * next save of it opens a new attempt.
   */
  private async abortUnopened(ref: Omit<CheckpointRef, "step" | "worldSize">, reason: string): Promise<Decision> {
    const key = `${ref.job}/${ref.checkpointId}`;
    await ensureJob(this.storage, ref.job);
    const scanned = this.lastAttempt.get(key) ?? (await this.scanAttempts(ref.job, ref.checkpointId));
    // A save may have opened an attempt meanwhile: then that one is what this rank aborts.
    const opening = this.opening.get(key);
    if (opening) await opening.catch(() => undefined);
    if (opening || this.open.has(key)) return this.abort(ref, reason, 0);
    // No await from the check to here: the number is taken before any save can take it.
    const n = Math.max(scanned, this.lastAttempt.get(key) ?? 0) + 1;
    this.noteAttempt(key, n);
    const decision: Decision = {
      outcome: "ABORTED",
      reason: `rank ${ref.rank} aborted before anything was saved${reason ? `: ${reason}` : ""}`,
      attempt: n,
    };
    // Known before its record is durable: another rank of the job aborting the same checkpoint
    // meanwhile (every rank of a restarted job does) finds this decision, not an attempt with
    // neither a record nor staging. An ABORT holds without its record (presumed abort); a record
    // that cannot be written is retried, as in decide.
    this.remember(`${key}@${n}`, decision);
    const record: DecisionRecord = { ...decision, decidedAt: new Date().toISOString() };
    try {
      await this.writeDecision(ref.job, ref.checkpointId, record);
    } catch (err) {
      this.log.error({ job: ref.job, checkpoint: ref.checkpointId, attempt: n, err }, "could not record the decision");
      this.unwrittenAborts.set(`${key}@${n}`, { job: ref.job, id: ref.checkpointId, record });
    }
    this.options.metrics?.aborts.inc({ reason: "rank_abort" });
    this.log.warn({ job: ref.job, checkpoint: ref.checkpointId, attempt: n, reason: decision.reason }, "checkpoint aborted");
    return decision;
  }

  /**
   * Incarnation fencing, before a message of a rank touches the checkpoint: a message of
   * an older incarnation than the rank already used for the checkpoint is refused and
   * changes nothing; the first message of a newer one durably aborts the open attempt
   * the rank took part in with an older one (a restarted trainer must not wait for the
   * prepare timeout of its own past, nor be refused as a duplicate), and returns its
   * decision once made, so the message goes on in a new attempt.
   */
  private async fence(ref: {
    job: string;
    checkpointId: string;
    rank: number;
    incarnation?: number | undefined;
  }): Promise<Decision | undefined> {
    const inc = ref.incarnation ?? 0;
    if (inc === 0) return undefined;
    if (!Number.isSafeInteger(inc) || inc < 0)
      throw invalidArgument(`incarnation ${inc} of rank ${ref.rank} is out of range: it must be an integer below 2^53`);
    const key = `${ref.job}/${ref.checkpointId}`;
    const ranks = this.incarnations.get(key);
    const known = ranks?.get(ref.rank) ?? 0;
    if (inc < known) throw this.superseded(ref, inc, known);
    if (inc > known) this.rememberIncarnation(key, ref.rank, inc);
    const current = this.open.get(key);
    const used = current?.incarnations.get(ref.rank);
    if (current && used !== undefined && used < inc) {
      void this.decide(current, "ABORTED", `rank ${ref.rank} restarted (incarnation ${used} → ${inc})`, "restart");
      // A COMMIT already being decided stands: the new attempt is then refused as committed.
      return current.decided().catch(() => undefined);
    }
    return undefined;
  }

  /**
   * Records the rank's incarnation in the attempt a message is about to touch. False when
   * the rank used an older incarnation there (a newer one raced past fence): fence again.
   */
  private enter(attempt: Attempt, ref: { job: string; checkpointId: string; rank: number; incarnation?: number | undefined }): boolean {
    const inc = ref.incarnation ?? 0;
    if (inc === 0) return true;
    const known = this.incarnations.get(`${ref.job}/${ref.checkpointId}`)?.get(ref.rank) ?? 0;
    if (inc < known) throw this.superseded(ref, inc, known);
    const used = attempt.incarnations.get(ref.rank);
    if (used !== undefined && used > inc) throw this.superseded(ref, inc, used);
    if (used !== undefined && used < inc && attempt.state === "preparing") return false;
    attempt.enterIncarnation(ref.rank, inc);
    return true;
  }

  private superseded(ref: { checkpointId: string; rank: number }, inc: number, newer: number): CkptdError {
    return failedPrecondition(
      `checkpoint '${ref.checkpointId}': incarnation ${inc} of rank ${ref.rank} is superseded by a newer incarnation of rank ${ref.rank} ` +
        `(${newer}); a message of a restarted trainer's previous process changes nothing`,
    );
  }

  private rememberIncarnation(key: string, rank: number, inc: number): void {
    let ranks = this.incarnations.get(key);
    if (ranks)
      this.incarnations.delete(key); // re-inserted below: most recently fenced last
    else ranks = new Map();
    if (!ranks.has(rank)) this.rememberedIncarnations++;
    ranks.set(rank, inc);
    this.incarnations.set(key, ranks);
    for (const [k, r] of this.incarnations) {
      if (this.rememberedIncarnations <= (this.options.maxRememberedIncarnations ?? DEFAULT_MAX_REMEMBERED_INCARNATIONS) || k === key)
        break;
      this.forgetIncarnations(k, r);
    }
  }

  private forgetIncarnations(key: string, ranks = this.incarnations.get(key)): void {
    if (!ranks) return;
    this.rememberedIncarnations -= ranks.size;
    this.incarnations.delete(key);
  }

  // --- Participants of a multi-node job call these through PeerService. ---

  /** The attempt a participant's rank stages into (opened if needed). */
  async openForPeer(ref: CheckpointRef): Promise<number> {
    for (;;) {
      await this.fence(ref);
      const attempt = await this.openAttempt(ref);
      if (!this.enter(attempt, ref)) continue;
      attempt.touch();
      return attempt.attempt;
    }
  }

  /** Activity on a participant keeps the attempt from timing out; returns the decision once made. */
  async heartbeat(job: string, id: string, attemptNo: number, active: boolean): Promise<Decision | undefined> {
    checkName("job", job);
    checkName("checkpoint_id", id);
    const current = this.open.get(`${job}/${id}`);
    if (current?.attempt === attemptNo) {
      if (active) current.touch();
      return current.decision;
    }
    // Not visible yet: a participant told COMMITTED now would acknowledge it early.
    if (this.invisibleCommit(job, id)?.attempt.attempt === attemptNo) return undefined;
    return this.pastDecision({ job, checkpointId: id }, attemptNo);
  }

  /**
   * A rank's vote relayed by the participant that staged (and fsynced) its items. The
   * records were validated by the handler (validateItemRecord); before they can enter a
   * manifest, the staged files they describe must exist in the attempt's shared staging
   * directory with the declared sizes, else the attempt aborts (as for a missing item).
   */
  async peerVote(ref: CheckpointRef, attemptNo: number, records: ItemRecord[]): Promise<Decision> {
    this.checkRef(ref);
    await this.fence(ref);
    const current = this.open.get(`${ref.job}/${ref.checkpointId}`);
    if (!current || current.attempt !== attemptNo) return this.pastDecision(ref, attemptNo);
    this.checkAgreement(current, ref);
    if (!this.enter(current, ref)) return this.peerVote(ref, attemptNo, records);
    const items = new Map<string, ItemRecord>();
    for (const r of records) {
      checkName("item", r.name);
      if (items.has(r.name)) throw invalidArgument(`rank ${ref.rank}'s vote names item '${r.name}' twice`);
      items.set(r.name, r);
    }
    if (current.state === "preparing" && !current.votes.has(ref.rank)) {
      const problem = await stagedFilesProblem(this.storage, current.key, ref.rank, records);
      // The attempt may have been decided while the files were checked.
      if (current.state === "preparing" && !current.votes.has(ref.rank)) {
        if (problem) {
          void this.decide(current, "ABORTED", `rank ${ref.rank}'s vote does not match its staged files: ${problem}`, "error");
          return current.decided();
        }
        current.stageRelayed(ref.rank, items);
      }
    }
    return this.vote(
      ref,
      records.map((r) => r.name),
      attemptNo,
    );
  }

  /** A participant's no-vote on an attempt. */
  async peerAbort(job: string, id: string, attemptNo: number, reason: string, rank = 0, incarnation = 0): Promise<Decision> {
    checkName("job", job);
    checkName("checkpoint_id", id);
    await this.fence({ job, checkpointId: id, rank, incarnation });
    const current = this.open.get(`${job}/${id}`);
    if (!current || current.attempt !== attemptNo) return this.pastDecision({ job, checkpointId: id }, attemptNo);
    if (current.state === "preparing") void this.decide(current, "ABORTED", reason, relayedAbortReason(reason));
    return current.decided();
  }

  /** The durable decision of an attempt, or undefined while it is open. */
  async decisionOf(job: string, id: string, attemptNo: number): Promise<Decision | undefined> {
    checkName("job", job);
    checkName("checkpoint_id", id);
    const current = this.open.get(`${job}/${id}`);
    if (current?.attempt === attemptNo) return current.decision;
    if (this.invisibleCommit(job, id)?.attempt.attempt === attemptNo) return undefined;
    return this.pastDecision({ job, checkpointId: id }, attemptNo);
  }

  private checkRef(ref: CheckpointRef): void {
    checkRef(ref, this.options.maxWorldSize ?? DEFAULT_MAX_WORLD_SIZE);
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
    if (this.catalog.has(ref.job, ref.checkpointId) || this.invisibleCommit(ref.job, ref.checkpointId))
      throw failedPrecondition(
        `checkpoint '${ref.checkpointId}' of job '${ref.job}' is already committed; committed checkpoints are never overwritten`,
      );
    await ensureJob(this.storage, ref.job);
    const prev = this.lastAttempt.get(key) ?? (await this.scanAttempts(ref.job, ref.checkpointId));
    if (prev > 0 && (await this.readDecision(ref.job, ref.checkpointId, prev))?.outcome === "COMMITTED")
      throw failedPrecondition(
        `checkpoint '${ref.checkpointId}' of job '${ref.job}' was committed (and since deleted); committed ids are never reused`,
      );
    const n = prev + 1;
    this.noteAttempt(key, n);
    // The staging directory exists before anyone hears the attempt number, so a
    // restart finds it, records ABORT for it and never hands the number out again.
    const staging = layout.staging(ref.job, ref.checkpointId, n);
    await this.storage.createPrefix(staging);
    const attempt = new Attempt(
      ref.job,
      ref.checkpointId,
      n,
      ref.step,
      ref.worldSize,
      staging,
      this.storage.localPath?.(staging) ?? staging,
    );
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
    for (const f of await this.storage.list(layout.decisions(job))) {
      const parsed = parseDecisionName(f);
      if (parsed?.checkpointId === id) max = Math.max(max, parsed.attempt);
    }
    return max;
  }

  /** `why` labels an ABORTED decision in the aborts metric. */
  private async decide(attempt: Attempt, outcome: Outcome, reason: string, why: AbortReason = "error"): Promise<void> {
    if (attempt.state !== "preparing") return;
    attempt.startDeciding(outcome === "COMMITTED" ? "it is being committed without this item" : reason);
    const { job, checkpointId: id, attempt: n } = attempt;
    const logCtx = { job, checkpoint: id, attempt: n };
    let record: DecisionRecord = { outcome, reason, attempt: n, decidedAt: new Date().toISOString() };
    if (outcome === "COMMITTED") record.manifest = this.buildManifest(attempt, record.decidedAt);
    try {
      injectFault("decision");
      // Another coordinator's record, when it decided first, is the one acted on.
      record = (await this.writeDecision(job, id, record)) ?? record;
    } catch (err) {
      this.log.error({ ...logCtx, err, outcome }, "could not record the decision");
      if (outcome === "COMMITTED") return this.abandonCommit(attempt, err as Error);
      // An ABORT holds without its record once the staging is gone (presumed abort); the
      // record, which keeps the attempt number from being reused, is retried.
      this.unwrittenAborts.set(`${job}/${id}@${n}`, { job, id, record });
    }
    if (this.options.fault === "crash-after-decision" && record.outcome === "COMMITTED") {
      this.log.warn(logCtx, "fault point crash-after-decision: killing the daemon");
      process.kill(process.pid, "SIGKILL");
      await new Promise(() => {});
    }
    if (record.manifest) {
      // Durable: from here the commit only waits to become visible, whatever fails.
      this.open.delete(`${job}/${id}`);
      let queue = this.invisible.get(job);
      if (!queue) this.invisible.set(job, (queue = []));
      const pending: InvisibleCommit = { attempt, manifest: record.manifest };
      queue.push(pending);
      await this.makeVisible(job).catch(() => {});
      if (!attempt.decision) attempt.fail(this.notVisible(pending));
      return;
    }
    const decision: Decision = { outcome: "ABORTED", reason: record.reason, attempt: n };
    this.log.warn({ ...logCtx, reason: record.reason }, "checkpoint aborted");
    this.options.metrics?.aborts.inc({ reason: why });
    void this.freeStaging(attempt.key, logCtx);
    this.open.delete(`${job}/${id}`);
    this.remember(`${job}/${id}@${n}`, decision);
    attempt.settle(decision);
  }

  /**
   * The COMMIT record could not be written (a full disk): nobody was told, and with its
   * record removed (a rename may have landed before an fsync failed) and its staging
   * freed it can never commit, so the attempt is aborted and says why. Freeing the
   * staging usually makes room for the ABORT record; if not, it is retried.
   */
  private async abandonCommit(attempt: Attempt, err: Error): Promise<void> {
    const { job, checkpointId: id, attempt: n } = attempt;
    const logCtx = { job, checkpoint: id, attempt: n };
    await this.storage.delete(layout.decision(job, id, n)).catch(() => {});
    await this.freeStaging(attempt.key, logCtx);
    const full = (err as NodeJS.ErrnoException).code === "ENOSPC" || (err as NodeJS.ErrnoException).code === "EDQUOT";
    const reason =
      `the COMMIT decision could not be recorded (${full ? "the daemon's data directory is full" : "write failed"}: ${err.message}); ` +
      `nothing was committed and the staged data was freed: save the checkpoint again${full ? " once space is freed" : ""}`;
    const record: DecisionRecord = { outcome: "ABORTED", reason, attempt: n, decidedAt: new Date().toISOString() };
    try {
      await this.writeDecision(job, id, record);
    } catch (e) {
      this.log.error({ ...logCtx, err: e }, "could not record the ABORT either; it is retried");
      this.unwrittenAborts.set(`${job}/${id}@${n}`, { job, id, record });
    }
    const decision: Decision = { outcome: "ABORTED", reason, attempt: n };
    this.log.warn({ ...logCtx, reason }, "checkpoint aborted");
    this.options.metrics?.aborts.inc({ reason: "error" });
    this.open.delete(`${job}/${id}`);
    this.remember(`${job}/${id}@${n}`, decision);
    attempt.settle(decision);
  }

  /**
   * Frees an aborted attempt's staging; when that fails (the storage unreachable, an object store's
   * gateway down), the sweep tries again until it works, so its data does not wait for a restart.
   */
  private async freeStaging(key: string, logCtx: { job: string; checkpoint: string; attempt: number }): Promise<void> {
    if (this.freeing.has(key)) return;
    this.freeing.add(key);
    try {
      await this.storage.deletePrefix(key);
      if (this.unfreedStaging.delete(key)) this.log.info(logCtx, "freed the staging of an aborted attempt");
    } catch (err) {
      if (!this.unfreedStaging.has(key)) this.log.error({ ...logCtx, err }, "could not free aborted staging; retrying");
      this.unfreedStaging.set(key, logCtx);
    } finally {
      this.freeing.delete(key);
    }
  }

  private async writeUnwrittenAbort(key: string, a: { job: string; id: string; record: DecisionRecord }): Promise<void> {
    // A later attempt's staging or record already keeps the number from being reused.
    if ((this.lastAttempt.get(`${a.job}/${a.id}`) ?? 0) > a.record.attempt) {
      this.unwrittenAborts.delete(key);
      return;
    }
    try {
      await this.writeDecision(a.job, a.id, a.record);
      this.unwrittenAborts.delete(key);
    } catch {
      // Still failing: the next sweep tries again.
    }
  }

  private invisibleCommit(job: string, id: string): InvisibleCommit | undefined {
    return this.invisible.get(job)?.find((p) => p.attempt.checkpointId === id);
  }

  private notVisible(p: InvisibleCommit): Error {
    const head = this.invisible.get(p.attempt.job)?.[0];
    if (head && head !== p)
      return unavailable(
        `checkpoint '${p.attempt.checkpointId}' was decided COMMITTED but is not yet visible: it waits behind ` +
          `checkpoint '${head.attempt.checkpointId}' (commits become visible in order), which is retried in the background: retry Commit`,
      );
    const why = p.lastError ? ` (${p.lastError.message})` : "";
    const step = p.summary ? "its event could not be logged" : "publishing failed";
    return unavailable(
      `checkpoint '${p.attempt.checkpointId}' was decided COMMITTED but is not yet visible: ${step}${why}; ` +
        `it is retried in the background: retry Commit`,
    );
  }

  /** A retried vote on a durable, not yet visible COMMIT: one more try, then the answer. */
  private async awaitVisible(p: InvisibleCommit): Promise<Decision> {
    await this.makeVisible(p.attempt.job).catch(() => {});
    if (p.attempt.decision) return p.attempt.decision;
    throw this.notVisible(p);
  }

  /** Publishes and logs the job's durable COMMITs in decision order, stopping at the first failure. */
  private makeVisible(job: string): Promise<void> {
    const run = (this.visibleChain.get(job) ?? Promise.resolve()).then(async () => {
      this.makingVisible.add(job);
      try {
        const queue = this.invisible.get(job) ?? [];
        while (queue[0]) {
          const p = queue[0];
          const logCtx = { job, checkpoint: p.attempt.checkpointId, attempt: p.attempt.attempt };
          try {
            if (!p.summary) p.summary = await this.publish(p.manifest);
            const summary = p.summary;
            const list = () => this.catalog.add(summary);
            if (this.options.onCommitted) await this.options.onCommitted(summary, list);
            else list();
          } catch (err) {
            // Logged once per commit: the background retry runs every sweep while the disk is full.
            if (!p.lastError) this.log.error({ ...logCtx, err }, "a durable COMMIT is not visible yet; retrying in the background");
            else this.log.debug({ ...logCtx, err }, "a durable COMMIT is still not visible");
            p.lastError = err as Error;
            throw err;
          }
          queue.shift();
          const summary = p.summary;
          const decision: Decision = { outcome: "COMMITTED", reason: "", attempt: p.attempt.attempt, checkpoint: summary };
          this.log.info(
            {
              ...logCtx,
              step: p.attempt.step,
              rawBytes: summary.rawBytes,
              storedBytes: summary.storedBytes,
              ...(p.lastError ? { retried: true } : {}),
            },
            "checkpoint committed",
          );
          this.options.metrics?.commits.inc();
          this.remember(`${job}/${p.attempt.checkpointId}@${p.attempt.attempt}`, decision);
          // A committed checkpoint is never reopened: no attempt is left to fence.
          this.forgetIncarnations(`${job}/${p.attempt.checkpointId}`);
          p.attempt.settle(decision);
          this.options.onVisible?.(summary);
        }
      } finally {
        this.makingVisible.delete(job);
      }
    });
    this.visibleChain.set(
      job,
      run.catch(() => {}),
    );
    return run;
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

  /**
   * Phase 2 of a COMMIT: drop unvoted items, write the manifest last, rename into
   * checkpoints/. Idempotent, so a failed publish is simply retried: a rename that
   * already happened is not redone. The caller lists the checkpoint (catalog).
   */
  private async publish(manifest: Manifest): Promise<CheckpointSummary> {
    const { job, checkpointId, attempt } = manifest;
    const keep = new Set(manifest.ranks.flatMap((r) => r.items.map((i) => itemDirName(r.rank, i.name))));
    await this.storage.publish({ job, checkpointId, attempt, manifest: JSON.stringify(manifest), keep });
    return summarize(manifest);
  }

  /**
   * Records a decision create-only, so two coordinators (a misconfigured cluster, an old
   * coordinator still running) can never both decide one attempt: returns undefined when this
   * record holds, or the record another writer made first, which holds instead.
   */
  private async writeDecision(job: string, id: string, record: DecisionRecord): Promise<DecisionRecord | undefined> {
    const key = layout.decision(job, id, record.attempt);
    const text = JSON.stringify(record);
    if (!(await this.storage.create(key, text))) {
      // This record landed on an earlier try whose answer was lost: it holds.
      if ((await getText(this.storage, key)) === text) return undefined;
      const held = await this.readDecision(job, id, record.attempt);
      if (!held) throw unavailable(`the decision record ${this.storage.where(key)} was created and removed by another writer`);
      this.log.error(
        { job, checkpoint: id, attempt: record.attempt, outcome: held.outcome, ours: record.outcome },
        "another coordinator recorded this attempt's decision first; its decision holds " +
          "(only one daemon may coordinate a job: check --node-id and --peers on every node)",
      );
      return held;
    }
    // Lower attempts were all decided ABORTED before this one opened: their records are
    // no longer needed (pastDecision answers them from the attempt number) and would
    // otherwise pile up with every aborted retry.
    for (let k = record.attempt - 1; k >= 1; k--) {
      const key = layout.decision(job, id, k);
      if (!(await this.storage.stat(key).catch(() => undefined))) break; // older ones went with an earlier pruning
      await this.storage.delete(key).catch(() => {});
    }
    return undefined;
  }

  /** The durable decision of an attempt; DATA_LOSS when the record is damaged (recovery quarantines it). */
  private async readDecision(job: string, id: string, attempt: number): Promise<DecisionRecord | undefined> {
    const key = layout.decision(job, id, attempt);
    const file = this.storage.where(key);
    const text = await getText(this.storage, key);
    if (text === undefined) return undefined;
    let record: Partial<DecisionRecord> | null;
    try {
      record = JSON.parse(text) as Partial<DecisionRecord> | null;
    } catch (err) {
      if (err instanceof SyntaxError) throw dataLoss(`the decision record ${file} is not JSON: ${err.message}`);
      throw err;
    }
    if (typeof record !== "object" || record === null || (record.outcome !== "COMMITTED" && record.outcome !== "ABORTED"))
      throw dataLoss(`the decision record ${file} names no outcome (COMMITTED or ABORTED)`);
    return { ...record, reason: typeof record.reason === "string" ? record.reason : "", attempt } as DecisionRecord;
  }

  /** The decision of a closed attempt, from memory or from its durable record. */
  private async pastDecision(ref: { job: string; checkpointId: string }, attemptNo: number): Promise<Decision> {
    const key = `${ref.job}/${ref.checkpointId}@${attemptNo}`;
    const hit = this.recent.get(key);
    if (hit) return hit;
    const invisible = this.invisibleCommit(ref.job, ref.checkpointId);
    if (invisible?.attempt.attempt === attemptNo) return this.awaitVisible(invisible);
    const unwritten = this.unwrittenAborts.get(key);
    if (unwritten) return { outcome: "ABORTED", reason: unwritten.record.reason, attempt: attemptNo };
    const record = await this.readDecision(ref.job, ref.checkpointId, attemptNo);
    if (!record) {
      const last = this.lastAttempt.get(`${ref.job}/${ref.checkpointId}`) ?? (await this.scanAttempts(ref.job, ref.checkpointId));
      // A later attempt opens only once this one was aborted; its record was pruned.
      if (attemptNo >= 1 && attemptNo < last)
        return { outcome: "ABORTED", reason: `attempt ${attemptNo} was aborted; attempt ${last} superseded it`, attempt: attemptNo };
      throw failedPrecondition(`checkpoint '${ref.checkpointId}' of job '${ref.job}' has no attempt ${attemptNo}`);
    }
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
    // Durable COMMITs not yet visible, and ABORT records not yet written: space may be back.
    for (const [job, queue] of this.invisible)
      if (queue.length > 0 && !this.makingVisible.has(job)) void this.makeVisible(job).catch(() => {});
    for (const [key, a] of this.unwrittenAborts) void this.writeUnwrittenAbort(key, a);
    for (const [key, ctx] of this.unfreedStaging) void this.freeStaging(key, ctx);
    const now = Date.now();
    for (const attempt of this.open.values()) {
      if (attempt.state !== "preparing") continue;
      if (now - attempt.lastActivity < this.options.prepareTimeoutMs) continue;
      void this.decide(
        attempt,
        "ABORTED",
        `prepare timeout: no activity for ${this.options.prepareTimeoutMs} ms and rank(s) ${missingRanks(attempt.worldSize, attempt.votes.keys())} did not vote`,
        "timeout",
      );
    }
  }
}

/**
 * Why the staged files of a rank's items do not match their records (undefined when
 * they do): every stored file must be a regular file (not a link) of the declared size.
 */
async function stagedFilesProblem(storage: Storage, attempt: string, rank: number, records: ItemRecord[]): Promise<string | undefined> {
  for (const item of records) {
    // A staged item always has its directory, even without entries (ItemWriter.open).
    const dir = await storage.stat(layout.item(attempt, rank, item.name)).catch(() => undefined);
    if (dir?.kind !== "prefix") return `item '${item.name}' is not staged`;
    // Per stored file, not per entry: small entries share the item's pack file.
    for (const [name, { size, key }] of storedFileSizes(item)) {
      const st = await storage.stat(joinKey(layout.item(attempt, rank, item.name), name));
      if (!st) return `item '${item.name}' entry '${key}': ${name} is not staged`;
      if (st.kind !== "object") return `item '${item.name}' entry '${key}': ${name} is not a regular file`;
      if (st.size !== size) return `item '${item.name}' entry '${key}': ${name} holds ${st.size} bytes, the record says ${size}`;
    }
  }
  return undefined;
}

/**
 * Why a participant node aborted, for the aborts metric. AbortAttempt carries only the
 * participant's text (ParticipantCoordinator words it: a rank's abort, items it did not
 * stage, the node's restart), so a relayed abort is labelled by that wording.
 */
function relayedAbortReason(reason: string): AbortReason {
  if (/^rank \d+ aborted/.test(reason)) return "rank_abort";
  if (/did not stage/.test(reason)) return "missing_item";
  if (/restarted/.test(reason)) return "restart";
  return "error";
}
