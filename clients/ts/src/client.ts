/**
 * CkptdClient: the typed client of ckptd's CheckpointService, EvaluationService and
 * RetentionService. One method per RPC, plus {@link CkptdClient.loadItems}, which
 * assembles a Load stream into buffers, and {@link CkptdClient.checkpoints}, which
 * follows a job's commits across reconnections.
 *
 * Call order for one checkpoint, per rank: `save` × N (one per item) → `commit`
 * (the rank's vote) | `abort`. The checkpoint becomes visible to `getCheckpoint`,
 * `listCheckpoints`, `load` and `watch` once every rank has voted and the decision is durable.
 * An evaluator: `checkpoints` → per checkpoint `load` → `reportEvaluation`; a trainer
 * calls `waitForEvaluators` after its commit.
 */
import * as grpc from "@grpc/grpc-js";
import { crc32c } from "@node-rs/crc32";
import { bearerInterceptor } from "./bearer.js";
import { Code, CkptdError } from "./errors.js";
import type { Checkpoint } from "../../../wire/gen/ckptd/v1/Checkpoint.js";
import type { AdminServiceClient } from "../../../wire/gen/ckptd/v1/AdminService.js";
import type { CheckpointServiceClient } from "../../../wire/gen/ckptd/v1/CheckpointService.js";
import type { GetStatusResponse } from "../../../wire/gen/ckptd/v1/GetStatusResponse.js";
import type { ListJobsResponse } from "../../../wire/gen/ckptd/v1/ListJobsResponse.js";
import type { VerifyCheckpointResponse } from "../../../wire/gen/ckptd/v1/VerifyCheckpointResponse.js";
import type { AbortResponse } from "../../../wire/gen/ckptd/v1/AbortResponse.js";
import type { CommitOutcome } from "../../../wire/gen/ckptd/v1/CommitOutcome.js";
import type { CommitResponse } from "../../../wire/gen/ckptd/v1/CommitResponse.js";
import type { DeleteCheckpointResponse } from "../../../wire/gen/ckptd/v1/DeleteCheckpointResponse.js";
import type { EvaluationServiceClient } from "../../../wire/gen/ckptd/v1/EvaluationService.js";
import type { GetRetentionPolicyResponse } from "../../../wire/gen/ckptd/v1/GetRetentionPolicyResponse.js";
import type { PinCheckpointResponse } from "../../../wire/gen/ckptd/v1/PinCheckpointResponse.js";
import type { ReportEvaluationResponse } from "../../../wire/gen/ckptd/v1/ReportEvaluationResponse.js";
import type { RetentionServiceClient } from "../../../wire/gen/ckptd/v1/RetentionService.js";
import type { SetRetentionPolicyResponse } from "../../../wire/gen/ckptd/v1/SetRetentionPolicyResponse.js";
import type { WaitForEvaluatorsResponse } from "../../../wire/gen/ckptd/v1/WaitForEvaluatorsResponse.js";
import type { WatchCheckpointsRequestIn } from "../../../wire/gen/ckptd/v1/WatchCheckpointsRequest.js";
import type { WatchCheckpointsResponse } from "../../../wire/gen/ckptd/v1/WatchCheckpointsResponse.js";
import type { EntryHeaderIn } from "../../../wire/gen/ckptd/v1/EntryHeader.js";
import type { GetCheckpointResponse } from "../../../wire/gen/ckptd/v1/GetCheckpointResponse.js";
import type { ListCheckpointsResponse } from "../../../wire/gen/ckptd/v1/ListCheckpointsResponse.js";
import type { LoadEntry } from "../../../wire/gen/ckptd/v1/LoadEntry.js";
import type { LoadPlan } from "../../../wire/gen/ckptd/v1/LoadPlan.js";
import type { LoadRequestIn } from "../../../wire/gen/ckptd/v1/LoadRequest.js";
import type { LoadResponse } from "../../../wire/gen/ckptd/v1/LoadResponse.js";
import type { SaveHeaderIn } from "../../../wire/gen/ckptd/v1/SaveHeader.js";
import type { SaveRequestIn } from "../../../wire/gen/ckptd/v1/SaveRequest.js";
import type { SaveResponse } from "../../../wire/gen/ckptd/v1/SaveResponse.js";
import type { SaveSharedResponse } from "../../../wire/gen/ckptd/v1/SaveSharedResponse.js";
import {
  eventOf,
  followCheckpoints,
  policyOf,
  policyToWire,
  reportOf,
  type CheckpointEvent,
  type CheckpointsOptions,
  type EvaluationReport,
  type ReportEvaluationRequest,
  type ResolvedRetentionPolicy,
  type RetentionPolicy,
  type WaitForEvaluatorsRequest,
  type WatchOptions,
} from "./evaluation.js";
import type { LoadSharedResponse } from "../../../wire/gen/ckptd/v1/LoadSharedResponse.js";
import {
  DEFAULT_SHARED_MEMORY_DIR,
  LoadRing,
  type RingHandle,
  SHARED_MEMORY_UNAVAILABLE,
  SaveRing,
  isDirectory,
  isLocalAddress,
} from "./shared-memory.js";
import { dtypeByteSize, fromProtoDtype, isDtypeName, toProtoDtype, type Tensor, type TensorData } from "./tensor.js";
import { CLIENT_CHANNEL_OPTIONS, DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES, loadWire, tensorByteSize } from "../../../wire/index.js";
import { crc32cCombine } from "../../../wire/crc.js";

/** Options of {@link CkptdClient}. */
export interface CkptdClientOptions {
  /** The daemon's address, `host:port`, e.g. `127.0.0.1:7070`. */
  address: string;
  /** @default grpc.credentials.createInsecure() (the daemon listens on the node itself) */
  credentials?: grpc.ChannelCredentials;
  /** Size of the data chunks a save sends, in (0, 4 MiB]. @default 4 MiB */
  chunkBytes?: number;
  /** Extra grpc-js channel options, merged over the defaults (large messages and windows). */
  channelOptions?: grpc.ChannelOptions;
  /**
   * Bearer token for a daemon started with `--auth-tokens` (the job's token, or the admin
   * token for deletes and retention), sent as `authorization: Bearer <token>` on every call.
   */
  token?: string;
  /**
   * Hand a save's bytes to the daemon, and get {@link CkptdClient.loadItems}' bytes from it,
   * through a ring file in {@link sharedMemoryDir} (the daemon's `--shared-memory-dir`)
   * instead of the gRPC stream (the SaveShared and LoadShared RPCs). The ring's name is
   * removed right after it is created and the daemon reopens it through /proc by a handle
   * (pid, descriptor, token), so it cannot be left behind; a daemon that refuses or predates
   * handles gets named ring files from then on. When the daemon refuses those too (another
   * user, another `/dev/shm`, turned off) or the ring file cannot be created, the client
   * streams the bytes from then on ({@link CkptdClient.sharedMemory} turns false).
   * @default true when the address is on this node (loopback or a Unix socket) and the directory exists
   */
  sharedMemory?: boolean;
  /** Where the ring files of shared-memory saves and loads are created. @default "/dev/shm" */
  sharedMemoryDir?: string;
  /**
   * Check every chunk a load gets through shared memory against its CRC-32C once more. Off
   * by default: the daemon checked it against the stored CRC right before writing it into
   * the ring. @default false
   */
  verifySharedLoads?: boolean;
  /**
   * Send a CRC-32C with every chunk a save puts in shared memory, as on the stream. Off by
   * default when the daemon allows it (SaveProgress.shared_chunk_crc_optional): the daemon
   * checksums what it copies out of the ring, and the ring is memory of this node, so the
   * pass would only cost the trainer time. With it on, a tensor changed between its checksum
   * and its copy into the ring fails the save instead of being stored as copied. @default false
   */
  verifySharedSaves?: boolean;
  /**
   * The trainer process's incarnation, sent with every save, commit and abort: it must grow
   * across restarts of the rank (the daemon aborts the undecided attempt an older incarnation
   * of the rank took part in at the first message of a newer one, and refuses the older one's
   * late messages). Pass a restart counter where wall clocks may step backwards; 0 turns
   * fencing off. At most 2^53 - 1.
   * @default {@link processIncarnation}(): one value per process, so several clients of one rank never fence each other
   */
  incarnation?: number;
}

/** Microseconds since the epoch when this process started: grows across restarts of a trainer. */
const PROCESS_INCARNATION = Math.floor((performance.timeOrigin + performance.now()) * 1000);

