/**
 * CheckpointLoader serves Load: the device-mapping plan, then each entry's bytes,
 * read chunk by chunk, decoded and checksum-verified before they leave the daemon.
 *
 * Device-mapping rules (the hints a loader gets when it asks for none):
 *   - an explicit map_location entry for the saved device wins; "*" maps every device;
 *   - "cpu" (or no device) stays "cpu";
 *   - a tensor saved on "<type>:k" (cuda, xpu, …) goes to the loader's own device of
 *     that type, devices[local_rank mod count] among the listed devices of that type,
 *     and to "cpu" when the loader lists none of that type.
 *
 * Resharding (boxes, shard_as): the plan lists boxes of global tensors, each with the saved
 * shards (of any rank) that intersect it; streaming a box walks it row-major (src/reshard.ts)
 * with one cursor per shard that reads only the stored chunks holding the box's bytes.
 * Everything a stream sends is an Output: a saved entry whole, or an assembled box.
 */
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { allocateAligned, DIRECT_ALIGN } from "../store/buffer-pool.js";
import { ByteBudget } from "../common/byte-budget.js";
import type { Catalog } from "../catalog/catalog.js";
import { ChunkCorruptError, decodeChunk, LZ4_MAX_BLOCK, RAW_FRAME_OVERHEAD, type StoredChunk } from "../codec/codec.js";
import { crc32c } from "@node-rs/crc32";
import { dtypeSize, MiB } from "../../wire/index.js";
import { dataLoss, failedPrecondition, invalidArgument, notFound, outOfRange } from "../common/errors.js";
import { MAX_LOAD_MESSAGE_DATA } from "./load-sender.js";
import { CoverageError, coveringShards, intersect, type Region, type Segment, segments, shardBox, tilesWhole, volume } from "./reshard.js";
import type { CheckpointSummary, EntryRecord, ItemRecord, Manifest } from "../catalog/manifest.js";
import { itemDirName, PACK_FILE_NAME } from "../store/layout.js";
import { LIMITS, quote } from "../common/limits.js";
import { checkName, MAX_WORLD_SIZE } from "../common/names.js";
import type { Storage } from "../store/storage.js";

export interface LoadSpec {
  job: string;
  checkpointId: string;
  rank: number;
  localRank: number;
  devices: string[];
  mapLocation: Record<string, string>;
  items: string[];
  sourceRank: number | undefined;
  /** The loading job's world size; 0 when not sent. */
  worldSize: number;
  /** Boxes of global tensors to assemble (resharding); not with shardAs. */
  boxes: BoxSpec[];
  /** The rank of a target sharding whose part of every entry to stream (resharding); not with boxes. */
  shardAs: ShardAsSpec | undefined;
}

export interface BoxSpec {
  item: string;
  key: string;
  offsets: number[];
  lengths: number[];
}

export interface ShardAsSpec {
  rank: number;
  worldSize: number;
  dim: number | undefined;
  sizes: number[];
  replicate: boolean;
}

/** Most boxes one Load may ask for. */
export const MAX_BOXES = LIMITS.boxes;
/** Most raw bytes one resharded Load may ask for (a sanity bound: 1 PiB). */
export const MAX_RESHARD_BYTES = 2 ** 50;
/**
 * Shards of a tensor that does not tile are checked pairwise for overlaps per box only up to
 * this many (the walk finds any beyond): many boxes of such a tensor stay cheap to plan.
 */
const PAIRWISE_PER_BOX = 64;
/** How many names an error message lists. */
const LIST_NAMES = 16;

/** One saved copy of an entry: the rank that saved it and its record. */
interface Copy {
  rank: number;
  item: string;
  entry: EntryRecord;
}

/** What a Load stream sends as one entry. */
export type Output =
  /** An entry as one rank saved it. */
  | { kind: "whole"; copy: Copy; targetDevice: string }
  /** A box of a global tensor, assembled from `shards` (the copies that intersect it, with their regions). */
  | {
      kind: "box";
      item: string;
      /** The entry the client is told of: the box's dtype, shape, global shape and offsets. */
      entry: EntryRecord;
      targetDevice: string;
      globalShape: number[];
      box: Region;
      elementSize: number;
      shards: { copy: Copy; region: Region }[];
    };

export interface Placement {
  item: string;
  key: string;
  savedDevice: string;
  targetDevice: string;
}

export interface LoadPlan {
  checkpoint: CheckpointSummary;
  manifest: Manifest;
  sourceRank: number;
  items: ItemRecord[];
  /** Saved device → target device, for every device the plan's tensors were saved on. */
  mapLocation: Map<string, string>;
  placements: Placement[];
  totalBytes: number;
  /** What the stream sends, entry by entry. */
  outputs: Output[];
  /** True when the outputs are boxes of global tensors (boxes or shard_as). */
  resharded: boolean;
}

/** Where a Load stream stands: the last entry it sent (counted across the plan's items, -1 before any) and how many of its chunks. */
export interface LoadPosition {
  entry: number;
  chunk: number;
  /** Bytes of that entry sent, when its pieces are not all MAX_LOAD_MESSAGE_DATA long (boxes streamed in place, `inPlace`). */
  bytes?: number;
}

type BoxOutput = Extract<Output, { kind: "box" }>;

export type LoadPart =
  { kind: "entry"; item: string; entry: EntryRecord; targetDevice: string } | { kind: "chunk"; data: Buffer; crc32c: number | undefined };

/** Target device for a tensor saved on `saved`, per the rules above. */
export function mapDevice(saved: string, devices: readonly string[], localRank: number, overrides: ReadonlyMap<string, string>): string {
  // A Map, not an object: a client's device may be named "constructor" or "__proto__".
  const explicit = overrides.get(saved) ?? overrides.get("*");
  if (explicit) return explicit;
  const type = saved.split(":")[0] || "cpu";
  if (type === "cpu") return "cpu";
  const same = devices.filter((d) => (d.split(":")[0] ?? "") === type);
  return same.length > 0 ? same[localRank % same.length]! : "cpu";
}

export interface ChunkDamage {
  rank: number;
  item: string;
  key: string;
  chunkIndex: number;
  file: string;
  offset: number;
  problem: string;
}

export class CheckpointLoader {
  constructor(
    private readonly storage: Storage,
    private readonly catalog: Catalog,
    /** Told the stored bytes of every chunk a load reads. */
    private readonly onStoredRead: (bytes: number) => void = () => {},
    /** What the read buffers of all this loader's streams count against (the daemon's --load-budget-mib). */
    budget: ByteBudget = new ByteBudget(Number.MAX_SAFE_INTEGER),
  ) {
    this.memory = new ReadMemory(budget);
  }

  /**
   * Where a committed checkpoint's data is (Storage.dataPrefix of its attempt): its local
   * directory, whose files loads open themselves (O_DIRECT where it works), or, on a storage
   * without local files, the prefix its objects are read from by ranges.
   */
  private checkpointData(manifest: { job: string; checkpointId: string; attempt: number }): DataBase {
    const prefix = this.storage.dataPrefix(manifest.job, manifest.checkpointId, manifest.attempt);
    const dir = this.storage.localPath?.(prefix);
    return dir !== undefined ? { dir } : { storage: this.storage, prefix };
  }

  /** The read buffers every stream of this loader shares. */
  private readonly memory: ReadMemory;

