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
 */
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { allocateAligned, DIRECT_ALIGN } from "./buffer-pool.js";
import { ByteBudget } from "./byte-budget.js";
import type { Catalog } from "./catalog.js";
import { ChunkCorruptError, decodeChunk, LZ4_MAX_BLOCK, RAW_FRAME_OVERHEAD, type StoredChunk } from "./codec.js";
import { dataLoss, invalidArgument, notFound } from "./errors.js";
import type { CheckpointSummary, EntryRecord, ItemRecord, Manifest } from "./manifest.js";
import { itemDirName, PACK_FILE_NAME } from "./manifest.js";
import { quote } from "./limits.js";
import { checkName } from "./names.js";
import type { DataDir } from "./storage.js";

export interface LoadSpec {
  job: string;
  checkpointId: string;
  rank: number;
  localRank: number;
  devices: string[];
  mapLocation: Record<string, string>;
  items: string[];
  sourceRank: number | undefined;
}

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
}

/** Where a Load stream stands: the last entry it sent (counted across the plan's items, -1 before any) and how many of its chunks. */
export interface LoadPosition {
  entry: number;
  chunk: number;
}

export type LoadPart =
  { kind: "entry"; item: string; entry: EntryRecord; targetDevice: string } | { kind: "chunk"; data: Buffer; crc32c: number };

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
    private readonly dataDir: DataDir,
    private readonly catalog: Catalog,
  ) {}

  async plan(spec: LoadSpec): Promise<LoadPlan> {
    checkName("job", spec.job);
    const checkpoint = this.catalog.get(spec.job, spec.checkpointId);
    const manifest = await this.catalog.readManifest(checkpoint);
    for (const [what, n] of [
      ["rank", spec.rank],
      ["local_rank", spec.localRank],
      ["source_rank", spec.sourceRank ?? 0],
    ] as const)
      if (!Number.isSafeInteger(n) || n < 0) throw invalidArgument(`${what} ${n} must be a non-negative integer`);
    for (const name of spec.items) checkName("item", name);
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
    const overrides = new Map(Object.entries(spec.mapLocation));
    for (const [from, to] of overrides)
      if (!from || !to) throw invalidArgument(`map_location entry ${quote(from)} -> ${quote(to)} is empty`);
    for (const d of spec.devices) if (!d) throw invalidArgument("devices holds an empty device name");
    const mapLocation = new Map<string, string>();
    const placements: Placement[] = [];
    let totalBytes = 0;
    for (const item of items) {
      for (const e of item.entries) {
        totalBytes += e.rawBytes;
        if (!e.tensor) continue;
        const saved = e.tensor.device || "cpu";
        let target = mapLocation.get(saved);
        if (target === undefined) mapLocation.set(saved, (target = mapDevice(saved, spec.devices, spec.localRank, overrides)));
        placements.push({ item: item.name, key: e.key, savedDevice: saved, targetDevice: target });
      }
    }
    return { checkpoint, manifest, sourceRank, items, mapLocation, placements, totalBytes };
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
  async *stream(plan: LoadPlan, from: LoadPosition = { entry: -1, chunk: 0 }): AsyncGenerator<LoadPart> {
    const buffers = new ReadBuffers();
    try {
      yield* this.parts(plan, from, buffers);
    } finally {
      buffers.recycle();
    }
  }

  private async *parts(plan: LoadPlan, from: LoadPosition, buffers: ReadBuffers): AsyncGenerator<LoadPart> {
    const base = this.dataDir.checkpointDir(plan.manifest.job, plan.manifest.checkpointId);
    let entryNo = -1;
    for (const item of plan.items) {
      const dir = path.join(base, itemDirName(plan.sourceRank, item.name));
      // The item's pack file stays open across its entries: one open per small tensor cost
      // more than reading it.
      let pack: { fh: fsp.FileHandle; direct: boolean } | undefined;
      try {
        for (const entry of item.entries) {
          entryNo++;
          if (entryNo < from.entry) continue;
          const resumed = entryNo === from.entry;
          const skip = resumed ? from.chunk : 0;
          const targetDevice = entry.tensor ? (plan.mapLocation.get(entry.tensor.device || "cpu") ?? "cpu") : "";
          if (!resumed) yield { kind: "entry", item: item.name, entry, targetDevice };
          if (entry.chunks.length <= skip) continue;
          // The decode buffer first, before any read holds buffers: streams that hold read
          // buffers while they wait for a decode buffer would wait on each other.
          if (entry.chunks.some((c) => !c.raw)) await buffers.decodeBuffer();
          const packed = entry.file === PACK_FILE_NAME;
          let fh: fsp.FileHandle;
          let direct: boolean;
          try {
            ({ fh, direct } = (packed ? pack : undefined) ?? (await openForRead(path.join(dir, entry.file), entry.chunks, buffers)));
            if (packed) pack = { fh, direct };
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === "ENOENT")
              throw dataLoss(
                `item '${item.name}' key '${entry.key}': stored file ${entry.file} is missing (or the checkpoint was deleted during the load)`,
              );
            throw err;
          }
          try {
            let i = skip;
            for await (const { stored, bytesRead } of readAhead(fh, skip > 0 ? entry.chunks.slice(skip) : entry.chunks, buffers, direct)) {
              const c = entry.chunks[i]!;
              try {
                if (bytesRead !== c.storedBytes) throw new ChunkCorruptError(`file is truncated (${bytesRead} of ${c.storedBytes} bytes)`);
                const out = c.raw ? undefined : await buffers.decodeBuffer();
                yield { kind: "chunk", data: await decodeChunk(stored, c, out), crc32c: c.crc32c };
              } catch (err) {
                if (err instanceof ChunkCorruptError)
                  throw dataLoss(
                    `checkpoint '${plan.manifest.checkpointId}' rank ${plan.sourceRank} item '${item.name}' key '${entry.key}' chunk ${i} ` +
                      `(file ${entry.file}, offset ${c.offset}) is corrupt: ${err.message}`,
                  );
                throw err;
              }
              i++;
            }
          } finally {
            if (!packed) await fh.close();
          }
        }
      } finally {
        await pack?.fh.close();
      }
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
    const base = this.dataDir.checkpointDir(job, summary.checkpointId);
    const buffers = new ReadBuffers();
    const damaged: ChunkDamage[] = [];
    let chunks = 0;
    let bytes = 0;
    // The buffers count against the load budget: they go back however the check ends.
    try {
      for (const rank of manifest.ranks) {
        for (const item of rank.items) {
          const rel = itemDirName(rank.rank, item.name);
          for (const entry of item.entries) {
            if (entry.chunks.length === 0) continue;
            const file = `${rel}/${entry.file}`;
            const where = (chunkIndex: number, offset: number, problem: string) =>
              damaged.push({ rank: rank.rank, item: item.name, key: entry.key, chunkIndex, file, offset, problem });
            let fh: fsp.FileHandle;
            try {
              fh = await fsp.open(path.join(base, file), "r");
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
              entry.chunks.forEach((c, i) => where(i, c.offset, "file is missing"));
              continue;
            }
            try {
              let i = 0;
              for await (const { stored, bytesRead } of readAhead(fh, entry.chunks, buffers)) {
                const c = entry.chunks[i]!;
                chunks++;
                try {
                  if (bytesRead !== c.storedBytes)
                    throw new ChunkCorruptError(`file is truncated (${bytesRead} of ${c.storedBytes} bytes)`);
                  await decodeChunk(stored, c, c.raw ? undefined : await buffers.decodeBuffer());
                  bytes += c.rawBytes;
                } catch (err) {
                  if (!(err instanceof ChunkCorruptError)) throw err;
                  where(i, c.offset, err.message);
                }
                i++;
              }
            } finally {
              await fh.close();
            }
          }
        }
      }
    } finally {
      buffers.recycle();
    }
    return { checkpointId: summary.checkpointId, chunks, bytes, damaged };
  }
}

