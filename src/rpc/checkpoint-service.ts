/**
 * gRPC handlers: wire messages ↔ domain calls. A handler translates and reports
 * errors through toServiceError; the protocol lives in the coordinator.
 */
import type { EventEmitter } from "node:events";
import * as grpc from "@grpc/grpc-js";
import { crc32c } from "@node-rs/crc32";
import type { Logger } from "pino";
import type { CheckpointServiceHandlers } from "../../wire/gen/ckptd/v1/CheckpointService.js";
import type { CheckpointIn } from "../../wire/gen/ckptd/v1/Checkpoint.js";
import type { EntryHeader } from "../../wire/gen/ckptd/v1/EntryHeader.js";
import type { LoadRequest } from "../../wire/gen/ckptd/v1/LoadRequest.js";
import type { LoadResponseIn } from "../../wire/gen/ckptd/v1/LoadResponse.js";
import type { LoadSharedRequest } from "../../wire/gen/ckptd/v1/LoadSharedRequest.js";
import type { LoadSharedResponseIn } from "../../wire/gen/ckptd/v1/LoadSharedResponse.js";
import type { SaveRequest } from "../../wire/gen/ckptd/v1/SaveRequest.js";
import type { SaveResponse } from "../../wire/gen/ckptd/v1/SaveResponse.js";
import type { SaveSharedRequest } from "../../wire/gen/ckptd/v1/SaveSharedRequest.js";
import type { SaveSharedResponse } from "../../wire/gen/ckptd/v1/SaveSharedResponse.js";
import type { TensorSpec } from "../../wire/gen/ckptd/v1/TensorSpec.js";
import { dtypeSize, tensorByteSize } from "../../wire/index.js";
import type { Authorizer } from "./auth.js";
import type { Catalog } from "../catalog/catalog.js";
import { outcomeToWire, type CheckpointCoordinator, type Decision, type SaveTicket } from "../commit/coordinator.js";
import { LZ4_MAX_BLOCK } from "../codec/codec.js";
import { SpareBuffers, type PoolLease } from "../store/buffer-pool.js";
import type { ByteBudget } from "../common/byte-budget.js";
import type { WriteIo } from "../store/direct-io.js";
import { CkptdError, failedPrecondition, invalidArgument, resourceExhausted, toServiceError, unavailable } from "../common/errors.js";
import { ItemWriter, type EntrySpec } from "../save/item-writer.js";
import type { CheckpointLoader, LoadPart, LoadPlan, LoadPosition } from "../load/loader.js";
import { LoadSender, MAX_LOAD_MESSAGE_DATA } from "../load/load-sender.js";
import { mapCheckpoint, type CheckpointSummary, type EntryRecord, type Manifest } from "../catalog/manifest.js";
import { checkBounds, checkRef } from "../common/limits.js";
import { checkKey, checkName } from "../common/names.js";
import type { Metrics } from "../common/metrics.js";
import type { Retention } from "../evaluation/retention.js";
import { SharedSegment, type SharedMemoryConfig, type SharedMemoryHandle } from "../store/shared-memory.js";
import { StreamGuard } from "../common/stream-guard.js";
import type { DataDir } from "../store/files.js";

export interface ServiceDeps {
  dataDir: DataDir;
  catalog: Catalog;
  coordinator: CheckpointCoordinator;
  loader: CheckpointLoader;
  retention: Retention;
  log: Logger;
  auth: Authorizer;
  metrics: Metrics;
  /** False once the daemon drains: new saves are refused with UNAVAILABLE. */
  acceptingSaves: () => boolean;
  /** Save streams in progress (the drain waits for them). */
  activeSaves: { count: number };
  /** The guards of the Save streams in progress (the drain hurries the idle ones). */
  saveGuards: Set<StreamGuard>;
  /** Where SaveShared clients may put their bytes. */
  sharedMemory: SharedMemoryConfig;
  /** How save streams write: the O_DIRECT buffer pool, or buffered I/O. */
  writeIo: WriteIo;
  /** Largest world_size a Save or Commit may name. */
  maxWorldSize: number;
  /** On a multi-node participant: why deletions must go to the coordinator (undefined elsewhere). */
  notCoordinator: string | undefined;
  /** What one client may make a stream hold, and for how long. */
  streamLimits: StreamLimits;
}

export interface StreamLimits {
  /** A stream whose client makes no step (a message, a read) for this long is ended. */
  idleTimeoutMs: number;
  /** Load and LoadShared streams one job may have open at once. */
  maxLoadsPerJob: number;
  /** What all Load streams hold: read buffers and messages queued for their clients. */
  loadBudget: ByteBudget;
}

/** Largest object a client may declare (objects stream in chunks like tensors). */
const MAX_OBJECT_BYTES = 2 ** 50;

