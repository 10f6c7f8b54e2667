/**
 * ParticipantCoordinator: the commit protocol on a node that does not coordinate.
 * Its ranks stage their items into the shared staging directory of the attempt the
 * coordinator hands out; their votes are relayed (with the item records) to the
 * coordinator, which decides, makes the decision durable and publishes; the
 * participant learns the decision from the vote's reply, from heartbeats or by
 * asking, and retries until it does.
 *
 * Restart: every attempt this node staged into has a marker in
 * <data>/nodes/<node>/attempts/; after a restart the participant asks the
 * coordinator for each, and aborts the ones still undecided (its in-memory view of
 * its ranks' items is gone).
 */
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { AbortAttemptResponse } from "../../wire/gen/ckptd/v1/AbortAttemptResponse.js";
import type { CommitOutcome } from "../../wire/gen/ckptd/v1/CommitOutcome.js";
import type { GetDecisionResponse } from "../../wire/gen/ckptd/v1/GetDecisionResponse.js";
import type { OpenAttemptResponse } from "../../wire/gen/ckptd/v1/OpenAttemptResponse.js";
import type { VoteResponse } from "../../wire/gen/ckptd/v1/VoteResponse.js";
import type { Cluster } from "./cluster.js";
import { Attempt } from "./attempt.js";
import { outcomeFromWire, type Decision } from "./decisions.js";
import type { CheckpointCoordinator, CheckpointRef, SaveTicket } from "./protocol.js";
import { CkptdError, failedPrecondition, type ErrorKind } from "../common/errors.js";
import { stagedItem } from "./peer-messages.js";
import { checkInt, checkName } from "../common/names.js";
import { isTmpName, joinKey, layout } from "../store/layout.js";
import { getText, type Storage } from "../store/storage.js";

/** Deadline of one peer call to the coordinator (a vote's is longer: see vote). */
const PEER_CALL_TIMEOUT_MS = 10_000;

/** Kinds of peer-call failure that mean "the coordinator is not reachable right now": retry. */
const RETRYABLE = new Set<ErrorKind>(["unavailable", "deadline_exceeded", "cancelled", "unknown", "internal"]);

/**
 * Turns a failed peer call into a domain error of the status's kind, its message prefixed
 * with `who` (given by the daemon: the status mapping lives with the RPC adapter).
 */
export type PeerErrorMapper = (err: grpc.ServiceError, who: string) => CkptdError;

interface Marker {
  job: string;
  checkpointId: string;
  attempt: number;
}

export class ParticipantCoordinator implements CheckpointCoordinator {
  /** Local view of attempts, by "job/id@n". */
  private readonly attempts = new Map<string, Attempt>();
  /** Latest attempt number handed out per "job/id". */
  private readonly latest = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;

  constructor(
    private readonly storage: Storage,
    private readonly cluster: Cluster,
    private readonly options: {
      prepareTimeoutMs: number;
      /** How a failed peer call becomes an error of the coordinator's status's kind (the status mapping lives with the RPC adapter). */
      peerError: PeerErrorMapper;
    },
    private readonly log: Logger,
  ) {}

  private markerDir(): string {
    return layout.nodeAttempts(this.cluster.nodeId);
  }

  private markerFile(m: Marker): string {
    return layout.nodeMarker(this.cluster.nodeId, m.job, m.checkpointId, m.attempt);
  }

  async recover(): Promise<{ published: number; aborted: number }> {
    await this.storage.createPrefix(this.markerDir());
    let pending = 0;
    for (const f of await this.storage.list(this.markerDir())) {
      // A marker write cut short by a crash (never renamed): no save was reserved under it.
      if (isTmpName(f)) {
        await this.storage.delete(joinKey(this.markerDir(), f));
        continue;
      }
      try {
        const m = JSON.parse((await getText(this.storage, joinKey(this.markerDir(), f))) ?? "") as Marker;
        // Markers sit in the shared data directory: their names become paths and peer messages.
        checkName("job", m.job);
        checkName("checkpoint_id", m.checkpointId);
        checkInt("attempt", m.attempt, 1, 0xffffffff);
        const a = this.local(m.job, m.checkpointId, m.attempt, 0, 0);
        a.noteRestarted();
        pending++;
      } catch {
        await this.storage.delete(joinKey(this.markerDir(), f));
      }
    }
    if (pending > 0) this.log.info({ pending }, "recovery: asking the coordinator about attempts staged before the restart");
    return { published: 0, aborted: 0 };
  }

  start(): void {
    const every = Math.max(50, Math.min(1000, Math.floor(this.options.prepareTimeoutMs / 4)));
    this.timer = setInterval(() => void this.tick(), every);
    this.timer.unref();
    void this.tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.cluster.close();
  }

  inFlight(): number {
    let n = 0;
    for (const a of this.attempts.values()) if (a.state !== "decided") n++;
    return n;
  }

