/**
 * The manifest: the committed description of a checkpoint, versioned on its own.
 * It is the only thing that makes a checkpoint visible (DESIGN.md invariant 1).
 */
import { dtypeSize, tensorByteSize } from "../../wire/index.js";
import { LZ4_MAX_BLOCK, RAW_FRAME_OVERHEAD, type StoredChunk } from "../codec/codec.js";
import { invalidArgument } from "../common/errors.js";
import { checkInt, checkKey, checkName, MAX_WORLD_SIZE, truncated } from "../common/names.js";
import { entryFileName, PACK_FILE_NAME } from "../store/layout.js";

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
  /**
   * File name within the item directory: the entry's own, e.g. "000003.lz4", or the
   * item's pack file (PACK_FILE_NAME) that small entries share, each at its own offsets.
   */
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

/** The fields every view of a checkpoint has (manifest, summary, wire message), over its ranks' items. */
export interface CheckpointView<Time, Item> {
  job: string;
  checkpointId: string;
  step: number;
  worldSize: number;
  attempt: number;
  commitTime: Time;
  rawBytes: number;
  storedBytes: number;
  ranks: { rank: number; items: Item[] }[];
}

/** One view of a checkpoint as another: its fields copied in one order, its time and each item mapped. */
export function mapCheckpoint<TimeIn, ItemIn, TimeOut, ItemOut>(
  c: CheckpointView<TimeIn, ItemIn>,
  time: (t: TimeIn) => TimeOut,
  item: (i: ItemIn, rank: number) => ItemOut,
): CheckpointView<TimeOut, ItemOut> {
  return {
    job: c.job,
    checkpointId: c.checkpointId,
    step: c.step,
    worldSize: c.worldSize,
    attempt: c.attempt,
    commitTime: time(c.commitTime),
    rawBytes: c.rawBytes,
    storedBytes: c.storedBytes,
    ranks: c.ranks.map((r) => ({ rank: r.rank, items: r.items.map((i) => item(i, r.rank)) })),
  };
}

export function summarize(m: Manifest): CheckpointSummary {
  return mapCheckpoint(
    m,
    (t) => t,
    (i) => ({ name: i.name, rawBytes: i.rawBytes, storedBytes: i.storedBytes, entryCount: i.entries.length }),
  );
}

/**
 * Parses a manifest read from disk and checks it against the schema (validateManifest).
 * Throws SyntaxError for text that is not JSON, INVALID_ARGUMENT for JSON that is not a
 * valid manifest; either way the message says where and what.
 */
export function parseManifest(text: string, where: string): Manifest {
  return validateManifest(JSON.parse(text) as unknown, where);
}

/** Largest entry count of one item and item count of one rank that a record may declare. */
export const MAX_ENTRIES_PER_ITEM = 1 << 20;
export const MAX_ITEMS_PER_RANK = 4096;

type Json = Record<string, unknown>;

function object(where: string, v: unknown): Json {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw invalidArgument(`${where} must be an object, got ${truncated(v)}`);
  return v as Json;
}

function list(where: string, v: unknown, max: number): unknown[] {
  if (!Array.isArray(v)) throw invalidArgument(`${where} must be a list, got ${truncated(v)}`);
  if (v.length > max) throw invalidArgument(`${where} has ${v.length} elements; at most ${max} are allowed`);
  return v;
}

function string(where: string, v: unknown, max = 256): string {
  if (typeof v !== "string" || v.length > max || v.includes("\u0000"))
    throw invalidArgument(`${where} must be a string of at most ${max} characters without NUL, got ${truncated(v)}`);
  return v;
}

function dims(where: string, v: unknown): number[] {
  return list(where, v, 64).map((d, i) => checkInt(`${where}[${i}]`, d, 0));
}

/**
 * Checks one stored chunk list: each chunk starts where the previous one ended, holds at
 * most one LZ4 block, its stored size fits how it was stored (a raw frame is the bytes
 * plus the frame's overhead; a compressed one saved something), and its checksum is a
 * 32-bit unsigned integer. Returns the totals.
 */
