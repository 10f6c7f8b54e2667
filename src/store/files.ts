/**
 * The data directory: layout, durability primitives and the single-daemon lock.
 *
 *   <data>/ckptd.lock                              "<pid> <start time> <boot id>" of the daemon that owns it
 *   <data>/tmp/<lock name>/                        this daemon's scratch (the O_DIRECT probe, unlinked
 *                                                  once open); emptied at every start
 *   <data>/jobs/<job>/staging/<id>@<attempt>/      an attempt being prepared
 *   <data>/jobs/<job>/decisions/<id>@<attempt>.json  durable COMMIT/ABORT records
 *   <data>/jobs/<job>/checkpoints/<id>/            a committed checkpoint:
 *       manifest.json (written last), rank-NNNNN/<item>/NNNNNN.lz4
 *   <data>/jobs/<job>/trash/                       deleted checkpoints being removed
 *   <data>/jobs/<job>/quarantine/<id>-<time>/      a checkpoint (or staged attempt) whose manifest was
 *       missing, unparsable or invalid at start, moved aside whole with quarantine.json (why, when,
 *       from where) so one bad directory never keeps the daemon from starting; an operator inspects
 *       it (`ckptctl status` lists them) and deletes it by hand
 *   <data>/jobs/<job>/events.log                   the job's event log (events.ts)
 *   <data>/jobs/<job>/retention.json, evaluations  retention policy and evaluation reports
 *   <data>/nodes/<node>/attempts/                  a participant's markers (multi-node, participant.ts)
 *   <file>.tmp-<pid>                               a writeFileDurable in progress; removed on failure
 *                                                  and by recovery after a crash
 *
 * Everything lives on one filesystem, so publishing is a rename.
 *
 * Bounded over time: staging and trash are emptied by recovery; an aborted attempt's
 * decision record goes once a later attempt's is written (only the highest number is
 * kept, so numbers are never reused); a deleted checkpoint's COMMIT record shrinks to a
 * tombstone without its manifest (so the id is never reused). What grows is one small
 * tombstone per checkpoint id ever committed and the event log.
 */
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { failedPrecondition } from "../common/errors.js";

export class DataDir {
  readonly root: string;
  /** @param lockName the lock file's name: one per node when several daemons share the directory. */
  constructor(
    root: string,
    private readonly lockName = "ckptd.lock",
  ) {
    this.root = path.resolve(root);
  }
  get jobsDir(): string {
    return path.join(this.root, "jobs");
  }
  jobDir(job: string): string {
    return path.join(this.jobsDir, job);
  }
  stagingRoot(job: string): string {
    return path.join(this.jobDir(job), "staging");
  }
  stagingDir(job: string, checkpointId: string, attempt: number): string {
    return path.join(this.stagingRoot(job), `${checkpointId}@${attempt}`);
  }
  decisionsDir(job: string): string {
    return path.join(this.jobDir(job), "decisions");
  }
  decisionFile(job: string, checkpointId: string, attempt: number): string {
    return path.join(this.decisionsDir(job), `${checkpointId}@${attempt}.json`);
  }
  checkpointsDir(job: string): string {
    return path.join(this.jobDir(job), "checkpoints");
  }
  checkpointDir(job: string, checkpointId: string): string {
    return path.join(this.checkpointsDir(job), checkpointId);
  }
  trashDir(job: string): string {
    return path.join(this.jobDir(job), "trash");
  }
  quarantineDir(job: string): string {
    return path.join(this.jobDir(job), "quarantine");
  }
  get lockFile(): string {
    return path.join(this.root, this.lockName);
  }
  /** Scratch space, emptied at every start: nothing in it outlives the process that made it. */
  get tmpDir(): string {
    // One per lock: the daemons of a multi-node job share the directory, not their scratch.
    return path.join(this.root, "tmp", this.lockName.replace(/\.lock$/, ""));
  }

  /** Creates the job's directories (idempotent) and makes their entries durable. */
  async ensureJob(job: string): Promise<void> {
    const dirs = [this.stagingRoot(job), this.decisionsDir(job), this.checkpointsDir(job), this.trashDir(job)];
    if (dirs.every((d) => fs.existsSync(d))) return;
    for (const d of dirs) await fsp.mkdir(d, { recursive: true });
    await fsyncDir(this.jobDir(job));
    await fsyncDir(this.jobsDir);
  }