  async plan(spec: LoadSpec): Promise<LoadPlan> {
    checkName("job", spec.job);
    const checkpoint = this.catalog.get(spec.job, spec.checkpointId);
    const manifest = await this.catalog.readManifest(checkpoint);
    for (const [what, n] of [
      ["rank", spec.rank],
      ["local_rank", spec.localRank],
      ["source_rank", spec.sourceRank ?? 0],
      ["world_size", spec.worldSize],
    ] as const)
      if (!Number.isSafeInteger(n) || n < 0) throw invalidArgument(`${what} ${n} must be a non-negative integer`);
    for (const name of spec.items) checkName("item", name);
    const overrides = new Map(Object.entries(spec.mapLocation));
    for (const [from, to] of overrides)
      if (!from || !to) throw invalidArgument(`map_location entry ${quote(from)} -> ${quote(to)} is empty`);
    for (const d of spec.devices) if (!d) throw invalidArgument("devices holds an empty device name");
    const mapLocation = new Map<string, string>();
    const placements: Placement[] = [];
    /** The target device of a tensor saved on `saved` (noting the mapping and the placement). */
    const place = (item: string, key: string, savedDevice: string): string => {
      const saved = savedDevice || "cpu";
      let target = mapLocation.get(saved);
      if (target === undefined) mapLocation.set(saved, (target = mapDevice(saved, spec.devices, spec.localRank, overrides)));
      placements.push({ item, key, savedDevice: saved, targetDevice: target });
      return target;
    };
    if (spec.boxes.length > 0 || spec.shardAs) {
      const outputs = planResharded(manifest, spec, place);
      // The plan goes out as one message: it must fit the 4 MiB a stock gRPC client receives.
      let planBytes = 0;
      for (const p of placements) planBytes += p.item.length + p.key.length + p.savedDevice.length + p.targetDevice.length + 16;
      if (planBytes > MAX_LOAD_MESSAGE_DATA)
        throw invalidArgument(
          `the plan of this load would take about ${planBytes} bytes (${placements.length} tensors), more than one message may carry (${MAX_LOAD_MESSAGE_DATA}); ask for fewer boxes or items per Load`,
        );
      const totalBytes = outputs.reduce((n, o) => n + (o.kind === "box" ? o.entry.rawBytes : o.copy.entry.rawBytes), 0);
      return { checkpoint, manifest, sourceRank: 0, items: [], mapLocation, placements, totalBytes, outputs, resharded: true };
    }
    if (spec.worldSize > 0 && spec.worldSize !== manifest.worldSize && spec.sourceRank === undefined)
      refuseShardsOfOtherWorld(manifest, spec.items, spec.worldSize);
    const sourceRank = spec.sourceRank ?? spec.rank;
    if (sourceRank >= manifest.worldSize)
      throw invalidArgument(
        spec.sourceRank === undefined
          ? `rank ${sourceRank} is out of range: checkpoint '${manifest.checkpointId}' was saved by world_size ${manifest.worldSize}; pass source_rank to load another rank's shard`
          : `source_rank ${sourceRank} is out of range: checkpoint '${manifest.checkpointId}' was saved by world_size ${manifest.worldSize} (ranks 0-${manifest.worldSize - 1})`,
      );
    const rankRecord = manifest.ranks.find((r) => r.rank === sourceRank);
    let items = rankRecord?.items ?? [];
    if (spec.items.length > 0) {
      const byName = new Map(items.map((i) => [i.name, i]));
      items = spec.items.map((name) => {
        const found = byName.get(name);
        if (!found)
          throw notFound(
            `rank ${sourceRank} saved no item '${name}' in checkpoint '${manifest.checkpointId}' (it has: ${[...byName.keys()].join(", ") || "none"})`,
          );
        return found;
      });
    }
    const outputs: Output[] = [];
    let totalBytes = 0;
    for (const item of items) {
      for (const e of item.entries) {
        totalBytes += e.rawBytes;
        const targetDevice = e.tensor ? place(item.name, e.key, e.tensor.device) : "";
        outputs.push({ kind: "whole", copy: { rank: sourceRank, item: item.name, entry: e }, targetDevice });
      }
    }
    return { checkpoint, manifest, sourceRank, items, mapLocation, placements, totalBytes, outputs, resharded: false };
  }

  /**
   * Yields each entry then its verified chunks. Pull-based: reads run at most READ_AHEAD
   * chunks ahead of the consumer, so a slow client holds a bounded number of chunks here.
   * A chunk's data is valid until the consumer asks for the next part (its buffer is then
   * reused): copy or finish with it before. Once the consumer stops (return), the buffers
   * go back to a cache shared by every stream.
   *
   * `from` resumes a stream the consumer stopped after entry `entry` (counted across the
   * plan's items) and `chunk` of its chunks: the stream goes on with the next chunk.
   */
  async *stream(plan: LoadPlan, from: LoadPosition = { entry: -1, chunk: 0 }, opts: { inPlace?: boolean } = {}): AsyncGenerator<LoadPart> {
    const buffers = new ReadBuffers(this.memory);
    try {
      yield* this.parts(plan, from, buffers, opts.inPlace ?? false);
    } finally {
      buffers.recycle();
    }
  }

  private async *parts(plan: LoadPlan, from: LoadPosition, buffers: ReadBuffers, inPlace: boolean): AsyncGenerator<LoadPart> {
    const base = this.checkpointData(plan.manifest);
    // An item's pack file stays open across its entries: one open per small tensor cost
    // more than reading it.
    const pack = new PackFile();
    /** The entry after the one being sent, its reads started: one in a file of its own (not the shared pack file). */
    let ahead: { entryNo: number; chunks: AsyncGenerator<EntryChunk>; first: Promise<IteratorResult<EntryChunk>> } | undefined;
    const readAhead = (entryNo: number) => {
      const output = plan.outputs[entryNo];
      if (output?.kind !== "whole" || output.copy.entry.file === PACK_FILE_NAME) return undefined;
      const chunks = readEntryChunks(base, output.copy, 0, buffers, undefined, () => buffers.decodeBuffer(entryNo));
      const first = chunks.next();
      // Its failure is the entry's, raised when the stream gets there.
      void first.catch(() => undefined);
      return { entryNo, chunks, first };
    };
    /** On an object store: the run of packed entries after the one being sent, its read started (a request's wait is longer than a disk's). */
    let aheadPack: { entryNo: number; read: Promise<PackRead | undefined> } | undefined;
    const runBytes = "dir" in base ? PACK_RUN_MAX_BYTES : OBJECT_RUN_BYTES;
    const readPackAhead = (entryNo: number) => {
      if ("dir" in base) return undefined;
      const run = packRun(plan.outputs, entryNo, runBytes);
      if (run.length <= 1) return undefined;
      // Only with room in the budget: the decode buffer is taken when the run is sent.
      const read = startPackRead(base, run, buffers, pack, true);
      void read.catch(() => undefined);
      return { entryNo, read };
    };
    try {
      for (let entryNo = Math.max(0, from.entry); entryNo < plan.outputs.length; entryNo++) {
        const output = plan.outputs[entryNo]!;
        const resumed = entryNo === from.entry;
        const skip = resumed ? from.chunk : 0;
        if (output.kind === "box") {
          if (!resumed) yield { kind: "entry", item: output.item, entry: output.entry, targetDevice: output.targetDevice };
          const skipBytes = resumed && inPlace ? (from.bytes ?? 0) : skip * MAX_LOAD_MESSAGE_DATA;
          yield* this.assemble(plan, output, skipBytes, buffers, inPlace);
          continue;
        }
        const run = resumed ? [] : packRun(plan.outputs, entryNo, runBytes);
        if (run.length > 1) {
          // Small entries side by side in their item's pack file: one read of the range they span.
          const last = entryNo + run.length - 1;
          // Its read may have started while the run before it was sent.
          const started = aheadPack?.entryNo === entryNo ? await aheadPack.read : undefined;
          aheadPack = undefined;
          const reads = readPackRun(base, run, buffers, pack, () => buffers.decodeBuffer(last), started);
          let at = -1;
          for await (const { index, chunk: c } of reads) {
            const { copy, targetDevice } = run[index]!;
            if (index !== at) {
              at = index;
              yield { kind: "entry", item: copy.item, entry: copy.entry, targetDevice };
              // The entry after the run is read while the run's entries are sent.
              if (index === 0) {
                ahead = readAhead(last + 1);
                aheadPack = readPackAhead(last + 1);
              }
            }
            if (c.kind === "missing") throw missingFile(copy);
            this.onStoredRead(c.chunk.storedBytes);
            if (c.kind === "damaged") throw corruptChunk(plan.manifest.checkpointId, copy.rank, copy.item, copy.entry, c);
            yield { kind: "chunk", data: c.data, crc32c: c.chunk.crc32c };
          }
          entryNo = last;
          continue;
        }
        const { rank, item, entry } = output.copy;
        if (!resumed) yield { kind: "entry", item, entry, targetDevice: output.targetDevice };
        // The entry's reads may have started while the one before it was sent.
        const started = ahead?.entryNo === entryNo ? ahead : undefined;
        ahead = undefined;
        const chunks = started?.chunks ?? readEntryChunks(base, output.copy, skip, buffers, pack, () => buffers.decodeBuffer(entryNo));
        let step = started?.first ?? chunks.next();
        // The next entry's file is opened and its first chunks read while this one's go out.
        ahead = readAhead(entryNo + 1);
        aheadPack ??= readPackAhead(entryNo + 1);
        try {
          for (let r = await step; !r.done; r = await step) {
            const c = r.value;
            if (c.kind === "missing") throw missingFile(output.copy);
            this.onStoredRead(c.chunk.storedBytes);
            if (c.kind === "damaged") throw corruptChunk(plan.manifest.checkpointId, rank, item, entry, c);
            yield { kind: "chunk", data: c.data, crc32c: c.chunk.crc32c };
            step = chunks.next();
          }
        } finally {
          await chunks.return(undefined);
        }
      }
    } finally {
      // A stream stopped early: the entry read ahead gives its buffers back and closes its file.
      if (ahead) {
        await ahead.first.catch(() => undefined);
        await ahead.chunks.return(undefined);
      }
      const read = await aheadPack?.read.catch(() => undefined);
      if (read) await read.done.then(read.giveBack, read.giveBack);
      await pack.close();
    }
  }