function validateChunks(where: string, v: unknown, start: number): { chunks: StoredChunk[]; rawBytes: number; storedBytes: number } {
  let offset = start;
  let rawBytes = 0;
  const chunks = list(where, v, Math.ceil(2 ** 50 / LZ4_MAX_BLOCK)).map((c, i): StoredChunk => {
    const at = `${where}[${i}]`;
    const o = object(at, c);
    const chunk: StoredChunk = {
      offset: checkInt(`${at}.offset`, o["offset"], offset, offset),
      rawBytes: checkInt(`${at}.rawBytes`, o["rawBytes"], 0, LZ4_MAX_BLOCK),
      storedBytes: checkInt(`${at}.storedBytes`, o["storedBytes"], 1),
      crc32c: checkInt(`${at}.crc32c`, o["crc32c"], 0, 0xffffffff),
      raw: (() => {
        if (typeof o["raw"] !== "boolean") throw invalidArgument(`${at}.raw must be true or false, got ${truncated(o["raw"])}`);
        return o["raw"];
      })(),
    };
    if (chunk.raw && chunk.storedBytes !== chunk.rawBytes + RAW_FRAME_OVERHEAD)
      throw invalidArgument(`${at} is stored raw, so its storedBytes must be rawBytes + ${RAW_FRAME_OVERHEAD}, not ${chunk.storedBytes}`);
    if (!chunk.raw && (chunk.storedBytes <= RAW_FRAME_OVERHEAD || chunk.storedBytes > chunk.rawBytes))
      throw invalidArgument(
        `${at} is stored compressed, so its storedBytes (${chunk.storedBytes}) must lie in (${RAW_FRAME_OVERHEAD}, rawBytes = ${chunk.rawBytes}]`,
      );
    offset += chunk.storedBytes;
    rawBytes += chunk.rawBytes;
    return chunk;
  });
  return { chunks, rawBytes, storedBytes: offset - start };
}

function validateTensor(where: string, v: unknown): { tensor: TensorMeta; bytes: number } {
  const t = object(where, v);
  const size = dtypeSize(t["dtype"]);
  if (size === undefined) throw invalidArgument(`${where}.dtype ${truncated(t["dtype"])} is not a known dtype`);
  const shape = dims(`${where}.shape`, t["shape"]);
  const bytes = tensorByteSize(size, shape);
  if (typeof bytes === "string") throw invalidArgument(`${where}: ${bytes}`);
  const globalShape = dims(`${where}.globalShape`, t["globalShape"]);
  const globalOffsets = dims(`${where}.globalOffsets`, t["globalOffsets"]);
  if (globalShape.length + globalOffsets.length > 0) {
    if (globalShape.length !== shape.length || globalOffsets.length !== shape.length)
      throw invalidArgument(`${where}: globalShape and globalOffsets must have one value per dimension of shape`);
    shape.forEach((d, i) => {
      if (globalOffsets[i]! + d > globalShape[i]!) throw invalidArgument(`${where}: the shard lies outside global dimension ${i}`);
    });
  }
  return {
    tensor: { dtype: t["dtype"] as string, shape, device: string(`${where}.device`, t["device"]), globalShape, globalOffsets },
    bytes,
  };
}

/**
 * `packAt`: where the item's next packed entry must start in the pack file (packed
 * entries lie back to back in entry order, so the pack's size is the sum of theirs).
 */
function validateEntry(where: string, v: unknown, index: number, packAt: number): EntryRecord {
  const e = object(where, v);
  let key: string;
  try {
    key = checkKey(e["key"]);
  } catch (err) {
    throw invalidArgument(`${where}.key: ${(err as Error).message}`);
  }
  // The file name is not free: the item writer names entry files by index (or packs the
  // entry), and anything else could point a load or a verification outside the item's directory.
  const packed = e["file"] === PACK_FILE_NAME;
  if (!packed && e["file"] !== entryFileName(index))
    throw invalidArgument(
      `${where}.file must be ${JSON.stringify(entryFileName(index))} or ${JSON.stringify(PACK_FILE_NAME)}, got ${truncated(e["file"])}`,
    );
  const { chunks, rawBytes, storedBytes } = validateChunks(`${where}.chunks`, e["chunks"], packed ? packAt : 0);
  const record: EntryRecord = {
    key,
    kind: "tensor",
    file: packed ? PACK_FILE_NAME : entryFileName(index),
    rawBytes: checkInt(`${where}.rawBytes`, e["rawBytes"], rawBytes, rawBytes),
    storedBytes: checkInt(`${where}.storedBytes`, e["storedBytes"], storedBytes, storedBytes),
    chunks,
  };
  if (e["kind"] === "tensor") {
    if (e["object"] !== undefined) throw invalidArgument(`${where} is a tensor and cannot also describe an object`);
    const { tensor, bytes } = validateTensor(`${where}.tensor`, e["tensor"]);
    if (bytes !== rawBytes)
      throw invalidArgument(`${where}: the tensor's dtype and shape make ${bytes} bytes, its chunks hold ${rawBytes}`);
    record.tensor = tensor;
  } else if (e["kind"] === "object") {
    if (e["tensor"] !== undefined) throw invalidArgument(`${where} is an object and cannot also describe a tensor`);
    const o = object(`${where}.object`, e["object"]);
    record.kind = "object";
    record.object = {
      sizeBytes: checkInt(`${where}.object.sizeBytes`, o["sizeBytes"], rawBytes, rawBytes),
      format: string(`${where}.object.format`, o["format"]),
    };
  } else throw invalidArgument(`${where}.kind must be "tensor" or "object", got ${truncated(e["kind"])}`);
  return record;
}

