/**
 * The manifest: the committed description of a checkpoint, versioned on its own.
 * It is the only thing that makes a checkpoint visible (DESIGN.md invariant 1).
 */
import type { StoredChunk } from "./codec.js";

export const MANIFEST_FORMAT = "ckptd.manifest";
export const MANIFEST_VERSION = 1;

export interface TensorMeta {
  dtype: string;
  shape: number[];
  device: string;
  globalShape: number[];
  globalOffsets: number[];
}

export interface ObjectMeta {
  sizeBytes: number;
  format: string;
}

export interface EntryRecord {
  key: string;
  kind: "tensor" | "object";
  tensor?: TensorMeta;
  object?: ObjectMeta;
  /** File name within the item directory, e.g. "000003.lz4". */
  file: string;
  rawBytes: number;
  storedBytes: number;
  chunks: StoredChunk[];
}

export interface ItemRecord {
  name: string;
  rawBytes: number;
  storedBytes: number;
  entries: EntryRecord[];
}

export interface RankRecord {
  rank: number;
  items: ItemRecord[];
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  job: string;
  checkpointId: string;
  step: number;
  worldSize: number;
  attempt: number;
  /** ISO-8601 time of the COMMIT decision. */
  commitTime: string;
  rawBytes: number;
  storedBytes: number;
  ranks: RankRecord[];
}

/** What the daemon keeps in memory per committed checkpoint: the manifest without its entries. */
export type CheckpointSummary = Omit<Manifest, "format" | "version" | "ranks"> & {
  ranks: { rank: number; items: { name: string; rawBytes: number; storedBytes: number; entryCount: number }[] }[];
};

export function summarize(m: Manifest): CheckpointSummary {
  return {
    job: m.job,
    checkpointId: m.checkpointId,
    step: m.step,
    worldSize: m.worldSize,
    attempt: m.attempt,
    commitTime: m.commitTime,
    rawBytes: m.rawBytes,
    storedBytes: m.storedBytes,
    ranks: m.ranks.map((r) => ({
      rank: r.rank,
      items: r.items.map((i) => ({
        name: i.name,
        rawBytes: i.rawBytes,
        storedBytes: i.storedBytes,
        entryCount: i.entries.length,
      })),
    })),
  };
}

/** Parses and sanity-checks a manifest read from disk. */
export function parseManifest(text: string, where: string): Manifest {
  const m = JSON.parse(text) as Partial<Manifest>;
  if (m.format !== MANIFEST_FORMAT || m.version !== MANIFEST_VERSION || !Array.isArray(m.ranks))
    throw new Error(`${where} is not a ckptd manifest of version ${MANIFEST_VERSION}`);
  return m as Manifest;
}

/** Directory of a rank's item inside a checkpoint (or staging) directory. */
export function itemDirName(rank: number, item: string): string {
  return `rank-${String(rank).padStart(5, "0")}/${item}`;
}

export function entryFileName(index: number): string {
  return `${String(index).padStart(6, "0")}.lz4`;
}
