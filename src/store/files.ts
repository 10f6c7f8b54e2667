/**
 * POSIX durability primitives and the single-daemon lock of a data directory. The
 * directory's layout (every path in it) is layout.ts; PosixStorage (posix.ts) builds the
 * Storage interface on these primitives.
 *
 *   <file>.tmp-<pid>    a writeFileDurable in progress; removed on failure and by
 *                       recovery after a crash
 *
 * Everything lives on one filesystem, so publishing is a rename.
 */
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { DEFAULT_LOCK_NAME, layout } from "./layout.js";
import { lockedBy } from "./storage.js";

/** Moved to storage.ts with quarantine itself; named here for existing importers. */
export type { QuarantineRecord } from "./storage.js";

export class DataDir {
  readonly root: string;
  /** @param lockName the lock file's name: one per node when several daemons share the directory. */
  constructor(
    root: string,
    private readonly lockName = DEFAULT_LOCK_NAME,
  ) {
    this.root = path.resolve(root);
  }
  get lockFile(): string {
    return path.join(this.root, layout.lock(this.lockName));
  }
  /** Scratch space, emptied at every start: nothing in it outlives the process that made it. */
  get tmpDir(): string {
    // One per lock: the daemons of a multi-node job share the directory, not their scratch.
    return path.join(this.root, ...layout.tmp(this.lockName).split("/"));
  }

  /**
   * Takes the data directory for this process. A live daemon's lock is refused with
   * a clear message; a dead one's (kill -9, power loss) is taken over.
   *
   * Node has no flock, so the lock names its holder by pid, the process's start time
   * and the boot id: a holder is alive only if a process with that pid exists *and*
   * started at that time in this boot. A pid reused by an unrelated process (likely
   * after a reboot) therefore never blocks a restart.
   */
  lock(): void {
    fs.mkdirSync(this.root, { recursive: true });
    fs.mkdirSync(path.join(this.root, layout.jobs), { recursive: true });
    const tmp = `${this.lockFile}.${process.pid}`;
    fs.writeFileSync(tmp, lockLine(process.pid));
    try {
      for (let tries = 0; ; tries++) {
        try {
          // link() fails atomically when the lock exists, unlike a check-then-write.
          fs.linkSync(tmp, this.lockFile);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EEXIST" || tries > 0) throw err;
        }
        const holder = parseLock(fs.readFileSync(this.lockFile, "utf8"));
        if (holder && holder.pid !== process.pid && holderAlive(holder)) throw lockedBy(this.root, holder.pid);
        fs.unlinkSync(this.lockFile);
      }
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    // Only the lock holder may empty the scratch space.
    fs.rmSync(this.tmpDir, { recursive: true, force: true });
    fs.mkdirSync(this.tmpDir, { recursive: true });
  }

  unlock(): void {
    try {
      if (parseLock(fs.readFileSync(this.lockFile, "utf8"))?.pid === process.pid) fs.unlinkSync(this.lockFile);
    } catch {
      // Already gone: nothing to release.
    }
  }
}

interface LockHolder {
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot); undefined in an old-format lock. */
  startTime?: string;
  bootId?: string;
}

function lockLine(pid: number): string {
  return `${pid} ${processStartTime(pid) ?? "-"} ${bootId() ?? "-"}\n`;
}

function parseLock(text: string): LockHolder | undefined {
  const [pid, startTime, boot] = text.trim().split(/\s+/);
  const n = Number.parseInt(pid ?? "", 10);
  if (!Number.isInteger(n) || n <= 0) return undefined;
  return { pid: n, startTime: startTime && startTime !== "-" ? startTime : undefined, bootId: boot && boot !== "-" ? boot : undefined };
}

function holderAlive(h: LockHolder): boolean {
  if (!processAlive(h.pid)) return false;
  // A lock from before this format (pid only): a reused pid names some other program,
  // so only a process that runs ckptd counts (where /proc cannot say, the pid is all we know).
  if (h.startTime === undefined || h.bootId === undefined) return runsCkptd(h.pid) ?? true;
  const now = bootId();
  if (now !== undefined && now !== h.bootId) return false; // written before a reboot: nobody holds it
  const start = processStartTime(h.pid);
  return start === undefined || start === h.startTime;
}

