/**
 * Helpers of the integration tests: test data, valid traffic through `CkptdClient` (save
 * and commit, load and compare bit for bit), status assertions, and the data directory.
 * Messages the client never sends (malformed, hostile or exact-shape) are in raw-wire.ts.
 */
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { expect } from "vitest";
import {
  CkptdClient,
  CkptdError,
  fromProtoDtype,
  tensor,
  type Checkpoint,
  type CheckpointPage,
  type CkptdClientOptions,
  type CommitResult,
  type LoadEntry,
  type LoadPlan,
  type SaveEntry,
  type SaveResult,
} from "../../clients/ts/src/index.js";
import { DTYPE_SIZES } from "../../wire/index.js";
import type { Dtype } from "../../wire/gen/ckptd/v1/Dtype.js";
import type { ObjectSpecIn } from "../../wire/gen/ckptd/v1/ObjectSpec.js";
import type { TensorSpecIn } from "../../wire/gen/ckptd/v1/TensorSpec.js";

export const MiB = 1 << 20;

// ---------------------------------------------------------------------------
// Statuses

/** The name of a gRPC status code, so a failed expectation reads `INVALID_ARGUMENT`, not `3`. */
export function statusName(code: number | undefined): string {
  return code === undefined ? "(no error)" : (grpc.status[code] ?? `code ${code}`);
}

/** A failed call: a grpc-js ServiceError or the client's CkptdError. */
export type StatusError = Pick<grpc.ServiceError, "code" | "details">;

/** Asserts that `err` is a gRPC error with the given status and a message matching `message`. */
export function expectStatus(
  result: { error?: StatusError | undefined } | StatusError | undefined,
  code: keyof typeof grpc.status | ReadonlyArray<keyof typeof grpc.status>,
  message?: RegExp,
): void {
  const err = result && "error" in result ? result.error : (result as StatusError | undefined);
  const codes = typeof code === "string" ? [code] : code;
  const got = err ? `${statusName(err.code)}: ${err.details}` : `success ${JSON.stringify(result)}`.slice(0, 500);
  expect(err, `expected ${codes.join(" | ")}, got ${got}`).toBeDefined();
  expect(codes, `expected ${codes.join(" | ")}, got ${got}`).toContain(statusName(err!.code));
  if (message) expect(err!.details, `status message of ${statusName(err!.code)}`).toMatch(message);
}

// ---------------------------------------------------------------------------
// Test data

/** Bytes that LZ4 shrinks a lot but that still differ from one seed to another. */
export function compressibleBytes(n: number, seed = 1): Buffer {
  const buf = Buffer.alloc(n);
  const period = 257 + (seed % 97);
  const pattern = Buffer.alloc(period);
  for (let i = 0; i < period; i++) pattern[i] = (i * 31 + seed * 17 + (i >> 3)) & 0xff;
  for (let off = 0; off < n; off += period) pattern.copy(buf, off, 0, Math.min(period, n - off));
  // A few sparse seed-dependent marks so two seeds never compress to the same frames.
  for (let off = seed % 4096; off < n; off += 65_521) buf[off] = (seed * 13 + off) & 0xff;
  return buf;
}

/** Incompressible bytes: LZ4 cannot shrink them, so their chunks are stored raw. */
export function incompressibleBytes(n: number): Buffer {
  return randomBytes(n);
}

/** One entry of an item as a test sends it: its header plus its raw bytes. */
export interface TestEntry {
  key: string;
  tensor?: TensorSpecIn;
  object?: ObjectSpecIn;
  data: Buffer;
}

/** A tensor entry whose bytes fill dtype x shape (compressible unless `data` is given). */
export function tensorEntry(key: string, dtype: Dtype, shape: number[], data?: Buffer, device = "cpu"): TestEntry {
  const size = shape.reduce((n, d) => n * d, DTYPE_SIZES[dtype]);
  const bytes = data ?? compressibleBytes(size, key.length + size);
  return { key, tensor: { dtype, shape, device }, data: bytes };
}

/** A float32 tensor entry of exactly `bytes.length` bytes (a multiple of 4). */
export function f32Entry(key: string, bytes: Buffer, device = "cpu"): TestEntry {
  if (bytes.length % 4 !== 0) throw new Error(`f32Entry: ${bytes.length} is not a multiple of 4`);
  return { key, tensor: { dtype: "DTYPE_FLOAT32", shape: [bytes.length / 4], device }, data: bytes };
}

