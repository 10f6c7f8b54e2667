/**
 * ItemWriter stages one item of one rank: entries arrive in order, each entry's
 * bytes chunk by chunk; every chunk is checksummed, LZ4-framed (compressed when a
 * sample says it pays) and appended to the entry's file.
 *
 * Large entries are written with O_DIRECT through the daemon's pool of aligned buffers
 * (see direct-io.ts): writeChunk returns once the chunk is copied into a pooled buffer,
 * and the disk writes run behind the stream, so receiving, checksumming and compressing
 * chunk i+1 overlaps writing chunk i. Memory stays bounded: by one chunk per stream, plus
 * the pool, whose budget is shared by every stream (an empty pool makes writeChunk wait).
 * Medium entries, and data directories that refuse O_DIRECT, use buffered writes, one
 * chunk at a time. Either way every file is fsynced before finish returns.
 *
 * Small entries (at most PACK_MAX_ENTRY_BYTES) share the item's pack file (PACK_FILE_NAME):
 * their frames are gathered in one buffer and written a MiB at a time, so a state dict of
 * hundreds of layer-norm weights and optimizer steps costs a few writes and one fsync, not
 * a file, a close and an fsync per tensor.
 *
 * On a storage without local files (WriteIo.objects: an object store) `dir` is a storage
 * key and each file is a data object written through Storage.createObjectWriter (a
 * multipart upload whose parts go out behind the stream); finish completes them all.
 * Frames go straight into the upload's part buffers (ObjectWriter.appendFrom), the pack's
 * too: there is no pack buffer, the part buffers gather the small frames. A shared-memory
 * chunk stored raw is read from the file into them and checksummed there, as into the
 * O_DIRECT buffers.
 *
 * Call order: open → (beginEntry → writeChunk*)* → finish | discard.
 */
import * as fsp from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import * as path from "node:path";
import { crc32c } from "@node-rs/crc32";
import {
  CompressionPolicy,
  crc32cCombine,
  encodeChunk,
  type EncodedChunk,
  encodeSmallChunk,
  encodeSmallChunkInto,
  hex,
  LZ4_MAX_BLOCK,
  RAW_FRAME_END,
  RAW_FRAME_OVERHEAD,
  rawFrameHead,
} from "../codec/codec.js";
import { SpareBuffers, type PoolShare } from "../store/buffer-pool.js";
import { zeroRunBound } from "../codec/lz4-encode.js";
import { DIRECT_MIN_BYTES, DirectFileWriter, openDirect, WRITE_BUFFER_BYTES, type WriteIo } from "../store/direct-io.js";
import { invalidArgument } from "../common/errors.js";
import type { EntryRecord, ItemRecord, ObjectMeta, TensorMeta } from "../catalog/manifest.js";
import { entryFileName, joinKey, PACK_FILE_NAME } from "../store/layout.js";
import type { ObjectWriter } from "../store/storage.js";
import type { SharedSegment } from "../store/shared-memory.js";
import { fsyncDir } from "../store/files.js";

export interface EntrySpec {
  key: string;
  kind: "tensor" | "object";
  tensor?: TensorMeta;
  object?: ObjectMeta;
  /** Exact byte count the entry must carry (dtype × shape, or the object's size). */
  sizeBytes: number;
}

interface OpenEntry {
  record: EntryRecord;
  /** Its frames go to the pack buffer. */
  packed: boolean;
  /** The entry's file; undefined for a packed entry and for a data object (`obj`). */
  fh: FileHandle | undefined;
  /** The entry's data object, on a storage without local files. */
  obj: ObjectWriter | undefined;
  policy: CompressionPolicy;
  /** Present when the file is written with O_DIRECT. */
  direct: DirectFileWriter | undefined;
  /** Where frames go without a write of `fh`: `direct`, or the data object `obj`. */
  sink: FrameSink | undefined;
  /** Bytes written to the file so far (the next frame's offset). */
  position: number;
  /** Raw bytes received so far for this entry. */
  received: number;
}

/**
 * Entries of at most this many raw bytes are stored in the item's pack file: a file, a
 * close and an fsync each cost about as much as writing a MiB.
 */