/** Chunks a stream reads ahead of the one being decoded and sent. */
const READ_AHEAD = 4;
/** Read buffers of at least this size are kept for reuse; smaller ones are left to the GC. */
const REUSE_MIN_BYTES = 64 << 10;

/** Entry files at least this large are read with O_DIRECT where the filesystem allows it. */
const DIRECT_READ_MIN_BYTES = 1 << 20;
/** An aligned read covers a chunk's frame (at most 4 MiB + 15 bytes) widened to block boundaries at both ends. */
const DIRECT_READ_BUFFER_BYTES = LZ4_MAX_BLOCK + 3 * DIRECT_ALIGN;
/** False once O_DIRECT reads turned out not to work here (no buffer alignment passes): buffered from then on. */
let directReadsWork = fs.constants.O_DIRECT !== undefined;

/**
 * Opens an entry file for reading: with O_DIRECT when it is large and the filesystem
 * allows it (loads then skip the page cache: a checkpoint read once does not evict the
 * node's working set, and the kernel does not copy every byte once more), else buffered.
 */
async function openForRead(
  file: string,
  chunks: readonly StoredChunk[],
  buffers: ReadBuffers,
): Promise<{ fh: fsp.FileHandle; direct: boolean }> {
  const last = chunks[chunks.length - 1];
  // The entry's bytes, not the file's end: a packed entry may lie far into a pack file.
  const size = last ? last.offset + last.storedBytes - chunks[0]!.offset : 0;
  if (directReadsWork && size >= DIRECT_READ_MIN_BYTES) {
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
      directReadsWork = false;
      await fh.close();
    }
  }
  return { fh: await fsp.open(file, "r"), direct: false };
}