/** An opaque object entry (e.g. pickled optimizer state). */
export function objectEntry(key: string, data: Buffer, format = "pickle"): TestEntry {
  return { key, object: { sizeBytes: data.length, format }, data };
}

// ---------------------------------------------------------------------------
// Valid traffic, through the TypeScript client

/**
 * A client that takes the daemon paths the tests exercise: saves and loads stream their
 * bytes on gRPC (no shared memory unless a test asks for it), 4 MiB chunks, and incarnation
 * 0 (no fencing), as the tests' exact-wire messages send it.
 */
export function testClient(address: string, options: Omit<CkptdClientOptions, "address"> = {}): CkptdClient {
  return new CkptdClient({ address, sharedMemory: false, incarnation: 0, ...options });
}

/** The client's form of test entries: tensors by dtype, shape and device, objects by format. */
function saveEntries(entries: TestEntry[]): SaveEntry[] {
  return entries.map((e) => {
    if (!e.tensor) return { key: e.key, object: { data: e.data, format: e.object?.format ?? "" } };
    const dtype = fromProtoDtype((e.tensor.dtype ?? "DTYPE_UNSPECIFIED") as Dtype);
    if (!dtype) throw new Error(`entry ${e.key}: the client has no dtype for ${String(e.tensor.dtype)}`);
    const t = tensor(e.data, { dtype, shape: (e.tensor.shape ?? []).map(Number), device: e.tensor.device ?? "" });
    const { globalShape, globalOffsets } = e.tensor;
    return {
      key: e.key,
      tensor: {
        ...t,
        ...(globalShape?.length ? { globalShape: globalShape.map(Number) } : {}),
        ...(globalOffsets?.length ? { globalOffsets: globalOffsets.map(Number) } : {}),
      },
    };
  });
}

/** The coordinates of one rank's item in one checkpoint. */
export interface ItemRef {
  job: string;
  checkpointId: string;
  step: number;
  rank: number;
  worldSize: number;
  item: string;
}

/** The failure of a client call as an assertion message: status name and details. */
function failure(err: unknown): string {
  return err instanceof CkptdError ? `${statusName(err.code)}: ${err.details}` : String(err);
}

/** Saves one item through the client and fails the test unless the daemon acknowledged it. */
export async function saveItemOk(client: CkptdClient, ref: ItemRef, entries: TestEntry[]): Promise<SaveResult> {
  const what = `save ${ref.job}/${ref.checkpointId} rank ${ref.rank} item ${ref.item}`;
  let res: SaveResult | undefined;
  try {
    res = await client.save({ ...ref, entries: saveEntries(entries) });
  } catch (err) {
    expect.fail(`${what} failed: ${failure(err)}`);
  }
  expect(res, `${what}: no response`).toBeDefined();
  const bytes = entries.reduce((n, e) => n + e.data.length, 0);
  expect(res!.bytesReceived, `${what}: bytesReceived`).toBe(bytes);
  expect(res!.entryCount, `${what}: entryCount`).toBe(entries.length);
  return res!;
}

/** One rank's part of a checkpoint: item name -> entries. */
export type RankItems = Record<string, TestEntry[]>;

/**
 * Saves every rank's items (ranks in parallel) and then votes for every rank, and
 * asserts the checkpoint committed. `ranks[r]` is what rank r saves.
 */
export async function saveAndCommit(
  client: CkptdClient,
  job: string,
  checkpointId: string,
  step: number,
  ranks: RankItems[],
): Promise<CommitResult[]> {
  const worldSize = ranks.length;
  await Promise.all(
    ranks.map(async (items, rank) => {
      for (const [item, entries] of Object.entries(items)) {
        await saveItemOk(client, { job, checkpointId, step, rank, worldSize, item }, entries);
      }
    }),
  );
  const votes = await Promise.all(
    ranks.map((items, rank) =>
      client.commit({ job, checkpointId, step, rank, worldSize, items: Object.keys(items) }).catch((err: unknown) => {
        expect.fail(`commit ${job}/${checkpointId} rank ${rank}: expected COMMITTED, got ${failure(err)}`);
      }),
    ),
  );
  return votes.map((v, rank) => {
    expect(v.outcome, `commit ${job}/${checkpointId} rank ${rank}: reason "${v.reason}"`).toBe("COMMITTED");
    return v;
  });
}