export const PACK_MAX_ENTRY_BYTES = 1 << 20;
/** Packed chunks up to this size are compressed on the event loop and gathered in the pack buffer. */
const PACK_INLINE_CHUNK_BYTES = 64 << 10;
/**
 * The pack buffer: packed frames are written to the pack file this many bytes at a time,
 * the size of every other entry file's writes (a whole packed entry fits, so its frame is
 * never written on its own).
 */
const PACK_BUFFER_BYTES = WRITE_BUFFER_BYTES;

/** The buffers the item writers of one daemon's save streams borrow (one set per daemon, see itemWriterBuffers). */
export interface ItemWriterBuffers {
  /** Where a chunk is LZ4-encoded, lent for one writeChunk. */
  readonly encodeScratch: SpareBuffers;
  /**
   * Pack buffers (PACK_BUFFER_BYTES), lent from an item's first packed entry to its finish or
   * discard; a pack that is a data object takes none.
   */
  readonly pack: SpareBuffers;
}

/** A daemon's item writer buffers: a few of each are kept for reuse. */
export function itemWriterBuffers(): ItemWriterBuffers {
  return { encodeScratch: new SpareBuffers(zeroRunBound(LZ4_MAX_BLOCK), 8), pack: new SpareBuffers(PACK_BUFFER_BYTES, 4) };
}

/**
 * The item's pack file, written sequentially: bytes [0, written) are in the file (or handed
 * to `sink`), the next `filled` in `buffer`.
 */
interface Pack {
  /** The pack file; undefined when the pack is a data object (`obj`). */
  fh: FileHandle | undefined;
  obj: ObjectWriter | undefined;
  /** Present when the pack is written with O_DIRECT: a flush then hands the buffer's bytes over without waiting for the disk. */
  direct: DirectFileWriter | undefined;
  /** `direct`, or the data object `obj`. */
  sink: FrameSink | undefined;
  /** Where frames gather for a write of the file; undefined for a data object, whose frames go straight to `sink`. */
  buffer: Buffer | undefined;
  written: number;
  filled: number;
}

/** Fsyncs of finished entry files run behind the stream, at most this many at once. */
const MAX_PENDING_SYNCS = 16;
/**
 * Data objects being completed behind the stream, at most this many at once: each still holds
 * its upload's part buffers (up to the storage's per-object budget) until its last part is sent.
 */
const MAX_PENDING_OBJECTS = 2;

export class ItemWriter {
  private readonly entries: EntryRecord[] = [];
  private readonly keys = new Set<string>();
  private current: OpenEntry | undefined;
  private pack: Pack | undefined;
  /** Whether compression pays, for the larger packed chunks (small ones are always tried). */
  private readonly packPolicy = new CompressionPolicy();
  private pendingSyncs: Promise<void>[] = [];
  /** The first failure of a finished entry's close or fsync, reported by finish. */
  private syncFailure: unknown;
  /** CRC-32C of every data byte in stream order, and of those a client checksummed (inline bytes, shared chunks with a CRC). */
  private streamCrc = 0;
  private clientCheckedCrc = 0;
  bytesReceived = 0;
  bytesStored = 0;

  constructor(
    readonly name: string,
    readonly dir: string,
    /** The daemon's save-path I/O (BUFFERED_IO where nothing is configured). */
    private readonly io: WriteIo,
    /** The daemon's encode scratch and pack buffers. */
    private readonly buffers: ItemWriterBuffers,
    /** The stream's shares of the write buffer pool (see AlignedBufferPool.lease). */
    private readonly shares: readonly PoolShare[] = [],
  ) {}

  async open(): Promise<void> {
    if (this.io.objects) return this.io.objects.deletePrefix(this.dir);
    await fsp.rm(this.dir, { recursive: true, force: true });
    await fsp.mkdir(this.dir, { recursive: true });
  }

