/**
 * Wire messages built from domain values: checkpoints, decisions, load plans and entries,
 * timestamps and page tokens. Shared by the services.
 */
import type { CheckpointIn } from "../../wire/gen/ckptd/v1/Checkpoint.js";
import type { LoadResponseIn } from "../../wire/gen/ckptd/v1/LoadResponse.js";
import type { TensorSpec } from "../../wire/gen/ckptd/v1/TensorSpec.js";
import { mapCheckpoint, type CheckpointSummary, type EntryRecord, type Manifest } from "../catalog/manifest.js";
import { outcomeToWire, type Decision } from "../commit/decisions.js";
import { invalidArgument } from "../common/errors.js";
import type { LoadPart, LoadPlan } from "../load/loader.js";

export function planMessage(plan: LoadPlan, destinationBytes = 0): LoadResponseIn {
  return {
    plan: {
      destinationBytes,
      // Destination mode takes a handle (LoadDestination.shared_memory_handle) as well as a path.
      destinationHandle: destinationBytes > 0,
      checkpoint: checkpointMessage(plan.checkpoint),
      sourceRank: plan.sourceRank,
      mapLocation: Object.fromEntries(plan.mapLocation),
      placements: plan.placements,
      totalBytes: plan.totalBytes,
      resharded: plan.resharded,
    },
  };
}

export function entryMessage(part: Extract<LoadPart, { kind: "entry" }>): LoadResponseIn {
  return {
    entry: {
      item: part.item,
      key: part.entry.key,
      ...entryKind(part.entry),
      sizeBytes: part.entry.rawBytes,
      targetDevice: part.targetDevice,
    },
  };
}

function entryKind(e: EntryRecord) {
  return e.tensor
    ? { tensor: { ...e.tensor, dtype: e.tensor.dtype as TensorSpec["dtype"] } }
    : { object: { sizeBytes: e.object?.sizeBytes ?? 0, format: e.object?.format ?? "" } };
}

export function decisionMessage(d: Decision) {
  return {
    outcome: outcomeToWire(d.outcome),
    reason: d.reason,
    attempt: d.attempt,
    ...(d.checkpoint ? { checkpoint: checkpointMessage(d.checkpoint) } : {}),
  };
}

/** The wire Checkpoint; with a manifest, the full view with every entry. */
export function checkpointMessage(s: CheckpointSummary, manifest?: Manifest): CheckpointIn {
  const full = manifest ? new Map(manifest.ranks.map((r) => [r.rank, new Map(r.items.map((i) => [i.name, i]))])) : undefined;
  return mapCheckpoint(s, timestamp, (i, rank) => ({
    name: i.name,
    rawBytes: i.rawBytes,
    storedBytes: i.storedBytes,
    entryCount: i.entryCount,
    entries:
      full
        ?.get(rank)
        ?.get(i.name)
        ?.entries.map((e) => ({
          key: e.key,
          ...entryKind(e),
          rawBytes: e.rawBytes,
          storedBytes: e.storedBytes,
          chunkCount: e.chunks.length,
        })) ?? [],
  }));
}

/** An ISO-8601 time as a protobuf Timestamp. */
export function timestamp(iso: string): { seconds: number; nanos: number } {
  const ms = Date.parse(iso);
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

export function encodePageToken(c: CheckpointSummary): string {
  return Buffer.from(JSON.stringify({ s: c.step, i: c.checkpointId })).toString("base64url");
}

export function decodePageToken(token: string): { step: number; id: string } {
  try {
    const v = JSON.parse(Buffer.from(token, "base64url").toString()) as { s: unknown; i: unknown };
    if (typeof v.s === "number" && typeof v.i === "string") return { step: v.s, id: v.i };
  } catch {
    // Fall through to the error below.
  }
  throw invalidArgument("page_token is not one this daemon issued; pass next_page_token from the previous page");
}
