/**
 * Raw-wire helpers for the integration tests: build exact Save streams, send them,
 * vote, load, and inspect the data directory. They speak the generated types
 * directly so a test controls every message the daemon sees.
 */
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { crc32c } from "@node-rs/crc32";
import { expect } from "vitest";
import { CLIENT_CHANNEL_OPTIONS, DTYPE_SIZES, MAX_CHUNK_BYTES, loadWire } from "../../wire/index.js";
import type { CheckpointServiceClient } from "../../wire/gen/ckptd/v1/CheckpointService.js";
import type { AbortRequestIn } from "../../wire/gen/ckptd/v1/AbortRequest.js";
import type { AbortResponse } from "../../wire/gen/ckptd/v1/AbortResponse.js";
import type { CommitRequestIn } from "../../wire/gen/ckptd/v1/CommitRequest.js";
import type { CommitResponse } from "../../wire/gen/ckptd/v1/CommitResponse.js";
import type { Dtype } from "../../wire/gen/ckptd/v1/Dtype.js";
import type { GetCheckpointRequestIn } from "../../wire/gen/ckptd/v1/GetCheckpointRequest.js";
import type { GetCheckpointResponse } from "../../wire/gen/ckptd/v1/GetCheckpointResponse.js";
import type { ListCheckpointsRequestIn } from "../../wire/gen/ckptd/v1/ListCheckpointsRequest.js";
import type { ListCheckpointsResponse } from "../../wire/gen/ckptd/v1/ListCheckpointsResponse.js";
import type { LoadEntry } from "../../wire/gen/ckptd/v1/LoadEntry.js";
import type { LoadPlan } from "../../wire/gen/ckptd/v1/LoadPlan.js";
import type { LoadRequestIn } from "../../wire/gen/ckptd/v1/LoadRequest.js";
import type { LoadResponse } from "../../wire/gen/ckptd/v1/LoadResponse.js";
import type { ObjectSpecIn } from "../../wire/gen/ckptd/v1/ObjectSpec.js";
import type { SaveHeaderIn } from "../../wire/gen/ckptd/v1/SaveHeader.js";
import type { SaveRequestIn } from "../../wire/gen/ckptd/v1/SaveRequest.js";
import type { SaveResponse } from "../../wire/gen/ckptd/v1/SaveResponse.js";
import type { SaveSharedRequestIn } from "../../wire/gen/ckptd/v1/SaveSharedRequest.js";
import type { SaveSharedResponse } from "../../wire/gen/ckptd/v1/SaveSharedResponse.js";
import type { TensorSpecIn } from "../../wire/gen/ckptd/v1/TensorSpec.js";

export const MiB = 1 << 20;

// ---------------------------------------------------------------------------
// Statuses

/** The name of a gRPC status code, so a failed expectation reads `INVALID_ARGUMENT`, not `3`. */
export function statusName(code: number | undefined): string {
  return code === undefined ? "(no error)" : (grpc.status[code] ?? `code ${code}`);
}

/** Asserts that `err` is a gRPC error with the given status and a message matching `message`. */
export function expectStatus(
  result: { error?: grpc.ServiceError | undefined } | grpc.ServiceError | undefined,
  code: keyof typeof grpc.status | ReadonlyArray<keyof typeof grpc.status>,
  message?: RegExp,
): void {
  const err = result && "error" in result ? result.error : (result as grpc.ServiceError | undefined);
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

export function headerMsg(h: SaveHeaderIn): SaveRequestIn {
  return { header: h };
}

export function entryMsg(e: Pick<TestEntry, "key" | "tensor" | "object">): SaveRequestIn {
  return e.tensor ? { entry: { key: e.key, tensor: e.tensor } } : { entry: { key: e.key, object: e.object ?? null } };
}

export function chunkMsg(data: Buffer, withCrc = true): SaveRequestIn {
  return withCrc ? { chunk: { data, crc32c: crc32c(data) } } : { chunk: { data } };
}

export function trailerMsg(entryCount: number, byteCount: number, crc: number): SaveRequestIn {
  return { trailer: { entryCount, byteCount, crc32c: crc } };
}

/** Splits `data` into chunks of at most `chunkBytes`; an empty buffer yields no chunk. */
export function split(data: Buffer, chunkBytes = MAX_CHUNK_BYTES): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < data.length; off += chunkBytes) out.push(data.subarray(off, Math.min(off + chunkBytes, data.length)));
  return out;
}