  async beginEntry(spec: EntrySpec): Promise<void> {
    await this.endEntry();
    if (this.keys.has(spec.key)) throw invalidArgument(`duplicate entry key ${JSON.stringify(spec.key)} in item '${this.name}'`);
    this.keys.add(spec.key);
    const packed = spec.sizeBytes <= PACK_MAX_ENTRY_BYTES;
    const file = packed ? PACK_FILE_NAME : entryFileName(this.entries.length);
    const record: EntryRecord = {
      key: spec.key,
      kind: spec.kind,
      ...(spec.tensor ? { tensor: spec.tensor } : {}),
      ...(spec.object ? { object: spec.object } : {}),
      file,
      rawBytes: spec.sizeBytes,
      storedBytes: 0,
      chunks: [],
    };
    if (packed) {
      const pack = await this.openPack();
      this.current = {
        record,
        packed: true,
        fh: undefined,
        obj: undefined,
        direct: undefined,
        sink: undefined,
        policy: this.packPolicy,
        position: pack.written + pack.filled,
        received: 0,
      };
      this.entries.push(record);
      return;
    }
    const objects = this.io.objects;
    if (objects) {
      const obj = objects.createObjectWriter(joinKey(this.dir, file), { sizeHint: spec.sizeBytes });
      this.current = {
        record,
        packed: false,
        fh: undefined,
        obj,
        direct: undefined,
        sink: objectSink(obj),
        policy: new CompressionPolicy(),
        position: 0,
        received: 0,
      };
      this.entries.push(record);
      return;
    }
    const filePath = path.join(this.dir, file);
    const pool = this.io.pool;
    const directFh = pool && spec.sizeBytes >= DIRECT_MIN_BYTES ? await openDirect(filePath) : undefined;
    const fh = directFh ?? (await fsp.open(filePath, "wx"));
    const direct = directFh && pool ? new DirectFileWriter(directFh, pool, this.shares) : undefined;
    this.current = {
      record,
      packed: false,
      fh,
      obj: undefined,
      direct,
      sink: direct,
      policy: new CompressionPolicy(),
      position: 0,
      received: 0,
    };
    this.entries.push(record);
  }

  private async openPack(): Promise<Pack> {
    if (this.pack) return this.pack;
    if (this.io.objects) {
      const obj = this.io.objects.createObjectWriter(joinKey(this.dir, PACK_FILE_NAME));
      this.pack = { fh: undefined, obj, direct: undefined, sink: objectSink(obj), buffer: undefined, written: 0, filled: 0 };
      return this.pack;
    }
    const file = path.join(this.dir, PACK_FILE_NAME);
    const pool = this.io.pool;
    // With O_DIRECT the pack's bytes reach the disk while the stream goes on, as an entry
    // file's do: buffered, a state dict of a few hundred 100 KiB–1 MiB tensors left tens of
    // MiB of dirty pages for the item's final fsync to write.
    const directFh = pool ? await openDirect(file) : undefined;
    const fh = directFh ?? (await fsp.open(file, "wx"));
    const direct = directFh && pool ? new DirectFileWriter(directFh, pool, this.shares) : undefined;
    this.pack = { fh, obj: undefined, direct, sink: direct, buffer: this.buffers.pack.take(), written: 0, filled: 0 };
    return this.pack;
  }

  /**
   * Writes the pack buffer's bytes to the pack file (with O_DIRECT: copies them into pooled
   * buffers whose writes run behind); the buffer is free again when this returns.
   */
  private async flushPack(pack: Pack): Promise<void> {
    const buffer = pack.buffer;
    if (pack.filled === 0 || !buffer) return;
    if (pack.direct) await pack.direct.append([buffer.subarray(0, pack.filled)]);
    else {
      let done = 0;
      while (done < pack.filled) done += (await pack.fh!.write(buffer, done, pack.filled - done)).bytesWritten;
    }
    pack.written += pack.filled;
    pack.filled = 0;
  }

