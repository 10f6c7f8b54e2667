/**
 * What a checkpoint attempt was decided: the outcome, its wire form, and the durable
 * decision record (decisions/<id>@<attempt>.json) that makes a decision survive a crash.
 */
import type { CheckpointSummary, Manifest } from "../catalog/manifest.js";
import { layout } from "../store/layout.js";
import { getText, type Storage } from "../store/storage.js";

export type Outcome = "COMMITTED" | "ABORTED";

/** An outcome as the wire's CommitOutcome. */
export function outcomeToWire(o: Outcome) {
  return o === "COMMITTED" ? ("COMMIT_OUTCOME_COMMITTED" as const) : ("COMMIT_OUTCOME_ABORTED" as const);
}

/** The wire's CommitOutcome as an outcome; undefined while undecided (COMMIT_OUTCOME_UNSPECIFIED). */
export function outcomeFromWire(o: string): Outcome | undefined {
  return o === "COMMIT_OUTCOME_COMMITTED" ? "COMMITTED" : o === "COMMIT_OUTCOME_ABORTED" ? "ABORTED" : undefined;
}

export interface Decision {
  outcome: Outcome;
  reason: string;
  attempt: number;
  /** The published checkpoint (COMMITTED only). */
  checkpoint?: CheckpointSummary;
}

/**
 * The durable decision record, decisions/<id>@<attempt>.json. Once the checkpoint is
 * deleted, a COMMITTED record is shrunk to a tombstone (no manifest, `deleted`) that
 * keeps the id from being reused.
 */
export interface DecisionRecord {
  outcome: Outcome;
  reason: string;
  attempt: number;
  decidedAt: string;
  manifest?: Manifest;
  deleted?: boolean;
}

/** Shrinks a deleted checkpoint's COMMIT record to a tombstone (best effort: a full record is only bigger). */
export async function shrinkDecision(storage: Storage, job: string, id: string, attempt: number): Promise<void> {
  const key = layout.decision(job, id, attempt);
  const text = await getText(storage, key);
  if (text === undefined) return;
  const record = JSON.parse(text) as DecisionRecord;
  if (record.outcome !== "COMMITTED" || !record.manifest) return;
  const { manifest: _manifest, ...rest } = record;
  await storage.put(key, JSON.stringify({ ...rest, deleted: true } satisfies DecisionRecord));
}