/** A client call's outcome as a value: its response, or the status it failed with. */
export interface CallResult<T> {
  response?: T;
  error?: CkptdError;
}

async function settle<T>(call: Promise<T>): Promise<CallResult<T>> {
  try {
    return { response: await call };
  } catch (err) {
    if (err instanceof CkptdError) return { error: err };
    throw err;
  }
}

/** GetCheckpoint through the client: the checkpoint, or the error (e.g. NOT_FOUND). */
export function getCheckpoint(client: CkptdClient, job: string, checkpointId: string): Promise<CallResult<{ checkpoint: Checkpoint }>> {
  return settle(client.getCheckpoint(job, checkpointId, { timeoutMs: 30_000 }).then((checkpoint) => ({ checkpoint })));
}

/** One page of ListCheckpoints through the client, or the error. */
export function listCheckpoints(client: CkptdClient, job: string, pageSize?: number): Promise<CallResult<CheckpointPage>> {
  return settle(client.listCheckpoints(job, { timeoutMs: 30_000, ...(pageSize === undefined ? {} : { pageSize }) }));
}

/** One entry of a loaded rank, with the bytes of its chunks and how many chunks brought them. */
export interface LoadedBytes {
  entry: LoadEntry;
  data: Buffer;
  chunkCount: number;
}

/** A loaded rank, message by message as the Load stream delivered it. */
export interface LoadedRank {
  plan?: LoadPlan;
  entries: LoadedBytes[];
  /** Every message in order: plan, entry, chunk. */
  kinds: string[];
}

/**
 * Loads one rank of a committed checkpoint and asserts it returns exactly these
 * items and entries, in save order within each item, bit for bit.
 */
export async function expectLoadsBitExact(
  client: CkptdClient,
  job: string,
  checkpointId: string,
  rank: number,
  items: RankItems,
): Promise<LoadedRank> {
  const what = `load ${job}/${checkpointId} rank ${rank}`;
  const r: LoadedRank = { entries: [], kinds: [] };
  const parts: Buffer[][] = [];
  try {
    for await (const ev of client.load({ job, checkpointId, rank }, { deadlineMs: 60_000 })) {
      r.kinds.push(ev.type);
      if (ev.type === "plan") r.plan = ev.plan;
      else if (ev.type === "entry") {
        r.entries.push({ entry: ev.entry, data: Buffer.alloc(0), chunkCount: 0 });
        parts.push([]);
      } else {
        const last = r.entries[r.entries.length - 1];
        if (last) {
          last.chunkCount++;
          parts[parts.length - 1]!.push(ev.data);
        }
      }
    }
  } catch (err) {
    expect.fail(`${what}: ${failure(err)}`);
  }
  r.entries.forEach((e, i) => {
    e.data = Buffer.concat(parts[i] ?? []);
  });
  expect(r.kinds[0], `${what}: first message`).toBe("plan");
  const expected = Object.entries(items).flatMap(([item, entries]) => entries.map((e) => ({ item, e })));
  const got = r.entries.map((x) => `${x.entry.item}/${x.entry.key}`).sort();
  expect(got, `${what}: entries`).toEqual(expected.map(({ item, e }) => `${item}/${e.key}`).sort());
  for (const { item, e } of expected) {
    const loaded = r.entries.find((x) => x.entry.item === item && x.entry.key === e.key);
    expect(loaded!.entry.sizeBytes, `${what}: ${item}/${e.key} sizeBytes`).toBe(e.data.length);
    expectSameBytes(loaded!.data, e.data, `${what}: ${item}/${e.key}`);
  }
  for (const [item, entries] of Object.entries(items)) {
    const order = r.entries.filter((x) => x.entry.item === item).map((x) => x.entry.key);
    expect(order, `${what}: entry order of ${item}`).toEqual(entries.map((e) => e.key));
  }
  return r;
}

/** Compares bytes and reports the first difference instead of dumping megabytes. */
export function expectSameBytes(actual: Buffer | undefined, expected: Buffer, what: string): void {
  expect(actual, `${what}: missing`).toBeDefined();
  const a = actual!;
  let firstDiff = -1;
  const n = Math.min(a.length, expected.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== expected[i]) {
      firstDiff = i;
      break;
    }
  }
  expect(
    { length: a.length, firstDiff },
    `${what}: got ${a.length} bytes, expected ${expected.length}; first difference at ${firstDiff}`,
  ).toEqual({ length: expected.length, firstDiff: -1 });
}