  /**
   * Appends one chunk of a packed entry (its CRC already checked) to the pack, through the
   * pack buffer: a small one compressed on the event loop, a larger one (compressed on the
   * thread pool when the sample says it pays, as an entry of its own would be) copied in.
   * A pack write costs a pool round trip, which a write per 200 KiB tensor paid 111 times
   * for one GPT-2-small state dict. A pack that is a data object has no pack buffer: its
   * frames are copied once, into the upload's part buffers.
   */
  private async packChunk(cur: OpenEntry, data: Buffer, crc: number, tried?: boolean): Promise<void> {
    const pack = this.pack!;
    const buffer = pack.buffer;
    const inline = data.length <= PACK_INLINE_CHUNK_BYTES;
    if (inline && buffer) {
      if (pack.filled + data.length + RAW_FRAME_OVERHEAD > buffer.length) await this.flushPack(pack);
      const enc = encodeSmallChunkInto(data, buffer, pack.filled);
      pack.filled += enc.storedBytes;
      this.recordChunk(cur, { rawBytes: data.length, storedBytes: enc.storedBytes, crc32c: crc, raw: enc.raw });
      return;
    }
    let enc: EncodedChunk;
    if (inline) enc = encodeSmallChunk(data);
    else {
      tried ??= this.packPolicy.shouldTry(data);
      enc = await encodeChunk(data, tried);
      this.packPolicy.record(tried, !enc.raw);
    }
    if (buffer && pack.filled + enc.storedBytes > buffer.length) await this.flushPack(pack);
    if (buffer && enc.storedBytes <= buffer.length) {
      for (const part of enc.parts) pack.filled += part.copy(buffer, pack.filled);
    } else {
      if (pack.sink) await pack.sink.append(enc.parts);
      else await writeAll(pack.fh!, enc.parts, enc.storedBytes);
      pack.written += enc.storedBytes;
    }
    this.recordChunk(cur, { rawBytes: data.length, storedBytes: enc.storedBytes, crc32c: crc, raw: enc.raw });
  }

  get entryCount(): number {
    return this.entries.length;
  }

  /**
   * Appends one chunk of the current entry; `clientCrc` is verified when given. `shared`:
   * the bytes were copied out of a shared-memory file, so without a client CRC they are
   * left out of the trailer's client-checked CRC.
   */
  async writeChunk(data: Buffer, clientCrc: number | undefined, tried?: boolean, shared = false): Promise<void> {
    const cur = this.checkChunk(data.length);
    if (!cur) return;
    const rec = cur.record;
    const crc = crc32c(data);
    this.checkCrc(rec, crc, clientCrc);
    this.addToStreamCrc(crc, data.length, shared && clientCrc === undefined);
    if (cur.packed) return this.packChunk(cur, data, crc, tried);
    tried ??= cur.policy.shouldTry(data);
    // Where encodeChunk may encode the chunk: lent for this call only (the parts are copied
    // or written by the time it returns), so a stream between chunks holds none.
    const scratch = tried ? this.buffers.encodeScratch.take() : undefined;
    try {
      const enc = await encodeChunk(data, tried, undefined, scratch);
      cur.policy.record(tried, !enc.raw);
      if (cur.sink) await cur.sink.append(enc.parts);
      else await writeAll(cur.fh!, enc.parts, enc.storedBytes);
      this.recordChunk(cur, { rawBytes: data.length, storedBytes: enc.storedBytes, crc32c: crc, raw: enc.raw });
    } finally {
      if (scratch) this.buffers.encodeScratch.give(scratch);
    }
  }

  /**
   * Appends one chunk of the current entry that lies in a client's shared-memory file.
   * A chunk stored raw (the sample says compression does not pay) is read from the file
   * straight into the pooled O_DIRECT buffers (or the data object's part buffers) and
   * checksummed there; any other chunk is read into `buffer` (at least LZ4_MAX_BLOCK bytes)
   * and goes through writeChunk.
   */
  async writeSharedChunk(
    segment: SharedSegment,
    offset: number,
    length: number,
    clientCrc: number | undefined,
    buffer: Buffer,
  ): Promise<void> {
    const cur = this.checkChunk(length);
    if (!cur) return;
    if (cur.packed) return this.writeSharedPackedChunk(cur, segment, offset, length, clientCrc, buffer);
    const sink = cur.sink;
    if (!sink || length < cur.policy.gatherMinBytes)
      return this.writeChunk(await segment.read(offset, length, buffer), clientCrc, undefined, true);
    const tried = cur.policy.shouldTryGathered(length, (into, at, from, n) => segment.readSync(offset + from, n, into, at));
    if (tried) return this.writeChunk(await segment.read(offset, length, buffer), clientCrc, true, true);
    let done = 0;
    const crc = await appendRawFrame(sink, length, async (into) => {
      const view = await segment.read(offset + done, into.length, into);
      done += into.length;
      return view;
    });
    this.recordRawSharedChunk(cur, length, crc, clientCrc);
  }