export interface StreamOptions {
  /** Chunk size; 4 MiB by default. */
  chunkBytes?: number;
  /** Send a CRC-32C with every chunk (default true). */
  chunkCrc?: boolean;
}

/** The entry and chunk messages of some entries, without header or trailer. */
export function entryMessages(entries: TestEntry[], opts: StreamOptions = {}): SaveRequestIn[] {
  const msgs: SaveRequestIn[] = [];
  for (const e of entries) {
    msgs.push(entryMsg(e));
    for (const c of split(e.data, opts.chunkBytes)) msgs.push(chunkMsg(c, opts.chunkCrc ?? true));
  }
  return msgs;
}

/** The correct trailer for these entries: count, total bytes and running CRC-32C. */
export function trailerFor(entries: TestEntry[]): SaveRequestIn {
  let crc = 0;
  let bytes = 0;
  for (const e of entries) {
    crc = crc32c(e.data, crc);
    bytes += e.data.length;
  }
  return trailerMsg(entries.length, bytes, crc);
}

/** A complete, well-formed Save stream: header, entries with their chunks, trailer. */
export function itemStream(header: SaveHeaderIn, entries: TestEntry[], opts: StreamOptions = {}): SaveRequestIn[] {
  return [headerMsg(header), ...entryMessages(entries, opts), trailerFor(entries)];
}

// ---------------------------------------------------------------------------
// Clients

/**
 * A raw client that lets through messages larger than the daemon's limit, to test
 * the daemon's own enforcement rather than the client's.
 */
export function unlimitedClient(address: string): CheckpointServiceClient {
  const { grpcObject } = loadWire();
  return new grpcObject.ckptd.v1.CheckpointService(address, grpc.credentials.createInsecure(), {
    ...CLIENT_CHANNEL_OPTIONS,
    "grpc.max_send_message_length": -1,
    "grpc.max_receive_message_length": -1,
  });
}

// ---------------------------------------------------------------------------
// Save

export interface SaveResult {
  response?: SaveResponse;
  error?: grpc.ServiceError;
  /** Set when neither a response nor an error came within `timeoutMs`. */
  timedOut?: boolean;
}

/** An open Save stream written message by message, with backpressure. */
export interface SaveStream {
  /** Writes one message; resolves once the stream can take more (or the call ended). */
  write(msg: SaveRequestIn): Promise<void>;
  /** Half-closes and resolves with the outcome. */
  end(): Promise<SaveResult>;
  /** Cancels the call as a client that vanishes would. */
  cancel(): void;
  /** The outcome, whenever it comes. */
  readonly result: Promise<SaveResult>;
  /** True once the daemon answered (or the call failed). */
  finished(): boolean;
}

export function openSave(client: CheckpointServiceClient, deadlineMs?: number): SaveStream {
  let finished = false;
  let call!: grpc.ClientWritableStream<SaveRequestIn>;
  const options: grpc.CallOptions = deadlineMs ? { deadline: Date.now() + deadlineMs } : {};
  const result = new Promise<SaveResult>((resolve) => {
    call = client.Save(options, (err, res) => {
      finished = true;
      resolve(err ? { error: err } : { response: res! });
    });
  });
  // A write after the daemon already answered must not crash the test process.
  call.on("error", () => undefined);
  return {
    async write(msg) {
      if (finished) return;
      if (!call.write(msg)) {
        await Promise.race([new Promise<void>((r) => call.once("drain", () => r())), result]);
      }
    },
    end() {
      if (!finished) call.end();
      return result;
    },
    cancel() {
      call.cancel();
    },
    result,
    finished: () => finished,
  };
}

export interface SaveRawOptions {
  /** Half-close after the last message (default true). */
  end?: boolean;
  /** Give up waiting after this long and report `timedOut` (the call is cancelled). */
  timeoutMs?: number;
  /** Client-side deadline for the call. */
  deadlineMs?: number;
}

/**
 * Sends exactly `messages` on one Save stream and returns the response or the error.
 * Stops writing as soon as the daemon answers (an early rejection).
 */