/** This process's default incarnation (see {@link CkptdClientOptions.incarnation}). */
export function processIncarnation(): number {
  return PROCESS_INCARNATION;
}

/** Per-call options of {@link CkptdClient.save} and {@link CkptdClient.load}. */
export interface StreamCallOptions {
  /** Milliseconds from the start of the call until it fails with `DEADLINE_EXCEEDED`. @default no deadline */
  deadlineMs?: number;
}

/** Options of {@link CkptdClient.save}. */
export interface SaveCallOptions extends StreamCallOptions {
  /**
   * Called once the item's last byte has been handed over: copied into the shared-memory
   * ring, or on the gRPC stream, the last message handed to gRPC (see {@link CkptdClient.saveAsync}).
   */
  onHandedOff?: () => void;
}

/** A save whose bytes are all handed over (shared-memory ring, gRPC, the daemon); see {@link CkptdClient.saveAsync}. */
export interface PendingSave {
  /** Resolves once the daemon has staged the item durably (what {@link CkptdClient.save} resolves with); rejects with its error. */
  readonly durable: Promise<SaveResult>;
}

/** Per-call options of the unary calls. */
export interface UnaryCallOptions {
  /** Milliseconds until the call fails with `DEADLINE_EXCEEDED`. @default no deadline */
  timeoutMs?: number;
}

/** An opaque value the caller serialised (pickle, JSON, ...). */
export interface ObjectValue {
  /** The serialised bytes; sent as views, so do not modify them until the save has resolved. */
  data: Uint8Array;
  /** How it was serialised, e.g. `json`, `pickle`; informational. @default "" */
  format?: string;
}

/** One key of an item: a tensor or an opaque object. */
export type SaveEntry = { key: string; tensor: Tensor } | { key: string; object: ObjectValue };

/** Which checkpoint, rank and item a save writes, and its entries. */
export interface SaveRequest {
  /** The job ([A-Za-z0-9._-], at most 128 characters). */
  job: string;
  /** The checkpoint's id (tag), e.g. `global_step1000`. */
  checkpointId: string;
  /** The training step; every rank must agree. */
  step: number;
  /** The saving rank, in [0, worldSize). */
  rank: number;
  /** Number of ranks taking part; every rank must agree. */
  worldSize: number;
  /** The item's name, e.g. `model`. */
  item: string;
  /**
   * The entries, in the order they are streamed. A generator is fine: entries are
   * pulled one at a time, only as fast as the daemon takes them.
   */
  entries: Iterable<SaveEntry> | AsyncIterable<SaveEntry>;
}

/** What a save staged. */
export interface SaveResult {
  /** Raw bytes the daemon received. */
  bytesReceived: number;
  /** Bytes it stored after compression. */
  bytesStored: number;
  /** Entries staged. */
  entryCount: number;
  /** The attempt of the checkpoint the item was staged into; pass it to {@link CkptdClient.commit}. */
  attempt: number;
}

/** A rank's vote. */
export interface CommitRequest {
  job: string;
  checkpointId: string;
  /** Must match the step the items were saved with. */
  step: number;
  rank: number;
  worldSize: number;
  /** The items this rank saved and wants in the checkpoint; a name not staged aborts the checkpoint. */
  items: readonly string[];
  /** The attempt from {@link SaveResult.attempt}. @default 0, the current attempt */
  attempt?: number;
}

/** A decision of the two-phase commit. */
export type Outcome = "COMMITTED" | "ABORTED";

/** The decision a commit or abort received. */
export interface CommitResult {
  outcome: Outcome;
  /** Why the attempt was aborted; empty when committed. */
  reason: string;
  /** The attempt the decision is about. */
  attempt: number;
  /** The committed checkpoint's summary; absent when aborted. */
  checkpoint?: Checkpoint;
}

/** A rank's no-vote. */
export interface AbortRequest {
  job: string;
  checkpointId: string;
  rank: number;
  /** Why, for the other ranks and the logs. */
  reason?: string;
  /** @default 0, the current attempt */
  attempt?: number;
}

/** One page of {@link CkptdClient.listCheckpoints}. */
export interface CheckpointPage {
  /** Committed checkpoints, newest step first (basic view). */
  checkpoints: Checkpoint[];
  /** Pass as `pageToken` for the next page; empty on the last page. */
  nextPageToken: string;
}

/** What to load. */
export interface LoadRequest {
  job: string;
  /** The checkpoint's id, or `latest`. @default "latest" */
  checkpointId?: string;
  /** The loading rank; its own shard is loaded unless `sourceRank` is set (ignored with `boxes` or `shardAs`). @default 0 */
  rank?: number;
  /** The loader's index on its node, used to pick its device. @default 0 */
  localRank?: number;
  /** The loader's devices, e.g. `cuda:0` … `cuda:7`; empty for a CPU-only loader. @default [] */
  devices?: readonly string[];
  /** Explicit saved device → target device mapping that wins over the hints; key `*` maps every device. */
  mapLocation?: Readonly<Record<string, string>>;
  /** Only these items. @default all of the rank's items */
  items?: readonly string[];
  /** Load the shard saved by this rank instead of `rank`'s own. */
  sourceRank?: number;
  /**
   * The loading job's world size. When it differs from the world size that saved the
   * checkpoint, a plain load (no `boxes`, `shardAs` or `sourceRank`) of an item holding
   * shards fails with FAILED_PRECONDITION instead of handing this rank another rank's shard.
   */
  worldSize?: number;
  /**
   * Resharding: these boxes of global tensors, each assembled by the daemon from the shards
   * every saved rank stored, streamed in this order (one entry each; `rank` is ignored).
   * Not with `shardAs`. {@link CkptdClient.loadItems} needs each (item, key) at most once;
   * {@link CkptdClient.loadInto} and {@link CkptdClient.load} take any boxes.
   */
  boxes?: readonly TensorBox[];
  /**
   * Resharding: every entry of `items` (of every saved rank; all items when empty) as rank
   * `shardAs.rank` of a new sharding holds it. Not with `boxes`.
   */
  shardAs?: ShardAs;
}

/**
 * A box of a global tensor: its start and length in each dimension. Empty `offsets` and
 * `lengths`: the whole tensor (or the whole object).
 */
export interface TensorBox {
  item: string;
  key: string;
  /** @default [] */
  offsets?: readonly number[];
  /** @default [] */
  lengths?: readonly number[];
}

/**
 * A rank of a target sharding. A tensor saved sharded streams as that rank's box of the
 * global tensor: split along `dim` (by default the dimension its saved shards were split
 * along) evenly as torch.chunk splits (parts of ceil(size / worldSize)), or into `sizes`, or
 * whole with `replicate`. Tensors saved unsharded and objects stream whole, from the lowest
 * rank that saved them.
 */
export interface ShardAs {
  rank: number;
  worldSize: number;
  dim?: number;
  /** Uneven split: one length per rank, summing to the dimension's size. @default [] */
  sizes?: readonly number[];
  /** @default false */
  replicate?: boolean;
}

/** A box of a global tensor and the typed array it is loaded into (see {@link CkptdClient.loadInto}). */
export interface LoadTarget extends TensorBox {
  /** Receives the box's bytes in row-major order; its byte length must be the box's byte size. */
  data: TensorData | Buffer;
}

/** What {@link CkptdClient.loadInto} loads. */
export interface LoadIntoRequest {
  job: string;
  /** @default "latest" */
  checkpointId?: string;
  /** The loader's index on its node, used to pick its device. @default 0 */
  localRank?: number;
  /** The loader's devices, for the device hints of the plan. @default [] */
  devices?: readonly string[];
  /** Explicit saved device → target device mapping. */
  mapLocation?: Readonly<Record<string, string>>;
  /** The boxes to load, each into its own array; at most 65536. */
  targets: readonly LoadTarget[];
}

/** What {@link CkptdClient.loadInto} loaded: the plan and each target's entry header, in the targets' order. */
export interface LoadIntoResult {
  plan: LoadPlan;
  entries: LoadEntry[];
}

/** One event of {@link CkptdClient.load}: a plan, then per entry its header and its chunks. */
export type LoadEvent = { type: "plan"; plan: LoadPlan } | { type: "entry"; entry: LoadEntry } | { type: "chunk"; data: Buffer };