  /**
   * writeSharedChunk for a chunk of a packed entry (at most PACK_MAX_ENTRY_BYTES), copied
   * out on the event loop: from tmpfs that takes ~100 µs per MiB, less than a round trip to
   * the thread pool. One the sample says to store raw goes from the file straight into the
   * pack's O_DIRECT buffers or part buffers (one copy); any other through `buffer` (and the
   * pack buffer, if any).
   */
  private async writeSharedPackedChunk(
    cur: OpenEntry,
    segment: SharedSegment,
    offset: number,
    length: number,
    clientCrc: number | undefined,
    buffer: Buffer,
  ): Promise<void> {
    const pack = this.pack!;
    const policy = this.packPolicy;
    const sink = pack.sink;
    if (sink && length >= policy.gatherMinBytes) {
      const tried = policy.shouldTryGathered(length, (into, at, from, n) => segment.readSync(offset + from, n, into, at));
      if (!tried) {
        await this.flushPack(pack);
        let done = 0;
        const crc = await appendRawFrame(sink, length, (into) => {
          segment.readSync(offset + done, into.length, into, 0);
          done += into.length;
          return Promise.resolve(into);
        });
        pack.written += length + RAW_FRAME_OVERHEAD;
        return this.recordRawSharedChunk(cur, length, crc, clientCrc);
      }
      segment.readSync(offset, length, buffer, 0);
      return this.writeChunk(buffer.subarray(0, length), clientCrc, true, true);
    }
    segment.readSync(offset, length, buffer, 0);
    return this.writeChunk(buffer.subarray(0, length), clientCrc, undefined, true);
  }

  /** Books a shared chunk appended as a raw frame, once its CRC (of the bytes read) is known. */
  private recordRawSharedChunk(cur: OpenEntry, length: number, crc: number, clientCrc: number | undefined): void {
    // A mismatch fails the stream, and the item's files are discarded with it.
    this.checkCrc(cur.record, crc, clientCrc);
    this.addToStreamCrc(crc, length, clientCrc === undefined);
    cur.policy.record(false, false);
    this.recordChunk(cur, { rawBytes: length, storedBytes: length + RAW_FRAME_OVERHEAD, crc32c: crc, raw: true });
  }

  private addToStreamCrc(crc: number, length: number, unchecked: boolean): void {
    this.streamCrc = crc32cCombine(this.streamCrc, crc, length);
    if (!unchecked) this.clientCheckedCrc = crc32cCombine(this.clientCheckedCrc, crc, length);
  }

  /** The open entry, after checking that a chunk of `length` bytes fits it; undefined for an empty chunk. */
  private checkChunk(length: number): OpenEntry | undefined {
    const cur = this.current;
    if (!cur) throw invalidArgument("a data chunk arrived before any entry header");
    if (length === 0) return undefined;
    if (length > LZ4_MAX_BLOCK) throw invalidArgument(`a chunk of ${length} bytes exceeds the 4 MiB chunk limit`);
    const rec = cur.record;
    const received = cur.received + length;
    if (received > rec.rawBytes)
      throw invalidArgument(
        `entry '${rec.key}' of item '${this.name}' got ${received} bytes so far but expects ${rec.rawBytes} bytes (${describe(rec)})`,
      );
    return cur;
  }

  private checkCrc(rec: EntryRecord, crc: number, clientCrc: number | undefined): void {
    if (clientCrc !== undefined && clientCrc !== crc)
      throw invalidArgument(
        // The computed value is not echoed: for a shared chunk it would be a checksum of a
        // file the caller named, not of bytes it sent.
        `chunk ${rec.chunks.length} of entry '${rec.key}' failed its checksum: the bytes do not match the CRC-32C the client sent (${hex(clientCrc)})`,
      );
  }

  private recordChunk(cur: OpenEntry, c: { rawBytes: number; storedBytes: number; crc32c: number; raw: boolean }): void {
    const rec = cur.record;
    rec.chunks.push({ offset: cur.position, ...c });
    cur.position += c.storedBytes;
    cur.received += c.rawBytes;
    rec.storedBytes += c.storedBytes;
    this.bytesReceived += c.rawBytes;
    this.bytesStored += c.storedBytes;
  }