  hasUndecidedWork(activeWithinMs = Infinity): boolean {
    const since = Date.now() - activeWithinMs;
    for (const a of this.attempts.values()) {
      if (a.state === "decided") continue;
      if (a.savesInProgress > 0 || ((a.staged.size > 0 || a.votes.size > 0) && a.lastActivity >= since)) return true;
    }
    return false;
  }

  async beginSave(ref: CheckpointRef, item: string): Promise<SaveTicket> {
    checkName("item", item);
    const n = await this.openAttempt(ref);
    const attempt = this.local(ref.job, ref.checkpointId, n, ref.step, ref.worldSize);
    await this.mark(attempt);
    attempt.checkLive();
    return attempt.reserve(ref.rank, item);
  }

  async vote(ref: CheckpointRef, items: string[], attemptNo: number): Promise<Decision> {
    for (const i of items) checkName("item", i);
    const key = `${ref.job}/${ref.checkpointId}`;
    const n = attemptNo || this.latest.get(key) || (await this.openAttempt(ref));
    const attempt = this.local(ref.job, ref.checkpointId, n, ref.step, ref.worldSize);
    if (attempt.decision) return attempt.decision;
    const staged = attempt.staged.get(ref.rank);
    const missing = items.filter((i) => !staged?.has(i));
    if (missing.length > 0) {
      const reason = `rank ${ref.rank} voted for item(s) ${missing.map((m) => `'${m}'`).join(", ")} that it did not stage on node '${this.cluster.nodeId}' in attempt ${n}`;
      // Relayed with the voter's incarnation: a dead incarnation's vote is refused, not an abort.
      return this.abortRemote(attempt, reason, ref);
    }
    attempt.recordVote(ref.rank, items);
    const records = items.map((i) => staged!.get(i)!);
    const relay = this.retry<VoteResponse>(
      "Vote",
      (md, o, cb) =>
        this.cluster.coordinator().Vote(
          {
            job: ref.job,
            checkpointId: ref.checkpointId,
            step: ref.step,
            rank: ref.rank,
            worldSize: ref.worldSize,
            attempt: n,
            items: records.map(stagedItem),
            nodeId: this.cluster.nodeId,
            incarnation: ref.incarnation ?? 0,
          },
          md,
          o,
          cb,
        ),
      // A vote waits for the decision, which may take up to the prepare timeout.
      { callTimeoutMs: this.options.prepareTimeoutMs + 30_000 },
    );
    // A vote the coordinator refused (e.g. of a superseded incarnation) is no vote here either.
    const res = await relay.catch((err: unknown) => {
      attempt.withdrawVote(ref.rank, items);
      throw err;
    });
    return this.settle(attempt, res.outcome, res.reason)!;
  }

  async abort(ref: Omit<CheckpointRef, "step" | "worldSize">, reason: string, attemptNo: number): Promise<Decision> {
    const n = attemptNo || this.latest.get(`${ref.job}/${ref.checkpointId}`);
    if (!n)
      throw failedPrecondition(
        `checkpoint '${ref.checkpointId}' of job '${ref.job}' has no attempt on node '${this.cluster.nodeId}' to abort`,
      );
    const attempt = this.local(ref.job, ref.checkpointId, n, 0, 0);
    if (attempt.decision) return attempt.decision;
    return this.abortRemote(attempt, `rank ${ref.rank} aborted${reason ? `: ${reason}` : ""}`, ref);
  }

  /** Relays a no-vote; `by` is the rank whose Abort it is (its incarnation is fenced), none when this node aborts. */
  private async abortRemote(attempt: Attempt, reason: string, by?: { rank: number; incarnation?: number | undefined }): Promise<Decision> {
    const res = await this.retry<AbortAttemptResponse>("AbortAttempt", (md, o, cb) =>
      this.cluster.coordinator().AbortAttempt(
        {
          job: attempt.job,
          checkpointId: attempt.checkpointId,
          attempt: attempt.attempt,
          reason,
          nodeId: this.cluster.nodeId,
          rank: by?.rank ?? 0,
          incarnation: by?.incarnation ?? 0,
        },
        md,
        o,
        cb,
      ),
    );
    return this.settle(attempt, res.outcome, res.reason)!;
  }

  private async openAttempt(ref: CheckpointRef): Promise<number> {
    const res = await this.retry<OpenAttemptResponse>(
      "OpenAttempt",
      (md, o, cb) =>
        this.cluster.coordinator().OpenAttempt(
          {
            job: ref.job,
            checkpointId: ref.checkpointId,
            step: ref.step,
            worldSize: ref.worldSize,
            rank: ref.rank,
            nodeId: this.cluster.nodeId,
            incarnation: ref.incarnation ?? 0,
          },
          md,
          o,
          cb,
        ),
      { forMs: 30_000 },
    );
    const key = `${ref.job}/${ref.checkpointId}`;
    if (res.attempt > (this.latest.get(key) ?? 0)) this.latest.set(key, res.attempt);
    return res.attempt;
  }

