/**
 * EventLog: a durable, append-only log per job of every commit and deletion, with a
 * sequence number that only grows. Subscribers read it by cursor, so a slow
 * subscriber costs a cursor, not a queue, and a reconnecting one misses nothing.
 *
 *   <data>/jobs/<job>/events.log   one record per line, fsynced before it is visible:
 *       "<crc32c of the JSON, 8 hex digits> <JSON>\n"
 *   (logs written before the checksum have bare "<JSON>\n" lines; both are read, new
 *   records are always checksummed)
 *
 * An acknowledged record is never lost or renumbered: an append writes its whole record
 * (looping over short writes) and fsyncs it, or fails and cuts the file back to the end
 * of the last good record, so the next append never follows a fragment. At load, only a
 * bad *tail* (a torn last record) is cut; a bad line with good records after it is
 * skipped, never truncated away with them.
 */
import { crc32c } from "@node-rs/crc32";
import type { Logger } from "pino";
import type { Catalog } from "./catalog.js";
import { injectFault } from "../common/faults.js";
import type { CheckpointSummary } from "./manifest.js";
import { LineLog, scanLines, type ScannedLines } from "../store/line-log.js";
import { layout } from "../store/layout.js";
import { listJobs, type Storage } from "../store/storage.js";

export type EventType = "COMMITTED" | "DELETED";

export interface CheckpointEventRecord {
  seq: number;
  type: EventType;
  job: string;
  checkpointId: string;
  step: number;
  commitTime: string;
  /** When the event happened. */
  time: string;
  checkpoint: CheckpointSummary;
  reason: string;
}

export type { WriteAt } from "../store/files.js";

/** One record's line: checksum, space, JSON, newline. */
export function encodeRecord(record: CheckpointEventRecord): Buffer {
  const json = Buffer.from(JSON.stringify(record), "utf8");
  const crc = (crc32c(json) >>> 0).toString(16).padStart(8, "0");
  return Buffer.concat([Buffer.from(`${crc} `, "ascii"), json, Buffer.from("\n", "ascii")]);
}

/** A line (without its newline) as a record, or undefined when it is damaged. */
function decodeLine(line: Buffer): CheckpointEventRecord | undefined {
  try {
    if (line[0] === 0x7b /* "{" */) return JSON.parse(line.toString("utf8")) as CheckpointEventRecord; // the old, unchecked format
    if (line.length < 10 || line[8] !== 0x20) return undefined;
    const json = line.subarray(9);
    if ((crc32c(json) >>> 0).toString(16).padStart(8, "0") !== line.subarray(0, 8).toString("ascii")) return undefined;
    return JSON.parse(json.toString("utf8")) as CheckpointEventRecord;
  } catch {
    return undefined;
  }
}

export type ParsedLog = ScannedLines<CheckpointEventRecord>;

/**
 * Parses log bytes that start at a record boundary. Records whose seq does not grow
 * (a duplicate) are skipped, so the in-memory sequence stays strictly increasing.
 */
export function parseLog(buf: Buffer, lastSeq = 0): ParsedLog {
  return scanLines(buf, decodeLine, growingSeq(lastSeq));
}

/** Keeps records whose seq grows past `lastSeq` and each one kept before. */
function growingSeq(lastSeq: number): (r: CheckpointEventRecord) => boolean {
  return (r) => {
    if (!Number.isSafeInteger(r.seq) || r.seq <= lastSeq) return false;
    lastSeq = r.seq;
    return true;
  };
}

class JobLog {
  readonly records: CheckpointEventRecord[] = [];
  readonly waiters = new Set<() => void>();
  /** Followers: bytes of the file already parsed (complete lines only). */
  followedBytes = 0;
  constructor(readonly file: LineLog) {}
  get lastSeq(): number {
    return this.records[this.records.length - 1]?.seq ?? 0;
  }
}

export class EventLog {
  private readonly jobs = new Map<string, JobLog>();
  /** Live WatchCheckpoints streams, for metrics and logs. */
  subscribers = 0;

  /**
   * `follower`: another daemon (a multi-node job's coordinator) writes the log; this
   * one only reads it, re-reading the file while subscribers wait.
   */
  constructor(
    private readonly storage: Storage,
    private readonly log: Logger,
    private readonly follower = false,
  ) {}

  /** Reads lines the writer appended since the last look (followers only). */
  async refresh(job: string): Promise<void> {
    if (!this.follower) return;
    const j = this.job(job);
    const st = await this.storage.stat(j.file.key);
    if (!st) return;
    const size = st.size;
    // The writer cut a failed append back: re-read from the start (records already
    // known are skipped by their seq).
    if (size < j.followedBytes) j.followedBytes = 0;
    // Only what was appended since the last look: the log is append-only.
    if (size <= j.followedBytes) return;
    const tail = await this.storage.getRange(j.file.key, j.followedBytes, size - j.followedBytes);
    if (!tail) return;
    const parsed = parseLog(tail, j.lastSeq);
    j.records.push(...parsed.records);
    // A last line without its newline is still being written: it is read next time.
    j.followedBytes += tail.lastIndexOf(0x0a) + 1;
    if (parsed.records.length > 0) for (const w of [...j.waiters]) w();
  }