  /** Checks the trailer, makes every file and directory entry durable and returns the record. */
  async finish(trailer: { entryCount: number; byteCount: number; crc32c: number }): Promise<ItemRecord> {
    await this.endEntry();
    if (trailer.entryCount !== this.entries.length)
      throw invalidArgument(`trailer says ${trailer.entryCount} entries but ${this.entries.length} were sent`);
    if (trailer.byteCount !== this.bytesReceived)
      throw invalidArgument(`trailer says ${trailer.byteCount} bytes but ${this.bytesReceived} bytes were sent`);
    // Either CRC will do: clients that checksum every chunk send the first (and older
    // daemons expect it), clients that leave shared chunks unchecked the second.
    const t = trailer.crc32c >>> 0;
    if (t !== this.streamCrc >>> 0 && t !== this.clientCheckedCrc >>> 0)
      throw invalidArgument(
        `item '${this.name}' failed its checksum: the data does not match the trailer's CRC-32C (${hex(trailer.crc32c)})`,
      );
    const pack = this.pack;
    this.pack = undefined;
    // The item's files must survive a crash before the rank's vote can count them: their
    // bytes, their entries in the item directory, its entry in the rank directory, and the
    // rank directory's entry in the attempt directory. The fsyncs run at once: nothing
    // orders them, the item is acknowledged only after all, and the filesystem may then
    // serve them with one journal commit instead of one each.
    // A data object is durable once its writer finishes: it has no directory entries.
    const syncs = this.io.objects
      ? [...this.pendingSyncs]
      : [...this.pendingSyncs, fsyncDir(this.dir), fsyncDir(path.dirname(this.dir)), fsyncDir(path.dirname(path.dirname(this.dir)))];
    this.pendingSyncs = [];
    if (pack?.obj) syncs.push(pack.obj.finish());
    else if (pack)
      syncs.push(
        this.flushPack(pack)
          .then(() => pack.direct?.close())
          .then(() => pack.fh!.sync())
          .finally(() => {
            this.givePackBuffer(pack);
            return pack.fh!.close();
          }),
      );
    const settled = await Promise.allSettled(syncs);
    if (this.syncFailure !== undefined) throw this.syncFailure;
    for (const s of settled) if (s.status === "rejected") throw s.reason;
    return { name: this.name, rawBytes: this.bytesReceived, storedBytes: this.bytesStored, entries: this.entries };
  }

  /** Closes whatever is open and removes the item's files. */
  async discard(): Promise<void> {
    const cur = this.current;
    this.current = undefined;
    const pack = this.pack;
    this.pack = undefined;
    await Promise.allSettled([
      ...this.pendingSyncs,
      cur?.direct?.abandon().finally(() => cur.fh?.close()) ?? cur?.fh?.close() ?? cur?.obj?.abort(),
      pack &&
        (pack.direct?.abandon() ?? pack.obj?.abort() ?? Promise.resolve())
          .finally(() => pack.fh?.close())
          .finally(() => this.givePackBuffer(pack)),
    ]);
    if (this.io.objects) await this.io.objects.deletePrefix(this.dir);
    else await fsp.rm(this.dir, { recursive: true, force: true });
  }

  private givePackBuffer(pack: Pack): void {
    if (pack.buffer) this.buffers.pack.give(pack.buffer);
    pack.buffer = undefined;
  }

  private async endEntry(): Promise<void> {
    const cur = this.current;
    if (!cur) return;
    this.current = undefined;
    const got = cur.received;
    if (got !== cur.record.rawBytes) {
      await cur.direct?.abandon();
      await cur.fh?.close();
      await cur.obj?.abort();
      throw invalidArgument(
        `entry '${cur.record.key}' of item '${this.name}' ended after ${got} bytes but expects ${cur.record.rawBytes} bytes (${describe(cur.record)})`,
      );
    }
    const fh = cur.fh;
    // A packed entry is made durable with the pack file, in finish.
    if (cur.packed) return;
    if (this.pendingSyncs.length >= (cur.obj ? MAX_PENDING_OBJECTS : MAX_PENDING_SYNCS)) {
      await Promise.all(this.pendingSyncs);
      this.pendingSyncs = [];
    }
    if (cur.obj) {
      this.pendingSyncs.push(
        cur.obj.finish().catch((err: unknown) => {
          this.syncFailure ??= err;
        }),
      );
      return;
    }
    if (!fh) return;
    // Closing a direct file waits for its writes in flight; it and the fsync run behind
    // the stream, so the next entry's chunks keep arriving meanwhile.
    const durable = (cur.direct ? cur.direct.close() : Promise.resolve())
      .then(() => fh.sync())
      .catch((err: unknown) => {
        this.syncFailure ??= err;
      })
      .finally(() => fh.close().catch(() => undefined));
    this.pendingSyncs.push(durable);
  }
}

