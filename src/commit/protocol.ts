/**
 * The commit protocol as its callers see it: what the Save, Commit and Abort RPCs (and,
 * on the coordinating node, the peer service) may ask of the node's coordinator, in
 * which order, and what each answer promises.
 */
import type { ItemRecord } from "../catalog/manifest.js";
import type { Decision } from "./decisions.js";

/** Who is saving what: identifies one rank's checkpoint for Save and Commit. */
export interface CheckpointRef {
  job: string;
  checkpointId: string;
  step: number;
  rank: number;
  worldSize: number;
  /**
   * The trainer process's incarnation (grows across restarts of the rank); 0 or absent:
   * not sent, no fencing.
   */
  incarnation?: number;
}

/**
 * One Save stream's reservation of (attempt, rank, item), made by beginSave: all a Save
 * stream may do to the attempt it stages into. Exactly one of stage or release ends it.
 */
export interface SaveTicket {
  readonly job: string;
  readonly checkpointId: string;
  /** The attempt the item is staged into (the Save response's attempt). */
  readonly attempt: number;
  readonly rank: number;
  readonly item: string;
  /** The attempt's staging key (layout.staging). */
  readonly stagingKey: string;
  /** Local staging directory of the item, where the item writer writes. */
  readonly dir: string;
  /** Throws ABORTED once the attempt was decided (its staging is being removed); counts as activity. */
  checkLive(): void;
  /**
   * Records the item as durably staged (its files written and fsynced): the rank may now
   * vote for it. Throws ABORTED if the attempt was decided meanwhile.
   */
  stage(record: ItemRecord): void;
  /** Gives the reservation up after a failed save: the rank may save the item again. */
  release(): void;
  /**
   * Calls `stop` (once) with ABORTED when the attempt is decided while the stream is open,
   * at once if it already is. Returns the unregistration.
   */
  watch(stop: (err: Error) => void): () => void;
}

/**
 * What the gRPC handlers need from the commit protocol. Implemented by CommitCoordinator
 * (single node, or the coordinating node of a multi-node job) and by
 * ParticipantCoordinator (the other nodes, which relay to the coordinator).
 *
 * Lifecycle: recover (before serving) → start → … → stop.
 *
 * Call order per rank and checkpoint:
 *   beginSave(item)          per item, on its own Save stream: reserves (rank, item) in the
 *                            checkpoint's open attempt, opening one if needed
 *     ticket.checkLive       per stream message
 *     ticket.stage | release once the item's files are fsynced | when the save failed
 *   vote(items) | abort      once per rank; abort may come at any point, also before any save
 *
 * Promises: a Decision is answered only once it is durable (its decision record fsynced);
 * a COMMITTED one only once the checkpoint is listed and its event logged. vote and abort
 * are idempotent: repeated (or naming an attempt already closed, attemptNo ≠ 0) they answer
 * that attempt's decision and change nothing. A committed checkpoint id is never reopened.
 */
export interface CheckpointCoordinator {
  recover(): Promise<{ published: number; aborted: number }>;
  start(): void;
  stop(): void;
  inFlight(): number;
  /** See CommitCoordinator.hasUndecidedWork: attempts with activity in the last `activeWithinMs`. */
  hasUndecidedWork(activeWithinMs?: number): boolean;
  beginSave(ref: CheckpointRef, item: string): Promise<SaveTicket>;
  /** A rank's yes-vote for the items it staged; resolves with the durable decision. */
  vote(ref: CheckpointRef, items: string[], attemptNo: number): Promise<Decision>;
  /** A rank's no-vote: aborts the open attempt, or answers the decision already made. */
  abort(ref: Omit<CheckpointRef, "step" | "worldSize">, reason: string, attemptNo: number): Promise<Decision>;
}

/**
 * What the coordinating node's PeerService asks of its coordinator on behalf of the
 * participant nodes of a multi-node job (ParticipantCoordinator is the caller, over gRPC).
 *
 * Call order per participant rank and checkpoint: openForPeer (the attempt number its
 * saves stage into, in the shared staging directory), heartbeat while it saves (keeps
 * the attempt from timing out), then peerVote with the fsynced items' records | peerAbort;
 * decisionOf and heartbeat learn the decision of an attempt the participant stopped
 * waiting on. Each answer names one attempt; peerVote, peerAbort and decisionOf on a
 * closed attempt answer its durable decision and change nothing.
 */
export interface PeerCoordinator {
  /** The attempt a participant's rank stages into (opened if needed). */
  openForPeer(ref: CheckpointRef): Promise<number>;
  /** Activity on a participant (`active`) keeps the attempt from timing out; returns the decision once made. */
  heartbeat(job: string, id: string, attemptNo: number, active: boolean): Promise<Decision | undefined>;
  /** A rank's vote relayed with the records of the items it staged; its staged files are checked against them. */
  peerVote(ref: CheckpointRef, attemptNo: number, records: ItemRecord[]): Promise<Decision>;
  /** A participant's no-vote; `rank` and `incarnation` (0: none) name the rank whose Abort it relays. */
  peerAbort(job: string, id: string, attemptNo: number, reason: string, rank?: number, incarnation?: number): Promise<Decision>;
  /** The durable decision of an attempt, or undefined while it is open. */
  decisionOf(job: string, id: string, attemptNo: number): Promise<Decision | undefined>;
}
