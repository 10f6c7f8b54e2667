/**
 * Storage: the few operations the commit protocol, the catalog, the logs and retention
 * need from where checkpoints live. Keys come from layout.ts (storage-relative,
 * "/"-separated); a "prefix" is a key with keys below it (a directory on POSIX).
 *
 * Promises every implementation keeps:
 * - `put` is whole-or-nothing and durable when it resolves: a reader sees the old
 *   object, or none, or the new one, never a part; after a crash, the new one.
 * - `create` is a put that only creates: of two writers racing for one key (two
 *   coordinators deciding one attempt), exactly one is told true and its bytes stay;
 *   the other is told false and changes nothing (POSIX: link(2) of a synced tmp file;
 *   an object store: PutObject with If-None-Match: *).
 * - `append` adds one whole record durably at the end of the last good one, or fails
 *   and leaves the log as it was (see LineLog): a fragment is never acknowledged.
 * - `publish` is the commit point of a checkpoint: once it resolves its manifest is
 *   readable at layout.manifest(job, id) and its data below `dataPrefix`, durably; before,
 *   it is not visible at all. It is idempotent (a retry after a failure or a crash finishes it).
 * - `createPrefix` makes an (empty) prefix exist durably, so `list` of its parent shows
 *   it after a crash (an attempt's staging exists before its number is handed out).
 * - `move`, `delete` and `deletePrefix` take effect at once; `syncList(prefix)` makes
 *   the names added to or removed from `prefix` durable (POSIX: fsync the directory).
 * - Reads of an absent key answer undefined (or [] for `list`), never throw ENOENT.
 * - Errors keep their errno code (ENOSPC, EDQUOT, EIO): callers tell a full disk apart.
 *
 * Staged data (the item writer's files) is written on the hot path through file handles
 * with O_DIRECT (store/direct-io.ts): storages that keep data in local files expose
 * `localPath`, and the item writer and loader open those paths themselves. A storage
 * without local files (an object store) takes data objects through `createObjectWriter`
 * and serves them through `getRange`. A committed checkpoint's data lies below
 * `dataPrefix` (POSIX: the checkpoint's directory; an object store: the attempt's
 * staging, since nothing is copied at publish). Everything else goes through this
 * interface.
 */
import { failedPrecondition } from "../common/errors.js";
import { joinKey, layout, parentKey, QUARANTINE_RECORD_NAME } from "./layout.js";

export interface ObjectStat {
  /** "object": a regular file; "prefix": a directory; "other": anything else (a link, a device). */
  kind: "object" | "prefix" | "other";
  size: number;
}

/** How to commit attempt `attempt` of checkpoint `checkpointId` of `job`. */
export interface PublishRequest {
  job: string;
  checkpointId: string;
  attempt: number;
  /** The manifest's bytes: written last, it is the commit point. */
  manifest: string;
  /** The items (layout itemDirName, "rank-NNNNN/<item>") that are part of the checkpoint; others staged are dropped. */
  keep: ReadonlySet<string>;
}

/** A data object being written (Storage.createObjectWriter). Call order: write × N (one at a time), then finish | abort. */
export interface ObjectWriter {
  /** Appends `data`; the writer may keep using `data` until the promise resolves (reuse it after). */
  write(data: Buffer): Promise<void>;
  /**
   * Optional, for writers that gather bytes in buffers of their own (an object store's part
   * buffers): appends `n` bytes that `fill` puts straight into those buffers, one call per
   * buffer they span; `fill(buf, offset, length)` must fill exactly buf[offset, offset + length)
   * and may keep nothing of `buf` after it resolves. Saves the copy `write` makes. Waits like
   * `write` (backpressure); one at a time, not while a write is pending. Writers without it
   * take `write`.
   */
  appendFrom?(n: number, fill: (buf: Buffer, offset: number, length: number) => Promise<void>): Promise<void>;
  /** Makes the object whole and durable at its key (a reader sees all of it, or, before, none). */
  finish(): Promise<void>;
  /** Drops what was written: no object and nothing half-written is left (an absent one is fine). */
  abort(): Promise<void>;
}

export interface Storage {
  /** Where a key is, for messages and logs (POSIX: its absolute path). */
  where(key: string): string;
  /**
   * The local file of a key, for the data hot path (the item writer's O_DIRECT files, the
   * loader's reads); undefined when this storage keeps no local files.
   */
  localPath?(key: string): string;