/** The start time of a process (field 22 of /proc/<pid>/stat), or undefined where /proc cannot say. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** Whether a process's command line names ckptd (its cli), or undefined without /proc. */
function runsCkptd(pid: number): boolean | undefined {
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return /ckptd|cli\.js/.test(cmdline);
  } catch {
    return undefined;
  }
}

function bootId(): string | undefined {
  try {
    return fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** fsyncs a directory so the entries created or renamed in it survive power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes `data` to a new file `tmp` and fsyncs it. */
async function writeSynced(tmp: string, data: string | Buffer): Promise<void> {
  const fh = await fsp.open(tmp, "w");
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes a file durably and atomically: tmp file, fsync, rename, fsync the directory. */
export async function writeFileDurable(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await writeSynced(tmp, data);
    await fsp.rename(tmp, file);
  } catch (err) {
    // A full disk must not also keep a half-written tmp file on it until the next start.
    await fsp.rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  await fsyncDir(path.dirname(file));
}

let tmpSerial = 0;

/**
 * Creates a file durably and atomically only if it does not exist: tmp file, fsync, link(2)
 * to its name (fails with EEXIST when another writer got there first), fsync the directory.
 * True when this call created it, false when it existed (left unchanged).
 */
export async function createFileDurable(file: string, data: string | Buffer): Promise<boolean> {
  // Several creates of one key may race within this process too: each its own tmp file.
  const tmp = `${file}.tmp-${process.pid}-${(tmpSerial++).toString(36)}`;
  let created = true;
  try {
    await writeSynced(tmp, data);
    try {
      await fsp.link(tmp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      created = false;
    }
  } finally {
    await fsp.rm(tmp, { force: true }).catch(() => {});
  }
  await fsyncDir(path.dirname(file));
  return created;
}

/** Writes bytes at a position; a seam so tests can inject short and failing writes. */
export type WriteAt = (
  fh: fsp.FileHandle,
  buf: Buffer,
  offset: number,
  length: number,
  position: number,
) => Promise<{ bytesWritten: number }>;

const defaultWriteAt: WriteAt = (fh, buf, offset, length, position) => fh.write(buf, offset, length, position);

/**
 * Appends one whole record to an append-only log at `at` (the end of its last good
 * record) and fsyncs it, or fails and cuts the file back to `at`: a caller never
 * acknowledges a fragment, and never appends after one. Short writes are continued;
 * a fragment an earlier failed cut-back left is cut before writing. Returns the new end.
 */
export async function appendWhole(
  file: string,
  bytes: Buffer,
  at: number,
  writeAt: WriteAt = defaultWriteAt,
  beforeWrite?: () => void,
): Promise<number> {
  const created = !fs.existsSync(file);
  const fh = await fsp.open(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  try {
    if ((await fh.stat()).size !== at) await fh.truncate(at);
    try {
      beforeWrite?.();
      for (let done = 0; done < bytes.length;) {
        const { bytesWritten } = await writeAt(fh, bytes, done, bytes.length - done, at + done);
        if (bytesWritten <= 0) throw Object.assign(new Error(`a write to ${file} made no progress`), { code: "EIO" });
        done += bytesWritten;
      }
      await fh.datasync();
    } catch (err) {
      // Best effort: if the cut fails too, the next append cuts (its size check above).
      await fh
        .truncate(at)
        .then(() => fh.datasync())
        .catch(() => {});
      throw err;
    }
  } finally {
    await fh.close();
  }
  // A new log's directory entry must be durable too, or the record is lost with it.
  if (created) await fsyncDir(path.dirname(file));
  return at + bytes.length;
}

/** Removes a directory tree; a missing one is fine. */
export async function removeTree(dir: string): Promise<void> {
  await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 });
}