  /**
   * A box's bytes in its row-major order, in pieces of MAX_LOAD_MESSAGE_DATA bytes (the last
   * shorter), each with its CRC-32C; `skipBytes` bytes were sent already. With `inPlace`
   * (the bytes are written where they go, nobody checks a piece's CRC-32C), a run of at least
   * IN_PLACE_MIN_RUN bytes of one decoded chunk goes out as a view of it, without a CRC-32C. Each shard the box
   * intersects has a cursor that reads (ahead) only the stored chunks the box needs, in
   * order, and holds one decoded chunk: memory is one piece plus a few chunks per shard,
   * whatever the box's size.
   */
  private async *assemble(
    plan: LoadPlan,
    o: BoxOutput,
    skipBytes: number,
    buffers: ReadBuffers,
    inPlace: boolean,
  ): AsyncGenerator<LoadPart> {
    const total = o.entry.rawBytes;
    if (total === 0 || skipBytes >= total) return;
    const name = `item ${quote(o.item)} key ${quote(o.entry.key)}`;
    const regions = o.shards.map((s) => s.region);
    /** The walk's segments cut to the bytes not sent yet. */
    function* walk(): Generator<Segment> {
      let pos = 0;
      try {
        for (const seg of segments(o.globalShape, o.box, regions, o.elementSize)) {
          const end = pos + seg.bytes;
          if (end > skipBytes) {
            const cut = Math.max(0, skipBytes - pos);
            yield cut > 0 ? { shard: seg.shard, from: seg.from + cut, bytes: seg.bytes - cut } : seg;
          }
          pos = end;
        }
      } catch (err) {
        if (err instanceof CoverageError)
          throw failedPrecondition(`${name}: the saved shards do not cover the box exactly once: ${err.message}`);
        throw err;
      }
    }
    // The raw start of every chunk of each shard (and its end), then the chunks the box needs.
    const starts = o.shards.map((s) => {
      const at = [0];
      for (const c of s.copy.entry.chunks) at.push(at[at.length - 1]! + c.rawBytes);
      return at;
    });
    const needed: number[][] = o.shards.map(() => []);
    /** Each shard's last segment: its cursor is closed after it (shards met one after the other hold no buffers at once). */
    const lastSegment: number[] = o.shards.map(() => -1);
    let segmentNo = 0;
    for (const seg of walk()) {
      markChunks(needed[seg.shard]!, starts[seg.shard]!, seg.from, seg.from + seg.bytes);
      lastSegment[seg.shard] = segmentNo++;
    }
    const base = this.checkpointData(plan.manifest);
    const cursors = o.shards.map(
      (s, i) => new ShardCursor(plan.manifest.checkpointId, base, s.copy, starts[i]!, needed[i]!, buffers, this.onStoredRead),
    );
    const out = (await buffers.get(MAX_LOAD_MESSAGE_DATA))!;
    let fill = 0;
    segmentNo = 0;
    try {
      for (const seg of walk()) {
        const cursor = cursors[seg.shard]!;
        let from = seg.from;
        let bytes = seg.bytes;
        while (bytes > 0) {
          const { start, data } = await cursor.at(from);
          const run = Math.min(bytes, start + data.length - from, MAX_LOAD_MESSAGE_DATA);
          if (inPlace && run >= IN_PLACE_MIN_RUN) {
            // A long run of one decoded chunk goes out as a view of it: no copy into `out`
            // (after what `out` holds, to keep the byte order).
            if (fill > 0) {
              yield { kind: "chunk", data: out.subarray(0, fill), crc32c: undefined };
              fill = 0;
            }
            yield { kind: "chunk", data: data.subarray(from - start, from - start + run), crc32c: undefined };
            from += run;
            bytes -= run;
            continue;
          }
          const n = Math.min(bytes, start + data.length - from, out.length - fill);
          data.copy(out, fill, from - start, from - start + n);
          fill += n;
          from += n;
          bytes -= n;
          if (fill === out.length) {
            yield { kind: "chunk", data: out, crc32c: inPlace ? undefined : crc32c(out) };
            fill = 0;
          }
        }
        // Its bytes are copied out: the shard's buffers go back now.
        if (lastSegment[seg.shard] === segmentNo++) await cursor.close();
      }
      if (fill > 0) {
        const last = out.subarray(0, fill);
        yield { kind: "chunk", data: last, crc32c: inPlace ? undefined : crc32c(last) };
      }
    } finally {
      for (const c of cursors) await c.close();
      buffers.put(out);
    }
  }

  /** Reads and checks every chunk of every rank; reports every damaged chunk. */
  async verify(
    job: string,
    checkpointId: string,
  ): Promise<{ checkpointId: string; chunks: number; bytes: number; damaged: ChunkDamage[] }> {
    checkName("job", job);
    const summary = this.catalog.get(job, checkpointId);
    const manifest = await this.catalog.readManifest(summary);
    const base = this.checkpointData(manifest);
    const buffers = new ReadBuffers(this.memory);
    const damaged: ChunkDamage[] = [];
    let chunks = 0;
    let bytes = 0;
    const pack = new PackFile();
    // The buffers count against the load budget: they go back however the check ends.
    try {
      for (const rank of manifest.ranks) {
        for (const item of rank.items) {
          for (const entry of item.entries) {
            const file = `${itemDirName(rank.rank, item.name)}/${entry.file}`;
            const where = (chunkIndex: number, offset: number, problem: string) =>
              damaged.push({ rank: rank.rank, item: item.name, key: entry.key, chunkIndex, file, offset, problem });
            for await (const r of readEntryChunks(base, { rank: rank.rank, item: item.name, entry }, 0, buffers, pack)) {
              if (r.kind === "missing") {
                entry.chunks.forEach((c, i) => where(i, c.offset, "file is missing"));
                break;
              }
              chunks++;
              if (r.kind === "damaged") where(r.index, r.chunk.offset, r.problem);
              else bytes += r.chunk.rawBytes;
            }
          }
        }
      }
    } finally {
      await pack.close();
      buffers.recycle();
    }
    return { checkpointId: summary.checkpointId, chunks, bytes, damaged };
  }
}

/** Streaming in place (`inPlace`), a box's run of at least this many bytes in one decoded chunk goes out as a view of it. */
const IN_PLACE_MIN_RUN = 64 << 10;

/** Chunks a stream reads ahead of the one being decoded and sent. */
const READ_AHEAD = 4;
/**
 * On a storage without local files (an object store), consecutive stored chunks are read in runs
 * of up to this many with one ranged GET, and split into frames here: a request costs the daemon
 * far more than a local read does (a connection's turn, signing, headers, a socket's events).
 */
const OBJECT_RUN_CHUNKS = 2;
/** A run's bytes at most (any OBJECT_RUN_CHUNKS stored chunks' frames fit). */
const OBJECT_RUN_BYTES = OBJECT_RUN_CHUNKS * (LZ4_MAX_BLOCK + RAW_FRAME_OVERHEAD);
/** Runs a stream reads ahead on an object store: the bytes READ_AHEAD chunks hold, in at least two requests. */
const OBJECT_READ_AHEAD = Math.max(2, READ_AHEAD / OBJECT_RUN_CHUNKS);
/** Read buffers of at least this size are kept for reuse; smaller ones are left to the GC. */
const REUSE_MIN_BYTES = 64 << 10;

/** Entry files at least this large are read with O_DIRECT where the filesystem allows it. */
const DIRECT_READ_MIN_BYTES = MiB;
/** An aligned read covers a chunk's frame (at most 4 MiB + 15 bytes) widened to block boundaries at both ends. */
const DIRECT_READ_BUFFER_BYTES = LZ4_MAX_BLOCK + 3 * DIRECT_ALIGN;

/**
 * Opens an entry file for reading: with O_DIRECT when it is large and the filesystem
 * allows it (loads then skip the page cache: a checkpoint read once does not evict the
 * node's working set, and the kernel does not copy every byte once more), else buffered.
 */
async function openForRead(
  base: DataBase,
  name: string,
  chunks: readonly StoredChunk[],
  buffers: ReadBuffers,
): Promise<{ fh: EntryFile; direct: boolean }> {
  if (!("dir" in base)) return { fh: openObject(base.storage, `${base.prefix}/${name}`), direct: false };
  const file = path.join(base.dir, ...name.split("/"));
  const last = chunks[chunks.length - 1];
  // The entry's bytes, not the file's end: a packed entry may lie far into a pack file.
  const size = last ? last.offset + last.storedBytes - chunks[0]!.offset : 0;
  if (buffers.memory.directReads && size >= DIRECT_READ_MIN_BYTES) {
    let fh: fsp.FileHandle | undefined;
    try {
      fh = await fsp.open(file, fs.constants.O_RDONLY | fs.constants.O_DIRECT);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EINVAL") throw err;
    }
    if (fh) {
      const probe = await buffers.getAligned(fh.fd);
      if (probe) {
        buffers.putAligned(probe);
        return { fh, direct: true };
      }
      buffers.memory.directReads = false;
      await fh.close();
    }
  }
  return { fh: await fsp.open(file, "r"), direct: false };
}