/**
 * Checks an item record (from a participant's vote, or inside a manifest) completely:
 * names, counts, sizes that add up from chunks to entries to the item, chunk lists,
 * checksums, and no missing or null field. Returns a clean copy (unknown fields dropped).
 */
export function validateItemRecord(v: unknown, where = "item"): ItemRecord {
  const o = object(where, v);
  let name: string;
  try {
    name = checkName("item name", o["name"]);
  } catch (err) {
    throw invalidArgument(`${where}: ${(err as Error).message}`);
  }
  const keys = new Set<string>();
  let rawBytes = 0;
  let storedBytes = 0;
  let packAt = 0;
  const entries = list(`${where}.entries`, o["entries"], MAX_ENTRIES_PER_ITEM).map((e, i) => {
    const entry = validateEntry(`${where}.entries[${i}]`, e, i, packAt);
    if (entry.file === PACK_FILE_NAME) packAt += entry.storedBytes;
    if (keys.has(entry.key)) throw invalidArgument(`${where}.entries[${i}]: key ${truncated(entry.key)} appears twice`);
    keys.add(entry.key);
    rawBytes += entry.rawBytes;
    storedBytes += entry.storedBytes;
    return entry;
  });
  return {
    name,
    rawBytes: checkInt(`${where}.rawBytes (the sum of its entries')`, o["rawBytes"], rawBytes, rawBytes),
    storedBytes: checkInt(`${where}.storedBytes (the sum of its entries')`, o["storedBytes"], storedBytes, storedBytes),
    entries,
  };
}

/**
 * The manifest schema, checked wherever a manifest is read: format and version, names
 * that are safe path components, bounded integers, ranks inside the world size and
 * unique, every item record complete (validateItemRecord), and totals that add up.
 */
export function validateManifest(v: unknown, where = "manifest"): Manifest {
  const m = object(where, v);
  if (m["format"] !== MANIFEST_FORMAT || m["version"] !== MANIFEST_VERSION)
    throw invalidArgument(`${where} is not a ckptd manifest of version ${MANIFEST_VERSION}`);
  let job: string;
  let checkpointId: string;
  try {
    job = checkName("job", m["job"]);
    checkpointId = checkName("checkpointId", m["checkpointId"]);
  } catch (err) {
    throw invalidArgument(`${where}: ${(err as Error).message}`);
  }
  const worldSize = checkInt(`${where}: worldSize`, m["worldSize"], 1, MAX_WORLD_SIZE);
  const commitTime = string(`${where}: commitTime`, m["commitTime"], 64);
  if (Number.isNaN(Date.parse(commitTime))) throw invalidArgument(`${where}: commitTime ${truncated(commitTime)} is not a time`);
  const seen = new Set<number>();
  let rawBytes = 0;
  let storedBytes = 0;
  const ranks = list(`${where}: ranks`, m["ranks"], worldSize).map((r, i): RankRecord => {
    const at = `${where}: ranks[${i}]`;
    const o = object(at, r);
    const rank = checkInt(`${at}.rank`, o["rank"], 0, worldSize - 1);
    if (seen.has(rank)) throw invalidArgument(`${at}: rank ${rank} appears twice`);
    seen.add(rank);
    const names = new Set<string>();
    const items = list(`${at}.items`, o["items"], MAX_ITEMS_PER_RANK).map((item, j) => {
      const record = validateItemRecord(item, `${at}.items[${j}]`);
      if (names.has(record.name)) throw invalidArgument(`${at}.items[${j}]: item '${record.name}' appears twice`);
      names.add(record.name);
      rawBytes += record.rawBytes;
      storedBytes += record.storedBytes;
      return record;
    });
    return { rank, items };
  });
  // A COMMIT needs every rank's vote, so a committed manifest describes every rank.
  if (seen.size !== worldSize) throw invalidArgument(`${where}: ranks describes ${seen.size} of the ${worldSize} ranks`);
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    job,
    checkpointId,
    step: checkInt(`${where}: step`, m["step"], 0),
    worldSize,
    attempt: checkInt(`${where}: attempt`, m["attempt"], 1),
    commitTime,
    rawBytes: checkInt(`${where}: rawBytes (the sum of its items')`, m["rawBytes"], rawBytes, rawBytes),
    storedBytes: checkInt(`${where}: storedBytes (the sum of its items')`, m["storedBytes"], storedBytes, storedBytes),
    ranks,
  };
}

/** The size each stored file of an item must have, by file name, with the first entry stored in it. */
export function storedFileSizes(item: ItemRecord): Map<string, { size: number; key: string }> {
  const sizes = new Map<string, { size: number; key: string }>();
  for (const e of item.entries) {
    const f = sizes.get(e.file);
    if (f) f.size += e.storedBytes;
    else sizes.set(e.file, { size: e.storedBytes, key: e.key });
  }
  return sizes;
}
