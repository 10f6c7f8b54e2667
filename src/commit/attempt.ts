/**
 * One attempt of one checkpoint as this daemon sees it: what each rank staged and voted,
 * its state, and the Save streams still open on it. Changed only by the commit layer
 * (CommitCoordinator, ParticipantCoordinator); a Save stream reaches it through its
 * SaveTicket.
 */
import type { ItemRecord } from "../catalog/manifest.js";
import { aborted, alreadyExists, failedPrecondition } from "../common/errors.js";
import { itemDirName } from "../store/layout.js";
import type { Decision } from "./decisions.js";
import type { SaveTicket } from "./protocol.js";

/** preparing: ranks save and vote; deciding: the decision is being recorded; decided: settled or failed. */
type AttemptState = "preparing" | "deciding" | "decided";

export class Attempt {
  private currentState: AttemptState = "preparing";
  /** Completed, fsynced items per rank. */
  private readonly stagedItems = new Map<number, Map<string, ItemRecord>>();
  /** "rank/item" of saves in progress. */
  private readonly inflight = new Set<string>();
  private readonly rankVotes = new Map<number, string[]>();
  private readonly rankIncarnations = new Map<number, number>();
  private lastActive = Date.now();
  private settled: Decision | undefined;
  private failed: Error | undefined;
  /** Participant bookkeeping: a restart marker was written / the attempt predates a restart. */
  private hasMarker = false;
  private fromBeforeRestart = false;
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
    /** The staging's key (layout.staging). */
    readonly key: string,
    /** The staging's local directory, where the item writer writes (Storage.localPath). */
    readonly dir: string,
  ) {}

  get state(): AttemptState {
    return this.currentState;
  }

  /** Completed, fsynced items per rank. */
  get staged(): ReadonlyMap<number, ReadonlyMap<string, ItemRecord>> {
    return this.stagedItems;
  }

  /** The items each rank voted for. */
  get votes(): ReadonlyMap<number, readonly string[]> {
    return this.rankVotes;
  }

  /** The incarnation each rank used in this attempt (ranks that sent one). */
  get incarnations(): ReadonlyMap<number, number> {
    return this.rankIncarnations;
  }

  /** A participant wrote the attempt's restart marker. */
  get marked(): boolean {
    return this.hasMarker;
  }

  /** A participant found the attempt's marker at its start: the attempt predates its restart. */
  get restarted(): boolean {
    return this.fromBeforeRestart;
  }

  /** True the first time: the caller then writes the marker. */
  claimMarker(): boolean {
    if (this.hasMarker) return false;
    return (this.hasMarker = true);
  }

  noteRestarted(): void {
    this.fromBeforeRestart = true;
  }

  /** Records a rank's yes-vote (the caller checked that it may vote). */
  recordVote(rank: number, items: string[]): void {
    this.rankVotes.set(rank, items);
  }

  /** Takes back a vote the coordinator refused, unless another replaced it meanwhile. */
  withdrawVote(rank: number, items: readonly string[]): void {
    if (this.rankVotes.get(rank) === items) this.rankVotes.delete(rank);
  }

  /** Records a rank's items staged on another node (a relayed vote's records, checked against the files). */
  stageRelayed(rank: number, items: Map<string, ItemRecord>): void {
    this.stagedItems.set(rank, items);
  }

  /** Records the incarnation a rank uses in this attempt. */
  enterIncarnation(rank: number, incarnation: number): void {
    this.rankIncarnations.set(rank, incarnation);
  }

  /** The decision, once settled. */
  get decision(): Decision | undefined {
    return this.settled;
  }

  /** Why the decision could not be recorded, once it failed. */
  get failure(): Error | undefined {
    return this.failed;
  }

  /** When a rank last did something in the attempt (ms since the epoch). */
  get lastActivity(): number {
    return this.lastActive;
  }

  /** Saves reserved and neither staged nor released. */
  get savesInProgress(): number {
    return this.inflight.size;
  }

  /** Notes activity: an attempt with none for the prepare timeout is aborted. */
  touch(): void {
    this.lastActive = Date.now();
  }

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
    this.touch();
    return new AttemptTicket(this, rank, item);
  }

  /** Throws ABORTED once the attempt was decided (its staging is being removed). */
  checkLive(): void {
    this.touch();
    if (this.currentState !== "preparing")
      throw aborted(
        `checkpoint '${this.checkpointId}' attempt ${this.attempt} was decided while this item streamed: ${this.settled?.reason ?? "it is being decided"}`,
      );
  }

  /** Records a durably staged item of a reservation; the rank may now vote for it. */
  stageReserved(rank: number, item: string, record: ItemRecord): void {
    this.checkLive();
    this.inflight.delete(`${rank}/${item}`);
    let items = this.stagedItems.get(rank);
    if (!items) this.stagedItems.set(rank, (items = new Map()));
    items.set(item, record);
  }

  /** Releases a reservation whose save failed; the rank may save the item again. */
  releaseReserved(rank: number, item: string): void {
    this.inflight.delete(`${rank}/${item}`);
  }

  /**
   * Registers an open Save stream: `stop` is called (once) with ABORTED when the attempt is
   * decided while the stream is open, at once if it already is. Returns the unregistration.
   */
  watchStream(stop: (err: Error) => void): () => void {
    if (this.currentState !== "preparing") {
      stop(this.streamAbort(this.settled?.reason ?? "it is being decided"));
      return () => undefined;
    }
    this.streams.add(stop);
    return () => this.streams.delete(stop);
  }

  /** The decision is being recorded: no save or vote changes the attempt any more; `why` ends its open streams. */
  startDeciding(why: string): void {
    this.currentState = "deciding";
    // Streams still open cannot take part any more: they end now, not at their next message.
    this.closeStreams(why);
  }

  /** Ends every Save stream still open on the attempt; `why` says what was decided. */
  private closeStreams(why: string): void {
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
    if (this.settled) return Promise.resolve(this.settled);
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  settle(d: Decision): void {
    this.settled = d;
    this.currentState = "decided";
    this.closeStreams(d.outcome === "COMMITTED" ? "it was committed without this item" : d.reason || "it was aborted");
    for (const w of this.waiters.splice(0)) w.resolve(d);
  }

  /** The decision could not be recorded: voters learn that, never a guess. */
  fail(err: Error): void {
    this.failed = err;
    this.currentState = "decided";
    this.closeStreams(err.message);
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}

/** The SaveTicket of one reservation: the Save stream's only handle on the attempt. */
class AttemptTicket implements SaveTicket {
  readonly job: string;
  readonly checkpointId: string;
  readonly attempt: number;
  readonly stagingKey: string;
  readonly dir: string;

  constructor(
    private readonly of: Attempt,
    readonly rank: number,
    readonly item: string,
  ) {
    this.job = of.job;
    this.checkpointId = of.checkpointId;
    this.attempt = of.attempt;
    this.stagingKey = of.key;
    this.dir = `${of.dir}/${itemDirName(rank, item)}`;
  }

  checkLive(): void {
    this.of.checkLive();
  }

  stage(record: ItemRecord): void {
    this.of.stageReserved(this.rank, this.item, record);
  }

  release(): void {
    this.of.releaseReserved(this.rank, this.item);
  }

  watch(stop: (err: Error) => void): () => void {
    return this.of.watchStream(stop);
  }
}