/** Where a checkpoint's data files are: a local directory, or a prefix of a storage without local files. */
type DataBase = { dir: string } | { storage: Storage; prefix: string };

/**
 * An open entry file: a local file, or a data object whose reads are ranged reads of the
 * storage (`fd` is used only for a direct local file). Reading ahead works the same on both:
 * the read loop keeps READ_AHEAD chunk reads in flight, each in a buffer of the load budget.
 */
interface EntryFile {
  readonly fd: number;
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

/**
 * A data object of a storage without local files, opened for reading: nothing is asked of the
 * storage before the first read (the manifest says what the object holds), and a read of an
 * absent object fails with ENOENT.
 */
function openObject(storage: Storage, key: string): EntryFile {
  return {
    fd: -1,
    read: async (buffer, offset, length, position) => {
      const got = await storage.getRange(key, position, length, buffer.subarray(offset, offset + length));
      if (!got) throw Object.assign(new Error(`ENOENT: ${storage.where(key)} is missing`), { code: "ENOENT" });
      return { bytesRead: got.length };
    },
    close: () => Promise.resolve(),
  };
}

/** True for the error of an absent file or data object (its open or, on an object store, its first read). */
const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === "ENOENT";

type BufferKind = "plain" | "aligned" | "decode" | "run";

/** Size of each pooled read buffer, by kind: any stored chunk's frame fits a plain one, OBJECT_RUN_CHUNKS frames a run. */
const KIND_BYTES: Record<BufferKind, number> = {
  plain: LZ4_MAX_BLOCK + RAW_FRAME_OVERHEAD,
  aligned: DIRECT_READ_BUFFER_BYTES,
  decode: LZ4_MAX_BLOCK,
  run: OBJECT_RUN_BYTES,
};
/** What a buffer of each kind counts for against a stream's share (in chunks). */
const KIND_UNITS: Record<BufferKind, number> = { plain: 1, aligned: 1, decode: 1, run: OBJECT_RUN_CHUNKS };

/**
 * The read buffers of every load stream, counted against the daemon's load budget from
 * allocation until dropped. Buffers a stream is done with (it finished, or paused because
 * its client stopped reading) wait here for the next stream while the budget has room. A
 * stream gets the buffer for the chunk it sends next once there is room (or after a short
 * wait: streams never wait on each other for long); its read-ahead buffers only while the
 * budget has room, so many streams read ahead less instead of growing the daemon
 * (unread loads held their read-ahead while grpc-js queued their
 * messages).
 */
class ReadMemory {
  /** False once O_DIRECT reads turned out not to work here (no buffer alignment passes): buffered from then on. */
  directReads = fs.constants.O_DIRECT !== undefined;
  constructor(private readonly budget: ByteBudget) {}
  /** Streams with buffers of their own (ReadBuffers not yet recycled). */
  active = 0;
  private readonly waiters: (() => void)[] = [];
  private readonly spare: Record<BufferKind, Buffer[]> = { plain: [], aligned: [], decode: [], run: [] };

  /**
   * A buffer of `kind` from the spares, or a new one (`make`) if the budget has room now;
   * undefined otherwise (or when `make` cannot make one).
   */
  tryTake(kind: BufferKind, make: () => Buffer | undefined): Buffer | undefined {
    const b = this.spare[kind].pop();
    if (b) return b;
    const bytes = KIND_BYTES[kind];
    this.makeRoom(bytes);
    if (!this.budget.tryTake(bytes)) return undefined;
    return this.made(bytes, make);
  }

  /**
   * A buffer of `kind` the stream cannot do without: from the spares, or a new one once the
   * budget has room, or after MUST_WAIT_MS anyway (undefined when `make` cannot make one).
   */
  async take(kind: BufferKind, make: () => Buffer | undefined): Promise<Buffer | undefined> {
    const deadline = Date.now() + MUST_WAIT_MS;
    for (;;) {
      const b = this.tryTake(kind, make);
      if (b) return b;
      const left = deadline - Date.now();
      if (left <= 0) break;
      // Woken when another stream gives a buffer back.
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          const i = this.waiters.indexOf(wake);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.waiters.push(wake);
      });
    }
    const bytes = KIND_BYTES[kind];
    this.makeRoom(bytes);
    this.budget.force(bytes);
    return this.made(bytes, make);
  }

  /** True while a stream waits for a buffer: others then give theirs back as they finish with them. */
  get waiting(): boolean {
    return this.waiters.length > 0;
  }

  /** Takes back a buffer a stream is done with: for a waiting stream, or kept while the budget has room, else dropped. */
  put(kind: BufferKind, b: Buffer): void {
    const wake = this.waiters[0];
    if (wake) {
      this.spare[kind].push(b);
      wake();
    } else if (this.budget.inUse > this.budget.limit) this.budget.give(KIND_BYTES[kind]);
    else this.spare[kind].push(b);
  }

  private made(bytes: number, make: () => Buffer | undefined): Buffer | undefined {
    const made = make();
    if (!made) this.budget.give(bytes);
    return made;
  }

  /**
   * Buffers one stream may hold for reading ahead: an equal part of the budget, so the
   * first streams cannot read far ahead while later ones wait for their first buffer.
   */
  get share(): number {
    return Math.floor(this.budget.limit / LZ4_MAX_BLOCK / Math.max(1, this.active));
  }

  /** Drops spares until `bytes` fit the budget (spares of one kind make no room for another). */
  private makeRoom(bytes: number): void {
    for (const kind of ["plain", "aligned", "decode", "run"] as const)
      while (!this.budget.fits(bytes) && this.spare[kind].pop()) this.budget.give(KIND_BYTES[kind]);
  }
}

/** How long a stream waits for room before it takes a buffer it cannot do without anyway. */
const MUST_WAIT_MS = 1_000;

/**
 * Reusable read buffers of one stream. Allocating a fresh 4 MiB buffer per chunk costs page
 * faults on every read and leaves the memory to the garbage collector (RSS grows with the
 * load rate); a stream instead cycles through up to READ_AHEAD + 1 buffers, taken from
 * (and given back to, by recycle) the buffers all streams share.
 */
export class ReadBuffers {
  private readonly free: Buffer[] = [];
  private readonly freeAligned: Buffer[] = [];
  private readonly freeRuns: Buffer[] = [];
  /** Offset into a fresh backing store that aligned the last one (allocations tend to repeat it). */
  private lastShift = 0;
  /** The decode buffers of even and odd entries (an entry decodes while the one before it is sent). */
  private readonly decoded: (Buffer | undefined)[] = [undefined, undefined];
  /** Set by recycle: a read abandoned in flight gives its buffer back after the stream ended. */
  private recycled = false;
  /** Buffers this stream took from the shared memory and has not given back. */
  private owned = 0;

  constructor(readonly memory: ReadMemory) {
    this.memory.active++;
  }

  /**
   * The buffer compressed chunks are decoded into (one chunk at a time): one for the entries
   * numbered even, one for the odd, so that an entry read ahead decodes while the chunk
   * before it is still being sent.
   */
  async decodeBuffer(entryNo = 0): Promise<Buffer> {
    const i = entryNo % 2;
    return (this.decoded[i] ??= (await this.take("decode", () => Buffer.allocUnsafeSlow(LZ4_MAX_BLOCK), false))!);
  }

  /** Hands every buffer this stream is done with to the streams that come next, and any put from now on. */
  recycle(): void {
    if (this.recycled) return;
    this.recycled = true;
    this.memory.active--;
    for (const b of this.free.splice(0)) this.giveBack("plain", b);
    for (const b of this.freeAligned.splice(0)) this.giveBack("aligned", b);
    for (const b of this.freeRuns.splice(0)) this.giveBack("run", b);
    for (let i = 0; i < this.decoded.length; i++) {
      const b = this.decoded[i];
      if (b) this.giveBack("decode", b);
      this.decoded[i] = undefined;
    }
  }

  /** A buffer from the shared memory; an optional one only within the stream's share. */
  private async take(kind: BufferKind, make: () => Buffer | undefined, optional: boolean): Promise<Buffer | undefined> {
    if (optional && this.owned + KIND_UNITS[kind] > this.memory.share) return undefined;
    const b = optional ? this.memory.tryTake(kind, make) : await this.memory.take(kind, make);
    if (b) this.owned += KIND_UNITS[kind];
    return b;
  }

  private giveBack(kind: BufferKind, b: Buffer): void {
    this.owned -= KIND_UNITS[kind];
    this.memory.put(kind, b);
  }