/** A loaded entry of {@link CkptdClient.loadItems}. */
export type LoadedEntry =
  | {
      kind: "tensor";
      /**
       * The tensor; its `device` is the target device the daemon suggests for this loader.
       * A shard or an assembled box carries `globalShape` and `globalOffsets`: where it lies
       * in the global tensor.
       */
      tensor: Tensor;
      /** The device it was saved from. */
      savedDevice: string;
    }
  | { kind: "object"; data: Buffer; format: string };

/** The result of {@link CkptdClient.loadItems}: item name → key → entry. */
export interface LoadedItems {
  plan: LoadPlan;
  items: Map<string, Map<string, LoadedEntry>>;
}

const OUTCOMES: Readonly<Partial<Record<CommitOutcome, Outcome>>> = {
  COMMIT_OUTCOME_COMMITTED: "COMMITTED",
  COMMIT_OUTCOME_ABORTED: "ABORTED",
};

/**
 * A client of one ckptd daemon (normally the one on the caller's node). Cheap to share:
 * all methods may run concurrently. Every failure is thrown as a {@link CkptdError}.
 */
export class CkptdClient {
  /** The underlying grpc-js client, for calls this class does not wrap. */
  readonly raw: CheckpointServiceClient;
  /** The grpc-js EvaluationService client, on the same channel as {@link raw}. */
  readonly rawEvaluation: EvaluationServiceClient;
  /** The grpc-js RetentionService client, on the same channel as {@link raw}. */
  readonly rawRetention: RetentionServiceClient;
  /** The grpc-js AdminService client, on the same channel as {@link raw}. */
  readonly rawAdmin: AdminServiceClient;
  /** Bytes per data chunk on save. */
  readonly chunkBytes: number;
  /** Whether loads through shared memory check each chunk's CRC-32C (see {@link CkptdClientOptions.verifySharedLoads}). */
  readonly verifySharedLoads: boolean;
  /** Whether saves through shared memory send each chunk's CRC-32C (see {@link CkptdClientOptions.verifySharedSaves}). */
  readonly verifySharedSaves: boolean;
  /** The incarnation sent with every save, commit and abort (see {@link CkptdClientOptions.incarnation}). */
  readonly incarnation: number;
  /** The directory of shared-memory ring files while saves and loads use them; undefined once they stream. */
  private sharedMemoryDir: string | undefined;
  /**
   * Whether rings are unnamed files the daemon reopens by a handle (SharedMemoryHandle)
   * rather than files it opens by name; false for good once the daemon refused or ignored a handle.
   */
  private unnamedRings = process.platform === "linux";