  private job(job: string): JobLog {
    let j = this.jobs.get(job);
    if (!j) {
      const file = new LineLog(this.storage, layout.events(job), "event log", () => injectFault("event"));
      this.jobs.set(job, (j = new JobLog(file)));
    }
    return j;
  }

  /** Reads a job's log once (writer): records, and where the next append goes. */
  private async read(j: JobLog, job: string): Promise<void> {
    if (j.file.isRead) return;
    j.records.splice(0, j.records.length, ...(await j.file.read(decodeLine, this.log, { job }, growingSeq(0))));
  }

  /**
   * Reads every job's log (cutting a torn last record left by a crash) and appends
   * what a crash between publish and append left out, so the log agrees with the
   * committed set: a COMMITTED event for every committed checkpoint, a DELETED one
   * for every logged checkpoint that is gone.
   */
  async load(catalog: Catalog): Promise<void> {
    if (this.follower) {
      for (const job of await listJobs(this.storage)) await this.refresh(job);
      return;
    }
    for (const job of await listJobs(this.storage)) {
      const j = this.job(job);
      await this.read(j, job);
      const live = new Map<string, CheckpointEventRecord>();
      for (const r of j.records) {
        if (r.type === "COMMITTED") live.set(r.checkpointId, r);
        else live.delete(r.checkpointId);
      }
      const committed = catalog.list(job).reverse(); // oldest first: the log's order
      for (const c of committed) if (!live.has(c.checkpointId)) await this.append(job, "COMMITTED", c, "recovered after a restart");
      for (const [id, r] of live) if (!catalog.has(job, id)) await this.append(job, "DELETED", r.checkpoint, "deleted before a restart");
    }
  }

  /** True when the log has a COMMITTED event for the checkpoint after its last DELETED one. */
  isLogged(job: string, checkpointId: string, type: EventType): boolean {
    const records = this.jobs.get(job)?.records ?? [];
    for (let i = records.length - 1; i >= 0; i--) if (records[i]!.checkpointId === checkpointId) return records[i]!.type === type;
    return false;
  }

  /**
   * Appends an event durably, then wakes the subscribers. `beforeWake` runs once the
   * record is durable and before any subscriber hears of it (the catalog entry a
   * watcher looks up must exist by then).
   */
  append(
    job: string,
    type: EventType,
    checkpoint: CheckpointSummary,
    reason: string,
    beforeWake?: () => void,
  ): Promise<CheckpointEventRecord> {
    if (this.follower) return Promise.reject(new Error("a follower never writes the event log"));
    const j = this.job(job);
    return j.file.serial(async () => {
      await this.read(j, job);
      const record: CheckpointEventRecord = {
        seq: j.lastSeq + 1,
        type,
        job,
        checkpointId: checkpoint.checkpointId,
        step: checkpoint.step,
        commitTime: checkpoint.commitTime,
        time: new Date().toISOString(),
        checkpoint,
        reason,
      };
      await j.file.write(encodeRecord(record));
      j.records.push(record);
      beforeWake?.();
      for (const w of [...j.waiters]) w();
      return record;
    });
  }

  lastSeq(job: string): number {
    return this.jobs.get(job)?.lastSeq ?? 0;
  }

  /** Events with a sequence number above `seq`, oldest first. */
  after(job: string, seq: number, limit = 256): CheckpointEventRecord[] {
    const records = this.jobs.get(job)?.records ?? [];
    // Sequences grow strictly (a skipped damaged record may leave a gap): binary search.
    let lo = 0;
    let hi = records.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (records[mid]!.seq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return records.slice(lo, lo + limit);
  }

  /** Sequence just before the first event about a checkpoint with step ≥ `step`. */
  seqBeforeStep(job: string, step: number): number {
    const first = (this.jobs.get(job)?.records ?? []).find((r) => r.step >= step);
    return first ? first.seq - 1 : this.lastSeq(job);
  }

  /** Resolves when an event after `seq` exists, or when `signal` aborts. */
  waitAfter(job: string, seq: number, signal: AbortSignal): Promise<void> {
    const j = this.job(job);
    if (j.lastSeq > seq || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      // A follower has no writer in-process to wake it: it re-reads the file.
      const poll = this.follower ? setInterval(() => void this.refresh(job).catch(() => {}), 100) : undefined;
      const done = () => {
        clearInterval(poll);
        j.waiters.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      j.waiters.add(done);
      signal.addEventListener("abort", done);
    });
  }
}
