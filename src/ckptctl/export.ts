/**
 * `ckptctl export`: writes the raw bytes of a checkpoint's entries to plain files, one per
 * entry, plus an index.json describing them, so the data can be read without ckptd.
 *
 * Bytes are streamed: each chunk of the Load stream is written to its file before the next
 * message is pulled, so the stream (and, through HTTP/2 flow control, the daemon) waits for
 * the disk and memory holds a few chunks at most, whatever the tensor's size.
 */
import { createHash } from "node:crypto";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { SingleBar } from "cli-progress";
import { Code, CkptdError, type Checkpoint, type LoadEntry, type LoadRequest } from "@ckptd/client";
import type { Connection } from "./connection.js";
import { UsageError } from "./failure.js";
import { bytes, dtypeName } from "./output.js";

/** What to export. */
export interface ExportRequest {
  job: string;
  /** An id or "latest"; resolved once, so every rank comes from the same checkpoint. */
  checkpointId: string;
  out: string;
  /** Only this rank's shard; all ranks when undefined. */
  rank?: number;
  /** Only this item; all items when undefined. */
  item?: string;
  /** Show a progress bar on stderr. */
  progress: boolean;
}

/** One exported entry, as index.json lists it. */
export interface IndexEntry {
  rank: number;
  item: string;
  key: string;
  /** Path of the file relative to the export directory, with '/' separators. */
  file: string;
  kind: "tensor" | "object";
  /** Tensor dtype as torch names it ("float32", "bfloat16"); null for objects. */
  dtype: string | null;
  shape: number[] | null;
  /** The device the tensor was saved from; null for objects. */
  device: string | null;
  /** For a shard of a larger tensor: the global shape and this shard's offsets. */
  globalShape?: number[];
  globalOffsets?: number[];
  /** Bytes in the file. */
  size: number;
  /** How an object was serialised ("pickle", "json", ...); null for tensors. */
  format: string | null;
  /** SHA-256 of the file's bytes, hex. */
  sha256: string;
}

/** The contents of index.json. */
export interface ExportIndex {
  job: string;
  checkpointId: string;
  step: number;
  worldSize: number;
  ranks: number[];
  totalBytes: number;
  entries: IndexEntry[];
}

/** Exports the checkpoint and returns the index it wrote to `<out>/index.json`. */
export async function exportCheckpoint(conn: Connection, req: ExportRequest): Promise<ExportIndex> {
  const checkpoint = await conn.client.getCheckpoint(req.job, req.checkpointId, conn.unaryOptions());
  const ranks = ranksToExport(checkpoint, req);
  const expected = new Map(ranks.map((r) => [r, rawBytesOf(checkpoint, r, req.item)]));

  await fsp.mkdir(req.out, { recursive: true });
  const bar = req.progress ? progressBar() : undefined;
  const total = () => [...expected.values()].reduce((a, b) => a + b, 0);
  bar?.start(total(), 0, { done: bytes(0), size: bytes(total()), rank: "" });
  let done = 0;
  const entries: IndexEntry[] = [];
  try {
    for (const rank of ranks) {
      const names = new FileNames();
      const request: LoadRequest = {
        job: req.job,
        checkpointId: checkpoint.checkpointId,
        rank,
        sourceRank: rank,
        localRank: 0,
        devices: [],
        mapLocation: {},
        items: req.item === undefined ? [] : [req.item],
      };
      const where = `${req.job}/${checkpoint.checkpointId} rank ${rank}`;
      let current:
        { entry: LoadEntry; file: fsp.FileHandle; index: IndexEntry; written: number; hash: ReturnType<typeof createHash> } | undefined;
      let streamed = 0;
      let planned: number | undefined;
      const finishEntry = async () => {
        if (!current) return;
        const c = current;
        current = undefined;
        await c.file.close();
        if (c.written !== c.entry.sizeBytes) {
          throw new CkptdError(
            Code.DATA_LOSS,
            `${where}: entry ${c.entry.item}/${c.entry.key} streamed ${c.written} bytes, ${c.entry.sizeBytes} were announced`,
          );
        }
        c.index.sha256 = c.hash.digest("hex");
        entries.push(c.index);
      };
      try {
        // The client checks each chunk's CRC-32C in transit; leaving the loop early cancels the call.
        for await (const msg of conn.client.load(request, conn.streamOptions())) {
          if (msg.type === "plan") {
            planned = msg.plan.totalBytes;
            expected.set(rank, planned);
            bar?.setTotal(total());
          } else if (msg.type === "entry") {
            if (planned === undefined) throw outOfOrder(where, "an entry before the plan");
            await finishEntry();
            const e = msg.entry;
            const kind = e.kind === "tensor" || e.tensor ? "tensor" : "object";
            const rel = names.fileFor(rank, e.item, e.key, kind === "tensor" ? ".bin" : ".obj");
            const abs = path.join(req.out, ...rel.split("/"));
            await fsp.mkdir(path.dirname(abs), { recursive: true });
            const file = await openForWrite(abs);
            const index: IndexEntry = {
              rank,
              item: e.item,
              key: e.key,
              file: rel,
              kind,
              dtype: e.tensor ? dtypeName(e.tensor.dtype) : null,
              shape: e.tensor ? e.tensor.shape : null,
              device: e.tensor ? e.tensor.device : null,
              size: e.sizeBytes,
              format: e.object ? e.object.format : null,
              sha256: "",
            };
            if (e.tensor && e.tensor.globalShape.length > 0) {
              index.globalShape = e.tensor.globalShape;
              index.globalOffsets = e.tensor.globalOffsets;
            }
            current = { entry: e, file, index, written: 0, hash: createHash("sha256") };
          } else {
            if (!current) throw outOfOrder(where, "a chunk outside an entry");
            const { data } = msg;
            if (current.written + data.byteLength > current.entry.sizeBytes) {
              throw new CkptdError(
                Code.DATA_LOSS,
                `${where}: entry ${current.entry.item}/${current.entry.key} streamed more than the announced ${current.entry.sizeBytes} bytes`,
              );
            }
            await writeAll(current.file, data);
            current.hash.update(data);
            current.written += data.byteLength;
            streamed += data.byteLength;
            done += data.byteLength;
            bar?.update(done, { done: bytes(done), size: bytes(total()), rank: `rank ${rank}` });
          }
        }
        await finishEntry();
      } finally {
        await current?.file.close().catch(() => undefined);
      }
      if (planned === undefined) throw outOfOrder(where, "no plan");
      if (streamed !== planned) throw new CkptdError(Code.DATA_LOSS, `${where}: streamed ${streamed} bytes, the plan announced ${planned}`);
    }
  } finally {
    bar?.stop();
  }

  const index: ExportIndex = {
    job: req.job,
    checkpointId: checkpoint.checkpointId,
    step: checkpoint.step,
    worldSize: checkpoint.worldSize,
    ranks,
    totalBytes: entries.reduce((n, e) => n + e.size, 0),
    entries,
  };
  // Written last and renamed into place: an index.json means the export is complete.
  const indexPath = path.join(req.out, "index.json");
  const tmp = `${indexPath}.tmp-${process.pid}`;
  await fsp.writeFile(tmp, JSON.stringify(index, null, 2) + "\n");
  await fsp.rename(tmp, indexPath);
  return index;
}