  /**
   * Takes the storage for this process: refused (FAILED_PRECONDITION) while another live
   * daemon holds it; a dead holder's lock is taken over. Empties this daemon's scratch.
   * Called once at start, before anything else (synchronous: POSIX names the holder by
   * pid, start time and boot id; an object store would hold a lease object written with
   * a conditional put and renewed while the daemon runs).
   */
  lock(): void;
  /** Releases the lock if this process holds it. */
  unlock(): void;

  /** Writes a small object durably and whole-or-nothing (see above). */
  put(key: string, data: string | Buffer): Promise<void>;
  /**
   * Writes a small object durably and whole-or-nothing only if `key` is absent: true when this
   * call created it, false when it existed (its bytes unchanged). A retry of a create that
   * landed but whose answer was lost may be told true (same bytes) or false; callers that must
   * tell the two apart read the object back (see the coordinator's decisions).
   */
  create(key: string, data: string | Buffer): Promise<boolean>;
  /** The whole object, or undefined when absent. */
  get(key: string): Promise<Buffer | undefined>;
  /**
   * Up to `length` bytes from `offset` (fewer at the end), or undefined when absent; read
   * into `into` (which holds at least `length` bytes) when given, and returned as a view of it.
   */
  getRange(key: string, offset: number, length: number, into?: Buffer): Promise<Buffer | undefined>;
  /**
   * A writer of the data object `key` (an item's entry or pack file), for storages without
   * `localPath`; `sizeHint` is the bytes expected, when known.
   */
  createObjectWriter(key: string, options?: { sizeHint?: number }): ObjectWriter;
  /**
   * The prefix below which the data of attempt `attempt` of checkpoint `checkpointId` lies
   * once it is published (rank-NNNNN/<item>/…): POSIX renames the staging to the checkpoint,
   * so layout.checkpoint; an object store leaves it staged, so layout.staging. Every reader
   * of a checkpoint's data (loads, verify, retention, the catalog) finds it here.
   */
  dataPrefix(job: string, checkpointId: string, attempt: number): string;
  /** What a key is, or undefined when absent (links are not followed). */
  stat(key: string): Promise<ObjectStat | undefined>;
  /** The names one level below `prefix` (objects and prefixes; only prefixes with `prefixesOnly`); [] when absent. */
  list(prefix: string, options?: { prefixesOnly?: boolean }): Promise<string[]>;
  /** Removes an object; an absent one is fine. */
  delete(key: string): Promise<void>;
  /** Removes a prefix and everything below it; an absent one is fine. */
  deletePrefix(prefix: string): Promise<void>;
  /** Makes `prefix` (and its parents) exist durably. */
  createPrefix(prefix: string): Promise<void>;
  /** Moves an object or a prefix (quarantine, trash): atomic on POSIX; durable after syncList of both parents. */
  move(from: string, to: string): Promise<void>;
  /** Makes the names added to or removed from `prefix` durable. */
  syncList(prefix: string): Promise<void>;

  /**
   * Commits a staged attempt as a checkpoint. Call only once its COMMIT decision is
   * durable. Drops staged items not in `keep`, then writes the manifest last:
   * - POSIX: writes manifest.json durably into staging/<id>@<n>/ and renames that
   *   directory to checkpoints/<id> (one rename: the checkpoint appears whole), then
   *   fsyncs both parents;
   * - an object store writes checkpoints/<id>/manifest.json last as the commit point,
   *   the data objects staying where they were staged (addressed through the manifest's
   *   attempt and the layout), so nothing is copied.
   * Idempotent: a checkpoint already published is not published again.
   */
  publish(request: PublishRequest): Promise<void>;

  /**
   * Appends `bytes` (one whole record) to the log `key` at `at` (the end of its last
   * good record), durably, or fails and cuts the log back to `at`. Returns the new end.
   * `beforeWrite` runs before the first byte is written (fault injection).
   */
  append(key: string, bytes: Buffer, at: number, beforeWrite?: () => void): Promise<number>;
  /** Cuts an object to `size` bytes (a log's torn tail). */
  truncate(key: string, size: number): Promise<void>;
}