type BufferKind = "plain" | "aligned" | "decode";

/** Size of each pooled read buffer, by kind: any stored chunk's frame fits a plain one. */
const KIND_BYTES: Record<BufferKind, number> = {
  plain: LZ4_MAX_BLOCK + RAW_FRAME_OVERHEAD,
  aligned: DIRECT_READ_BUFFER_BYTES,
  decode: LZ4_MAX_BLOCK,
};

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
  budget = new ByteBudget(Number.MAX_SAFE_INTEGER);
  /** Streams with buffers of their own (ReadBuffers not yet recycled). */
  active = 0;
  private readonly waiters: (() => void)[] = [];
  private readonly spare: Record<BufferKind, Buffer[]> = { plain: [], aligned: [], decode: [] };

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
    for (const kind of ["plain", "aligned", "decode"] as const)
      while (!this.budget.fits(bytes) && this.spare[kind].pop()) this.budget.give(KIND_BYTES[kind]);
  }
}

const memory = new ReadMemory();
/** How long a stream waits for room before it takes a buffer it cannot do without anyway. */
const MUST_WAIT_MS = 1_000;

/** Sets the budget the read buffers of all load streams count against (the daemon's --load-budget-mib). */
export function setLoadBudget(budget: ByteBudget): void {
  memory.budget = budget;
}

/**
 * Reusable read buffers of one stream. Allocating a fresh 4 MiB buffer per chunk costs page
 * faults on every read and leaves the memory to the garbage collector (RSS grows with the
 * load rate); a stream instead cycles through up to READ_AHEAD + 1 buffers, taken from
 * (and given back to, by recycle) the buffers all streams share.
 */
export class ReadBuffers {
  private readonly free: Buffer[] = [];
  private readonly freeAligned: Buffer[] = [];
  /** Offset into a fresh backing store that aligned the last one (allocations tend to repeat it). */
  private lastShift = 0;
  private decoded: Buffer | undefined;
  /** Set by recycle: a read abandoned in flight gives its buffer back after the stream ended. */
  private recycled = false;
  /** Buffers this stream took from the shared memory and has not given back. */
  private owned = 0;

  constructor() {
    memory.active++;
  }