function ranksToExport(c: Checkpoint, req: ExportRequest): number[] {
  const all = Array.from({ length: c.worldSize }, (_, i) => i);
  if (req.rank !== undefined && req.rank >= c.worldSize) {
    throw new UsageError(`--rank ${req.rank}: checkpoint ${c.job}/${c.checkpointId} has ranks 0..${c.worldSize - 1}`);
  }
  let ranks = req.rank === undefined ? all : [req.rank];
  if (req.item !== undefined) {
    const item = req.item;
    const hasItem = (r: number) => c.ranks.some((m) => m.rank === r && m.items.some((it) => it.name === item));
    // A rank that did not save the item is skipped rather than failing the whole export.
    ranks = ranks.filter(hasItem);
    if (ranks.length === 0) {
      const names = [...new Set(c.ranks.flatMap((m) => m.items.map((it) => it.name)))].sort();
      const scope = req.rank === undefined ? "no rank" : `rank ${req.rank}`;
      throw new CkptdError(
        Code.NOT_FOUND,
        `${scope} of checkpoint ${c.job}/${c.checkpointId} saved item ${item} (items: ${names.join(", ") || "none"})`,
      );
    }
  }
  return ranks;
}

function rawBytesOf(c: Checkpoint, rank: number, item: string | undefined): number {
  const m = c.ranks.find((r) => r.rank === rank);
  if (!m) return 0;
  return m.items.filter((it) => item === undefined || it.name === item).reduce((n, it) => n + it.rawBytes, 0);
}

function outOfOrder(where: string, what: string): CkptdError {
  return new CkptdError(Code.INTERNAL, `the daemon's Load stream of ${where} is out of order: it sent ${what}`);
}

async function openForWrite(file: string): Promise<fsp.FileHandle> {
  try {
    return await fsp.open(file, "w");
  } catch (err) {
    throw new UsageError(`cannot write ${file}: ${(err as Error).message}`);
  }
}

async function writeAll(fh: fsp.FileHandle, data: Buffer): Promise<void> {
  let off = 0;
  while (off < data.byteLength) {
    const { bytesWritten } = await fh.write(data, off, data.byteLength - off);
    off += bytesWritten;
  }
}

function progressBar(): SingleBar {
  return new SingleBar({
    stream: process.stderr,
    format: "exporting |{bar}| {percentage}% {done}/{size} {rank} eta {eta_formatted}",
    hideCursor: true,
    clearOnComplete: false,
    fps: 5,
  });
}

/** Entry keys may hold any character but NUL; this many characters of one survive in a file name. */
const MAX_NAME = 160;

/**
 * File names for entries: the key with anything but [A-Za-z0-9._-] replaced by '_', made
 * unique within its item directory (also when compared without case, for case-insensitive
 * file systems) by a suffix with a hash of the key.
 */
export class FileNames {
  private readonly used = new Set<string>();

  fileFor(rank: number, item: string, key: string, ext: string): string {
    const dir = `rank-${String(rank).padStart(5, "0")}/${sanitise(item)}`;
    let base = sanitise(key);
    if (base.length > MAX_NAME) base = `${base.slice(0, MAX_NAME)}~${shortHash(key)}`;
    let name = `${dir}/${base}${ext}`;
    if (this.used.has(name.toLowerCase())) {
      name = `${dir}/${base}~${shortHash(key)}${ext}`;
      for (let n = 2; this.used.has(name.toLowerCase()); n++) name = `${dir}/${base}~${shortHash(key)}-${n}${ext}`;
    }
    this.used.add(name.toLowerCase());
    return name;
  }
}

/** A single safe path component: never empty, never starting with '.', never a separator. */
export function sanitise(name: string): string {
  const s = name.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\./, "_");
  return s === "" ? "_" : s;
}

function shortHash(s: string): string {
  return createHash("sha256").update(s).digest("hex").slice(0, 8);
}
