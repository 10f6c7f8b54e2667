/**
 * EventLog: a durable, append-only log per job of every commit and deletion, with a
 * sequence number that only grows. Subscribers read it by cursor, so a slow
 * subscriber costs a cursor, not a queue, and a reconnecting one misses nothing.
 *
 *   <data>/jobs/<job>/events.log   one JSON object per line, fsynced before it is visible
 */
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import type { Logger } from "pino";
import type { Catalog } from "./catalog.js";
import type { CheckpointSummary } from "./manifest.js";
import { fsyncDir, type DataDir } from "./storage.js";

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

class JobLog {
  readonly records: CheckpointEventRecord[] = [];
  /** Appends run one at a time so sequence order is file order. */
  chain: Promise<unknown> = Promise.resolve();
  readonly waiters = new Set<() => void>();
  /** Followers: bytes of the file already parsed (complete lines only). */
  followedBytes = 0;
  constructor(readonly file: string) {}
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
    private readonly dataDir: DataDir,
    private readonly log: Logger,
    private readonly follower = false,
  ) {}

  /** Reads lines the writer appended since the last look (followers only). */
  async refresh(job: string): Promise<void> {
    if (!this.follower) return;
    const j = this.job(job);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(j.file, "r");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    let tail: Buffer;
    try {
      // Only what was appended since the last look: the log is append-only.
      const size = (await fh.stat()).size;
      if (size <= j.followedBytes) return;
      tail = Buffer.alloc(size - j.followedBytes);
      await fh.read(tail, 0, tail.length, j.followedBytes);
    } finally {
      await fh.close();
    }
    const complete = tail.lastIndexOf(0x0a) + 1; // a last line without its newline is still being written
    let changed = false;
    for (const line of tail.subarray(0, complete).toString("utf8").split("\n").slice(0, -1)) {
      try {
        const record = JSON.parse(line) as CheckpointEventRecord;
        if (record.seq > j.lastSeq) {
          j.records.push(record);
          changed = true;
        }
      } catch {
        break;
      }
    }
    j.followedBytes += complete;
    if (changed) for (const w of [...j.waiters]) w();
  }

  private job(job: string): JobLog {
    let j = this.jobs.get(job);
    if (!j) this.jobs.set(job, (j = new JobLog(path.join(this.dataDir.jobDir(job), "events.log"))));
    return j;
  }

  /**
   * Reads every job's log (cutting a torn last line left by a crash) and appends
   * what a crash between publish and append left out, so the log agrees with the
   * committed set: a COMMITTED event for every committed checkpoint, a DELETED one
   * for every logged checkpoint that is gone.
   */
  async load(catalog: Catalog): Promise<void> {
    if (this.follower) {
      for (const job of await this.dataDir.listJobs()) await this.refresh(job);
      return;
    }
    for (const job of await this.dataDir.listJobs()) {
      const j = this.job(job);
      let text = "";
      try {
        text = await fsp.readFile(j.file, "utf8");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      }
      let good = 0;
      for (const line of text.split("\n")) {
        if (good + line.length >= text.length) break; // no newline after it: torn
        try {
          j.records.push(JSON.parse(line) as CheckpointEventRecord);
        } catch {
          break;
        }
        good += line.length + 1;
      }
      if (good < text.length) {
        this.log.warn({ job, file: j.file, droppedBytes: text.length - good }, "event log ended in a torn record; truncated");
        await fsp.truncate(j.file, good);
      }
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

  /** Appends an event durably, then wakes the subscribers. */
  append(job: string, type: EventType, checkpoint: CheckpointSummary, reason: string): Promise<CheckpointEventRecord> {
    if (this.follower) return Promise.reject(new Error("a follower never writes the event log"));
    const j = this.job(job);
    const run = j.chain.then(async () => {
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
      const created = !fs.existsSync(j.file);
      const fh = await fsp.open(j.file, "a");
      try {
        await fh.write(JSON.stringify(record) + "\n");
        await fh.datasync();
      } finally {
        await fh.close();
      }
      if (created) await fsyncDir(path.dirname(j.file));
      j.records.push(record);
      for (const w of [...j.waiters]) w();
      return record;
    });
    j.chain = run.catch(() => {});
    return run;
  }

  lastSeq(job: string): number {
    return this.jobs.get(job)?.lastSeq ?? 0;
  }

  /** Events with a sequence number above `seq`, oldest first. */
  after(job: string, seq: number, limit = 256): CheckpointEventRecord[] {
    const records = this.jobs.get(job)?.records ?? [];
    // Sequences are 1..n without gaps, so the index is seq.
    return records.slice(seq, seq + limit);
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