export function checkpointServiceHandlers(deps: ServiceDeps): CheckpointServiceHandlers {
  const { coordinator, catalog, loader, log, auth, metrics } = deps;
  /** Load and LoadShared streams open per job. */
  const loadsByJob = new Map<string, number>();

  return {
    Save(call, callback) {
      const guard = saveGuard(deps, call, "Save");
      saveItem(deps, call.metadata, call as AsyncIterable<SaveRequest>, guard)
        .then(
          (res) => callback(null, res),
          (err: unknown) => callback(toServiceError(err)),
        )
        .finally(() => endSaveGuard(deps, guard));
    },

    SaveShared(call) {
      async function* requests(): AsyncGenerator<SaveRequest> {
        // Not `for await (… of call)`: that destroys the stream when the requests end, and
        // a destroyed stream can no longer send the result or the status.
        for await (const r of call.iterator({ destroyOnReturn: false }) as AsyncIterable<SaveSharedRequest>) {
          if (!r.request) throw invalidArgument("a SaveShared message without a request");
          yield r.request;
        }
      }
      // Releases are sent once per turn of the event loop, not per chunk: a state dict of
      // a few hundred tensors otherwise costs the client as many progress messages to
      // receive, while the chunks that arrived together are copied out in one go anyway.
      // The daemon turns the loop whenever it waits, for the client's next message too,
      // so a client blocked on a full ring always hears of the space it waits for.
      let unsent: number | undefined;
      let ended = false;
      const sendProgress = (released: number, handleOpen = false) => {
        // Every shared chunk is checksummed here from the bytes read (ItemWriter), so a
        // client may skip its own CRC pass over them.
        call.write({
          progress: { sharedBytesReleased: released, sharedChunkCrcOptional: true, sharedMemoryHandleOpen: handleOpen },
        } satisfies SaveSharedResponse);
      };
      const flushProgress = () => {
        if (unsent === undefined || ended) return;
        const released = unsent;
        unsent = undefined;
        sendProgress(released);
      };
      const progress = (released: number, handleOpen?: boolean) => {
        // The ring is open: the client starts on it at once.
        if (released === 0) return sendProgress(0, handleOpen === true);
        if (unsent === undefined) setImmediate(flushProgress);
        unsent = released;
      };
      const guard = saveGuard(deps, call, "SaveShared");
      saveItem(deps, call.metadata, requests(), guard, progress)
        .then(
          (res) => {
            flushProgress(); // the last release still comes before the result
            ended = true;
            call.write({ result: res } satisfies SaveSharedResponse);
            call.end();
          },
          (err: unknown) => {
            ended = true;
            call.emit("error", toServiceError(err));
          },
        )
        .finally(() => endSaveGuard(deps, guard));
    },

    Commit(call, callback) {
      const r = call.request;
      const started = process.hrtime.bigint();
      const cancelled = new Promise<never>((_, reject) =>
        call.on("cancelled", () => reject(new CkptdError(grpc.status.CANCELLED, "the caller went away"))),
      );
      cancelled.catch(() => {});
      const vote = Promise.resolve().then(() => {
        checkName("job", r.job);
        auth.check(call.metadata, { job: r.job });
        checkRef(r, deps.maxWorldSize);
        return coordinator.vote(
          { job: r.job, checkpointId: r.checkpointId, step: r.step, rank: r.rank, worldSize: r.worldSize, incarnation: r.incarnation },
          r.items,
          r.attempt,
        );
      });
      // The vote stays recorded when the caller goes away; only the wait ends.
      Promise.race([vote, cancelled]).then(
        (d) => {
          metrics.commitSeconds.observe({ outcome: d.outcome }, seconds(started));
          callback(null, decisionMessage(d));
        },
        (err: unknown) => {
          metrics.commitSeconds.observe({ outcome: "error" }, seconds(started));
          logRejected(log, "Commit", err);
          callback(toServiceError(err));
        },
      );
    },

    Abort(call, callback) {
      const r = call.request;
      Promise.resolve()
        .then(() => {
          checkName("job", r.job);
          auth.check(call.metadata, { job: r.job });
          checkName("checkpoint_id", r.checkpointId);
        })
        .then(() =>
          coordinator.abort({ job: r.job, checkpointId: r.checkpointId, rank: r.rank, incarnation: r.incarnation }, r.reason, r.attempt),
        )
        .then(
          (d) => callback(null, { outcome: outcomeToWire(d.outcome), reason: d.reason, attempt: d.attempt }),
          (err: unknown) => callback(toServiceError(err)),
        );
    },

    GetCheckpoint(call, callback) {
      const r = call.request;
      void (async () => {
        checkName("job", r.job);
        auth.check(call.metadata, { job: r.job });
        await catalog.refresh(r.job);
        const summary = catalog.get(r.job, r.checkpointId);
        const manifest = r.view === "CHECKPOINT_VIEW_FULL" ? await catalog.readManifest(summary) : undefined;
        return { checkpoint: checkpointMessage(summary, manifest) };
      })().then(
        (res) => callback(null, res),
        (err: unknown) => callback(toServiceError(err)),
      );
    },

    ListCheckpoints(call, callback) {
      const r = call.request;
      void (async () => {
        checkName("job", r.job);
        auth.check(call.metadata, { job: r.job });
        await catalog.refresh(r.job);
        const pageSize = r.pageSize === 0 ? 100 : Math.min(r.pageSize, 1000);
        const all = catalog.list(r.job);
        let start = 0;
        if (r.pageToken) {
          const after = decodePageToken(r.pageToken);
          // Position after the token's (step, id) so deletions between pages skip nothing.
          start = all.findIndex((c) => c.step < after.step || (c.step === after.step && c.checkpointId < after.id));
          if (start < 0) start = all.length;
        }
        const page = all.slice(start, start + pageSize);
        const last = page[page.length - 1];
        const more = start + pageSize < all.length;
        return {
          checkpoints: page.map((c) => checkpointMessage(c)),
          nextPageToken: more && last ? encodePageToken(last) : "",
        };
      })().then(
        (res) => callback(null, res),
        (err: unknown) => callback(toServiceError(err)),
      );
    },

    DeleteCheckpoint(call, callback) {
      const r = call.request;
      if (r.checkpointId === "latest" || r.checkpointId === "") {
        callback(toServiceError(invalidArgument("DeleteCheckpoint needs an explicit checkpoint_id, not 'latest'")));
        return;
      }
      Promise.resolve()
        .then(() => {
          checkName("job", r.job);
          auth.check(call.metadata, { job: r.job, admin: true });
          checkName("checkpoint_id", r.checkpointId);
        })
        .then(() => {
          if (deps.notCoordinator) throw failedPrecondition(deps.notCoordinator);
          return deps.retention.delete(r.job, r.checkpointId, "DeleteCheckpoint");
        })
        .then(
          (freedBytes) => {
            metrics.deletions.inc({ by: "rpc" });
            callback(null, { freedBytes });
          },
          (err: unknown) => callback(toServiceError(err)),
        );
    },

    Load(call) {
      const started = process.hrtime.bigint();
      const guard = loadGuard(deps, call, "Load");
      const out = new LoadSender<LoadResponseIn>(call, guard, deps.streamLimits.loadBudget);
      let closeLoad: (() => void) | undefined;
      void (async () => {
        closeLoad = openLoad(call.request.job, call.metadata);
        const plan = await planLoad(call.request, call.metadata);
        await out.send(planMessage(plan));
        // What the client was sent: where the loader resumes after a pause.
        const at: LoadPosition = { entry: -1, chunk: 0 };
        for (;;) {
          let paused = false;
          for await (const part of loader.stream(plan, { ...at })) {
            // The next part is read (and decoded) while the last message goes out. A client
            // that takes no message for a while pauses the stream: the loader's buffers go
            // back to the cache instead of waiting here for as long as the client likes.
            if (!(await out.sentWithin(LOAD_PAUSE_AFTER_MS))) {
              paused = true;
              break;
            }
            if (part.kind === "entry") {
              await out.send(entryMessage(part));
              at.entry++;
              at.chunk = 0;
            } else {
              metrics.bytesSent.inc(part.data.length);
              // Each message carries the CRC-32C of its bytes, so a client can check end to end:
              // the stored chunk's own when it goes whole, the piece's when it was split.
              const whole = part.data.length <= MAX_LOAD_MESSAGE_DATA;
              await out.sendChunk(part.data, (data) => ({
                chunk: { data, crc32c: whole && part.crc32c !== undefined ? part.crc32c : crc32c(data) },
              }));
              at.chunk++;
            }
          }
          if (!paused) break;
          log.debug({ job: plan.manifest.job, checkpoint: plan.manifest.checkpointId, at }, "load paused: the client is not reading");
          await out.settle();
        }
        await out.settle();
        call.end();
        metrics.loadSeconds.observe({ outcome: "ok" }, seconds(started));
      })()
        .catch((err: unknown) => {
          metrics.loadSeconds.observe({ outcome: "error" }, seconds(started));
          if (!call.cancelled) logRejected(log, "Load", err);
          call.emit("error", toServiceError(err));
        })
        .finally(() => {
          out.close();
          closeLoad?.();
          guard.dispose();
        });
    },

    LoadShared(call) {
      const started = process.hrtime.bigint();
      const guard = loadGuard(deps, call, "LoadShared");
      let segment: SharedSegment | undefined;
      /** Destination mode: the client's destination file. */
      let dest: SharedSegment | undefined;
      let ring: SlotRing | undefined;
      let closeLoad: (() => void) | undefined;
      void (async () => {
        const requests = call.iterator({ destroyOnReturn: false }) as AsyncIterator<LoadSharedRequest>;
        const first = await requests.next();
        if (first.done || first.value.msg !== "start" || !first.value.start?.request)
          throw invalidArgument("the first LoadShared message must be start, with the request");
        checkBounds(first.value, "message");
        const { request, sharedMemoryPath, sharedMemoryHandle } = first.value.start;
        closeLoad = openLoad(request.job, call.metadata);
        segment = await openRing(deps, sharedMemoryPath, sharedMemoryHandle, "write");
        const slots = Math.floor(segment.size / LZ4_MAX_BLOCK);
        if (slots < 1)
          throw invalidArgument(
            `the shared-memory file ${sharedMemoryPath} has ${segment.size} bytes, less than one slot of ${LZ4_MAX_BLOCK}`,
          );
        const plan = await planLoad(request, call.metadata);
        const r = (ring = new SlotRing(slots));
        // Destination mode: every entry's bytes go to its place in the client's destination file.
        const layout = first.value.start.destination ? destinationLayout(plan) : undefined;
        let ok = call.write({
          response: planMessage(plan, layout?.bytes ?? 0),
        } satisfies LoadSharedResponseIn);
        if (layout) {
          // The client answers the plan with its destination (its step: the idle timeout applies).
          const next = await guard.wait(requests.next());
          if (next.done) throw new CkptdError(grpc.status.CANCELLED, "the client ended its LoadShared stream before its destination");
          if (next.value.msg !== "destination")
            throw invalidArgument("with start.destination set, the message after start must be destination");
          checkBounds(next.value, "message");
          const { sharedMemoryPath: where, sharedMemoryHandle: destHandle } = next.value.destination!;
          if (destHandle) {
            if (where !== "")
              throw invalidArgument("the destination sets both shared_memory_path and shared_memory_handle; set one of them");
            // Bounded by the plan: at least its bytes (a single byte for an empty load, which the
            // client maps), and no more than that.
            const bytes = Math.max(layout.bytes, 1);
            dest = await SharedSegment.openHandle(deps.sharedMemory, destHandle, "write", 0, { maxSize: bytes, destination: true });
            if (dest.size < layout.bytes)
              throw invalidArgument(
                `${dest.path} has ${dest.size} bytes, less than the ${layout.bytes} bytes (LoadPlan.destination_bytes) this load needs`,
              );
          } else if (where !== "") {
            dest = await SharedSegment.open(deps.sharedMemory, where, "write");
            if (dest.size < layout.bytes)
              throw invalidArgument(
                `the destination file ${where} has ${dest.size} bytes, less than the ${layout.bytes} bytes (LoadPlan.destination_bytes) this load needs`,
              );
          }
        }
        /** A client message the stream cannot take: the load ends with it. */
        let refused: unknown;
        // The client's progress messages free slots while the chunks go out.
        void (async () => {
          for (;;) {
            const next = await requests.next();
            if (next.done) return r.fail(new CkptdError(grpc.status.CANCELLED, "the client ended its LoadShared stream"));
            // A destination has no slots to release: nothing more may come.
            if (dest) throw invalidArgument("after its destination, a LoadShared client sends nothing more");
            if (next.value.msg !== "progress") throw invalidArgument("after start, LoadShared messages must be progress");
            r.release(Number(next.value.progress!.sharedBytesReleased));
          }
        })().catch((err: unknown) => {
          refused ??= err;
          r.fail(err);
        });
        /** Destination mode: where the current entry starts in the destination, and its bytes written so far. */
        let entryStart = 0;
        let entryFilled = 0;
        // What the client was sent: where the loader resumes after a pause.
        const at: LoadPosition = { entry: -1, chunk: 0 };
        /** The slot asked for the next chunk; kept across a pause (the ring counts it as taken). */
        let slot: Promise<number> | undefined;
        for (;;) {
          /** The client's step the stream paused for. */
          let pausedFor: Promise<unknown> | undefined;
          // In destination mode a box's pieces are views of the decoded chunks, of any length, with
          // no CRC-32C of their own (the stored chunks were verified here; nobody else checks a
          // piece's), so a resumed stream starts from the bytes sent.
          const from = dest ? { ...at, bytes: entryFilled } : { ...at };
          for await (const part of loader.stream(plan, from, { inPlace: dest !== undefined })) {
            if (call.cancelled) return;
            if (refused !== undefined) throw refused;
            // Both waits are the client's steps (reading, freeing slots). One that takes a
            // while pauses the stream: the loader's buffers go back to the cache meanwhile.
            if (!ok) {
              const drain = drained(call);
              if (!(await guard.within(drain, LOAD_PAUSE_AFTER_MS))) {
                pausedFor = drain;
                break;
              }
              ok = true;
            }
            if (part.kind === "entry") {
              ok = call.write({ response: entryMessage(part) } satisfies LoadSharedResponseIn);
              at.entry++;
              at.chunk = 0;
              if (dest) {
                entryStart = layout!.offsets[at.entry]!;
                entryFilled = 0;
              }
              continue;
            }
            if (dest) {
              // The layout is the daemon's: the entry's bytes land in its own region, which the
              // plan's sizes bound (a stream that sent more than announced would be a daemon bug).
              const offset = entryStart + entryFilled;
              if (entryFilled + part.data.length > layout!.sizes[at.entry]!)
                throw new Error(`entry ${at.entry} streamed more bytes than its ${layout!.sizes[at.entry]} planned`);
              await dest.write(part.data, offset);
              entryFilled += part.data.length;
              metrics.bytesSent.inc(part.data.length);
              metrics.sharedMemoryBytes.inc({ direction: "load" }, part.data.length);
              ok = call.write({
                response: {
                  sharedChunk: { offset, length: part.data.length, ...(part.crc32c !== undefined ? { crc32c: part.crc32c } : {}) },
                },
              } satisfies LoadSharedResponseIn);
              at.chunk++;
              continue;
            }
            slot ??= r.acquire(part.data.length);
            if (!(await guard.within(slot, LOAD_PAUSE_AFTER_MS))) {
              pausedFor = slot;
              break;
            }
            const offset = (await slot) * LZ4_MAX_BLOCK;
            slot = undefined;
            await segment.write(part.data, offset);
            metrics.bytesSent.inc(part.data.length);
            metrics.sharedMemoryBytes.inc({ direction: "load" }, part.data.length);
            ok = call.write({
              response: { sharedChunk: { offset, length: part.data.length, crc32c: part.crc32c ?? crc32c(part.data) } },
            } satisfies LoadSharedResponseIn);
            at.chunk++;
          }
          if (!pausedFor) break;
          log.debug({ job: plan.manifest.job, checkpoint: plan.manifest.checkpointId, at }, "load paused: the client is not reading");
          await guard.wait(pausedFor);
          if (pausedFor !== slot) ok = true;
        }
        // The ring and the destination are closed before the client hears the end: it may count on
        // the daemon holding none of them.
        await segment.close();
        await dest?.close();
        call.end();
        metrics.loadSeconds.observe({ outcome: "ok" }, seconds(started));
      })()
        .catch((err: unknown) => {
          metrics.loadSeconds.observe({ outcome: "error" }, seconds(started));
          if (!call.cancelled) logRejected(log, "LoadShared", err);
          call.emit("error", toServiceError(err));
        })
        .finally(() => {
          ring?.fail(new CkptdError(grpc.status.CANCELLED, "the load ended"));
          void segment?.close();
          void dest?.close();
          closeLoad?.();
          guard.dispose();
        });
    },
  };

  /**
   * Counts a Load or LoadShared stream against its job's limit; returns the call that
   * uncounts it. Checked before any work: a job cannot make the daemon plan and read more
   * loads than it may have open.
   */
  function openLoad(job: string, metadata: grpc.Metadata): () => void {
    checkName("job", job);
    auth.check(metadata, { job });
    const open = loadsByJob.get(job) ?? 0;
    const max = deps.streamLimits.maxLoadsPerJob;
    if (open >= max)
      throw resourceExhausted(
        `job '${job}' already has ${open} loads open on this daemon, the most it may (--max-loads-per-job ${max}); retry once one finished`,
      );
    loadsByJob.set(job, open + 1);
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      const left = (loadsByJob.get(job) ?? 1) - 1;
      if (left > 0) loadsByJob.set(job, left);
      else loadsByJob.delete(job);
    };
  }

  /** Checks a Load request and plans it. */
  async function planLoad(r: LoadRequest, metadata: grpc.Metadata): Promise<LoadPlan> {
    checkName("job", r.job);
    auth.check(metadata, { job: r.job });
    await catalog.refresh(r.job);
    return loader.plan({
      job: r.job,
      checkpointId: r.checkpointId,
      rank: r.rank,
      localRank: r.localRank,
      devices: r.devices,
      mapLocation: r.mapLocation,
      items: r.items,
      sourceRank: r.sourceRank,
      worldSize: r.worldSize,
      boxes: r.boxes,
      shardAs: r.shardAs
        ? {
            rank: r.shardAs.rank,
            worldSize: r.shardAs.worldSize,
            // A proto3 optional: set only when its oneof says so.
            dim: r.shardAs._dim === "dim" ? r.shardAs.dim : undefined,
            sizes: r.shardAs.sizes,
            replicate: r.shardAs.replicate,
          }
        : undefined,
    });
  }
}

