/**
 * CheckpointService handlers: the wire adapter of Save, Commit, Load and the catalog
 * calls. A handler translates messages to domain calls and back; the Save stream's
 * grammar lives in save/save-stream.ts, the protocol in the coordinator, and every
 * method is served through rpc/handler.ts (bounds, errors, logging, metrics).
 */
import type { EventEmitter } from "node:events";
import type * as grpc from "@grpc/grpc-js";
import { crc32c } from "@node-rs/crc32";
import type { CheckpointServiceHandlers } from "../../wire/gen/ckptd/v1/CheckpointService.js";
import type { LoadRequest } from "../../wire/gen/ckptd/v1/LoadRequest.js";
import type { LoadResponseIn } from "../../wire/gen/ckptd/v1/LoadResponse.js";
import type { LoadSharedRequest } from "../../wire/gen/ckptd/v1/LoadSharedRequest.js";
import type { LoadSharedResponseIn } from "../../wire/gen/ckptd/v1/LoadSharedResponse.js";
import type { SaveRequest } from "../../wire/gen/ckptd/v1/SaveRequest.js";
import type { SaveSharedRequest } from "../../wire/gen/ckptd/v1/SaveSharedRequest.js";
import type { SaveSharedResponse } from "../../wire/gen/ckptd/v1/SaveSharedResponse.js";
import type { Authorizer } from "./auth.js";
import type { Catalog } from "../catalog/catalog.js";
import { outcomeToWire } from "../commit/decisions.js";
import { LZ4_MAX_BLOCK } from "../codec/codec.js";
import type { ByteBudget } from "../common/byte-budget.js";
import { cancelled, failedPrecondition, invalidArgument, resourceExhausted } from "../common/errors.js";
import type { CheckpointLoader, LoadPlan, LoadPosition } from "../load/loader.js";
import { destinationLayout } from "../load/destination.js";
import { LoadSender, MAX_LOAD_MESSAGE_DATA } from "../load/load-sender.js";
import { checkBounds, checkRef } from "../common/limits.js";
import { checkName } from "../common/names.js";
import type { Retention } from "../evaluation/retention.js";
import { SharedSegment } from "../store/shared-memory.js";
import { StreamGuard } from "../common/stream-guard.js";
import type { DataDir } from "../store/files.js";
import { saveItem, type SaveStreamDeps } from "../save/save-stream.js";
import { openRing, SlotRing } from "../save/slot-ring.js";
import { drained, rpcMethods, type CallContext } from "./handler.js";
import { checkpointMessage, decisionMessage, decodePageToken, encodePageToken, entryMessage, planMessage } from "./messages.js";