/** Bytes [offset, offset + length) of `whole` (fewer at its end), copied into `into` when given (getRange's answer). */
export function sliceRange(whole: Buffer | undefined, offset: number, length: number, into?: Buffer): Buffer | undefined {
  const part = whole?.subarray(offset, offset + length);
  if (!part || !into) return part;
  return into.subarray(0, part.copy(into));
}

/** Creates a job's prefixes (idempotent) durably. */
export async function ensureJob(storage: Storage, job: string): Promise<void> {
  for (const p of layout.jobDirs(job)) await storage.createPrefix(p);
}

/** Lists the jobs that have a prefix. */
export function listJobs(storage: Storage): Promise<string[]> {
  return storage.list(layout.jobs, { prefixesOnly: true });
}

/** Reads a small object as UTF-8 text; undefined when absent. */
export async function getText(storage: Storage, key: string): Promise<string | undefined> {
  return (await storage.get(key))?.toString("utf8");
}

/** Why and when a prefix was quarantined: quarantine.json inside it. */
export interface QuarantineRecord {
  job: string;
  checkpointId: string;
  /** Where it was (its key). */
  from: string;
  reason: string;
  quarantinedAt: string;
}

/** Largest reason kept in quarantine.json (a validator's message can quote a field). */
const MAX_QUARANTINE_REASON = 1024;

/**
 * Moves a checkpoint's (or attempt's) prefix to jobs/<job>/quarantine/<id>-<time>/ with
 * quarantine.json saying why; returns the new key. On POSIX a rename, so the directory is
 * either where it was or in quarantine, never half-moved.
 */
export async function quarantine(storage: Storage, job: string, checkpointId: string, from: string, reason: string): Promise<string> {
  const root = layout.quarantine(job);
  await storage.createPrefix(root);
  const stamp = new Date().toISOString().replace(/[-:.]/g, "");
  let target = joinKey(root, `${checkpointId}-${stamp}`);
  for (let n = 1; await storage.stat(target); n++) target = joinKey(root, `${checkpointId}-${stamp}-${n}`);
  await storage.move(from, target);
  await storage.syncList(root);
  await storage.syncList(parentKey(from));
  const record: QuarantineRecord = {
    job,
    checkpointId,
    from,
    reason: reason.length > MAX_QUARANTINE_REASON ? `${reason.slice(0, MAX_QUARANTINE_REASON)}…` : reason,
    quarantinedAt: new Date().toISOString(),
  };
  await storage.put(joinKey(target, QUARANTINE_RECORD_NAME), JSON.stringify(record));
  return target;
}

/** The quarantined prefixes of every job, newest first, at most `limit` (with the total count); `dirs` as `where` names them. */
export async function listQuarantine(
  storage: Storage,
  limit: number,
): Promise<{ entries: QuarantineRecord[]; total: number; dirs: string[] }> {
  const entries: (QuarantineRecord & { dir: string })[] = [];
  for (const job of await listJobs(storage)) {
    for (const name of await storage.list(layout.quarantine(job))) {
      const key = joinKey(layout.quarantine(job), name);
      let record: Partial<QuarantineRecord> = {};
      try {
        record = JSON.parse((await getText(storage, joinKey(key, QUARANTINE_RECORD_NAME))) ?? "{}") as Partial<QuarantineRecord>;
      } catch {
        // A damaged record: the prefix is still listed.
      }
      // A crash between the move and quarantine.json leaves no record: still listed.
      entries.push({
        job,
        checkpointId: typeof record.checkpointId === "string" ? record.checkpointId : name,
        from: typeof record.from === "string" ? record.from : "",
        reason: typeof record.reason === "string" ? record.reason : "unknown (no quarantine.json)",
        quarantinedAt: typeof record.quarantinedAt === "string" ? record.quarantinedAt : "",
        dir: storage.where(key),
      });
    }
  }
  entries.sort((a, b) => (a.quarantinedAt < b.quarantinedAt ? 1 : a.quarantinedAt > b.quarantinedAt ? -1 : 0));
  const listed = entries.slice(0, limit);
  return { entries: listed, total: entries.length, dirs: listed.map((e) => e.dir) };
}

/** The lock refusal every implementation gives. */
export function lockedBy(where: string, pid: number | undefined): Error {
  return failedPrecondition(
    `data directory ${where} is already in use by ckptd${pid !== undefined ? ` (pid ${pid})` : ""}; ` +
      `stop that daemon or pass a different --data-dir`,
  );
}