  /** A buffer of `size` bytes; with `optional`, undefined when the budget has no room for a new one. */
  async get(size: number, optional = false): Promise<Buffer | undefined> {
    if (size < REUSE_MIN_BYTES) return Buffer.allocUnsafe(size);
    const i = this.free.findIndex((b) => b.length >= size);
    if (i >= 0) return this.free.splice(i, 1)[0]!.subarray(0, size);
    const make = () => Buffer.allocUnsafeSlow(Math.max(size, KIND_BYTES.plain));
    return (await this.take("plain", make, optional))?.subarray(0, size);
  }

  put(buf: Buffer): void {
    if (buf.length < REUSE_MIN_BYTES) return;
    const whole = Buffer.from(buf.buffer, buf.byteOffset, buf.buffer.byteLength - buf.byteOffset);
    // A stream that waits for a buffer it cannot do without gets this one's read-ahead.
    if (this.recycled || this.memory.waiting) this.giveBack("plain", whole);
    else this.free.push(whole);
  }

  /**
   * A buffer of DIRECT_READ_BUFFER_BYTES whose address suits O_DIRECT reads of `fd`, or
   * undefined when none does (probed with 4 KiB direct reads of `fd`) or, with `optional`,
   * when the budget has no room for a new one.
   */
  async getAligned(fd: number, optional = false): Promise<Buffer | undefined> {
    const reused = this.freeAligned.pop();
    if (reused) return reused;
    const make = () => {
      const found = allocateAligned(DIRECT_READ_BUFFER_BYTES, this.lastShift, (buf, at) => fs.readSync(fd, buf, at, DIRECT_ALIGN, 0));
      if (found) this.lastShift = found.shift;
      return found?.buf;
    };
    return this.take("aligned", make, optional);
  }

  putAligned(buf: Buffer): void {
    if (this.recycled || this.memory.waiting) this.giveBack("aligned", buf);
    else this.freeAligned.push(buf);
  }

  /** A buffer of OBJECT_RUN_BYTES for a run of stored chunks read with one request; with `optional`, undefined when the budget has no room. */
  async getRun(optional = false): Promise<Buffer | undefined> {
    return this.freeRuns.pop() ?? this.take("run", () => Buffer.allocUnsafeSlow(OBJECT_RUN_BYTES), optional);
  }

  /** Gives back a buffer of getRun (the buffer itself, not a view of it). */
  putRun(buf: Buffer): void {
    if (this.recycled || this.memory.waiting) this.giveBack("run", buf);
    else this.freeRuns.push(buf);
  }
}

interface ChunkRead {
  stored: Buffer;
  bytesRead: number;
  /** The aligned buffer `stored` lies in, for a direct read. */
  aligned?: Buffer;
}

/**
 * One chunk of an entry as read: its decoded bytes (`data`, valid until the next chunk is
 * asked for), or why it cannot be (truncated, corrupt); or, once for the whole entry, its
 * stored file being missing.
 */
type EntryChunk =
  | { kind: "data"; index: number; chunk: StoredChunk; data: Buffer }
  | { kind: "damaged"; index: number; chunk: StoredChunk; problem: string }
  | { kind: "missing" };

/**
 * The pack file of the item a stream read last, kept open across the item's entries (one
 * open per small tensor cost more than reading it).
 */
class PackFile {
  private open: { rank: number; item: string; fh: EntryFile; direct: boolean } | undefined;

  /** The pack file of `copy`'s item, opened unless it is the one open. */
  async get(base: DataBase, name: string, copy: Copy, buffers: ReadBuffers): Promise<{ fh: EntryFile; direct: boolean }> {
    const { rank, item, entry } = copy;
    if (this.open?.rank === rank && this.open.item === item) return this.open;
    await this.close();
    const { fh, direct } = await openForRead(base, name, entry.chunks, buffers);
    this.open = { rank, item, fh, direct };
    return this.open;
  }

  async close(): Promise<void> {
    const open = this.open;
    this.open = undefined;
    await open?.fh.close();
  }
}

/** The DATA_LOSS error of an entry whose stored file is gone. */
function missingFile({ item, entry }: Copy): Error {
  return dataLoss(
    `item '${item}' key '${entry.key}': stored file ${entry.file} is missing (or the checkpoint was deleted during the load)`,
  );
}

/** A run of packed entries spans at most this many bytes of their pack file (one plain read buffer; OBJECT_RUN_BYTES on an object store). */
const PACK_RUN_MAX_BYTES = LZ4_MAX_BLOCK;
/** Packed entries at most this far apart in their pack file are read in one run (the gap is read too). */
const PACK_RUN_MAX_GAP = 64 << 10;

/** The stored range [start, end) of an entry's chunks. */
function storedRange(entry: EntryRecord): [number, number] {
  const first = entry.chunks[0]!;
  const last = entry.chunks[entry.chunks.length - 1]!;
  return [first.offset, last.offset + last.storedBytes];
}

/**
 * The outputs from `from` on that are whole entries of one item's pack file, each after the
 * one before it there, within `maxBytes` of the first's start: read with one read.
 */
function packRun(outputs: readonly Output[], from: number, maxBytes: number): { copy: Copy; targetDevice: string }[] {
  const run: { copy: Copy; targetDevice: string }[] = [];
  let start = 0;
  let end = 0;
  for (let i = from; i < outputs.length; i++) {
    const o = outputs[i]!;
    if (o.kind !== "whole" || o.copy.entry.file !== PACK_FILE_NAME || o.copy.entry.chunks.length === 0) break;
    const { rank, item } = o.copy;
    const [s, e] = storedRange(o.copy.entry);
    if (run.length === 0) start = s;
    else if (rank !== run[0]!.copy.rank || item !== run[0]!.copy.item || s < end || s - end > PACK_RUN_MAX_GAP) break;
    if (e - start > maxBytes) break;
    end = e;
    run.push({ copy: o.copy, targetDevice: o.targetDevice });
  }
  return run;
}

/** The read of a run of packed entries' range (see packRun), started: what was read (undefined: the pack file is missing), and how to give its buffer back. */
interface PackRead {
  done: Promise<{ range: Buffer; got: number } | undefined>;
  giveBack: () => void;
}

/**
 * Starts the read of the range a run of packed entries spans, from their pack file (through
 * `pack`), with one read; with `optional`, undefined when the budget has no room for its buffer.
 */
async function startPackRead(
  base: DataBase,
  run: readonly { copy: Copy }[],
  buffers: ReadBuffers,
  pack: PackFile,
  optional = false,
): Promise<PackRead | undefined> {
  const first = run[0]!.copy;
  const [start] = storedRange(first.entry);
  const [, end] = storedRange(run[run.length - 1]!.copy.entry);
  let fh: EntryFile;
  let direct: boolean;
  try {
    ({ fh, direct } = await pack.get(base, `${itemDirName(first.rank, first.item)}/${PACK_FILE_NAME}`, first, buffers));
  } catch (err) {
    if (!isMissing(err)) throw err;
    return { done: Promise.resolve(undefined), giveBack: () => {} };
  }
  // A pack file open with O_DIRECT is read in whole blocks, into an aligned buffer (it holds
  // PACK_RUN_MAX_BYTES widened to block boundaries at both ends); a longer run (of a pack object) into a run buffer.
  const lo = direct ? start - (start % DIRECT_ALIGN) : start;
  const hi = direct ? Math.ceil(end / DIRECT_ALIGN) * DIRECT_ALIGN : end;
  const long = hi - lo > KIND_BYTES.plain;
  const buf = direct
    ? await buffers.getAligned(fh.fd, optional)
    : long
      ? await buffers.getRun(optional)
      : await buffers.get(hi - lo, optional);
  if (!buf) {
    if (optional) return undefined;
    throw new Error("no buffer alignment suits O_DIRECT reads any more");
  }
  const giveBack = () => (direct ? buffers.putAligned(buf) : long ? buffers.putRun(buf) : buffers.put(buf));
  const done = (async () => {
    // A short read is a truncated file: the chunks past its end say so one by one. A direct
    // read is one call (its buffer and offset stay aligned only for the first).
    let read = 0;
    try {
      if (direct) read = (await fh.read(buf, 0, hi - lo, lo)).bytesRead;
      else for (let n = -1; n !== 0 && read < hi - lo; read += n) ({ bytesRead: n } = await fh.read(buf, read, hi - lo - read, lo + read));
    } catch (err) {
      if (!isMissing(err)) throw err;
      return undefined;
    }
    return { range: buf.subarray(start - lo), got: read - (start - lo) };
  })();
  // Its failure is the run's, raised when the stream gets there.
  void done.catch(() => undefined);
  return { done, giveBack };
}

/**
 * The chunks of a run of packed entries (see packRun), read from their pack file with one
 * read of the range they span (`started`, or started here), each checked and decoded as
 * readEntryChunks does; `index` is the entry's in `run`. A chunk's data is valid until the
 * next is asked for.
 */