  /** The local view of an attempt (created on first sight). */
  private local(job: string, id: string, n: number, step: number, worldSize: number): Attempt {
    const k = `${job}/${id}@${n}`;
    let a = this.attempts.get(k);
    if (!a) {
      const staging = layout.staging(job, id, n);
      a = new Attempt(job, id, n, step, worldSize, staging, this.storage.localPath?.(staging) ?? staging);
      this.attempts.set(k, a);
      const key = `${job}/${id}`;
      if (n > (this.latest.get(key) ?? 0)) this.latest.set(key, n);
    }
    return a;
  }

  private async mark(a: Attempt): Promise<void> {
    if (!a.claimMarker()) return;
    await this.storage.createPrefix(this.markerDir());
    await this.storage.put(
      this.markerFile(a),
      JSON.stringify({ job: a.job, checkpointId: a.checkpointId, attempt: a.attempt } satisfies Marker),
    );
  }

  /** Applies a decision learned from the coordinator; returns it (undefined while undecided). */
  private settle(a: Attempt, outcome: CommitOutcome, reason: string): Decision | undefined {
    const decided = outcomeFromWire(outcome);
    if (!decided) return undefined;
    if (a.decision) return a.decision;
    const d: Decision = { outcome: decided, reason, attempt: a.attempt };
    a.settle(d);
    this.log.info(
      { job: a.job, checkpoint: a.checkpointId, attempt: a.attempt, outcome: d.outcome, reason },
      "learned the decision from the coordinator",
    );
    void this.cleanUp(a);
    return d;
  }

  private async cleanUp(a: Attempt): Promise<void> {
    try {
      // On abort, this node's ranks' files go (the coordinator removes the rest).
      if (a.decision?.outcome === "ABORTED") for (const rank of a.staged.keys()) await this.storage.deletePrefix(layout.rank(a.key, rank));
      if (a.marked || a.restarted) await this.storage.delete(this.markerFile(a));
    } catch (err) {
      this.log.warn({ err, job: a.job, checkpoint: a.checkpointId }, "could not clean up after a decision");
    }
  }

  /** Learns decisions of idle attempts; keeps active ones alive at the coordinator. */
  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      for (const a of [...this.attempts.values()]) {
        if (a.state === "decided") {
          this.attempts.delete(`${a.job}/${a.checkpointId}@${a.attempt}`);
          continue;
        }
        const req = { job: a.job, checkpointId: a.checkpointId, attempt: a.attempt, nodeId: this.cluster.nodeId };
        try {
          const res =
            a.savesInProgress > 0
              ? await this.once<GetDecisionResponse>((md, o, cb) => this.cluster.coordinator().Heartbeat(req, md, o, cb))
              : await this.once<GetDecisionResponse>((md, o, cb) => this.cluster.coordinator().GetDecision(req, md, o, cb));
          if (!this.settle(a, res.outcome, res.reason) && a.restarted) {
            await this.abortRemote(a, `node '${this.cluster.nodeId}' restarted while the checkpoint was undecided`);
          }
        } catch (err) {
          if (err instanceof CkptdError && err.kind === "failed_precondition") {
            // The coordinator has no such attempt (it restarted before recording it): presumed abort.
            this.settle(a, "COMMIT_OUTCOME_ABORTED", err.message);
          } else this.log.debug({ err, job: a.job, checkpoint: a.checkpointId }, "coordinator not reachable; will retry");
        }
      }
    } finally {
      this.ticking = false;
    }
  }

  /** One peer call with a short deadline; failures become CkptdError of the coordinator's status's kind. */
  private once<T>(
    start: (md: grpc.Metadata, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: T) => void) => void,
    timeoutMs = 5_000,
  ): Promise<T> {
    return this.cluster.locate(this.cluster.coordinatorId).then(() => this.call(start, timeoutMs));
  }

  private call<T>(
    start: (md: grpc.Metadata, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: T) => void) => void,
    timeoutMs: number,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      let md: grpc.Metadata;
      try {
        md = this.cluster.metadata();
        start(md, { deadline: Date.now() + timeoutMs }, (err, res) =>
          err ? reject(this.options.peerError(err, `coordinator '${this.cluster.coordinatorId}'`)) : resolve(res!),
        );
      } catch (err) {
        reject(err);
      }
    });
  }

  /**
   * Retries a peer call while the coordinator is unreachable (up to `forMs`, default: until
   * it answers); each try has `callTimeoutMs`.
   */
  private async retry<T>(
    what: string,
    start: (md: grpc.Metadata, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: T) => void) => void,
    { callTimeoutMs = PEER_CALL_TIMEOUT_MS, forMs = Infinity }: { callTimeoutMs?: number; forMs?: number } = {},
  ): Promise<T> {
    const until = Date.now() + forMs;
    for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
      try {
        return await this.once(start, callTimeoutMs);
      } catch (err) {
        const kind = err instanceof CkptdError ? err.kind : "unavailable";
        if (!RETRYABLE.has(kind) || Date.now() + delay > until) throw err;
        this.log.debug({ err, what }, "coordinator unreachable; retrying");
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }
}