function describe(rec: EntryRecord): string {
  if (rec.tensor) return `${rec.tensor.dtype} × [${rec.tensor.shape.join(", ")}]`;
  return `object of ${rec.object?.sizeBytes ?? 0} bytes`;
}

/**
 * Where frames are appended without a write(2) of a file: an O_DIRECT file's pooled buffers
 * (DirectFileWriter) or a data object (objectSink). `appendFrom` has the sink's own buffers
 * filled in place, one `fill` per buffer the bytes span.
 */
interface FrameSink {
  append(parts: readonly Buffer[]): Promise<void>;
  appendFrom(n: number, fill: (buf: Buffer, offset: number, length: number) => Promise<void>): Promise<void>;
}

/**
 * A data object as a FrameSink: its bytes go straight into the writer's buffers where it
 * takes appendFrom (an upload's part buffers), through `write` otherwise.
 */
function objectSink(obj: ObjectWriter): FrameSink {
  const appendFrom = obj.appendFrom?.bind(obj);
  if (appendFrom) return { append: (parts) => appendFrom(byteLength(parts), copyFrom(parts)), appendFrom };
  return {
    append: async (parts) => {
      // Each part may be kept until its write resolves.
      for (const p of parts) await obj.write(p);
    },
    appendFrom: async (n, fill) => {
      const buf = Buffer.allocUnsafe(n);
      await fill(buf, 0, n);
      await obj.write(buf);
    },
  };
}

function byteLength(parts: readonly Buffer[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}

/** An appendFrom `fill` that copies `parts`' bytes in order, wherever the sink's buffers split them. */
function copyFrom(parts: readonly Buffer[]): (buf: Buffer, offset: number, length: number) => Promise<void> {
  let i = 0;
  let from = 0;
  return (buf, offset, length) => {
    for (let to = offset, end = offset + length; to < end;) {
      const p = parts[i]!;
      const n = p.copy(buf, to, from, Math.min(p.length, from + end - to));
      to += n;
      from += n;
      if (from === p.length) {
        i++;
        from = 0;
      }
    }
    return Promise.resolve();
  };
}

/**
 * Appends one raw LZ4 frame of `length` bytes to `sink`, its body filled in place by
 * `read(into)` (which fills `into` and returns it), and returns the CRC-32C of the bytes
 * as they lie in the sink's buffers: what is checksummed is what is stored.
 */
async function appendRawFrame(sink: FrameSink, length: number, read: (into: Buffer) => Promise<Buffer>): Promise<number> {
  let crc = 0;
  await sink.append([rawFrameHead(length)]);
  await sink.appendFrom(length, async (buf, at, n) => {
    const view = await read(buf.subarray(at, at + n));
    crc = crc32cCombine(crc, crc32c(view), n);
  });
  await sink.append([RAW_FRAME_END]);
  return crc;
}

/** writev until every byte is written (a large writev may be partial). */
async function writeAll(fh: FileHandle, parts: Buffer[], total: number): Promise<void> {
  let written = (await fh.writev(parts)).bytesWritten;
  while (written < total) {
    // Rare: finish the remainder from where the kernel stopped.
    let skip = written;
    const rest: Buffer[] = [];
    for (const p of parts) {
      if (skip >= p.length) {
        skip -= p.length;
        continue;
      }
      rest.push(skip > 0 ? p.subarray(skip) : p);
      skip = 0;
    }
    parts = rest;
    written += (await fh.writev(parts)).bytesWritten;
  }
}