async function* readPackRun(
  base: DataBase,
  run: readonly { copy: Copy }[],
  buffers: ReadBuffers,
  pack: PackFile,
  decodeInto: () => Promise<Buffer>,
  started?: PackRead,
): AsyncGenerator<{ index: number; chunk: EntryChunk }> {
  let read = started;
  try {
    const out = run.some(({ copy }) => copy.entry.chunks.some((c) => !c.raw)) ? await decodeInto() : undefined;
    read ??= (await startPackRead(base, run, buffers, pack))!;
    const got = await read.done;
    if (!got) {
      yield { index: 0, chunk: { kind: "missing" } };
      return;
    }
    const [start] = storedRange(run[0]!.copy.entry);
    for (let index = 0; index < run.length; index++) {
      const { entry } = run[index]!.copy;
      for (let i = 0; i < entry.chunks.length; i++) {
        const chunk = entry.chunks[i]!;
        yield { index, chunk: await frameOf(got.range, got.got, chunk.offset - start, chunk, i, out) };
      }
    }
  } finally {
    // A read still in flight gives its buffer back once it is done.
    if (read) await read.done.then(read.giveBack, read.giveBack);
  }
}

/**
 * Chunk `chunk` (its entry's chunk `index`) of a range read from its stored file: it starts `at`
 * bytes into `range`, of which `got` were read (fewer than the chunk needs: the file is truncated).
 */
async function frameOf(
  range: Buffer,
  got: number,
  at: number,
  chunk: StoredChunk,
  index: number,
  out: Buffer | undefined,
): Promise<EntryChunk> {
  const have = Math.max(0, Math.min(got - at, chunk.storedBytes));
  if (have !== chunk.storedBytes)
    return { kind: "damaged", index, chunk, problem: `file is truncated (${have} of ${chunk.storedBytes} bytes)` };
  try {
    return {
      kind: "data",
      index,
      chunk,
      data: await decodeChunk(range.subarray(at, at + chunk.storedBytes), chunk, chunk.raw ? undefined : out),
    };
  } catch (err) {
    if (!(err instanceof ChunkCorruptError)) throw err;
    return { kind: "damaged", index, chunk, problem: err.message };
  }
}

/** The DATA_LOSS error of a chunk a load cannot use. */
function corruptChunk(
  checkpointId: string,
  rank: number,
  item: string,
  entry: EntryRecord,
  r: { index: number; chunk: StoredChunk; problem: string },
): Error {
  return dataLoss(
    `checkpoint '${checkpointId}' rank ${rank} item '${item}' key '${entry.key}' chunk ${r.index} ` +
      `(file ${entry.file}, offset ${r.chunk.offset}) is corrupt: ${r.problem}`,
  );
}

/**
 * The one read loop of loads, resharded loads and verify: a stored entry's chunks (all
 * after the first `select`, or the listed ones), read READ_AHEAD ahead (the disk reads the
 * next chunks while chunk i is decoded, checked and sent), each checked for truncation and
 * decoded. A chunk's buffers (and so its `data`) are reused once the consumer asks for the
 * next chunk. The entry's file is opened with O_DIRECT where that works (see openForRead);
 * a packed entry's through `pack` when given (which keeps it open), else on its own, closed
 * when the generator ends. Compressed chunks decode into `decodeInto`, taken before any
 * read holds buffers (streams that hold read buffers while they wait for a decode buffer
 * would wait on each other). On an object store, chunks that lie side by side are read in
 * runs (up to OBJECT_RUN_CHUNKS with one request, OBJECT_READ_AHEAD runs ahead), each split
 * into its frames here; only the chunks asked for are read.
 */
async function* readEntryChunks(
  base: DataBase,
  copy: Copy,
  select: number | readonly number[],
  buffers: ReadBuffers,
  pack?: PackFile,
  decodeInto: () => Promise<Buffer> = () => buffers.decodeBuffer(),
): AsyncGenerator<EntryChunk> {
  const { rank, item, entry } = copy;
  const indices = typeof select === "number" ? undefined : select;
  const skip = typeof select === "number" ? select : 0;
  const chunks = indices ? indices.map((i) => entry.chunks[i]!) : skip > 0 ? entry.chunks.slice(skip) : entry.chunks;
  if (chunks.length === 0) return;
  const out = chunks.some((c) => !c.raw) ? await decodeInto() : undefined;
  const file = `${itemDirName(rank, item)}/${entry.file}`;
  const packed = pack !== undefined && entry.file === PACK_FILE_NAME;
  let fh: EntryFile;
  let direct: boolean;
  try {
    ({ fh, direct } = packed
      ? await pack.get(base, file, copy, buffers)
      : await openForRead(base, file, indices ? chunks : entry.chunks, buffers));
  } catch (err) {
    if (!isMissing(err)) throw err;
    yield { kind: "missing" };
    return;
  }
  const object = !("dir" in base);
  /** A read in flight of `count` chunks (one but on an object store), and how to give its buffer back. */
  interface Started {
    count: number;
    done: Promise<ChunkRead>;
    giveBack: () => void;
  }
  /** Starts the read of the chunks from `chunks[from]` once it has a buffer; undefined when `optional` and no buffer is to be had now. */
  const read = async (from: number, optional: boolean): Promise<Started | undefined> => {
    const c = chunks[from]!;
    if (object) {
      // The chunks side by side from `from` on that fit a run buffer.
      let end = from + 1;
      while (
        end < chunks.length &&
        end - from < OBJECT_RUN_CHUNKS &&
        chunks[end]!.offset === chunks[end - 1]!.offset + chunks[end - 1]!.storedBytes &&
        chunks[end]!.offset + chunks[end]!.storedBytes - c.offset <= OBJECT_RUN_BYTES
      )
        end++;
      const last = chunks[end - 1]!;
      const length = last.offset + last.storedBytes - c.offset;
      // A run buffer only for a run of several chunks (a thin box's lone chunks take less).
      if (end - from > 1) {
        const run = await buffers.getRun(optional);
        if (!run) return undefined;
        return {
          count: end - from,
          done: fh.read(run, 0, length, c.offset).then(({ bytesRead }) => ({ stored: run, bytesRead })),
          giveBack: () => buffers.putRun(run),
        };
      }
    }
    if (!direct) {
      const stored = await buffers.get(c.storedBytes, optional);
      if (!stored) return undefined;
      return {
        count: 1,
        done: fh.read(stored, 0, c.storedBytes, c.offset).then(({ bytesRead }) => ({ stored, bytesRead })),
        giveBack: () => buffers.put(stored),
      };
    }
    // The chunk's frame widened to whole blocks.
    const start = c.offset - (c.offset % DIRECT_ALIGN);
    const end = Math.ceil((c.offset + c.storedBytes) / DIRECT_ALIGN) * DIRECT_ALIGN;
    const aligned = await buffers.getAligned(fh.fd, optional);
    if (!aligned) {
      if (optional) return undefined;
      throw new Error("no buffer alignment suits O_DIRECT reads any more");
    }
    const done = fh.read(aligned, 0, end - start, start).then(({ bytesRead }) => {
      const skip = c.offset - start;
      return {
        stored: aligned.subarray(skip, skip + c.storedBytes),
        bytesRead: Math.max(0, Math.min(bytesRead - skip, c.storedBytes)),
        aligned,
      };
    });
    return { count: 1, done, giveBack: () => buffers.putAligned(aligned) };
  };
  const readAhead = object ? OBJECT_READ_AHEAD : READ_AHEAD;
  const inflight: Started[] = [];
  let next = 0;
  /** The read of the chunk the consumer has (its buffer goes back when it asks for the one after the read's last). */
  let held: Started | undefined;
  try {
    for (let n = 0; n < chunks.length;) {
      // The chunk the consumer needs waits for a buffer; reading ahead only uses room there is.
      while (next < chunks.length && inflight.length < readAhead) {
        const started = await read(next, inflight.length > 0);
        if (!started) break;
        // Its failure (a data object gone, the store unreachable) is the chunk's, raised when the loop gets there.
        void started.done.catch(() => undefined);
        inflight.push(started);
        next += started.count;
      }
      held = inflight.shift()!;
      let got: ChunkRead;
      try {
        got = await held.done;
      } catch (err) {
        if (!isMissing(err)) throw err;
        yield { kind: "missing" };
        return;
      }
      const first = chunks[n]!.offset;
      for (const end = n + held.count; n < end; n++) {
        const chunk = chunks[n]!;
        yield await frameOf(got.stored, got.bytesRead, chunk.offset - first, chunk, indices ? indices[n]! : skip + n, out);
      }
      held.giveBack();
      held = undefined;
    }
  } finally {
    // A consumer that stops early leaves reads in flight: their buffers go back once the
    // kernel is done with them (they count against the load budget until then), and they
    // must not become unhandled rejections (the FileHandle's close waits for them).
    held?.giveBack();
    for (const r of inflight) r.done.then(r.giveBack, r.giveBack);
    if (!packed) await fh.close();
  }
}