export async function saveRaw(
  client: CheckpointServiceClient,
  messages: Iterable<SaveRequestIn>,
  opts: SaveRawOptions = {},
): Promise<SaveResult> {
  const s = openSave(client, opts.deadlineMs);
  for (const m of messages) {
    if (s.finished()) break;
    await s.write(m);
  }
  const outcome = opts.end === false ? s.result : s.end();
  if (opts.timeoutMs === undefined) return outcome;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<SaveResult>((resolve) => {
    timer = setTimeout(() => resolve({ timedOut: true }), opts.timeoutMs);
  });
  const r = await Promise.race([outcome, timeout]);
  clearTimeout(timer);
  if (r.timedOut) s.cancel();
  return r;
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

/** Saves one item with a well-formed stream. */
export function saveItem(
  client: CheckpointServiceClient,
  ref: ItemRef,
  entries: TestEntry[],
  opts: StreamOptions = {},
): Promise<SaveResult> {
  return saveRaw(client, itemStream(ref, entries, opts));
}

/** Saves one item and fails the test unless the daemon acknowledged it. */
export async function saveItemOk(
  client: CheckpointServiceClient,
  ref: ItemRef,
  entries: TestEntry[],
  opts: StreamOptions = {},
): Promise<SaveResponse> {
  const r = await saveItem(client, ref, entries, opts);
  const what = `save ${ref.job}/${ref.checkpointId} rank ${ref.rank} item ${ref.item}`;
  expect(r.error, `${what} failed: ${statusName(r.error?.code)}: ${r.error?.details}`).toBeUndefined();
  expect(r.response, `${what}: no response`).toBeDefined();
  const bytes = entries.reduce((n, e) => n + e.data.length, 0);
  expect(r.response!.bytesReceived, `${what}: bytesReceived`).toBe(bytes);
  expect(r.response!.entryCount, `${what}: entryCount`).toBe(entries.length);
  return r.response!;
}

// ---------------------------------------------------------------------------
// Commit, Abort, Get

export interface UnaryResult<T> {
  response?: T;
  error?: grpc.ServiceError;
}

function unary<T>(start: (options: grpc.CallOptions, cb: grpc.requestCallback<T>) => unknown, deadlineMs: number): Promise<UnaryResult<T>> {
  return new Promise((resolve) => {
    start({ deadline: Date.now() + deadlineMs }, (err, res) => resolve(err ? { error: err } : { response: res! }));
  });
}

export function commitRaw(
  client: CheckpointServiceClient,
  req: CommitRequestIn,
  deadlineMs = 60_000,
): Promise<UnaryResult<CommitResponse>> {
  return unary<CommitResponse>((o, cb) => client.Commit(req, o, cb), deadlineMs);
}

export function abortRaw(client: CheckpointServiceClient, req: AbortRequestIn, deadlineMs = 30_000): Promise<UnaryResult<AbortResponse>> {
  return unary<AbortResponse>((o, cb) => client.Abort(req, o, cb), deadlineMs);
}

export function getCheckpointRaw(
  client: CheckpointServiceClient,
  req: GetCheckpointRequestIn,
  deadlineMs = 30_000,
): Promise<UnaryResult<GetCheckpointResponse>> {
  return unary<GetCheckpointResponse>((o, cb) => client.GetCheckpoint(req, o, cb), deadlineMs);
}

export function listCheckpointsRaw(
  client: CheckpointServiceClient,
  req: ListCheckpointsRequestIn,
  deadlineMs = 30_000,
): Promise<UnaryResult<ListCheckpointsResponse>> {
  return unary<ListCheckpointsResponse>((o, cb) => client.ListCheckpoints(req, o, cb), deadlineMs);
}

/** Asserts a Commit returned the outcome; returns the response. */
export function expectOutcome(r: UnaryResult<CommitResponse>, outcome: "COMMITTED" | "ABORTED", what = "commit"): CommitResponse {
  expect(r.error, `${what}: expected ${outcome}, got ${statusName(r.error?.code)}: ${r.error?.details}`).toBeUndefined();
  expect(r.response!.outcome, `${what}: reason "${r.response!.reason}"`).toBe(`COMMIT_OUTCOME_${outcome}`);
  return r.response!;
}

/** One rank's part of a checkpoint: item name -> entries. */
export type RankItems = Record<string, TestEntry[]>;

/**
 * Saves every rank's items (ranks in parallel) and then votes for every rank, and
 * asserts the checkpoint committed. `ranks[r]` is what rank r saves.
 */
export async function saveAndCommit(
  client: CheckpointServiceClient,
  job: string,
  checkpointId: string,
  step: number,
  ranks: RankItems[],
): Promise<CommitResponse[]> {
  const worldSize = ranks.length;
  await Promise.all(
    ranks.map(async (items, rank) => {
      for (const [item, entries] of Object.entries(items)) {
        await saveItemOk(client, { job, checkpointId, step, rank, worldSize, item }, entries);
      }
    }),
  );
  const votes = await Promise.all(
    ranks.map((items, rank) => commitRaw(client, { job, checkpointId, step, rank, worldSize, items: Object.keys(items) })),
  );
  return votes.map((v, rank) => expectOutcome(v, "COMMITTED", `commit ${job}/${checkpointId} rank ${rank}`));
}

// ---------------------------------------------------------------------------
// Load

export interface LoadedEntry {
  entry: LoadEntry;
  data: Buffer;
  chunkCount: number;
}

export interface LoadResult {
  plan?: LoadPlan;
  entries: LoadedEntry[];
  /** Every message in order, for tests that check the stream's shape. */
  kinds: string[];
  error?: grpc.ServiceError;
}

/** Reads a whole Load stream, keeping what arrived before any error. */
export function loadAll(client: CheckpointServiceClient, req: LoadRequestIn, deadlineMs = 60_000): Promise<LoadResult> {
  return new Promise((resolve) => {
    const out: LoadResult = { entries: [], kinds: [] };
    const parts: Buffer[][] = [];
    const call = client.Load(req, { deadline: Date.now() + deadlineMs });
    let ended = false;
    let gotStatus = false;
    const finish = () => {
      if (!gotStatus || !(ended || out.error)) return;
      out.entries.forEach((e, i) => {
        e.data = Buffer.concat(parts[i] ?? []);
      });
      resolve(out);
    };
    call.on("data", (m: LoadResponse) => {
      out.kinds.push(m.msg ?? "?");
      if (m.msg === "plan") out.plan = m.plan!;
      else if (m.msg === "entry") {
        out.entries.push({ entry: m.entry!, data: Buffer.alloc(0), chunkCount: 0 });
        parts.push([]);
      } else if (m.msg === "chunk") {
        // A chunk before any entry is a protocol error the `kinds` list exposes.
        const last = out.entries[out.entries.length - 1];
        if (last) {
          last.chunkCount++;
          parts[parts.length - 1]!.push(m.chunk!.data);
        }
      }
    });
    call.on("error", (err: grpc.ServiceError) => {
      out.error = err;
      finish();
    });
    call.on("end", () => {
      ended = true;
      finish();
    });
    call.on("status", () => {
      gotStatus = true;
      finish();
    });
  });
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

/**
 * Loads one rank of a committed checkpoint and asserts it returns exactly these
 * items and entries, in save order within each item, bit for bit.
 */
export async function expectLoadsBitExact(
  client: CheckpointServiceClient,
  job: string,
  checkpointId: string,
  rank: number,
  items: RankItems,
): Promise<LoadResult> {
  const r = await loadAll(client, { job, checkpointId, rank });
  const what = `load ${job}/${checkpointId} rank ${rank}`;
  expect(r.error, `${what}: ${statusName(r.error?.code)}: ${r.error?.details}`).toBeUndefined();
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

export interface SharedOutcome {
  responses: SaveSharedResponse[];
  error?: grpc.ServiceError;
}

/** Runs one SaveShared call with these messages (stops writing once the call ended). */
export function saveShared(client: CheckpointServiceClient, messages: SaveRequestIn[]): Promise<SharedOutcome> {
  return new Promise((resolve) => {
    const responses: SaveSharedResponse[] = [];
    const call = client.SaveShared();
    let done = false;
    call.on("data", (r: SaveSharedResponse) => responses.push(r));
    call.on("error", (error: grpc.ServiceError) => {
      done = true;
      resolve({ responses, error });
    });
    call.on("end", () => {
      done = true;
      resolve({ responses });
    });
    void (async () => {
      for (const m of messages) {
        if (done) return;
        if (!call.write({ request: m } satisfies SaveSharedRequestIn))
          await new Promise<void>((r) => {
            call.once("drain", r);
            call.once("error", () => r());
          });
      }
      if (!done) call.end();
    })();
  });
}