  /** The buffer compressed chunks are decoded into (one chunk at a time). */
  async decodeBuffer(): Promise<Buffer> {
    return (this.decoded ??= (await this.take("decode", () => Buffer.allocUnsafeSlow(LZ4_MAX_BLOCK), false))!);
  }

  /** Hands every buffer this stream is done with to the streams that come next, and any put from now on. */
  recycle(): void {
    if (this.recycled) return;
    this.recycled = true;
    memory.active--;
    for (const b of this.free.splice(0)) this.giveBack("plain", b);
    for (const b of this.freeAligned.splice(0)) this.giveBack("aligned", b);
    if (this.decoded) this.giveBack("decode", this.decoded);
    this.decoded = undefined;
  }

  /** A buffer from the shared memory; an optional one only within the stream's share. */
  private async take(kind: BufferKind, make: () => Buffer | undefined, optional: boolean): Promise<Buffer | undefined> {
    if (optional && this.owned >= memory.share) return undefined;
    const b = optional ? memory.tryTake(kind, make) : await memory.take(kind, make);
    if (b) this.owned++;
    return b;
  }

  private giveBack(kind: BufferKind, b: Buffer): void {
    this.owned--;
    memory.put(kind, b);
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
    if (this.recycled || memory.waiting) this.giveBack("plain", whole);
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
    if (this.recycled || memory.waiting) this.giveBack("aligned", buf);
    else this.freeAligned.push(buf);
  }
}

interface ChunkRead {
  stored: Buffer;
  bytesRead: number;
  /** The aligned buffer `stored` lies in, for a direct read. */
  aligned?: Buffer;
}

/**
 * An entry's stored chunks in order, read READ_AHEAD ahead: the disk reads the next chunks
 * while chunk i is decoded, checked and sent. A chunk's buffer (and any view of it, such as
 * a raw chunk's data) is reused once the consumer asks for the next chunk. With `direct`
 * (`fh` opened with O_DIRECT) each read covers the chunk's frame widened to whole blocks.
 */
async function* readAhead(
  fh: fsp.FileHandle,
  chunks: readonly StoredChunk[],
  buffers: ReadBuffers,
  direct = false,
): AsyncGenerator<{ stored: Buffer; bytesRead: number }> {
  /** A read in flight, and how to give its buffer back. */
  interface Started {
    done: Promise<ChunkRead>;
    giveBack: () => void;
  }
  /** Starts the read of `c` once it has a buffer; undefined when `optional` and no buffer is to be had now. */
  const read = async (c: StoredChunk, optional: boolean): Promise<Started | undefined> => {
    if (!direct) {
      const stored = await buffers.get(c.storedBytes, optional);
      if (!stored) return undefined;
      return {
        done: fh.read(stored, 0, c.storedBytes, c.offset).then(({ bytesRead }) => ({ stored, bytesRead })),
        giveBack: () => buffers.put(stored),
      };
    }
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
    return { done, giveBack: () => buffers.putAligned(aligned) };
  };
  const inflight: Started[] = [];
  let next = 0;
  /** The chunk the consumer has (its buffer goes back when it asks for the next). */
  let held: Started | undefined;
  try {
    for (let i = 0; i < chunks.length; i++) {
      // The chunk the consumer needs waits for a buffer; reading ahead only uses room there is.
      while (next < chunks.length && inflight.length < READ_AHEAD) {
        const started = await read(chunks[next]!, inflight.length > 0);
        if (!started) break;
        inflight.push(started);
        next++;
      }
      held = inflight.shift()!;
      yield await held.done;
      held.giveBack();
      held = undefined;
    }
  } finally {
    // A consumer that stops early leaves reads in flight: their buffers go back once the
    // kernel is done with them (they count against the load budget until then), and they
    // must not become unhandled rejections (the FileHandle's close waits for them).
    held?.giveBack();
    for (const r of inflight) r.done.then(r.giveBack, r.giveBack);
  }
}
