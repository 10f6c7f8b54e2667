/**
 * Exact-wire traffic for the integration tests: messages `@ckptd/client` never sends.
 * These helpers write hand-built Save streams (malformed, truncated, oversized, out of
 * order, stalled or cancelled), send unary requests exactly as given (missing fields, hostile
 * names, chosen attempts and incarnations), read a Load stream message by message to check
 * its shape, and drive SaveShared by hand. Valid traffic goes through `CkptdClient`
 * (see wire-helpers.ts); only this module constructs raw grpc-js stubs.
 */
import * as grpc from "@grpc/grpc-js";
import { crc32c } from "@node-rs/crc32";
import { expect } from "vitest";
import { CkptdClient } from "../../clients/ts/src/index.js";
import { CLIENT_CHANNEL_OPTIONS, MAX_CHUNK_BYTES, loadWire } from "../../wire/index.js";
import type { CheckpointServiceClient } from "../../wire/gen/ckptd/v1/CheckpointService.js";
import type { AbortRequestIn } from "../../wire/gen/ckptd/v1/AbortRequest.js";
import type { AbortResponse } from "../../wire/gen/ckptd/v1/AbortResponse.js";
import type { CommitRequestIn } from "../../wire/gen/ckptd/v1/CommitRequest.js";
import type { CommitResponse } from "../../wire/gen/ckptd/v1/CommitResponse.js";
import type { GetCheckpointRequestIn } from "../../wire/gen/ckptd/v1/GetCheckpointRequest.js";
import type { GetCheckpointResponse } from "../../wire/gen/ckptd/v1/GetCheckpointResponse.js";
import type { LoadEntry } from "../../wire/gen/ckptd/v1/LoadEntry.js";
import type { LoadPlan } from "../../wire/gen/ckptd/v1/LoadPlan.js";
import type { LoadRequestIn } from "../../wire/gen/ckptd/v1/LoadRequest.js";
import type { LoadResponse } from "../../wire/gen/ckptd/v1/LoadResponse.js";
import type { SaveHeaderIn } from "../../wire/gen/ckptd/v1/SaveHeader.js";
import type { SaveRequestIn } from "../../wire/gen/ckptd/v1/SaveRequest.js";
import type { SaveResponse } from "../../wire/gen/ckptd/v1/SaveResponse.js";
import type { SaveSharedRequestIn } from "../../wire/gen/ckptd/v1/SaveSharedRequest.js";
import type { SaveSharedResponse } from "../../wire/gen/ckptd/v1/SaveSharedResponse.js";
import { statusName, type ItemRef, type TestEntry } from "./wire-helpers.js";

// ---------------------------------------------------------------------------
// Clients

/**
 * Where exact-wire calls go: a raw stub, or a `CkptdClient`, whose own stub on the same
 * channel then carries them (so a test needs one connection for both kinds of traffic).
 */
export type WireTarget = CheckpointServiceClient | CkptdClient;

function stub(target: WireTarget): CheckpointServiceClient {
  return target instanceof CkptdClient ? target.raw : target;
}

type Services = ReturnType<typeof loadWire>["grpcObject"]["ckptd"]["v1"];
export type ServiceName = "CheckpointService" | "EvaluationService" | "RetentionService" | "AdminService" | "PeerService";

/**
 * A raw stub of one ckptd.v1 service, with grpc-js's stock channel options (4 MiB
 * messages, default windows) unless `options` says otherwise: a client nobody here wrote.
 */
export function serviceStub<S extends ServiceName>(
  service: S,
  address: string,
  options: grpc.ChannelOptions = {},
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): InstanceType<Services[S]> {
  const Stub = loadWire().grpcObject.ckptd.v1[service] as unknown as new (
    address: string,
    credentials: grpc.ChannelCredentials,
    options: grpc.ChannelOptions,
  ) => InstanceType<Services[S]>;
  return new Stub(address, credentials, options);
}

/** A raw CheckpointService stub with the client's channel options, for tests that only send exact messages. */
export function rawClient(address: string, options: grpc.ChannelOptions = {}): CheckpointServiceClient {
  return serviceStub("CheckpointService", address, { ...CLIENT_CHANNEL_OPTIONS, ...options });
}

/**
 * A raw client that lets through messages larger than the daemon's limit, to test
 * the daemon's own enforcement rather than the client's.
 */
export function unlimitedClient(address: string): CheckpointServiceClient {
  return rawClient(address, { "grpc.max_send_message_length": -1, "grpc.max_receive_message_length": -1 });
}

// ---------------------------------------------------------------------------
// Save streams built message by message

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

export function openSave(client: WireTarget, deadlineMs?: number): SaveStream {
  let finished = false;
  let call!: grpc.ClientWritableStream<SaveRequestIn>;
  const options: grpc.CallOptions = deadlineMs ? { deadline: Date.now() + deadlineMs } : {};
  const result = new Promise<SaveResult>((resolve) => {
    call = stub(client).Save(options, (err, res) => {
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
export async function saveRaw(client: WireTarget, messages: Iterable<SaveRequestIn>, opts: SaveRawOptions = {}): Promise<SaveResult> {
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

/** Saves one item with a well-formed stream. */
export function saveItem(client: WireTarget, ref: ItemRef, entries: TestEntry[], opts: StreamOptions = {}): Promise<SaveResult> {
  return saveRaw(client, itemStream(ref, entries, opts));
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

export function commitRaw(client: WireTarget, req: CommitRequestIn, deadlineMs = 60_000): Promise<UnaryResult<CommitResponse>> {
  return unary<CommitResponse>((o, cb) => stub(client).Commit(req, o, cb), deadlineMs);
}

export function abortRaw(client: WireTarget, req: AbortRequestIn, deadlineMs = 30_000): Promise<UnaryResult<AbortResponse>> {
  return unary<AbortResponse>((o, cb) => stub(client).Abort(req, o, cb), deadlineMs);
}

export function getCheckpointRaw(
  client: WireTarget,
  req: GetCheckpointRequestIn,
  deadlineMs = 30_000,
): Promise<UnaryResult<GetCheckpointResponse>> {
  return unary<GetCheckpointResponse>((o, cb) => stub(client).GetCheckpoint(req, o, cb), deadlineMs);
}

/** Asserts a Commit returned the outcome; returns the response. */
export function expectOutcome(r: UnaryResult<CommitResponse>, outcome: "COMMITTED" | "ABORTED", what = "commit"): CommitResponse {
  expect(r.error, `${what}: expected ${outcome}, got ${statusName(r.error?.code)}: ${r.error?.details}`).toBeUndefined();
  expect(r.response!.outcome, `${what}: reason "${r.response!.reason}"`).toBe(`COMMIT_OUTCOME_${outcome}`);
  return r.response!;
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
export function loadAll(client: WireTarget, req: LoadRequestIn, deadlineMs = 60_000): Promise<LoadResult> {
  return new Promise((resolve) => {
    const out: LoadResult = { entries: [], kinds: [] };
    const parts: Buffer[][] = [];
    const call = stub(client).Load(req, { deadline: Date.now() + deadlineMs });
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

export interface SharedOutcome {
  responses: SaveSharedResponse[];
  error?: grpc.ServiceError;
}

/** Runs one SaveShared call with these messages (stops writing once the call ended). */
export function saveShared(client: WireTarget, messages: SaveRequestIn[]): Promise<SharedOutcome> {
  return new Promise((resolve) => {
    const responses: SaveSharedResponse[] = [];
    const call = stub(client).SaveShared();
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
