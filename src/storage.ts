/**
 * The data directory: layout, durability primitives and the single-daemon lock.
 *
 *   <data>/ckptd.lock                              pid of the daemon that owns it
 *   <data>/jobs/<job>/staging/<id>@<attempt>/      an attempt being prepared
 *   <data>/jobs/<job>/decisions/<id>@<attempt>.json  durable COMMIT/ABORT records
 *   <data>/jobs/<job>/checkpoints/<id>/            a committed checkpoint:
 *       manifest.json (written last), rank-NNNNN/<item>/NNNNNN.lz4
 *   <data>/jobs/<job>/trash/                       deleted checkpoints being removed
 *   <data>/jobs/<job>/quarantine/<id>-<time>/      a checkpoint (or staged attempt) whose manifest was
 *       missing, unparsable or invalid at start, moved aside whole with quarantine.json (why, when,
 *       from where) so one bad directory never keeps the daemon from starting; an operator inspects
 *       it (`ckptctl status` lists them) and deletes it by hand
 *
 * Everything lives on one filesystem, so publishing is a rename.
 */
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { failedPrecondition } from "./errors.js";

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
   */
  lock(): void {
    fs.mkdirSync(this.root, { recursive: true });
    fs.mkdirSync(this.jobsDir, { recursive: true });
    const tmp = `${this.lockFile}.${process.pid}`;
    fs.writeFileSync(tmp, `${process.pid}\n`);
    try {
      for (let tries = 0; ; tries++) {
        try {
          // link() fails atomically when the lock exists, unlike a check-then-write.
          fs.linkSync(tmp, this.lockFile);
          return;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EEXIST" || tries > 0) throw err;
        }
        const holder = Number.parseInt(fs.readFileSync(this.lockFile, "utf8"), 10);
        if (Number.isInteger(holder) && holder !== process.pid && processAlive(holder))
          throw failedPrecondition(
            `data directory ${this.root} is already in use by ckptd (pid ${holder}); ` + `stop that daemon or pass a different --data-dir`,
          );
        fs.unlinkSync(this.lockFile);
      }
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  unlock(): void {
    try {
      if (Number.parseInt(fs.readFileSync(this.lockFile, "utf8"), 10) === process.pid) fs.unlinkSync(this.lockFile);
    } catch {
      // Already gone: nothing to release.
    }
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
  const fh = await fsp.open(tmp, "w");
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, file);
  await fsyncDir(path.dirname(file));
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
