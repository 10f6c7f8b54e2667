/**
 * One Save stream, for Save and SaveShared: the stream's grammar (header, (entry, chunk |
 * shared_chunk | entry_batch)*, trailer), its checks, the item's staging and the drain's
 * accounting. Knows nothing of gRPC: the RPC adapter hands it the messages, the guard of
 * the stream and the caller's authorization.
 */
import type { Logger } from "pino";
import type { EntryHeader } from "../../wire/gen/ckptd/v1/EntryHeader.js";
import type { SaveRequest } from "../../wire/gen/ckptd/v1/SaveRequest.js";
import type { SaveResponse } from "../../wire/gen/ckptd/v1/SaveResponse.js";
import type { TensorSpec } from "../../wire/gen/ckptd/v1/TensorSpec.js";
import { dtypeSize, tensorByteSize } from "../../wire/index.js";
import type { CheckpointCoordinator, SaveTicket } from "../commit/protocol.js";
import { LZ4_MAX_BLOCK } from "../codec/codec.js";
import { invalidArgument, unavailable } from "../common/errors.js";
import { checkBounds, checkRef } from "../common/limits.js";
import type { Metrics } from "../common/metrics.js";
import { checkKey, checkName } from "../common/names.js";
import type { StreamGuard } from "../common/stream-guard.js";
import { SpareBuffers, type PoolLease } from "../store/buffer-pool.js";
import type { WriteIo } from "../store/direct-io.js";
import type { SharedMemoryConfig, SharedSegment } from "../store/shared-memory.js";
import { ItemWriter, type EntrySpec, type ItemWriterBuffers } from "./item-writer.js";
import { openRing } from "./slot-ring.js";

/** What a Save stream needs of the daemon. */
export interface SaveStreamDeps {
  coordinator: CheckpointCoordinator;
  log: Logger;
  metrics: Metrics;
  /** False once the daemon drains: new saves are refused with UNAVAILABLE. */
  acceptingSaves: () => boolean;
  /** Save streams in progress (the drain waits for them). */
  activeSaves: { count: number };
  /** Where SaveShared clients may put their bytes. */
  sharedMemory: SharedMemoryConfig;
  /** How save streams write: the O_DIRECT buffer pool, or buffered I/O. */
  writeIo: WriteIo;
  /** Largest world_size a Save may name. */
  maxWorldSize: number;
  /** Buffers shared chunks are copied into (see sharedReadBuffers). */
  sharedReadBuffers: SpareBuffers;
  /** The item writers' encode scratch and pack buffers (see itemWriterBuffers). */
  itemWriterBuffers: ItemWriterBuffers;
}

/** What a Save stream needs of its call. */
export interface SaveCall {
  /** Throws unless the caller may save for `job` (UNAUTHENTICATED, PERMISSION_DENIED). */
  authorize(job: string): void;
  /** Filled with the item's identity once the header is read (job, checkpoint, rank, item). */
  context: Record<string, string | number | undefined>;
}

/**
 * The buffers SaveShared streams copy shared chunks into (the chunk limit), lent per chunk:
 * a stream that waits for its client holds none. One per daemon.
 */
export function sharedReadBuffers(): SpareBuffers {
  return new SpareBuffers(LZ4_MAX_BLOCK, 8);
}

/** Largest object a client may declare (objects stream in chunks like tensors). */
const MAX_OBJECT_BYTES = 2 ** 50;

/**
 * One Save stream, for Save and SaveShared: header, (entry, chunk | shared_chunk*)*,
 * trailer. `onReleased` (SaveShared) hears each time shared chunks were copied out of
 * the client's file (0 once the file is open). Returns the response; throws what the
 * caller reports.
 */
export async function saveItem(
  deps: SaveStreamDeps,
  call: SaveCall,
  requests: AsyncIterable<SaveRequest>,
  guard: StreamGuard,
  onReleased?: (bytes: number, handleOpen?: boolean) => void,
): Promise<SaveResponse> {
  const { coordinator, log, metrics } = deps;
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
        call.authorize(h.job);
        checkRef(h, deps.maxWorldSize);
        if (h.sharedMemoryPath || h.sharedMemoryHandle)
          shared = await openRing(deps.sharedMemory, h.sharedMemoryPath, h.sharedMemoryHandle, "read");
        ticket = await coordinator.beginSave(
          { job: h.job, checkpointId: h.checkpointId, step: h.step, rank: h.rank, worldSize: h.worldSize, incarnation: h.incarnation },
          h.item,
        );
        Object.assign(call.context, { job: h.job, checkpoint: h.checkpointId, rank: h.rank, item: h.item });
        // A decision while the stream waits for its client ends the stream at once.
        unwatch = ticket.watch((err) => guard.stop(err));
        const io = deps.writeIo;
        lease = io.pool?.lease(h.job);
        writer = new ItemWriter(h.item, ticket.dir, io, deps.itemWriterBuffers, lease?.shares);
        await writer.open();
        onReleased?.(0, shared?.handle);
        continue;
      }
      if (!ticket || !writer)
        throw invalidArgument(`a ${req.msg ?? "empty"} message arrived before the header; the first message must be the header`);
      ticket.checkLive();
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
        const buf = deps.sharedReadBuffers.take();
        try {
          await writer.writeSharedChunk(shared, c.offset, c.length, c.crc32c, buf);
        } finally {
          deps.sharedReadBuffers.give(buf);
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
        ticket.stage(record);
        trailerSeen = true;
        unwatch?.();
      } else throw invalidArgument("an empty message arrived; set header, entry, chunk, shared_chunk, entry_batch or trailer");
    }
    if (!ticket || !writer) throw invalidArgument("the stream ended before the header");
    if (!trailerSeen) throw invalidArgument("the stream ended without a trailer; the item is discarded");
    log.debug(
      {
        job: ticket.job,
        checkpoint: ticket.checkpointId,
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
      attempt: ticket.attempt,
    };
  } catch (err) {
    if (writer && !trailerSeen) await writer.discard().catch((e: unknown) => log.warn({ err: e }, "could not remove a failed item"));
    if (ticket && !trailerSeen) ticket.release();
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

function seconds(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e9;
}