/** Alignment of each entry's start in a LoadShared destination file (a cache line; any dtype's element). */
export const DESTINATION_ALIGN = 64;

/**
 * Where each entry of a plan lands in a LoadShared destination file: consecutive, each start
 * rounded up to DESTINATION_ALIGN (see LoadDestination in the proto).
 */
export function destinationLayout(plan: LoadPlan): { offsets: number[]; sizes: number[]; bytes: number } {
  const offsets: number[] = [];
  const sizes: number[] = [];
  let at = 0;
  for (const o of plan.outputs) {
    const size = o.kind === "box" ? o.entry.rawBytes : o.copy.entry.rawBytes;
    offsets.push(at);
    sizes.push(size);
    at += Math.ceil(size / DESTINATION_ALIGN) * DESTINATION_ALIGN;
  }
  return { offsets, sizes, bytes: at };
}

function planMessage(plan: LoadPlan, destinationBytes = 0): LoadResponseIn {
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

function entryMessage(part: Extract<LoadPart, { kind: "entry" }>): LoadResponseIn {
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

/**
 * The slots of a LoadShared client's file: chunk i goes to slot i mod n, once the client
 * has released the chunk that was there (releases are cumulative bytes, in order).
 */
class SlotRing {
  private next = 0;
  private readonly pending: number[] = [];
  private released = 0;
  private failed: unknown;
  private wake: (() => void) | undefined;

  constructor(private readonly slots: number) {}

  /** Waits for a free slot for a chunk of `length` bytes and returns its index. */
  async acquire(length: number): Promise<number> {
    while (this.pending.length >= this.slots && this.failed === undefined) await new Promise<void>((r) => (this.wake = r));
    if (this.failed !== undefined) throw this.failed;
    this.pending.push(length);
    return this.next++ % this.slots;
  }

  release(total: number): void {
    while (this.pending.length > 0 && this.released + this.pending[0]! <= total) this.released += this.pending.shift()!;
    this.poke();
  }

  fail(err: unknown): void {
    this.failed ??= err;
    this.poke();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

function seconds(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e9;
}

export function drained(call: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off("drain", done);
      call.off("close", done);
      resolve();
    };
    call.on("drain", done);
    call.on("close", done);
  });
}

function logRejected(log: Logger, rpc: string, err: unknown, ticket?: SaveTicket): void {
  const s = toServiceError(err);
  const ctx = ticket ? { job: ticket.attempt.job, checkpoint: ticket.attempt.checkpointId, rank: ticket.rank, item: ticket.item } : {};
  if (s.code === grpc.status.INTERNAL) log.error({ rpc, err, ...ctx }, s.details);
  else log.info({ rpc, code: grpc.status[s.code], ...ctx }, s.details);
}

/** Translates and validates an entry header into the writer's spec. */
function entrySpec(e: EntryHeader): EntrySpec {
  const key = checkKey(e.key);
  if (e.kind === "tensor") {
    const t = e.tensor!;
    const size = dtypeSize(t.dtype);
    if (size === undefined) throw invalidArgument(`entry '${key}' has unknown or unspecified dtype ${JSON.stringify(t.dtype)}`);
    const bytes = tensorByteSize(size, t.shape);
    if (typeof bytes === "string") throw invalidArgument(`entry '${key}': ${bytes}`);
    checkSharding(key, t);
    return {
      key,
      kind: "tensor",
      tensor: { dtype: t.dtype, shape: t.shape, device: t.device || "cpu", globalShape: t.globalShape, globalOffsets: t.globalOffsets },
      sizeBytes: bytes,
    };
  }
  if (e.kind === "object") {
    const o = e.object!;
    if (!Number.isSafeInteger(o.sizeBytes) || o.sizeBytes < 0 || o.sizeBytes > MAX_OBJECT_BYTES)
      throw invalidArgument(`entry '${key}' declares an object of ${o.sizeBytes} bytes`);
    return { key, kind: "object", object: { sizeBytes: o.sizeBytes, format: o.format }, sizeBytes: o.sizeBytes };
  }
  throw invalidArgument(`entry '${key}' is neither a tensor nor an object`);
}

function checkSharding(key: string, t: TensorSpec): void {
  if (t.globalShape.length === 0 && t.globalOffsets.length === 0) return;
  if (t.globalShape.length !== t.shape.length || t.globalOffsets.length !== t.shape.length)
    throw invalidArgument(`entry '${key}': global_shape and global_offsets must have one value per dimension of shape`);
  t.shape.forEach((d, i) => {
    const off = t.globalOffsets[i]!;
    if (off < 0 || off + d > t.globalShape[i]!)
      throw invalidArgument(`entry '${key}': shard [${off}, ${off + d}) lies outside global dimension ${i} of size ${t.globalShape[i]}`);
  });
}

function entryKind(e: EntryRecord) {
  return e.tensor
    ? { tensor: { ...e.tensor, dtype: e.tensor.dtype as TensorSpec["dtype"] } }
    : { object: { sizeBytes: e.object?.sizeBytes ?? 0, format: e.object?.format ?? "" } };
}

function decisionMessage(d: Decision) {
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

function encodePageToken(c: CheckpointSummary): string {
  return Buffer.from(JSON.stringify({ s: c.step, i: c.checkpointId })).toString("base64url");
}

function decodePageToken(token: string): { step: number; id: string } {
  try {
    const v = JSON.parse(Buffer.from(token, "base64url").toString()) as { s: unknown; i: unknown };
    if (typeof v.s === "number" && typeof v.i === "string") return { step: v.s, id: v.i };
  } catch {
    // Fall through to the error below.
  }
  throw invalidArgument("page_token is not one this daemon issued; pass next_page_token from the previous page");
}

/**
 * A Load whose client has not taken the last message for this long lets go of its read
 * buffers until it does (then resumes where it was): a stalled client holds one message.
 */
const LOAD_PAUSE_AFTER_MS = 500;

/** The guard of a Load or LoadShared stream: it ends when its client stops reading or goes away. */
function loadGuard(deps: ServiceDeps, call: EventEmitter & { cancelled?: boolean }, rpc: string): StreamGuard {
  const ms = deps.streamLimits.idleTimeoutMs;
  return new StreamGuard(
    call,
    ms,
    `the client read nothing of this ${rpc} stream for ${ms} ms (--stream-idle-timeout-ms); the load is ended`,
  );
}

/** The guard of a Save or SaveShared stream: it ends when its client goes quiet or away. */
function saveGuard(deps: ServiceDeps, call: EventEmitter & { cancelled?: boolean }, rpc: string): StreamGuard {
  const ms = deps.streamLimits.idleTimeoutMs;
  const guard = new StreamGuard(
    call,
    ms,
    `the client sent nothing on this ${rpc} stream for ${ms} ms (--stream-idle-timeout-ms); the stream is closed and its item discarded`,
  );
  deps.saveGuards.add(guard);
  return guard;
}

/** Ends a Save stream's guard: it no longer counts for the drain. */
function endSaveGuard(deps: ServiceDeps, guard: StreamGuard): void {
  deps.saveGuards.delete(guard);
  guard.dispose();
}

/**
 * Buffers SaveShared streams copy shared chunks into (the chunk limit), lent per chunk:
 * a stream that waits for its client holds none.
 */
const SHARED_READ_BUFFERS = new SpareBuffers(LZ4_MAX_BLOCK, 8);

/**
 * Opens the ring a SaveHeader or LoadSharedStart names, by path or by handle (at most
 * one). A load's ring must hold one slot of LZ4_MAX_BLOCK; a save's at least a byte.
 */
async function openRing(
  deps: ServiceDeps,
  path: string,
  handle: SharedMemoryHandle | null | undefined,
  mode: "read" | "write",
): Promise<SharedSegment> {
  if (!handle) return SharedSegment.open(deps.sharedMemory, path, mode);
  if (path) throw invalidArgument("both shared_memory_path and shared_memory_handle are set; set one of them");
  return SharedSegment.openHandle(deps.sharedMemory, handle, mode, mode === "write" ? LZ4_MAX_BLOCK : 1);
}

/**
 * One Save stream, for Save and SaveShared: header, (entry, chunk | shared_chunk*)*,
 * trailer. `onReleased` (SaveShared) hears each time shared chunks were copied out of
 * the client's file (0 once the file is open). Returns the response; throws what the
 * caller reports.
 */
async function saveItem(
  deps: ServiceDeps,
  metadata: grpc.Metadata,
  requests: AsyncIterable<SaveRequest>,
  guard: StreamGuard,
  onReleased?: (bytes: number, handleOpen?: boolean) => void,
): Promise<SaveResponse> {
  const { coordinator, log, auth, metrics } = deps;
  let ticket: SaveTicket | undefined;
  let writer: ItemWriter | undefined;
  let shared: SharedSegment | undefined;
  let released = 0;
  let trailerSeen = false;
  let unwatch: (() => void) | undefined;
  let lease: PoolLease | undefined;
  const started = process.hrtime.bigint();
  deps.activeSaves.count++;
  try {
    for await (const req of guard.messages(requests)) {
      if (trailerSeen) throw invalidArgument("a message arrived after the trailer");
      if (req.msg !== "chunk" && req.msg !== "sharedChunk") checkBounds(req, "message");
      if (req.msg === "header") {
        if (ticket) throw invalidArgument("a second header arrived; one Save stream saves one item");
        if (!deps.acceptingSaves()) throw unavailable("the daemon is shutting down and accepts no new saves; retry on its successor");
        const h = req.header!;
        checkName("job", h.job);
        auth.check(metadata, { job: h.job });
        checkRef(h, deps.maxWorldSize);
        if (h.sharedMemoryPath || h.sharedMemoryHandle) shared = await openRing(deps, h.sharedMemoryPath, h.sharedMemoryHandle, "read");
        ticket = await coordinator.beginSave(
          { job: h.job, checkpointId: h.checkpointId, step: h.step, rank: h.rank, worldSize: h.worldSize, incarnation: h.incarnation },
          h.item,
        );
        // A decision while the stream waits for its client ends the stream at once.
        unwatch = ticket.attempt.watchStream((err) => guard.stop(err));
        const io = deps.writeIo;
        lease = io.pool?.lease(h.job);
        writer = new ItemWriter(h.item, ticket.dir, io, lease?.shares);
        await writer.open();
        onReleased?.(0, shared?.handle);
        continue;
      }
      if (!ticket || !writer)
        throw invalidArgument(`a ${req.msg ?? "empty"} message arrived before the header; the first message must be the header`);
      ticket.attempt.checkLive();
      if (req.msg === "entry") await writer.beginEntry(entrySpec(req.entry!));
      else if (req.msg === "chunk") {
        const before = writer.bytesStored;
        await writer.writeChunk(req.chunk!.data, req.chunk!.crc32c);
        metrics.bytesReceived.inc(req.chunk!.data.length);
        metrics.bytesStoredWritten.inc(writer.bytesStored - before);
      } else if (req.msg === "sharedChunk") {
        if (!shared) throw invalidArgument("a shared_chunk arrived but the header named no shared_memory_path");
        const c = req.sharedChunk!;
        const before = writer.bytesStored;
        const receivedBefore = writer.bytesReceived;
        const buf = SHARED_READ_BUFFERS.take();
        try {
          await writer.writeSharedChunk(shared, c.offset, c.length, c.crc32c, buf);
        } finally {
          SHARED_READ_BUFFERS.give(buf);
        }
        const n = writer.bytesReceived - receivedBefore;
        metrics.bytesReceived.inc(n);
        metrics.sharedMemoryBytes.inc({ direction: "save" }, n);
        metrics.bytesStoredWritten.inc(writer.bytesStored - before);
        released += n;
        onReleased?.(released);
      } else if (req.msg === "entryBatch") {
        // Each entry exactly as its header and one chunk would be: the same checks, in order.
        const before = writer.bytesStored;
        const receivedBefore = writer.bytesReceived;
        for (const e of req.entryBatch!.entries) {
          if (!e.header) throw invalidArgument("an entry of an entry_batch has no header");
          await writer.beginEntry(entrySpec(e.header));
          await writer.writeChunk(e.data, e.crc32c);
        }
        metrics.bytesReceived.inc(writer.bytesReceived - receivedBefore);
        metrics.bytesStoredWritten.inc(writer.bytesStored - before);
      } else if (req.msg === "trailer") {
        const record = await writer.finish(req.trailer!);
        ticket.attempt.stage(ticket, record);
        trailerSeen = true;
        unwatch?.();
      } else throw invalidArgument("an empty message arrived; set header, entry, chunk, shared_chunk, entry_batch or trailer");
    }
    if (!ticket || !writer) throw invalidArgument("the stream ended before the header");
    if (!trailerSeen) throw invalidArgument("the stream ended without a trailer; the item is discarded");
    log.debug(
      {
        job: ticket.attempt.job,
        checkpoint: ticket.attempt.checkpointId,
        rank: ticket.rank,
        item: ticket.item,
        bytes: writer.bytesReceived,
        shared: shared !== undefined,
      },
      "item staged",
    );
    metrics.saveSeconds.observe({ outcome: "ok" }, seconds(started));
    return {
      bytesReceived: writer.bytesReceived,
      bytesStored: writer.bytesStored,
      entryCount: writer.entryCount,
      attempt: ticket.attempt.attempt,
    };
  } catch (err) {
    if (writer && !trailerSeen) await writer.discard().catch((e: unknown) => log.warn({ err: e }, "could not remove a failed item"));
    if (ticket && !trailerSeen) ticket.attempt.release(ticket);
    if (!(guard.stopped instanceof CkptdError && guard.stopped.code === grpc.status.CANCELLED)) logRejected(log, "Save", err, ticket);
    metrics.saveSeconds.observe({ outcome: "error" }, seconds(started));
    throw err;
  } finally {
    unwatch?.();
    // The writer's buffers are all back by now: finish and discard wait for its writes.
    lease?.close();
    deps.activeSaves.count--;
    await shared?.close();
  }
}