export interface ServiceDeps extends SaveStreamDeps {
  dataDir: DataDir;
  catalog: Catalog;
  loader: CheckpointLoader;
  retention: Retention;
  auth: Authorizer;
  /** The guards of the Save streams in progress (the drain hurries the idle ones). */
  saveGuards: Set<StreamGuard>;
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

export function checkpointServiceHandlers(deps: ServiceDeps): CheckpointServiceHandlers {
  const { coordinator, catalog, loader, log, auth, metrics } = deps;
  /** Load and LoadShared streams open per job. */
  const loadsByJob = new Map<string, number>();

  const rpc = rpcMethods(deps, "CheckpointService");
  /** What a Save stream needs of its call: the caller's authorization, and where it names the item. */
  const saveCall = (call: { metadata: grpc.Metadata }, context: CallContext) => ({
    authorize: (job: string) => auth.check(call.metadata, { job }),
    context,
  });

  return {
    Save: rpc.clientStream("Save", async (call, ctx) => {
      const guard = saveGuard(deps, call, "Save");
      try {
        return await saveItem(deps, saveCall(call, ctx), call as AsyncIterable<SaveRequest>, guard);
      } finally {
        endSaveGuard(deps, guard);
      }
    }),

    SaveShared: rpc.bidi("SaveShared", async (call, ctx) => {
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
      try {
        const res = await saveItem(deps, saveCall(call, ctx), requests(), guard, progress);
        flushProgress(); // the last release still comes before the result
        ended = true;
        call.write({ result: res } satisfies SaveSharedResponse);
      } finally {
        ended = true;
        endSaveGuard(deps, guard);
      }
    }),

    Commit: rpc.unary("Commit", async (call) => {
      const r = call.request;
      const started = process.hrtime.bigint();
      const gone = new Promise<never>((_, reject) => {
        const fail = () => reject(cancelled("the caller went away"));
        call.on("cancelled", fail);
        if (call.cancelled) fail();
      });
      gone.catch(() => {});
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
      try {
        const d = await Promise.race([vote, gone]);
        metrics.commitSeconds.observe({ outcome: d.outcome }, seconds(started));
        return decisionMessage(d);
      } catch (err) {
        metrics.commitSeconds.observe({ outcome: "error" }, seconds(started));
        throw err;
      }
    }),

    Abort: rpc.unary("Abort", async (call) => {
      const r = call.request;
      checkName("job", r.job);
      auth.check(call.metadata, { job: r.job });
      checkName("checkpoint_id", r.checkpointId);
      const d = await coordinator.abort(
        { job: r.job, checkpointId: r.checkpointId, rank: r.rank, incarnation: r.incarnation },
        r.reason,
        r.attempt,
      );
      return { outcome: outcomeToWire(d.outcome), reason: d.reason, attempt: d.attempt };
    }),

    GetCheckpoint: rpc.unary("GetCheckpoint", async (call) => {
      const r = call.request;
      checkName("job", r.job);
      auth.check(call.metadata, { job: r.job });
      await catalog.refresh(r.job);
      const summary = catalog.get(r.job, r.checkpointId);
      const manifest = r.view === "CHECKPOINT_VIEW_FULL" ? await catalog.readManifest(summary) : undefined;
      return { checkpoint: checkpointMessage(summary, manifest) };
    }),

    ListCheckpoints: rpc.unary("ListCheckpoints", async (call) => {
      const r = call.request;
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
    }),

    DeleteCheckpoint: rpc.unary("DeleteCheckpoint", async (call) => {
      const r = call.request;
      if (r.checkpointId === "latest" || r.checkpointId === "")
        throw invalidArgument("DeleteCheckpoint needs an explicit checkpoint_id, not 'latest'");
      checkName("job", r.job);
      auth.check(call.metadata, { job: r.job, admin: true });
      checkName("checkpoint_id", r.checkpointId);
      if (deps.notCoordinator) throw failedPrecondition(deps.notCoordinator);
      const freedBytes = await deps.retention.delete(r.job, r.checkpointId, "DeleteCheckpoint");
      metrics.deletions.inc({ by: "rpc" });
      return { freedBytes };
    }),

    Load: rpc.serverStream("Load", async (call) => {
      const started = process.hrtime.bigint();
      const guard = loadGuard(deps, call, "Load");
      const out = new LoadSender<LoadResponseIn>(call, guard, deps.streamLimits.loadBudget);
      let closeLoad: (() => void) | undefined;
      try {
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
        metrics.loadSeconds.observe({ outcome: "ok" }, seconds(started));
      } catch (err) {
        metrics.loadSeconds.observe({ outcome: "error" }, seconds(started));
        throw err;
      } finally {
        out.close();
        closeLoad?.();
        guard.dispose();
      }
    }),

    LoadShared: rpc.bidi("LoadShared", async (call) => {
      const started = process.hrtime.bigint();
      const guard = loadGuard(deps, call, "LoadShared");
      let segment: SharedSegment | undefined;
      /** Destination mode: the client's destination file. */
      let dest: SharedSegment | undefined;
      let ring: SlotRing | undefined;
      let closeLoad: (() => void) | undefined;
      try {
        const requests = call.iterator({ destroyOnReturn: false }) as AsyncIterator<LoadSharedRequest>;
        const first = await requests.next();
        if (first.done || first.value.msg !== "start" || !first.value.start?.request)
          throw invalidArgument("the first LoadShared message must be start, with the request");
        checkBounds(first.value, "message");
        const { request, sharedMemoryPath, sharedMemoryHandle } = first.value.start;
        closeLoad = openLoad(request.job, call.metadata);
        segment = await openRing(deps.sharedMemory, sharedMemoryPath, sharedMemoryHandle, "write");
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
          if (next.done) throw cancelled("the client ended its LoadShared stream before its destination");
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
            if (next.done) return r.fail(cancelled("the client ended its LoadShared stream"));
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
            // The stream may have drained while this part was read: its 'drain' is then past.
            if (!ok && !call.writableNeedDrain) ok = true;
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
        metrics.loadSeconds.observe({ outcome: "ok" }, seconds(started));
      } catch (err) {
        metrics.loadSeconds.observe({ outcome: "error" }, seconds(started));
        throw err;
      } finally {
        ring?.fail(cancelled("the load ended"));
        void segment?.close();
        void dest?.close();
        closeLoad?.();
        guard.dispose();
      }
    }),
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

function seconds(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e9;
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