  constructor(addressOrOptions: string | CkptdClientOptions) {
    const options = typeof addressOrOptions === "string" ? { address: addressOrOptions } : addressOrOptions;
    const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0 || chunkBytes > MAX_CHUNK_BYTES) {
      throw new RangeError(`chunkBytes must be an integer in [1, ${MAX_CHUNK_BYTES}], got ${chunkBytes}`);
    }
    this.chunkBytes = chunkBytes;
    const incarnation = options.incarnation ?? PROCESS_INCARNATION;
    if (!Number.isSafeInteger(incarnation) || incarnation < 0) {
      throw new RangeError(`incarnation must be an integer in [0, 2^53 - 1], got ${incarnation}`);
    }
    this.incarnation = incarnation;
    const sharedMemoryDir = options.sharedMemoryDir ?? DEFAULT_SHARED_MEMORY_DIR;
    const sharedMemory = options.sharedMemory ?? (isLocalAddress(options.address) && isDirectory(sharedMemoryDir));
    this.sharedMemoryDir = sharedMemory ? sharedMemoryDir : undefined;
    this.verifySharedLoads = options.verifySharedLoads ?? false;
    this.verifySharedSaves = options.verifySharedSaves ?? false;
    const { grpcObject } = loadWire();
    const interceptors = options.token ? [bearerInterceptor(options.token)] : [];
    this.raw = new grpcObject.ckptd.v1.CheckpointService(
      options.address,
      options.credentials ?? grpc.credentials.createInsecure(),
      // grpc-js backs off up to 120 s between reconnections; an evaluator following a restarted daemon should not wait that long.
      { ...CLIENT_CHANNEL_OPTIONS, "grpc.max_reconnect_backoff_ms": 5_000, ...options.channelOptions, interceptors },
    );
    // One channel for the three services: one connection, and close() closes it for all.
    const shared = { channelOverride: this.raw.getChannel(), interceptors };
    this.rawEvaluation = new grpcObject.ckptd.v1.EvaluationService(options.address, grpc.credentials.createInsecure(), shared);
    this.rawRetention = new grpcObject.ckptd.v1.RetentionService(options.address, grpc.credentials.createInsecure(), shared);
    this.rawAdmin = new grpcObject.ckptd.v1.AdminService(options.address, grpc.credentials.createInsecure(), shared);
  }

  /**
   * Whether saves and loads currently pass their bytes through shared memory (see
   * {@link CkptdClientOptions.sharedMemory}); false for good once the daemon refused it.
   */
  get sharedMemory(): boolean {
    return this.sharedMemoryDir !== undefined;
  }

  /**
   * Streams one item into the staging area of a checkpoint and resolves once the daemon
   * has staged it durably. Tensor bytes are sent as views of the caller's memory, chunk
   * by chunk, pausing whenever the stream's buffers are full; with
   * {@link CkptdClientOptions.sharedMemory} each chunk is copied into a ring file the
   * daemon reads from instead, pausing while every slot of the ring is in use.
   */
  async save(req: SaveRequest, options: SaveCallOptions = {}): Promise<SaveResult> {
    const deadline = options.deadlineMs === undefined ? undefined : new Date(Date.now() + options.deadlineMs);
    // At most twice: a refused unnamed ring turns to ring files, a refused ring file to the stream.
    for (let dir = this.sharedMemoryDir, tries = 0; dir !== undefined && tries < 2; dir = this.sharedMemoryDir, tries++) {
      const res = await this.saveShared(dir, req, options, deadline);
      if (res) return res;
    }
    return this.saveStream(req, options, deadline);
  }

  /** A Save call: the chunks' bytes travel on the gRPC stream. */
  private async saveStream(req: SaveRequest, options: SaveCallOptions, deadline: Date | undefined): Promise<SaveResult> {
    let settled = false;
    let finish!: (err: grpc.ServiceError | null, res?: SaveResponse) => void;
    const done = new Promise<SaveResponse | undefined>((resolve, reject) => {
      finish = (err, res) => {
        settled = true;
        if (err) reject(CkptdError.from(err));
        else resolve(res);
      };
    });
    // Failures are handled by the awaits below; this keeps an early one from going unhandled.
    done.catch(() => undefined);
    const call = this.raw.save(deadline ? { deadline } : {}, (err, res) => finish(err, res));

    const waitForRoom = (): Promise<void> =>
      new Promise((resolve) => {
        // The callback runs before the 'status' event, so checking `settled` first cannot miss the end.
        if (settled) return resolve();
        const onDrain = () => {
          call.off("status", onStatus);
          resolve();
        };
        const onStatus = () => {
          call.off("drain", onDrain);
          resolve();
        };
        call.once("drain", onDrain);
        call.once("status", onStatus);
      });

    /** Writes one message; false once the call has ended (the reason is in `done`). */
    const write = async (msg: SaveRequestIn): Promise<boolean> => {
      if (settled) return false;
      if (!call.write(msg)) await waitForRoom();
      return !settled;
    };

    let trailerSent = false;
    try {
      const open = await write({
        header: this.saveHeader(req),
      });
      // subarray is a view: the only copy of the bytes is grpc's serialisation into the frame.
      trailerSent = open && (await this.writeItemBody(req.entries, write, (data, crc32c) => Promise.resolve({ chunk: { data, crc32c } })));
      if (trailerSent) {
        call.end();
        // Every chunk was serialised into gRPC's buffers (or sent) by its write: the caller's tensors are free again.
        options.onHandedOff?.();
      }
    } catch (err) {
      // A bad entry or a failing entry source: cancel so that nothing of this stream is staged.
      call.cancel();
      throw err;
    }
    // When the call ended early, `done` rejects with the daemon's status.
    const res = await done;
    if (!trailerSent) {
      throw new CkptdError(Code.INTERNAL, `the daemon ended the Save stream of item ${req.item} before the trailer without an error`);
    }
    if (!res) throw new CkptdError(Code.INTERNAL, `the daemon sent no SaveResponse for item ${req.item}`);
    return { bytesReceived: res.bytesReceived, bytesStored: res.bytesStored, entryCount: res.entryCount, attempt: res.attempt };
  }

  /** The header both save streams open with: the item's coordinates and this process's incarnation. */
  private saveHeader(req: SaveRequest): SaveHeaderIn {
    const { job, checkpointId, step, rank, worldSize, item } = req;
    return { job, checkpointId, step, rank, worldSize, item, incarnation: this.incarnation };
  }

  /**
   * Shared memory was refused, or a ring could not be created: an unnamed ring turns to
   * ring files from now on, a ring file (or a daemon without the RPC) to the stream.
   */
  private sharedMemoryRefused(unnamed: boolean, unimplemented = false): void {
    if (unnamed && !unimplemented) this.unnamedRings = false;
    else this.sharedMemoryDir = undefined;
  }

  /**
   * A SaveShared call: each chunk is copied into a slot of a ring file the daemon has open,
   * and the stream carries only where it is. Resolves with undefined, having consumed
   * nothing of `req.entries`, when shared memory is unavailable (the ring cannot be
   * created, or the daemon refuses it before its first progress message): the client then
   * tries a ring file (after an unnamed ring) or streams from now on. A daemon that
   * predates handles gets this save's chunks in Chunk messages on the same stream.
   */
  private async saveShared(
    dir: string,
    req: SaveRequest,
    options: SaveCallOptions,
    deadline: Date | undefined,
  ): Promise<SaveResult | undefined> {
    let ring: SaveRing;
    const unnamed = this.unnamedRings;
    try {
      ring = await SaveRing.create(dir, this.chunkBytes, undefined, unnamed);
    } catch {
      this.sharedMemoryRefused(unnamed);
      return undefined;
    }
    try {
      const call = this.raw.saveShared(deadline ? { deadline } : {});
      let settled = false;
      let opened = false;
      /** The daemon ignored the ring's handle (it predates them): chunks go on the stream. */
      let inline = false;
      let result: SaveResponse | undefined;
      /** The daemon checksums shared chunks sent without a CRC (set from its first progress message). */
      let crcOptional = false;
      let onOpened!: () => void;
      const openedOrDone = new Promise<void>((resolve) => (onOpened = resolve));
      let finish!: (err?: unknown) => void;
      const done = new Promise<void>((resolve, reject) => {
        finish = (err) => {
          if (settled) return;
          settled = true;
          ring.fail(); // a put() waiting for a slot gives up
          onOpened();
          if (err) reject(CkptdError.from(err));
          else resolve();
        };
      });
      // Failures are handled by the awaits below; this keeps an early one from going unhandled.
      done.catch(() => undefined);
      call.on("data", (msg: SaveSharedResponse) => {
        if (msg.msg === "progress" && msg.progress) {
          if (!opened) {
            opened = true;
            crcOptional = msg.progress.sharedChunkCrcOptional;
            if (ring.handle && !msg.progress.sharedMemoryHandleOpen) {
              inline = true;
              this.unnamedRings = false;
            }
            onOpened();
          }
          ring.release(msg.progress.sharedBytesReleased);
        } else if (msg.msg === "result" && msg.result) {
          result = msg.result;
        } else {
          finish(
            new CkptdError(Code.INTERNAL, `the daemon's SaveShared stream of item ${req.item} sent a message without progress or result`),
          );
          call.cancel();
        }
      });
      // grpc-js emits 'error' (a non-OK status) before 'end', so the first one settles it right.
      call.on("error", (err) => finish(err));
      call.on("end", () => finish());

      /** Writes one message; false once the call has ended (the reason is in `done`). */
      const write = async (msg: SaveRequestIn): Promise<boolean> => {
        if (settled) return false;
        if (!call.write({ request: msg })) {
          await new Promise<void>((resolve) => {
            const onDrain = () => resolve();
            call.once("drain", onDrain);
            void done
              .catch(() => undefined)
              .then(() => {
                call.off("drain", onDrain);
                resolve();
              });
          });
        }
        return !settled;
      };

      let trailerSent = false;
      try {
        const open = await write({
          header: { ...this.saveHeader(req), ...ringFields(ring) },
        });
        // The first progress message says the daemon has the file open.
        await openedOrDone;
        if (!opened) {
          try {
            await done;
          } catch (err) {
            const e = CkptdError.from(err);
            // Refused, or a daemon older than SaveShared: the stream it is, from now on.
            if (e.code === Code.UNIMPLEMENTED || (e.code === Code.FAILED_PRECONDITION && e.details.includes(SHARED_MEMORY_UNAVAILABLE))) {
              this.sharedMemoryRefused(ring.handle !== undefined, e.code === Code.UNIMPLEMENTED);
              return undefined;
            }
            throw e;
          }
          throw new CkptdError(Code.INTERNAL, `the daemon ended the SaveShared stream of item ${req.item} before it opened the ring file`);
        }
        await ring.unlink();
        trailerSent =
          open &&
          (await this.writeItemBody(
            req.entries,
            write,
            async (chunk, crc32c) => {
              if (inline) return { chunk: { data: chunk, crc32c } };
              const offset = await this.putChunk(ring, chunk);
              return offset === undefined ? undefined : { sharedChunk: { offset, length: chunk.byteLength, crc32c } };
            },
            // Every chunk is in the ring: the caller's tensors are free again.
            () => options.onHandedOff?.(),
            inline || this.verifySharedSaves || !crcOptional,
          ));
        if (trailerSent) call.end();
      } catch (err) {
        // A bad entry, a failing entry source or ring file: cancel so that nothing of this stream is staged.
        if (!settled) call.cancel();
        throw err;
      }
      // When the call ended early, `done` rejects with the daemon's status.
      await done;
      if (!trailerSent) {
        throw new CkptdError(
          Code.INTERNAL,
          `the daemon ended the SaveShared stream of item ${req.item} before the trailer without an error`,
        );
      }
      if (!result) throw new CkptdError(Code.INTERNAL, `the daemon sent no SaveResponse for item ${req.item}`);
      return {
        bytesReceived: result.bytesReceived,
        bytesStored: result.bytesStored,
        entryCount: result.entryCount,
        attempt: result.attempt,
      };
    } finally {
      await ring.close();
    }
  }

  /**
   * The body of a Save stream after its header: per entry its header and its chunks (the
   * message `chunkMessage` makes of each, undefined when the call is over), then the
   * trailer with the counts and the stream's CRC-32C; `beforeTrailer` runs once every chunk
   * is written. True when the trailer was written; false once a write found the call over.
   * `checksum` false (shared chunks, with a daemon that allows it): chunks get no CRC, and the
   * trailer's CRC covers none of their bytes.
   */
  private async writeItemBody(
    entries: SaveRequest["entries"],
    write: (msg: SaveRequestIn) => Promise<boolean>,
    chunkMessage: (chunk: Uint8Array, crc32c: number | undefined) => Promise<SaveRequestIn | undefined>,
    beforeTrailer?: () => void,
    checksum = true,
  ): Promise<boolean> {
    let entryCount = 0;
    let byteCount = 0;
    let runningCrc = 0;
    const keys = new Set<string>();
    for await (const entry of entries) {
      const { header, data } = entryHeader(entry, keys);
      if (!(await write({ entry: header }))) return false;
      for (let off = 0; off < data.byteLength; off += this.chunkBytes) {
        const chunk = data.subarray(off, Math.min(off + this.chunkBytes, data.byteLength));
        let chunkCrc: number | undefined;
        if (checksum) {
          chunkCrc = crc32c(chunk);
          runningCrc = crc32cCombine(runningCrc, chunkCrc, chunk.byteLength);
        }
        byteCount += chunk.byteLength;
        const msg = await chunkMessage(chunk, chunkCrc);
        if (msg === undefined || !(await write(msg))) return false;
      }
      entryCount++;
    }
    beforeTrailer?.();
    await write({ trailer: { entryCount, byteCount, crc32c: runningCrc } });
    return true;
  }

  /** Copies one chunk into the ring; undefined when the call ended first. */
  private async putChunk(ring: SaveRing, chunk: Uint8Array): Promise<number | undefined> {
    try {
      return await ring.put(chunk);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code === "ENOSPC" ? Code.RESOURCE_EXHAUSTED : Code.INTERNAL;
      throw new CkptdError(code, `cannot write a chunk into the shared-memory file ${ring.shown}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /**
   * Async save: resolves as soon as the item's last byte has been handed off (copied into
   * the shared-memory ring when saves use it, else into gRPC's buffers, which the daemon
   * drains into its own memory within its `--memory-budget-mib`; beyond that budget the
   * daemon stops reading and this waits), so the trainer can modify its tensors again while the daemon writes. Durability is
   * unchanged: `durable` resolves once the item is staged and fsynced, and a rank must
   * await it before its {@link commit} (Commit still means durable).
   *
   * @example
   * const pending = await client.saveAsync(req); // the trainer's stall ends here
   * // ... the next training steps ...
   * const { attempt } = await pending.durable;
   * await client.commit({ ..., items: [req.item], attempt });
   */
  async saveAsync(req: SaveRequest, options: StreamCallOptions = {}): Promise<PendingSave> {
    let handedOff!: () => void;
    const handed = new Promise<void>((resolve) => (handedOff = resolve));
    const durable = this.save(req, { ...options, onHandedOff: handedOff });
    // A failure before the hand-off rejects here; after it, through `durable`.
    await Promise.race([handed, durable]);
    return { durable };
  }

  /**
   * Votes for a checkpoint and waits for the decision. Resolves with `ABORTED` (it does
   * not throw) when the commit decided so; throws only on gRPC errors. Idempotent.
   */
  async commit(req: CommitRequest, options: UnaryCallOptions = {}): Promise<CommitResult> {
    const res = await unary<CommitResponse>((cb) =>
      this.raw.commit(
        {
          job: req.job,
          checkpointId: req.checkpointId,
          step: req.step,
          rank: req.rank,
          worldSize: req.worldSize,
          items: [...req.items],
          attempt: req.attempt ?? 0,
          incarnation: this.incarnation,
        },
        callOptions(options.timeoutMs),
        cb,
      ),
    );
    const result: CommitResult = { outcome: outcomeOf(res.outcome), reason: res.reason, attempt: res.attempt };
    if (res.checkpoint) result.checkpoint = res.checkpoint;
    return result;
  }

  /** Votes no: aborts the checkpoint's attempt for every rank. Resolves with the decision, which is COMMITTED if it had already been made. */
  async abort(req: AbortRequest, options: UnaryCallOptions = {}): Promise<CommitResult> {
    const res = await unary<AbortResponse>((cb) =>
      this.raw.abort(
        {
          job: req.job,
          checkpointId: req.checkpointId,
          rank: req.rank,
          reason: req.reason ?? "",
          attempt: req.attempt ?? 0,
          incarnation: this.incarnation,
        },
        callOptions(options.timeoutMs),
        cb,
      ),
    );
    return { outcome: outcomeOf(res.outcome), reason: res.reason, attempt: res.attempt };
  }

  /**
   * Describes one committed checkpoint. Throws `NOT_FOUND` when there is none.
   * @param checkpointId an id, or `latest` for the newest committed step
   * @param options.full include every entry of every item
   */
  async getCheckpoint(job: string, checkpointId = "latest", options: { full?: boolean } & UnaryCallOptions = {}): Promise<Checkpoint> {
    const res = await unary<GetCheckpointResponse>((cb) =>
      this.raw.getCheckpoint(
        { job, checkpointId, view: options.full ? "CHECKPOINT_VIEW_FULL" : "CHECKPOINT_VIEW_BASIC" },
        callOptions(options.timeoutMs),
        cb,
      ),
    );
    if (!res.checkpoint)
      throw new CkptdError(Code.INTERNAL, `the daemon answered GetCheckpoint ${job}/${checkpointId} without a checkpoint`);
    return res.checkpoint;
  }

  /** One page of a job's committed checkpoints, newest step first. */
  async listCheckpoints(job: string, options: { pageSize?: number; pageToken?: string } & UnaryCallOptions = {}): Promise<CheckpointPage> {
    const res = await unary<ListCheckpointsResponse>((cb) =>
      this.raw.listCheckpoints(
        { job, pageSize: options.pageSize ?? 0, pageToken: options.pageToken ?? "" },
        callOptions(options.timeoutMs),
        cb,
      ),
    );
    return { checkpoints: res.checkpoints, nextPageToken: res.nextPageToken };
  }

  /** Every committed checkpoint of a job, newest step first, fetching pages as it goes. */
  async *listAllCheckpoints(
    job: string,
    options: { pageSize?: number } & UnaryCallOptions = {},
  ): AsyncGenerator<Checkpoint, void, undefined> {
    let pageToken = "";
    do {
      const page = await this.listCheckpoints(job, { ...options, pageToken });
      yield* page.checkpoints;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Deletes a committed checkpoint (atomically: it is listed whole or not at all). */
  async deleteCheckpoint(job: string, checkpointId: string, options: UnaryCallOptions = {}): Promise<{ freedBytes: number }> {
    const res = await unary<DeleteCheckpointResponse>((cb) =>
      this.raw.deleteCheckpoint({ job, checkpointId }, callOptions(options.timeoutMs), cb),
    );
    return { freedBytes: res.freedBytes };
  }

  /**
   * Streams one rank's items of a committed checkpoint: a `plan` event, then for each
   * entry an `entry` event followed by `chunk` events with its raw bytes (verified by
   * the daemon, and again here when the chunk carries a checksum).
   *
   * Pull-based: the call starts with the first `next()`, and while the consumer is busy
   * the stream stops reading, so the daemon is held back by HTTP/2 flow control.
   * Leaving the loop early cancels the call.
   */
  load(req: LoadRequest, options: StreamCallOptions = {}): AsyncIterable<LoadEvent> {
    return this.loadEvents(req, options);
  }

  private async *loadEvents(req: LoadRequest, options: StreamCallOptions): AsyncGenerator<LoadEvent, void, undefined> {
    const request = loadRequest(req);
    const call = this.raw.load(request, callOptions(options.deadlineMs));
    let ended = false;
    try {
      for await (const msg of call as AsyncIterable<LoadResponse>) {
        if (msg.msg === "plan" && msg.plan) {
          yield { type: "plan", plan: msg.plan };
        } else if (msg.msg === "entry" && msg.entry) {
          yield { type: "entry", entry: msg.entry };
        } else if (msg.msg === "chunk" && msg.chunk) {
          const { data, crc32c: expected } = msg.chunk;
          if (expected !== undefined && crc32c(data) !== expected) {
            throw new CkptdError(
              Code.DATA_LOSS,
              `a chunk of ${data.byteLength} bytes failed its CRC-32C check in transit (job ${req.job}, checkpoint ${request.checkpointId}, rank ${req.rank ?? 0})`,
            );
          }
          yield { type: "chunk", data };
        } else {
          throw new CkptdError(Code.INTERNAL, `the daemon sent a LoadResponse without a plan, entry or chunk`);
        }
      }
      ended = true;
    } catch (err) {
      throw CkptdError.from(err);
    } finally {
      // Reached without `ended` when the consumer left the loop or we threw: stop the daemon sending.
      if (!ended) call.cancel();
    }
  }

  /**
   * Loads one rank's items fully into memory. Each entry is assembled in one buffer
   * allocated at its announced size; a stream that delivers more or fewer bytes than
   * announced fails with `DATA_LOSS`. Tensors carry the target device hint as `device`.
   * With {@link CkptdClientOptions.sharedMemory} the daemon writes the bytes into a ring
   * file the client reads them from straight into those buffers (the LoadShared RPC);
   * otherwise, or once the daemon refused it, they come on the Load stream.
   */
  async loadItems(req: LoadRequest, options: StreamCallOptions = {}): Promise<LoadedItems> {
    const seen = new Set<string>();
    for (const b of req.boxes ?? []) {
      const id = JSON.stringify([b.item, b.key]);
      if (seen.has(id))
        throw new CkptdError(
          Code.INVALID_ARGUMENT,
          `loadItems: boxes asks for ${b.item}/${b.key} twice; its result holds one entry per key (use loadInto or load for several boxes of one tensor)`,
        );
      seen.add(id);
    }
    return this.assemble(req, () => new LoadAssembly(req), options);
  }

  /**
   * Loads boxes of global tensors straight into the caller's typed arrays (resharding on
   * load: the daemon assembles each box from the shards every saved rank stored, reading
   * only the chunks it needs). Each target's `data` must have exactly the box's byte size
   * (checked once its header arrives, before any byte is written); the bytes land row-major.
   * Uses shared memory like {@link loadItems} when enabled.
   *
   * @example
   * // This rank's column block of a weight saved row-sharded by another world size.
   * const w = new Float32Array(4096 * 512);
   * await client.loadInto({ job, checkpointId: "latest", targets: [{ item: "model", key: "w", offsets: [0, 512 * rank], lengths: [4096, 512], data: w }] });
   */
  async loadInto(req: LoadIntoRequest, options: StreamCallOptions = {}): Promise<LoadIntoResult> {
    if (req.targets.length === 0) throw new CkptdError(Code.INVALID_ARGUMENT, "loadInto: targets is empty");
    const targets = req.targets.map((t, i) => {
      const d = t.data as unknown;
      if (!ArrayBuffer.isView(d)) throw new CkptdError(Code.INVALID_ARGUMENT, `loadInto: targets[${i}].data is not a typed array`);
      return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
    });
    const load: LoadRequest = {
      job: req.job,
      checkpointId: req.checkpointId ?? "latest",
      localRank: req.localRank ?? 0,
      devices: req.devices ?? [],
      boxes: req.targets.map(({ item, key, offsets, lengths }) => ({ item, key, offsets: offsets ?? [], lengths: lengths ?? [] })),
      ...(req.mapLocation ? { mapLocation: req.mapLocation } : {}),
    };
    const entries: LoadEntry[] = [];
    const res = await this.assemble(
      load,
      () => {
        entries.length = 0;
        return new LoadAssembly(load, (entry, i) => {
          const t = req.targets[i];
          if (!t || t.item !== entry.item || t.key !== entry.key)
            throw protocolError(`entry ${entry.item}/${entry.key} where target ${i} is ${t ? `${t.item}/${t.key}` : "none"}`);
          const buf = targets[i]!;
          if (buf.byteLength !== entry.sizeBytes)
            throw new CkptdError(
              Code.INVALID_ARGUMENT,
              `loadInto: targets[${i}] (${t.item}/${t.key}) has ${buf.byteLength} bytes; the box holds ${entry.sizeBytes}`,
            );
          entries.push(entry);
          return buf;
        });
      },
      options,
    );
    return { plan: res.plan, entries };
  }

  /** A load into the assembly `make` makes: through shared memory when enabled, else (or once refused) on the Load stream. */
  private async assemble(req: LoadRequest, make: () => LoadAssembly, options: StreamCallOptions): Promise<LoadedItems> {
    for (let dir = this.sharedMemoryDir, tries = 0; dir !== undefined && tries < 2; dir = this.sharedMemoryDir, tries++) {
      const res = await this.loadItemsShared(dir, req, make(), options);
      if (res) return res;
    }
    const assembly = make();
    for await (const ev of this.load(req, options)) {
      if (ev.type === "plan") assembly.plan(ev.plan);
      else if (ev.type === "entry") assembly.entry(ev.entry);
      else ev.data.copy(assembly.take(ev.data.byteLength));
    }
    return assembly.finish();
  }

  /**
   * A LoadShared call: the daemon writes each chunk into a slot of a ring file and the
   * stream carries only where it is; the bytes are read from the file straight into the
   * entry's buffer. Resolves with undefined when shared memory is unavailable (the ring
   * file cannot be created, or the daemon refuses it before its first message): the client
   * then streams from now on.
   */
  private async loadItemsShared(
    dir: string,
    req: LoadRequest,
    assembly: LoadAssembly,
    options: StreamCallOptions,
  ): Promise<LoadedItems | undefined> {
    let ring: LoadRing;
    const unnamed = this.unnamedRings;
    try {
      // The daemon's slots are 4 MiB (its largest chunk), whatever this client's chunkBytes.
      ring = await LoadRing.create(dir, MAX_CHUNK_BYTES, undefined, unnamed);
    } catch {
      this.sharedMemoryRefused(unnamed);
      return undefined;
    }
    const request = loadRequest(req);
    const call = this.raw.loadShared(callOptions(options.deadlineMs));
    let started = false;
    let ended = false;
    let released = 0;
    try {
      call.write({ start: { request, ...ringFields(ring) } });
      for await (const msg of call as AsyncIterable<LoadSharedResponse>) {
        if (!started) {
          started = true;
          await ring.unlink(); // the daemon holds the file open now
        }
        const res = msg.response;
        if (res?.msg === "plan" && res.plan) {
          assembly.plan(res.plan);
        } else if (res?.msg === "entry" && res.entry) {
          assembly.entry(res.entry);
        } else if (res?.msg === "sharedChunk" && res.sharedChunk) {
          const { offset, length, crc32c: expected } = res.sharedChunk;
          const into = assembly.take(length);
          await readChunk(ring, offset, into);
          if (this.verifySharedLoads && expected !== undefined && crc32c(into) !== expected) {
            throw new CkptdError(
              Code.DATA_LOSS,
              `a chunk of ${length} bytes failed its CRC-32C check in shared memory (job ${req.job}, checkpoint ${request.checkpointId}, rank ${req.rank ?? 0})`,
            );
          }
          released += length;
          call.write({ progress: { sharedBytesReleased: released } });
        } else {
          throw new CkptdError(Code.INTERNAL, `the daemon sent a LoadSharedResponse without a plan, entry or shared chunk`);
        }
      }
      ended = true;
      call.end();
    } catch (err) {
      const e = CkptdError.from(err);
      // Refused, or a daemon older than LoadShared: the stream it is, from now on.
      if (
        !started &&
        (e.code === Code.UNIMPLEMENTED || (e.code === Code.FAILED_PRECONDITION && e.details.includes(SHARED_MEMORY_UNAVAILABLE)))
      ) {
        this.sharedMemoryRefused(ring.handle !== undefined, e.code === Code.UNIMPLEMENTED);
        return undefined;
      }
      throw e;
    } finally {
      // Reached without `ended` when the load failed here or on the daemon: stop the daemon sending.
      if (!ended) call.cancel();
      await ring.close();
    }
    return assembly.finish();
  }

  /**
   * Streams a job's event log: every commit and deletion, in commit order, each with a
   * sequence number one higher than the last. It first replays the log from the start
   * position (by default the first event), then pushes live events; it never ends on its
   * own. Remember `sequence` to resume with `afterSequence` after a disconnection or a
   * daemon restart (the log is durable), or use {@link checkpoints}, which does that.
   *
   * Pull-based: the call starts with the first `next()`; while the consumer is busy the
   * stream stops reading, so the daemon is held back by HTTP/2 flow control. Leaving the
   * loop cancels the call, and so does aborting `options.signal` (the loop then ends
   * without an error).
   *
   * @example
   * for await (const ev of client.watch("pretrain", { afterSequence: lastSeen })) {
   *   if (ev.type === "COMMITTED") console.log(ev.sequence, ev.checkpointId, ev.step);
   * }
   */
  watch(job: string, options: WatchOptions = {}): AsyncIterable<CheckpointEvent> {
    const request: WatchCheckpointsRequestIn = { job, evaluator: options.evaluator ?? "" };
    const starts = [options.afterSequence, options.fromStep, options.fromNow ? true : undefined].filter((v) => v !== undefined);
    if (starts.length > 1) throw new CkptdError(Code.INVALID_ARGUMENT, "watch: give at most one of afterSequence, fromStep and fromNow");
    if (options.afterSequence !== undefined) request.afterSequence = nonNegative("afterSequence", options.afterSequence);
    else if (options.fromStep !== undefined) request.fromStep = nonNegative("fromStep", options.fromStep);
    else if (options.fromNow) request.fromNow = true;
    return this.watchEvents(request, options.signal, options.onStarted);
  }

  private async *watchEvents(
    request: WatchCheckpointsRequestIn,
    signal: AbortSignal | undefined,
    onStarted: WatchOptions["onStarted"],
  ): AsyncGenerator<CheckpointEvent, void, undefined> {
    if (signal?.aborted) return;
    const call = this.rawEvaluation.watchCheckpoints(request);
    const onAbort = () => call.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    let ended = false;
    try {
      for await (const msg of call as AsyncIterable<WatchCheckpointsResponse>) {
        // Messages already buffered when the signal fired are not handed out.
        if (signal?.aborted) return;
        if (msg.started) {
          onStarted?.({ headSequence: msg.started.headSequence, afterSequence: msg.started.afterSequence });
          continue;
        }
        if (!msg.event)
          throw new CkptdError(Code.INTERNAL, `the daemon sent a WatchCheckpointsResponse without an event (job ${request.job})`);
        yield eventOf(msg.event);
      }
      ended = true;
    } catch (err) {
      if (signal?.aborted) return;
      throw CkptdError.from(err);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (!ended) call.cancel();
    }
  }

  /**
   * Follows a job's commits as an evaluator: yields each COMMITTED checkpoint once, in
   * commit order, and holds a lease on it (retention keeps it) until the evaluator
   * reports on it or the daemon's lease TTL passes. The push version of tml's
   * `checkpoints_iterator`, without polling.
   *
   * When the daemon goes away (`UNAVAILABLE`: a restart, a dropped connection) it
   * reconnects with backoff and resumes after the last event seen, so nothing is skipped
   * or repeated. Other errors are thrown. It ends when `timeoutMs` passes without a new
   * checkpoint, when `signal` aborts, or when the consumer leaves the loop. To resume in a
   * later process, pass the last handled event's `sequence` as `afterSequence`.
   *
   * A replay of old events may yield a checkpoint that retention has since deleted; its
   * load then fails with `NOT_FOUND`.
   *
   * @example
   * for await (const ev of client.checkpoints("pretrain", { evaluator: "eval-holdout", timeoutMs: 3_600_000 })) {
   *   const { items } = await client.loadItems({ job: "pretrain", checkpointId: ev.checkpointId, rank: 0, items: ["model"] });
   *   await client.reportEvaluation({ job: "pretrain", checkpointId: ev.checkpointId, evaluator: "eval-holdout", metrics: { loss: evaluate(items) } });
   * }
   */
  checkpoints(job: string, options: CheckpointsOptions): AsyncIterable<CheckpointEvent> {
    if (!options.evaluator) throw new CkptdError(Code.INVALID_ARGUMENT, "checkpoints: an evaluator name is required");
    return followCheckpoints((o) => this.watch(job, o), options);
  }

  /** Records (durably) an evaluator's report on a committed checkpoint; ends its lease on it. */
  async reportEvaluation(req: ReportEvaluationRequest, options: UnaryCallOptions = {}): Promise<EvaluationReport> {
    const res = await unary<ReportEvaluationResponse>((cb) =>
      this.rawEvaluation.reportEvaluation(
        {
          job: req.job,
          checkpointId: req.checkpointId,
          evaluator: req.evaluator,
          metrics: { ...req.metrics },
          status: req.failed ? "EVALUATION_STATUS_FAILED" : "EVALUATION_STATUS_SUCCEEDED",
          message: req.message ?? "",
        },
        callOptions(options.timeoutMs),
        cb,
      ),
    );
    if (!res.report)
      throw new CkptdError(Code.INTERNAL, `the daemon answered ReportEvaluation ${req.job}/${req.checkpointId} without the report`);
    return reportOf(res.report);
  }

  /**
   * Waits until every named evaluator has reported on the checkpoint and returns their
   * reports, in the order the names were given. A failed evaluation counts as reported
   * (its `status` is `FAILED`). Throws `DEADLINE_EXCEEDED` naming the evaluators still
   * missing once `timeoutMs` passes, `NOT_FOUND` for an unknown checkpoint.
   */
  async waitForEvaluators(req: WaitForEvaluatorsRequest): Promise<EvaluationReport[]> {
    const timeoutMs = req.timeoutMs === undefined ? 0 : nonNegative("timeoutMs", req.timeoutMs);
    if (timeoutMs > 0xffffffff) throw new CkptdError(Code.INVALID_ARGUMENT, `timeoutMs must be below 2^32, got ${timeoutMs}`);
    // The daemon's own timer names the missing evaluators; the call's deadline is only a
    // safety net, late enough that it never fires first.
    const deadlineMs = req.timeoutMs === undefined ? undefined : timeoutMs + 10_000;
    const res = await unary<WaitForEvaluatorsResponse>((cb) =>
      this.rawEvaluation.waitForEvaluators(
        { job: req.job, checkpointId: req.checkpointId ?? "latest", evaluators: [...req.evaluators], timeoutMs },
        callOptions(deadlineMs),
        cb,
      ),
    );
    return res.reports.map(reportOf);
  }

  /**
   * Replaces a job's retention policy (durably) and runs garbage collection at once.
   * Rules left out are 0 (off); all 0 keeps everything.
   * @returns the policy in force and the ids of the checkpoints the collection deleted
   */
  async setRetentionPolicy(
    job: string,
    policy: RetentionPolicy,
    options: UnaryCallOptions = {},
  ): Promise<{ policy: ResolvedRetentionPolicy; deletedCheckpointIds: string[] }> {
    const wire = policyToWire(policy);
    const res = await unary<SetRetentionPolicyResponse>((cb) =>
      this.rawRetention.setRetentionPolicy({ job, policy: wire }, callOptions(options.timeoutMs), cb),
    );
    return { policy: policyOf(res.policy), deletedCheckpointIds: res.deletedCheckpointIds };
  }

  /** A job's retention policy (the daemon's defaults when never set) and its pinned checkpoints. */
  async getRetentionPolicy(
    job: string,
    options: UnaryCallOptions = {},
  ): Promise<{ policy: ResolvedRetentionPolicy; pinnedCheckpointIds: string[] }> {
    const res = await unary<GetRetentionPolicyResponse>((cb) =>
      this.rawRetention.getRetentionPolicy({ job }, callOptions(options.timeoutMs), cb),
    );
    return { policy: policyOf(res.policy), pinnedCheckpointIds: res.pinnedCheckpointIds };
  }

  /**
   * Pins (or, with `pinned` false, unpins) a committed checkpoint: retention never
   * deletes a pinned one. Resolves with whether it is now pinned.
   */
  async pinCheckpoint(job: string, checkpointId: string, pinned = true, options: UnaryCallOptions = {}): Promise<boolean> {
    const res = await unary<PinCheckpointResponse>((cb) =>
      this.rawRetention.pinCheckpoint({ job, checkpointId, pinned }, callOptions(options.timeoutMs), cb),
    );
    return res.pinned;
  }

  /** The daemon: version, lifecycle state, data directory, load (AdminService). */
  async getStatus(options: UnaryCallOptions = {}): Promise<GetStatusResponse> {
    return unary<GetStatusResponse>((cb) => this.rawAdmin.getStatus({}, callOptions(options.timeoutMs), cb));
  }

  /** The jobs with committed checkpoints (AdminService). */
  async listJobs(options: UnaryCallOptions = {}): Promise<ListJobsResponse> {
    return unary<ListJobsResponse>((cb) => this.rawAdmin.listJobs({}, callOptions(options.timeoutMs), cb));
  }

  /** Reads every stored chunk of a checkpoint and recomputes its checksum, reporting every damaged chunk (AdminService). */
  async verifyCheckpoint(job: string, checkpointId: string, options: UnaryCallOptions = {}): Promise<VerifyCheckpointResponse> {
    return unary<VerifyCheckpointResponse>((cb) =>
      this.rawAdmin.verifyCheckpoint({ job, checkpointId }, callOptions(options.timeoutMs), cb),
    );
  }

  /** Closes the channel; calls in flight fail with `CANCELLED`. */
  close(): void {
    this.raw.close();
  }
}

function callOptions(ms: number | undefined): grpc.CallOptions {
  return ms === undefined ? {} : { deadline: new Date(Date.now() + ms) };
}

function nonNegative(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new CkptdError(Code.INVALID_ARGUMENT, `${name} must be a non-negative integer, got ${v}`);
  return v;
}

function unary<T>(start: (cb: (err: grpc.ServiceError | null, res?: T) => void) => unknown): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    start((err, res) => {
      if (err) reject(CkptdError.from(err));
      else if (res === undefined) reject(new CkptdError(Code.INTERNAL, "the daemon sent an empty response"));
      else resolve(res);
    });
  });
}

function outcomeOf(outcome: CommitOutcome): Outcome {
  const o = OUTCOMES[outcome];
  if (!o) throw new CkptdError(Code.INTERNAL, `the daemon returned no commit decision (outcome ${outcome})`);
  return o;
}

/** The wire form of a load's request. */
function loadRequest(req: LoadRequest): LoadRequestIn & { checkpointId: string } {
  const request: LoadRequestIn & { checkpointId: string } = {
    job: req.job,
    checkpointId: req.checkpointId ?? "latest",
    rank: req.rank ?? 0,
    localRank: req.localRank ?? 0,
    devices: [...(req.devices ?? [])],
    mapLocation: { ...req.mapLocation },
    items: [...(req.items ?? [])],
    worldSize: req.worldSize ?? 0,
    boxes: (req.boxes ?? []).map((b) => ({ item: b.item, key: b.key, offsets: [...(b.offsets ?? [])], lengths: [...(b.lengths ?? [])] })),
  };
  if (req.sourceRank !== undefined) request.sourceRank = req.sourceRank;
  if (req.shardAs) {
    const a = req.shardAs;
    request.shardAs = { rank: a.rank, worldSize: a.worldSize, sizes: [...(a.sizes ?? [])], replicate: a.replicate ?? false };
    if (a.dim !== undefined) request.shardAs.dim = a.dim;
  }
  return request;
}

/** Reads a shared chunk out of the ring into `into`; a failure is the load's INTERNAL error. */
/** How a SaveHeader or LoadSharedStart names `ring`: by its handle when unnamed, else by path. */
function ringFields(ring: SaveRing | LoadRing): { sharedMemoryHandle: RingHandle } | { sharedMemoryPath: string } {
  return ring.handle ? { sharedMemoryHandle: ring.handle } : { sharedMemoryPath: ring.path };
}

async function readChunk(ring: LoadRing, offset: number, into: Uint8Array): Promise<void> {
  try {
    await ring.read(offset, into);
  } catch (err) {
    throw new CkptdError(Code.INTERNAL, `cannot read a chunk out of the shared-memory file ${ring.shown}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * Builds the {@link LoadedItems} of one load from its plan, entries and chunk bytes, in
 * stream order, whichever way the bytes travel. Each entry gets one buffer of its announced
 * size; bytes beyond or short of it, or a total that disagrees with the plan, are `DATA_LOSS`.
 */
class LoadAssembly {
  private loadPlan: LoadPlan | undefined;
  private readonly items = new Map<string, Map<string, LoadedEntry>>();
  private current: { entry: LoadEntry; buf: Buffer; filled: number } | undefined;
  private total = 0;
  private count = 0;

  /** `into`, when given, supplies each entry's buffer (entry index counted from 0) instead of a new one. */
  constructor(
    private readonly req: LoadRequest,
    private readonly into?: (entry: LoadEntry, index: number) => Buffer,
  ) {}

  plan(plan: LoadPlan): void {
    if (this.loadPlan) throw protocolError("a second plan");
    this.loadPlan = plan;
  }

  entry(entry: LoadEntry): void {
    if (!this.loadPlan) throw protocolError("an entry before the plan");
    this.finishEntry();
    const size = entry.sizeBytes;
    if (!Number.isSafeInteger(size) || size < 0) throw protocolError(`${this.where(entry)} with size ${size}`);
    // One allocation at the announced size; allocUnsafeSlow keeps byteOffset 0 so typed views of any width fit.
    const buf = this.into ? this.into(entry, this.count++) : Buffer.allocUnsafeSlow(size);
    const loaded = loadedEntry(entry, buf, this.where(entry));
    let item = this.items.get(entry.item);
    if (!item) this.items.set(entry.item, (item = new Map()));
    if (item.has(entry.key) && !this.into) throw protocolError(`${this.where(entry)} twice`);
    item.set(entry.key, loaded);
    this.current = { entry, buf, filled: 0 };
  }

  /** The current entry's next `length` bytes, a view of its buffer, counted as received: the caller fills it. */
  take(length: number): Buffer {
    const current = this.current;
    if (!current) throw protocolError("a chunk outside an entry");
    if (current.filled + length > current.buf.byteLength) {
      throw new CkptdError(
        Code.DATA_LOSS,
        `${this.where(current.entry)}: received more than the announced ${current.buf.byteLength} bytes`,
      );
    }
    const into = current.buf.subarray(current.filled, current.filled + length);
    current.filled += length;
    this.total += length;
    return into;
  }

  /** Checks the last entry and the total against the plan, once the stream has ended. */
  finish(): LoadedItems {
    this.finishEntry();
    const plan = this.loadPlan;
    if (!plan) throw protocolError("no plan");
    if (this.total !== plan.totalBytes) {
      throw new CkptdError(
        Code.DATA_LOSS,
        `the load of ${this.req.job}/${this.req.checkpointId ?? "latest"} rank ${this.req.rank ?? 0} streamed ${this.total} bytes, the plan announced ${plan.totalBytes}`,
      );
    }
    return { plan, items: this.items };
  }

  private finishEntry(): void {
    const current = this.current;
    if (current && current.filled !== current.buf.byteLength) {
      throw new CkptdError(
        Code.DATA_LOSS,
        `${this.where(current.entry)}: received ${current.filled} bytes, expected ${current.buf.byteLength}`,
      );
    }
    this.current = undefined;
  }

  private where(e: LoadEntry): string {
    const r = this.req;
    return `entry ${e.item}/${e.key} of ${r.job}/${r.checkpointId ?? "latest"} rank ${r.sourceRank ?? r.rank ?? 0}`;
  }
}

function protocolError(what: string): CkptdError {
  return new CkptdError(Code.INTERNAL, `the daemon's Load stream is out of order: it sent ${what}`);
}

function invalidEntry(message: string): CkptdError {
  return new CkptdError(Code.INVALID_ARGUMENT, message);
}

/** Checks an entry before it is sent, so a bad one fails here with its key named rather than mid-stream. */
function entryHeader(entry: SaveEntry, seen: Set<string>): { header: EntryHeaderIn; data: Uint8Array } {
  const key: unknown = entry.key;
  if (typeof key !== "string" || key === "") throw invalidEntry("an entry key must be a non-empty string");
  if (seen.has(key)) throw invalidEntry(`entry key ${JSON.stringify(key)} appears twice in the item`);
  seen.add(key);
  if ("tensor" in entry) {
    const t = entry.tensor;
    if (!isDtypeName(t.dtype)) throw invalidEntry(`entry ${key}: unknown dtype ${String(t.dtype)}`);
    if (!(t.data instanceof Uint8Array)) throw invalidEntry(`entry ${key}: tensor data must be a Uint8Array`);
    const size = tensorByteSize(dtypeByteSize(t.dtype), t.shape);
    if (typeof size === "string") throw invalidEntry(`entry ${key}: ${size}`);
    if (size !== t.data.byteLength) {
      throw invalidEntry(
        `entry ${key}: a ${t.dtype} tensor of shape [${t.shape.join(", ")}] has ${size} bytes, but its data has ${t.data.byteLength}`,
      );
    }
    return {
      header: {
        key,
        tensor: {
          dtype: toProtoDtype(t.dtype),
          shape: [...t.shape],
          device: t.device,
          globalShape: [...(t.globalShape ?? [])],
          globalOffsets: [...(t.globalOffsets ?? [])],
        },
      },
      data: t.data,
    };
  }
  if (!("object" in entry) || !(entry.object.data instanceof Uint8Array)) {
    throw invalidEntry(`entry ${key}: expected {tensor} or {object: {data: Uint8Array}}`);
  }
  return {
    header: { key, object: { sizeBytes: entry.object.data.byteLength, format: entry.object.format ?? "" } },
    data: entry.object.data,
  };
}

function loadedEntry(entry: LoadEntry, buf: Buffer, where: string): LoadedEntry {
  if (entry.kind === "tensor" && entry.tensor) {
    const spec = entry.tensor;
    const dtype = fromProtoDtype(spec.dtype);
    if (!dtype) throw new CkptdError(Code.INTERNAL, `${where}: unknown dtype ${spec.dtype}`);
    const size = tensorByteSize(dtypeByteSize(dtype), spec.shape);
    if (size !== buf.byteLength) {
      throw new CkptdError(
        Code.DATA_LOSS,
        `${where}: a ${dtype} tensor of shape [${spec.shape.join(", ")}] cannot have ${buf.byteLength} bytes`,
      );
    }
    const t: { -readonly [K in keyof Tensor]: Tensor[K] } = {
      dtype,
      shape: spec.shape,
      data: buf,
      // The daemon's hint is the point of the plan; fall back to where it was saved when there is none.
      device: entry.targetDevice || spec.device,
    };
    if (spec.globalShape.length > 0) t.globalShape = spec.globalShape;
    if (spec.globalOffsets.length > 0) t.globalOffsets = spec.globalOffsets;
    return { kind: "tensor", tensor: t, savedDevice: spec.device };
  }
  if (entry.kind === "object" && entry.object) {
    if (entry.object.sizeBytes !== buf.byteLength) {
      throw new CkptdError(Code.DATA_LOSS, `${where}: the object has ${entry.object.sizeBytes} bytes but ${buf.byteLength} are announced`);
    }
    return { kind: "object", data: buf, format: entry.object.format };
  }
  throw new CkptdError(Code.INTERNAL, `${where}: neither a tensor nor an object`);
}