/** A bounded list of names for an error message. */
function listNames(names: readonly string[]): string {
  if (names.length === 0) return "none";
  const shown = names.slice(0, LIST_NAMES).map((n) => quote(n));
  return names.length > LIST_NAMES ? `${shown.join(", ")}, … (${names.length} in all)` : shown.join(", ");
}

/** The checkpoint's entries by item name and key, each key's copies by saving rank (lowest first), in the order first saved. */
class SavedEntries {
  private readonly byItem = new Map<string, Map<string, Copy[]>>();

  constructor(readonly manifest: Manifest) {
    for (const r of [...manifest.ranks].sort((a, b) => a.rank - b.rank))
      for (const item of r.items) {
        let keys = this.byItem.get(item.name);
        if (!keys) this.byItem.set(item.name, (keys = new Map()));
        for (const entry of item.entries) {
          let copies = keys.get(entry.key);
          if (!copies) keys.set(entry.key, (copies = []));
          copies.push({ rank: r.rank, item: item.name, entry });
        }
      }
  }

  get itemNames(): string[] {
    return [...this.byItem.keys()];
  }

  item(name: string): Map<string, Copy[]> {
    const keys = this.byItem.get(name);
    if (!keys)
      throw notFound(`checkpoint '${this.manifest.checkpointId}' holds no item ${quote(name)} (it has: ${listNames(this.itemNames)})`);
    return keys;
  }

  copies(item: string, key: string): Copy[] {
    const keys = this.item(item);
    const copies = keys.get(key);
    if (!copies)
      throw notFound(
        `item ${quote(item)} of checkpoint '${this.manifest.checkpointId}' holds no key ${quote(key)} (it has: ${listNames([...keys.keys()])})`,
      );
    return copies;
  }
}

/** How a key was saved: an object or unsharded tensor (read from its lowest-rank copy), or the shards of a global tensor. */
type Source =
  | { kind: "whole"; copy: Copy }
  | { kind: "sharded"; dtype: string; elementSize: number; globalShape: number[]; shards: { copy: Copy; region: Region }[] };

function sourceOf(item: string, key: string, copies: readonly Copy[]): Source {
  const name = `item ${quote(item)} key ${quote(key)}`;
  const tensors = copies.filter((c) => c.entry.tensor);
  if (tensors.length > 0 && tensors.length < copies.length)
    throw failedPrecondition(`${name} was saved as a tensor by some ranks and as an object by others; load it with source_rank`);
  const sharded = tensors.filter((c) => c.entry.tensor!.globalShape.length > 0);
  if (sharded.length === 0) return { kind: "whole", copy: copies[0]! };
  if (sharded.length < tensors.length)
    throw failedPrecondition(
      `${name} was saved as a shard by rank ${sharded[0]!.rank} and unsharded by rank ${tensors.find((c) => !c.entry.tensor!.globalShape.length)!.rank}; load it with source_rank`,
    );
  const first = sharded[0]!.entry.tensor!;
  for (const c of sharded) {
    const t = c.entry.tensor!;
    if (t.dtype !== first.dtype)
      throw failedPrecondition(`${name}: rank ${sharded[0]!.rank} saved a shard of dtype ${first.dtype}, rank ${c.rank} one of ${t.dtype}`);
    if (t.globalShape.length !== first.globalShape.length || t.globalShape.some((v, d) => v !== first.globalShape[d]))
      throw failedPrecondition(
        `${name}: rank ${sharded[0]!.rank} saved a shard of global shape [${first.globalShape.join(", ")}], rank ${c.rank} one of [${t.globalShape.join(", ")}]`,
      );
  }
  const elementSize = dtypeSize(first.dtype)!;
  if (!Number.isSafeInteger(volume(first.globalShape) * elementSize))
    throw failedPrecondition(`${name}: its global shape [${first.globalShape.join(", ")}] is too large to address`);
  // Shards saved alike by several ranks (data-parallel replicas) are read once, from the lowest.
  const seen = new Set<string>();
  const shards: { copy: Copy; region: Region }[] = [];
  for (const c of sharded) {
    const t = c.entry.tensor!;
    const id = `${t.globalOffsets.join(",")}/${t.shape.join(",")}`;
    if (seen.has(id)) continue;
    seen.add(id);
    shards.push({ copy: c, region: { offsets: t.globalOffsets, lengths: t.shape } });
  }
  return { kind: "sharded", dtype: first.dtype, elementSize, globalShape: first.globalShape, shards };
}

/** A non-negative safe integer list of a box, or INVALID_ARGUMENT naming it. */
function checkDims(what: string, values: readonly number[]): void {
  for (const v of values)
    if (!Number.isSafeInteger(v) || v < 0)
      throw invalidArgument(`${what} holds ${v}; every value must be a non-negative integer below 2^53`);
}