  /** Lists the jobs that have a directory. */
  async listJobs(): Promise<string[]> {
    try {
      return (await fsp.readdir(this.jobsDir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
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
    fs.mkdirSync(this.jobsDir, { recursive: true });
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
        if (holder && holder.pid !== process.pid && holderAlive(holder))
          throw failedPrecondition(
            `data directory ${this.root} is already in use by ckptd (pid ${holder.pid}); ` +
              `stop that daemon or pass a different --data-dir`,
          );
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

/** Writes a file durably and atomically: tmp file, fsync, rename, fsync the directory. */
export async function writeFileDurable(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    const fh = await fsp.open(tmp, "w");
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, file);
  } catch (err) {
    // A full disk must not also keep a half-written tmp file on it until the next start.
    await fsp.rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  await fsyncDir(path.dirname(file));
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

/** Why and when a directory was quarantined: quarantine.json inside it. */
export interface QuarantineRecord {
  job: string;
  checkpointId: string;
  /** Where the directory was, relative to the data directory. */
  from: string;
  reason: string;
  quarantinedAt: string;
}

/** Largest reason kept in quarantine.json (a validator's message can quote a field). */
const MAX_QUARANTINE_REASON = 1024;

/**
 * Moves a checkpoint's (or attempt's) directory to <data>/jobs/<job>/quarantine/<id>-<time>/
 * with quarantine.json saying why; returns the new path. A rename on the same filesystem,
 * so the directory is either where it was or in quarantine, never half-moved.
 */
export async function quarantineDirectory(
  dataDir: DataDir,
  job: string,
  checkpointId: string,
  dir: string,
  reason: string,
): Promise<string> {
  const root = dataDir.quarantineDir(job);
  await fsp.mkdir(root, { recursive: true });
  const stamp = new Date().toISOString().replace(/[-:.]/g, "");
  let target = path.join(root, `${checkpointId}-${stamp}`);
  for (let n = 1; fs.existsSync(target); n++) target = path.join(root, `${checkpointId}-${stamp}-${n}`);
  await fsp.rename(dir, target);
  await fsyncDir(root);
  await fsyncDir(path.dirname(dir));
  const record: QuarantineRecord = {
    job,
    checkpointId,
    from: path.relative(dataDir.root, dir),
    reason: reason.length > MAX_QUARANTINE_REASON ? `${reason.slice(0, MAX_QUARANTINE_REASON)}…` : reason,
    quarantinedAt: new Date().toISOString(),
  };
  await writeFileDurable(path.join(target, "quarantine.json"), JSON.stringify(record));
  return target;
}

/** The quarantined directories of every job, newest first, at most `limit` (with the total count). */
export async function listQuarantine(
  dataDir: DataDir,
  limit: number,
): Promise<{ entries: QuarantineRecord[]; total: number; dirs: string[] }> {
  const entries: (QuarantineRecord & { dir: string })[] = [];
  for (const job of await dataDir.listJobs()) {
    let names: string[];
    try {
      names = await fsp.readdir(dataDir.quarantineDir(job));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw err;
    }
    for (const name of names) {
      const dir = path.join(dataDir.quarantineDir(job), name);
      let record: Partial<QuarantineRecord> = {};
      try {
        record = JSON.parse(await fsp.readFile(path.join(dir, "quarantine.json"), "utf8")) as Partial<QuarantineRecord>;
      } catch {
        // A crash between the rename and quarantine.json: the directory is still listed.
      }
      entries.push({
        job,
        checkpointId: typeof record.checkpointId === "string" ? record.checkpointId : name,
        from: typeof record.from === "string" ? record.from : "",
        reason: typeof record.reason === "string" ? record.reason : "unknown (no quarantine.json)",
        quarantinedAt: typeof record.quarantinedAt === "string" ? record.quarantinedAt : "",
        dir,
      });
    }
  }
  entries.sort((a, b) => (a.quarantinedAt < b.quarantinedAt ? 1 : a.quarantinedAt > b.quarantinedAt ? -1 : 0));
  const listed = entries.slice(0, limit);
  return { entries: listed, total: entries.length, dirs: listed.map((e) => e.dir) };
}

/** Removes a directory tree; a missing one is fine. */
export async function removeTree(dir: string): Promise<void> {
  await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 });
}
