/**
 * PosixStorage: the Storage of a data directory on a local (POSIX) filesystem. Keys are
 * paths under the directory; durability is fsync of files and of the directories whose
 * entries changed; a put is a tmp file, fsync, rename; publishing is one rename (the
 * whole data directory is one filesystem). Data files are written by the item writer
 * through `localPath` with O_DIRECT (direct-io.ts).
 */
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { injectFault } from "../common/faults.js";
import { appendWhole, createFileDurable, DataDir, fsyncDir, removeTree, writeFileDurable, type WriteAt } from "./files.js";
import { DEFAULT_LOCK_NAME, isRankDirName, joinKey, layout, MANIFEST_NAME } from "./layout.js";
import type { ObjectStat, ObjectWriter, PublishRequest, Storage } from "./storage.js";

function isAbsent(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

export class PosixStorage implements Storage {
  /** Paths and the lock. */
  readonly dataDir: DataDir;

  /**
   * @param lockName the lock file's name: one per node when several daemons share the directory.
   * @param writeAt how log appends write (a seam for tests injecting short and failing writes).
   */
  constructor(
    root: string,
    lockName = DEFAULT_LOCK_NAME,
    private readonly writeAt?: WriteAt,
  ) {
    this.dataDir = new DataDir(root, lockName);
  }

  get root(): string {
    return this.dataDir.root;
  }

  /** This daemon's scratch directory (emptied by lock()). */
  get tmpDir(): string {
    return this.dataDir.tmpDir;
  }

  where(key: string): string {
    return key === "" ? this.root : path.join(this.root, ...key.split("/"));
  }

  localPath(key: string): string {
    return this.where(key);
  }

  lock(): void {
    this.dataDir.lock();
  }

  unlock(): void {
    this.dataDir.unlock();
  }

  async put(key: string, data: string | Buffer): Promise<void> {
    await writeFileDurable(this.where(key), data);
  }

  create(key: string, data: string | Buffer): Promise<boolean> {
    return createFileDurable(this.where(key), data);
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await fsp.readFile(this.where(key));
    } catch (err) {
      if (isAbsent(err)) return undefined;
      throw err;
    }
  }

  async getRange(key: string, offset: number, length: number, into?: Buffer): Promise<Buffer | undefined> {
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(this.where(key), "r");
    } catch (err) {
      if (isAbsent(err)) return undefined;
      throw err;
    }
    try {
      const buf = into ?? Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    } finally {
      await fh.close();
    }
  }

  /**
   * A buffered file writer (the item writer keeps its own O_DIRECT path through localPath;
   * this serves callers that only have the Storage): finish fsyncs the file and its directory.
   */
  createObjectWriter(key: string, _options?: { sizeHint?: number }): ObjectWriter {
    const file = this.where(key);
    let fh: Promise<fsp.FileHandle> | undefined;
    const open = () => (fh ??= fsp.mkdir(path.dirname(file), { recursive: true }).then(() => fsp.open(file, "w")));
    return {
      write: async (data) => {
        const h = await open();
        for (let done = 0; done < data.length;) done += (await h.write(data, done, data.length - done)).bytesWritten;
      },
      finish: async () => {
        const h = await open();
        try {
          await h.sync();
        } finally {
          await h.close();
        }
        await fsyncDir(path.dirname(file));
      },
      abort: async () => {
        await (await fh?.catch(() => undefined))?.close().catch(() => undefined);
        await fsp.rm(file, { force: true });
      },
    };
  }

  dataPrefix(job: string, checkpointId: string, _attempt: number): string {
    return layout.checkpoint(job, checkpointId);
  }

  async stat(key: string): Promise<ObjectStat | undefined> {
    try {
      const st = await fsp.lstat(this.where(key));
      return { kind: st.isFile() ? "object" : st.isDirectory() ? "prefix" : "other", size: st.size };
    } catch (err) {
      if (isAbsent(err)) return undefined;
      throw err;
    }
  }

  async list(prefix: string, options?: { prefixesOnly?: boolean }): Promise<string[]> {
    try {
      if (!options?.prefixesOnly) return await fsp.readdir(this.where(prefix));
      return (await fsp.readdir(this.where(prefix), { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch (err) {
      if (isAbsent(err)) return [];
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await fsp.rm(this.where(key), { force: true });
  }

  async deletePrefix(prefix: string): Promise<void> {
    await removeTree(this.where(prefix));
  }

  async createPrefix(prefix: string): Promise<void> {
    const dir = this.where(prefix);
    if (fs.existsSync(dir)) return;
    const first = await fsp.mkdir(dir, { recursive: true });
    // Every directory that gained an entry: from the parent of the first one created down.
    const top = path.dirname(first ?? dir);
    for (let d = dir; ; d = path.dirname(d)) {
      await fsyncDir(path.dirname(d));
      if (path.dirname(d) === top || d === this.root) break;
    }
  }

  async move(from: string, to: string): Promise<void> {
    await fsp.rename(this.where(from), this.where(to));
  }

  async syncList(prefix: string): Promise<void> {
    await fsyncDir(this.where(prefix));
  }

  async publish({ job, checkpointId: id, attempt, manifest, keep }: PublishRequest): Promise<void> {
    const staging = this.where(layout.staging(job, id, attempt));
    const target = this.where(layout.checkpoint(job, id));
    if (!fs.existsSync(path.join(target, MANIFEST_NAME))) {
      for (const rankDir of await fsp.readdir(staging).catch(() => [] as string[])) {
        if (!isRankDirName(rankDir)) {
          // The manifest of an earlier try stays (rewritten below); tmp files and strays go.
          if (rankDir !== MANIFEST_NAME) await removeTree(path.join(staging, rankDir));
          continue;
        }
        for (const item of await fsp.readdir(path.join(staging, rankDir)))
          if (!keep.has(joinKey(rankDir, item))) await removeTree(path.join(staging, rankDir, item));
      }
      await fsp.mkdir(staging, { recursive: true });
      injectFault("manifest");
      await writeFileDurable(path.join(staging, MANIFEST_NAME), manifest);
      injectFault("publish");
      await fsp.rename(staging, target);
    }
    await fsyncDir(this.where(layout.checkpoints(job)));
    await fsyncDir(this.where(layout.stagingRoot(job)));
  }

  async append(key: string, bytes: Buffer, at: number, beforeWrite?: () => void): Promise<number> {
    return appendWhole(this.where(key), bytes, at, this.writeAt, beforeWrite);
  }

  async truncate(key: string, size: number): Promise<void> {
    await fsp.truncate(this.where(key), size);
  }
}