/** Plans a resharded load: the outputs of the boxes asked for, or of every entry as a rank of shard_as holds it. */
function planResharded(manifest: Manifest, spec: LoadSpec, place: (item: string, key: string, savedDevice: string) => string): Output[] {
  if (spec.boxes.length > 0 && spec.shardAs)
    throw invalidArgument("boxes and shard_as were both set: ask for boxes, or for a rank of a target sharding, not both");
  if (spec.boxes.length > MAX_BOXES)
    throw invalidArgument(`${spec.boxes.length} boxes were asked for; at most ${MAX_BOXES} are allowed in one Load`);
  const saved = new SavedEntries(manifest);
  const outputs: Output[] = [];
  let totalBytes = 0;
  /** Each key's source, planned once however many boxes ask for it. */
  const sources = new Map<string, Source>();
  const sourceFor = (item: string, key: string): Source => {
    const id = JSON.stringify([item, key]);
    let source = sources.get(id);
    if (!source) sources.set(id, (source = sourceOf(item, key, saved.copies(item, key))));
    return source;
  };
  const tiling = new Map<Source, boolean>();
  const boxOutput = (item: string, key: string, source: Extract<Source, { kind: "sharded" }>, box: Region): void => {
    const name = `item ${quote(item)} key ${quote(key)}`;
    const bytes = volume(box.lengths) * source.elementSize;
    totalBytes += bytes;
    if (totalBytes > MAX_RESHARD_BYTES)
      throw invalidArgument(`the boxes asked for add up to more than ${MAX_RESHARD_BYTES} bytes; load them in several requests`);
    let hits: number[];
    try {
      const regions = source.shards.map((s) => s.region);
      // Shards that tile the whole tensor cover every box exactly once: checked once per tensor,
      // so many boxes of a tensor of many shards cost one intersection per shard each.
      let tiles = tiling.get(source);
      if (tiles === undefined) {
        tiles = tilesWhole(source.globalShape, regions);
        tiling.set(source, tiles);
      }
      hits = tiles
        ? regions.flatMap((r, i) => (volume(box.lengths) > 0 && intersect(box, r) ? [i] : []))
        : coveringShards(box, regions, PAIRWISE_PER_BOX);
    } catch (err) {
      if (err instanceof CoverageError)
        throw failedPrecondition(
          `${name}: the saved shards of global shape [${source.globalShape.join(", ")}] do not cover the box (offsets [${box.offsets.join(", ")}], lengths [${box.lengths.join(", ")}]) exactly once: ${err.message}`,
        );
      throw err;
    }
    const shards = hits.map((i) => source.shards[i]!);
    const device = (shards[0] ?? source.shards[0]!).copy.entry.tensor!.device;
    const entry: EntryRecord = {
      key,
      kind: "tensor",
      tensor: { dtype: source.dtype, shape: box.lengths, device, globalShape: source.globalShape, globalOffsets: box.offsets },
      file: "",
      rawBytes: bytes,
      storedBytes: 0,
      chunks: [],
    };
    outputs.push({
      kind: "box",
      item,
      entry,
      targetDevice: place(item, key, device),
      globalShape: source.globalShape,
      box,
      elementSize: source.elementSize,
      shards,
    });
  };
  const wholeOutput = (copy: Copy): void => {
    totalBytes += copy.entry.rawBytes;
    const targetDevice = copy.entry.tensor ? place(copy.item, copy.entry.key, copy.entry.tensor.device) : "";
    outputs.push({ kind: "whole", copy, targetDevice });
  };

  if (spec.boxes.length > 0) {
    spec.boxes.forEach((b, i) => {
      checkName("boxes item", b.item);
      checkDims(`boxes[${i}].offsets`, b.offsets);
      checkDims(`boxes[${i}].lengths`, b.lengths);
      if (b.offsets.length !== b.lengths.length)
        throw invalidArgument(
          `boxes[${i}] has ${b.offsets.length} offsets and ${b.lengths.length} lengths; give one of each per dimension`,
        );
    });
    for (const b of spec.boxes) {
      const source = sourceFor(b.item, b.key);
      const name = `item ${quote(b.item)} key ${quote(b.key)}`;
      const whole = b.offsets.length === 0 && b.lengths.length === 0;
      let sharded: Extract<Source, { kind: "sharded" }>;
      if (source.kind === "whole") {
        const t = source.copy.entry.tensor;
        if (!t) {
          if (!whole) throw invalidArgument(`${name} is an object, not a tensor: ask for it with empty offsets and lengths`);
          wholeOutput(source.copy);
          continue;
        }
        // An unsharded tensor is its own only shard (planned once per key).
        const id = JSON.stringify([b.item, b.key, "whole"]);
        const known = sources.get(id);
        if (known?.kind === "sharded") {
          sharded = known;
        } else {
          sharded = {
            kind: "sharded",
            dtype: t.dtype,
            elementSize: dtypeSize(t.dtype)!,
            globalShape: t.shape,
            shards: [{ copy: source.copy, region: { offsets: t.shape.map(() => 0), lengths: t.shape } }],
          };
          sources.set(id, sharded);
        }
      } else sharded = source;
      const g = sharded.globalShape;
      const box: Region = whole ? { offsets: g.map(() => 0), lengths: [...g] } : { offsets: b.offsets, lengths: b.lengths };
      if (box.offsets.length !== g.length)
        throw invalidArgument(
          `the box of ${name} has ${box.offsets.length} dimensions; the tensor of global shape [${g.join(", ")}] has ${g.length}`,
        );
      if (box.offsets.some((o, d) => o + box.lengths[d]! > g[d]!))
        throw outOfRange(
          `the box of ${name} (offsets [${box.offsets.join(", ")}], lengths [${box.lengths.join(", ")}]) lies outside its global shape [${g.join(", ")}]`,
        );
      boxOutput(b.item, b.key, sharded, box);
    }
    return outputs;
  }

  const as = spec.shardAs!;
  if (!Number.isSafeInteger(as.worldSize) || as.worldSize < 1 || as.worldSize > MAX_WORLD_SIZE)
    throw invalidArgument(`shard_as.world_size ${as.worldSize} must be between 1 and ${MAX_WORLD_SIZE}`);
  if (!Number.isSafeInteger(as.rank) || as.rank < 0 || as.rank >= as.worldSize)
    throw invalidArgument(`shard_as.rank ${as.rank} is out of range for shard_as.world_size ${as.worldSize} (ranks 0-${as.worldSize - 1})`);
  if (as.dim !== undefined && (!Number.isSafeInteger(as.dim) || as.dim < 0 || as.dim >= LIMITS.repeatedCount))
    throw invalidArgument(`shard_as.dim ${as.dim} must be a dimension index`);
  if (as.sizes.length > 0) {
    if (as.replicate) throw invalidArgument("shard_as.sizes was set with shard_as.replicate: a replicated tensor is not split");
    if (as.sizes.length !== as.worldSize)
      throw invalidArgument(`shard_as.sizes has ${as.sizes.length} values; give one per rank of shard_as.world_size ${as.worldSize}`);
    checkDims("shard_as.sizes", as.sizes);
  }
  const names = spec.items.length > 0 ? spec.items : saved.itemNames;
  for (const item of names) saved.item(item);
  for (const item of names) {
    for (const [key, copies] of saved.item(item)) {
      const source = sourceOf(item, key, copies);
      if (source.kind === "whole") {
        wholeOutput(source.copy);
        continue;
      }
      const name = `item ${quote(item)} key ${quote(key)}`;
      const g = source.globalShape;
      if (as.replicate) {
        boxOutput(item, key, source, { offsets: g.map(() => 0), lengths: [...g] });
        continue;
      }
      let dim = as.dim;
      if (dim === undefined) {
        const split = g
          .map((_, d) => d)
          .filter((d) => source.shards.some((s) => s.region.offsets[d] !== source.shards[0]!.region.offsets[d]));
        if (split.length > 1)
          throw failedPrecondition(
            `${name} was saved split along dimensions ${split.join(" and ")} of its global shape [${g.join(", ")}]; pass shard_as.dim, or ask for boxes`,
          );
        dim = split[0] ?? 0;
      }
      if (dim >= g.length) throw invalidArgument(`shard_as.dim ${dim} is not a dimension of ${name}, of global shape [${g.join(", ")}]`);
      if (as.sizes.length > 0) {
        const sum = as.sizes.reduce((a, b) => a + b, 0);
        if (sum !== g[dim])
          throw invalidArgument(
            `shard_as.sizes add up to ${sum}, but dimension ${dim} of ${name} (global shape [${g.join(", ")}]) has ${g[dim]} elements`,
          );
      }
      boxOutput(item, key, source, shardBox(g, dim, as.rank, as.worldSize, as.sizes));
    }
  }
  return outputs;
}

/**
 * A plain load by a job of another world size: refused when an item it loads holds shards
 * (one saved rank's shard is not what a rank of another world size holds).
 */
function refuseShardsOfOtherWorld(manifest: Manifest, items: readonly string[], worldSize: number): void {
  const wanted = items.length > 0 ? new Set(items) : undefined;
  for (const r of manifest.ranks)
    for (const item of r.items) {
      if (wanted && !wanted.has(item.name)) continue;
      const shard = item.entries.find((e) => e.tensor && e.tensor.globalShape.length > 0);
      if (shard)
        throw failedPrecondition(
          `item '${item.name}' holds shards saved by world size ${manifest.worldSize} (e.g. key ${quote(shard.key)}, a shard of global shape ` +
            `[${shard.tensor!.globalShape.join(", ")}]), and this loader has world size ${worldSize}: pass shard_as or boxes to reshard ` +
            `on load, or source_rank to read one saved rank's shard as is`,
        );
    }
}

/** Adds to `list` (ascending) the chunks, by their raw `starts`, that hold bytes [from, to). */
export function markChunks(list: number[], starts: readonly number[], from: number, to: number): void {
  // The chunk that holds `from`: the last whose start is at most `from`, among those not empty.
  let lo = 0;
  let hi = starts.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= from) lo = mid;
    else hi = mid - 1;
  }
  for (let i = lo; i < starts.length - 1 && starts[i]! < to; i++) {
    // Chunks wholly before the range, and empty ones, hold none of its bytes.
    if (starts[i + 1]! <= from || starts[i + 1] === starts[i]) continue;
    if (list.length === 0 || list[list.length - 1]! < i) list.push(i);
  }
}

/**
 * Reads one shard's chunks a box needs, in order (reading ahead), and holds the one decoded
 * last: the box's walk asks for byte offsets that only grow.
 */
class ShardCursor {
  private reads: AsyncGenerator<EntryChunk> | undefined;
  private next = 0;
  private current: { start: number; data: Buffer } | undefined;
  private decoded: Buffer | undefined;

  constructor(
    private readonly checkpointId: string,
    private readonly base: DataBase,
    private readonly copy: Copy,
    private readonly starts: readonly number[],
    private readonly needed: readonly number[],
    private readonly buffers: ReadBuffers,
    private readonly onStoredRead: (bytes: number) => void,
  ) {}

  /** The decoded chunk that holds raw byte `pos` of the shard, and where it starts. */
  async at(pos: number): Promise<{ start: number; data: Buffer }> {
    const { entry, rank, item } = this.copy;
    while (!this.current || pos >= this.current.start + this.current.data.length) {
      if (this.next >= this.needed.length)
        throw new Error(`item '${item}' key '${entry.key}' rank ${rank}: byte ${pos} lies outside the chunks the box needs`);
      // Its own file handle and decode buffer: the cursors of a box's shards read side by side.
      this.reads ??= readEntryChunks(
        this.base,
        this.copy,
        this.needed,
        this.buffers,
        undefined,
        async () => (this.decoded = await this.buffers.get(LZ4_MAX_BLOCK))!,
      );
      const i = this.needed[this.next++]!;
      const r = await this.reads.next();
      if (r.done) throw new Error(`item '${item}' key '${entry.key}' rank ${rank}: the read of chunk ${i} ended early`);
      const got = r.value;
      if (got.kind === "missing")
        throw dataLoss(
          `rank ${rank} item '${item}' key '${entry.key}': stored file ${entry.file} is missing (or the checkpoint was deleted during the load)`,
        );
      this.onStoredRead(got.chunk.storedBytes);
      if (got.kind === "damaged") throw corruptChunk(this.checkpointId, rank, item, entry, got);
      this.current = { start: this.starts[i]!, data: got.data };
    }
    return this.current;
  }

  /** Gives back the buffers and closes the file (after the reads in flight). */
  async close(): Promise<void> {
    this.current = undefined;
    const reads = this.reads;
    this.reads = undefined;
    // A cursor closed once is not reopened: the walk has no segment of its shard left.
    this.next = this.needed.length;
    await reads?.return(undefined);
    if (this.decoded) this.buffers.put(this.decoded);
    this.decoded = undefined;
  }
}