// ---------------------------------------------------------------------------
// Data directory

export function jobDir(dataDir: string, job: string): string {
  return path.join(dataDir, "jobs", job);
}

export function stagingDir(dataDir: string, job: string): string {
  return path.join(dataDir, "jobs", job, "staging");
}

export function checkpointDir(dataDir: string, job: string, checkpointId: string): string {
  return path.join(dataDir, "jobs", job, "checkpoints", checkpointId);
}

/** The regular files under `dir`, relative to it, sorted; empty when `dir` does not exist. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    let names: fs.Dirent[];
    try {
      names = fs.readdirSync(d, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    for (const n of names) {
      const r = rel ? `${rel}/${n.name}` : n.name;
      if (n.isDirectory()) walk(path.join(d, n.name), r);
      else out.push(r);
    }
  };
  walk(dir, "");
  return out.sort();
}

/** Total size of the regular files under `dir`, tolerating files that vanish meanwhile. */
export function bytesUnder(dir: string): number {
  let total = 0;
  for (const f of filesUnder(dir)) {
    try {
      total += fs.statSync(path.join(dir, f)).size;
    } catch {
      // Renamed or removed between the listing and the stat.
    }
  }
  return total;
}

/**
 * Bytes a job holds on disk outside its committed checkpoints (staging, records,
 * anything awaiting deletion): what an abort must give back.
 */
export function uncommittedBytes(dataDir: string, job: string): number {
  const dir = jobDir(dataDir, job);
  let total = 0;
  for (const f of filesUnder(dir)) {
    if (f.startsWith("checkpoints/")) continue;
    try {
      total += fs.statSync(path.join(dir, f)).size;
    } catch {
      // Removed between the listing and the stat.
    }
  }
  return total;
}

/** Relative path -> SHA-256 of every file under `dir`. */
export function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of filesUnder(dir))
    out[f] = createHash("sha256")
      .update(fs.readFileSync(path.join(dir, f)))
      .digest("hex");
  return out;
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns the last answer. */
export async function waitUntil(check: () => boolean, timeoutMs = 5_000, intervalMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (check()) return true;
    if (Date.now() >= end) return false;
    await sleep(intervalMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The chunk of a committed manifest, as written to manifest.json. */
export interface ManifestChunk {
  offset: number;
  storedBytes: number;
  rawBytes: number;
  crc32c: number;
  raw: boolean;
}

export interface ManifestEntry {
  key: string;
  file: string;
  rawBytes: number;
  storedBytes: number;
  chunks: ManifestChunk[];
}

interface ManifestJson {
  ranks: Array<{ rank?: number; items: Array<{ name?: string; item?: string; entries: ManifestEntry[] }> }>;
}

export function readManifest(dataDir: string, job: string, checkpointId: string): ManifestJson {
  return JSON.parse(fs.readFileSync(path.join(checkpointDir(dataDir, job, checkpointId), "manifest.json"), "utf8"));
}

/** Finds one entry of a committed manifest by rank, item and key. */
export function manifestEntry(m: ManifestJson, rank: number, item: string, key: string): ManifestEntry {
  const r = m.ranks.find((x, i) => (x.rank ?? i) === rank);
  expect(r, `manifest has rank ${rank}`).toBeDefined();
  const it = r!.items.find((x) => (x.name ?? x.item) === item);
  expect(it, `manifest rank ${rank} has item ${item}`).toBeDefined();
  const e = it!.entries.find((x) => x.key === key);
  expect(e, `manifest rank ${rank} item ${item} has entry ${key}`).toBeDefined();
  return e!;
}

/** The path of a stored entry file as the on-disk layout fixes it. */
export function entryFile(dataDir: string, job: string, checkpointId: string, rank: number, item: string, index: number): string {
  return path.join(
    checkpointDir(dataDir, job, checkpointId),
    `rank-${String(rank).padStart(5, "0")}`,
    item,
    `${String(index).padStart(6, "0")}.lz4`,
  );
}

let uniq = 0;
/** A name unique within this test process, safe for job and checkpoint ids. */
export function uniqueName(prefix: string): string {
  uniq++;
  return `${prefix}-${process.pid}-${uniq}`;
}
