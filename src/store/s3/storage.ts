/**
 * S3Storage: the Storage interface on an S3-compatible object store (S3Store), under one bucket and
 * key prefix. Storage keys are object keys below the prefix. How each promise of storage.ts holds
 * on a store that has objects but no directories and no rename:
 *
 * - put: one PutObject, durable and whole when it resolves (S3 never shows part of an object).
 * - get / getRange / stat / list / delete / deletePrefix: GetObject (ranged), HeadObject, ListObjectsV2
 *   with delimiter "/" (one level, like readdir), DeleteObject(s). A "prefix" exists while any key is
 *   below it. Listings are strongly consistent after writes (AWS S3 since 2020, RGW always), so
 *   `syncList` has nothing to do.
 * - createPrefix writes a marker object `<prefix>/` (empty): the interface needs an empty prefix to
 *   exist and be listed by its parent (an attempt's staging exists before its number is handed out,
 *   ensureJob's directories exist before anything is in them), which on an object store only an
 *   object below it can give. `list` never shows the marker itself.
 * - move (callers: quarantine() in store/storage.ts, used by the catalog's and the coordinator's
 *   recovery; Retention.deleteNow moving a checkpoint to the trash) is CopyObject of every object,
 *   then deletion of the source, its manifest.json first: NOT atomic. It is safe for those callers
 *   because the source is deleted only after every copy landed, so a crash in between leaves the
 *   source whole where it was (the trash copy is emptied by recovery; a quarantine copy without its
 *   quarantine.json is listed as such and the source, still bad, is quarantined again); and once its
 *   manifest is gone the source is no longer a checkpoint, so a crash during the deletion leaves no
 *   half checkpoint readers could serve.
 * - publish: writes the manifest last, copying nothing (see `publish` below); a checkpoint's data
 *   stays under its attempt's staging (`dataPrefix`).
 * - append / truncate: a log is one object per record, `<key>.records/<offset>` (offset zero-padded,
 *   so listing order is log order), each written with If-None-Match: * at the end of the last good
 *   record; records past that end (an earlier failed append's) are deleted first. `get`/`stat` of the
 *   log key read the records back in order up to the first gap. `truncate` deletes the records past
 *   the cut and rewrites (one put) the record the cut falls in. Reading a log is a listing plus one GET
 *   per record: fine for the event and evaluation logs, not for anything large. An append where this
 *   storage's last append to the log ended (the usual case under the lock) needs no listing.
 * - lock: a lease object (lease.ts) written with a conditional put, renewed while the daemon runs,
 *   taken over when its holder is dead. There is no scratch to empty (nothing is staged locally).
 * - localPath does not exist: the item writer writes data objects through `createObjectWriter`
 *   (multipart uploads, S3Upload) and the loader reads them with ranged GETs (`getRange`).
 * - Errors are CkptdErrors (store/s3/errors.ts): UNAVAILABLE, FAILED_PRECONDITION, PERMISSION_DENIED;
 *   a used-up quota (the object store's full disk) is RESOURCE_EXHAUSTED with code EDQUOT, so callers
 *   telling a full store apart see it; there is no ENOSPC.
 */
import { randomBytes } from "node:crypto";
import type { ByteBudget } from "../../common/byte-budget.js";
import { failedPrecondition, internal } from "../../common/errors.js";
import { injectFault } from "../../common/faults.js";
import { SpareBuffers } from "../buffer-pool.js";
import { DEFAULT_LOCK_NAME, isRankDirName, joinKey, layout, MANIFEST_NAME } from "../layout.js";
import { lockedBy, sliceRange, type ObjectStat, type ObjectWriter, type PublishRequest, type Storage } from "../storage.js";
import { S3Store, type ObjectInfo, type S3StoreOptions } from "./client.js";
import { holderRecord, leaseSync, type LeaseHolder, type LeaseTarget } from "./lease.js";

/** The suffix of the prefix holding a log's records. */
export const LOG_RECORDS = ".records";
const OFFSET_DIGITS = 16;
/** Copies and deletions in flight at once. */
const CONCURRENCY = 16;
/** A data object's multipart part size, and the bytes its parts being filled and uploaded may hold. */
const UPLOAD_PART_BYTES = 8 * 1024 * 1024;
const UPLOAD_BUDGET_BYTES = 2 * UPLOAD_PART_BYTES;
/** Part buffers kept for the next uploads once theirs are done (at most this many idle). */
const SPARE_PART_BUFFERS = 8;

export interface S3StorageOptions extends S3StoreOptions {
  /** The lease object's name (one per node when several daemons share the prefix). @default ckptd.lock */
  lockName?: string;
  /** How long a lease lives without renewal (renewed every third of it). @default 30000 */
  leaseMs?: number;
  /** What the part buffers of every data object's upload count against together (see UploadOptions.shared). */
  uploadBudget?: ByteBudget;
}

/** Runs `fn` over `items`, at most `limit` at once. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

const below = (prefix: string) => (prefix === "" ? "" : `${prefix}/`);
const recordKey = (key: string, offset: number) => `${key}${LOG_RECORDS}/${String(offset).padStart(OFFSET_DIGITS, "0")}`;

interface LogRecord {
  key: string;
  offset: number;
  size: number;
}

export class S3Storage implements Storage {
  readonly store: S3Store;
  private readonly lockKey: string;
  private readonly leaseMs: number;
  private readonly leaseTarget: LeaseTarget;
  private readonly owner = `${process.pid}-${randomBytes(6).toString("hex")}`;
  private lease: { etag: string; timer: NodeJS.Timeout } | undefined;
  /** Where each log this storage appended to ends (its records were listed or written here): an append there needs no listing. */
  private readonly logEnds = new Map<string, number>();
  /**
   * The records of each log this storage read, in order: records do not change once written
   * (but for a cut), so the next read lists only the records after the last one known
   * (StartAfter) and GETs only those its range needs. A record found changed or gone (another
   * writer cut the log) drops what is known and the log is listed again.
   */
  private readonly logsRead = new Map<string, LogRecord[]>();
  /** Set when a renewal found the lease taken over: this daemon no longer owns the storage, and every write is refused. */
  leaseLost = false;

  /** The part buffers of every data object's upload, reused from one object to the next. */
  private readonly partBuffers = new SpareBuffers(UPLOAD_PART_BYTES, SPARE_PART_BUFFERS);

  constructor(private readonly opts: S3StorageOptions) {
    this.store = new S3Store(opts);
    this.lockKey = layout.lock(opts.lockName ?? DEFAULT_LOCK_NAME);
    this.leaseMs = opts.leaseMs ?? 30_000;
    this.leaseTarget = {
      bucket: this.store.bucket,
      key: this.store.fullKey(this.lockKey),
      endpoint: opts.endpoint,
      region: opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION,
      forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
      credentials: opts.credentials,
    };
  }

  where(key: string): string {
    return `s3://${this.store.bucket}/${this.store.fullKey(key)}`;
  }

  lock(): void {
    if (this.lease) return;
    const answer = leaseSync("acquire", this.leaseTarget, this.holder(), this.where(""));
    if (!("acquired" in answer)) throw internal(`unexpected answer taking the lock of ${this.where("")}`);
    if (!answer.acquired) throw lockedBy(this.where(""), answer.holder.pid);
    this.leaseLost = false;
    const timer = setInterval(() => void this.renew(), Math.max(1, Math.floor(this.leaseMs / 3)));
    timer.unref();
    this.lease = { etag: answer.etag, timer };
  }

  unlock(): void {
    if (!this.lease) return;
    clearInterval(this.lease.timer);
    this.lease = undefined;
    leaseSync("release", this.leaseTarget, this.holder(), this.where(""));
  }

  /** Renews the lease while nobody took it over (If-Match on the ETag this holder wrote last). */
  private async renew(): Promise<void> {
    const lease = this.lease;
    if (!lease) return;
    try {
      const etag = await this.store.putIfMatch(this.lockKey, JSON.stringify(this.holder()), lease.etag);
      if (this.lease !== lease) return;
      if (etag) lease.etag = etag;
      else {
        this.leaseLost = true;
        clearInterval(lease.timer);
        this.lease = undefined;
      }
    } catch {
      // The store is unreachable: tried again at the next tick; the lease lives until it expires.
    }
  }

  /** Refuses writes once the lease was found taken over: another daemon owns the storage now. */
  private owned(): void {
    if (this.leaseLost)
      throw failedPrecondition(
        `${this.where("")} was taken over by another ckptd (its lease ${this.lockKey} was renewed by someone else); ` +
          `this daemon no longer writes to it: restart it`,
      );
  }

  private holder(): LeaseHolder {
    return holderRecord(this.owner, this.leaseMs);
  }

  /**
   * Checks that the bucket answers (one listing under the prefix): throws UNAVAILABLE naming the
   * endpoint when the store is unreachable, or why it refuses (no such bucket, access denied).
   */
  async probe(): Promise<void> {
    const pages = this.store.listPages(below(layout.jobs), { pageSize: 1 });
    await pages.next();
    await pages.return(undefined);
  }

  /**
   * Recovery after a start (call after lock): aborts the multipart uploads left incomplete under the
   * prefix by a daemon that died, since they hold storage but are invisible to listings. Returns how many.
   */
  async recover(): Promise<number> {
    return this.store.abortIncompleteUploads(below(layout.jobs));
  }

  async put(key: string, data: string | Buffer): Promise<void> {
    this.owned();
    await this.store.put(key, data);
  }

  async create(key: string, data: string | Buffer): Promise<boolean> {
    this.owned();
    return this.store.putIfAbsent(key, data);
  }

  async get(key: string): Promise<Buffer | undefined> {
    if (!this.logsRead.has(key)) {
      const whole = await this.store.get(key);
      if (whole !== undefined) return whole;
    }
    // Not one object: a log's records (or nothing).
    return this.readLog(key, 0, Number.MAX_SAFE_INTEGER);
  }

  async getRange(key: string, offset: number, length: number, into?: Buffer): Promise<Buffer | undefined> {
    if (!this.logsRead.has(key)) {
      const got = await this.store.getRange(key, offset, length, into);
      if (got !== undefined) return got;
    }
    return this.readLog(key, offset, length, into);
  }

  /** Bytes [offset, offset + length) of a log: the GETs of the records that overlap them only; undefined when no record exists. */
  private async readLog(key: string, offset: number, length: number, into?: Buffer): Promise<Buffer | undefined> {
    for (let tries = 0; ; tries++) {
      const records = await this.logRecords(key);
      if (records.length === 0) return undefined;
      const wanted = records.filter((r) => r.offset + r.size > offset && r.offset < offset + length);
      const parts = new Array<Buffer>(wanted.length);
      let changed = false;
      await pool(
        wanted.map((r, i) => ({ r, i })),
        CONCURRENCY,
        async ({ r, i }) => {
          const b = await this.store.get(r.key);
          if (b === undefined || b.length !== r.size) changed = true;
          else parts[i] = b;
        },
      );
      if (!changed) return sliceRange(Buffer.concat(parts), offset - (wanted[0]?.offset ?? offset), length, into);
      // Cut by another writer since it was listed: list it again, once.
      this.logsRead.delete(key);
      if (tries > 0) throw internal(`the log ${this.where(key)} changed while it was read`);
    }
  }

  /**
   * A multipart upload (S3Upload) of a data object: parts of UPLOAD_PART_BYTES, at most
   * UPLOAD_BUDGET_BYTES of them filling or in flight per object; an object smaller than a part
   * is one PutObject. `appendFrom` fills the part buffers in place (the item writer reads a
   * shared-memory chunk straight into them); the part buffers go from one object to the next. `finish` completes it (durable and whole); `abort` leaves no upload behind.
   */
  createObjectWriter(key: string, _options?: { sizeHint?: number }): ObjectWriter {
    this.owned();
    const upload = this.store.createUpload(key, {
      partBytes: UPLOAD_PART_BYTES,
      budgetBytes: UPLOAD_BUDGET_BYTES,
      shared: this.opts.uploadBudget,
      buffers: this.partBuffers,
    });
    return {
      write: (data) => {
        this.owned();
        return upload.write(data);
      },
      appendFrom: (n, fill) => {
        this.owned();
        return upload.appendFrom(n, fill);
      },
      finish: async () => {
        this.owned();
        await upload.finish();
      },
      abort: async () => {
        await upload.abort();
        await this.store.delete(key);
      },
    };
  }

  /** Nothing is copied at publish: a checkpoint's data stays in its attempt's staging. */
  dataPrefix(job: string, checkpointId: string, attempt: number): string {
    return layout.staging(job, checkpointId, attempt);
  }

  async stat(key: string): Promise<ObjectStat | undefined> {
    const head = this.logsRead.has(key) ? undefined : await this.store.head(key);
    if (head) return { kind: "object", size: head.size };
    const records = await this.logRecords(key);
    if (records.length > 0) return { kind: "object", size: records.reduce((n, r) => n + r.size, 0) };
    const page = await this.store.listPages(below(key), { pageSize: 1 }).next();
    return !page.done && page.value.objects.length > 0 ? { kind: "prefix", size: 0 } : undefined;
  }

  async list(prefix: string, options?: { prefixesOnly?: boolean }): Promise<string[]> {
    const start = below(prefix);
    const listing = await this.store.list(start, { delimiter: "/" });
    const names = new Set<string>();
    for (const p of listing.prefixes) {
      const name = p.slice(start.length).replace(/\/$/, "");
      if (name.endsWith(LOG_RECORDS)) {
        if (!options?.prefixesOnly) names.add(name.slice(0, -LOG_RECORDS.length));
      } else names.add(name);
    }
    if (!options?.prefixesOnly) for (const o of listing.objects) if (o.key !== start) names.add(o.key.slice(start.length));
    return [...names].sort();
  }

  async delete(key: string): Promise<void> {
    this.owned();
    this.logEnds.delete(key);
    this.logsRead.delete(key);
    await this.store.delete(key);
    await this.store.deletePrefix(`${key}${LOG_RECORDS}/`);
  }

  /**
   * Deletes every object below `prefix` and aborts the multipart uploads left incomplete below it
   * (an aborted attempt's staging may hold the uploads of a rank that was still saving, or of a
   * daemon that died: invisible to listings, but they hold storage).
   */
  async deletePrefix(prefix: string): Promise<void> {
    this.owned();
    this.logEnds.clear();
    this.logsRead.clear();
    await this.store.deletePrefix(below(prefix));
    await this.store.abortIncompleteUploads(below(prefix));
  }

  async createPrefix(prefix: string): Promise<void> {
    this.owned();
    if (prefix === "") return;
    await this.store.put(below(prefix), "");
  }

  async move(from: string, to: string): Promise<void> {
    this.owned();
    this.logEnds.clear();
    this.logsRead.clear();
    // One listing finds an object, a prefix's objects and a log's records (`from` itself, `from/…`, `from.records/…`).
    const objects = (await this.store.list(from)).objects.filter(
      (o) => o.key === from || o.key.startsWith(`${from}/`) || o.key.startsWith(`${from}${LOG_RECORDS}/`),
    );
    if (objects.length === 0) throw Object.assign(new Error(`ENOENT: nothing to move at ${this.where(from)}`), { code: "ENOENT" });
    await pool(objects, CONCURRENCY, (o) => this.store.copy(o.key, to + o.key.slice(from.length), { size: o.size }));
    // The commit point goes first: from here the source is no checkpoint, whatever is left of it.
    if (objects.some((o) => o.key === joinKey(from, MANIFEST_NAME))) await this.store.delete(joinKey(from, MANIFEST_NAME));
    await pool(objects, CONCURRENCY, (o) => this.store.delete(o.key));
  }

  async syncList(_prefix: string): Promise<void> {
    // Listings are consistent once a write or deletion has been answered: nothing to make durable.
  }

  /**
   * Commits a staged attempt without copying: the staged objects of items not in `keep` (and
   * strays) are deleted, then checkpoints/<id>/manifest.json is written LAST with If-None-Match: *
   * as the commit point. The data stays at layout.staging(job, id, attempt) (dataPrefix), where
   * the loader reads it through the manifest's attempt. A checkpoint id is published once: a second
   * publish (a retry, or another attempt) finds the manifest and publishes nothing, leaving its
   * staging for recovery to free.
   *
   * Crash windows: before the manifest, the staging is intact (less some unkept items) and the
   * coordinator's recovery publishes the COMMITTED attempt again; after it, the checkpoint is whole.
   */
  async publish({ job, checkpointId: id, attempt, manifest, keep }: PublishRequest): Promise<void> {
    this.owned();
    const staging = layout.staging(job, id, attempt);
    const manifestKey = layout.manifest(job, id);
    if ((await this.store.head(manifestKey)) !== undefined) return;
    const dropped: ObjectInfo[] = [];
    for (const o of (await this.store.list(below(staging))).objects) {
      if (o.key === below(staging)) continue;
      const [rankDir, item, ...rest] = o.key.slice(staging.length + 1).split("/");
      if (!(rankDir && isRankDirName(rankDir) && item && rest.length > 0 && keep.has(joinKey(rankDir, item)))) dropped.push(o);
    }
    await pool(dropped, CONCURRENCY, (o) => this.store.delete(o.key));
    // Every kept item is whole (its rank voted): an upload still open here is of an item left out.
    await this.store.abortIncompleteUploads(below(staging));
    injectFault("manifest");
    // false: published meanwhile by another attempt: not published again.
    await this.store.putIfAbsent(manifestKey, manifest);
    injectFault("publish");
  }

  async append(key: string, bytes: Buffer, at: number, beforeWrite?: () => void): Promise<number> {
    this.owned();
    if (this.logEnds.get(key) !== at) await this.cut(key, at);
    this.logEnds.delete(key);
    beforeWrite?.();
    if (!(await this.store.putIfAbsent(recordKey(key, at), bytes)))
      throw failedPrecondition(`the log ${this.where(key)} gained a record at ${at} from another writer`);
    this.logEnds.set(key, at + bytes.length);
    return at + bytes.length;
  }

  async truncate(key: string, size: number): Promise<void> {
    this.owned();
    const whole = await this.store.get(key);
    if (whole !== undefined) {
      if (whole.length > size) await this.store.put(key, whole.subarray(0, size));
      return;
    }
    await this.cut(key, size);
  }

  /** Cuts a log to `size` bytes: records past it are deleted, the one it falls in is rewritten shorter. */
  private async cut(key: string, size: number): Promise<void> {
    this.logEnds.delete(key);
    this.logsRead.delete(key);
    const all = (await this.store.list(`${key}${LOG_RECORDS}/`)).objects;
    const past = all.filter((o) => this.offsetOf(o) >= size);
    await pool(past, CONCURRENCY, (o) => this.store.delete(o.key));
    const inside = all.find((o) => this.offsetOf(o) < size && this.offsetOf(o) + o.size > size);
    if (inside) {
      const b = await this.store.getRange(inside.key, 0, size - this.offsetOf(inside));
      if (b) await this.store.put(inside.key, b);
    }
  }

  private offsetOf(o: ObjectInfo): number {
    return Number(o.key.slice(o.key.lastIndexOf("/") + 1));
  }

  /**
   * A log's records in order, up to the first gap (a record past it is no part of the log):
   * those known from the last read, and those listed after the last of them.
   */
  private async logRecords(key: string): Promise<LogRecord[]> {
    const known = this.logsRead.get(key) ?? [];
    const last = known.at(-1);
    const out = [...known];
    let end = last ? last.offset + last.size : 0;
    const listed = await this.store.list(`${key}${LOG_RECORDS}/`, { startAfter: last?.key });
    const objects = listed.objects.sort((a, b) => this.offsetOf(a) - this.offsetOf(b));
    if (last && objects.length > 0 && this.offsetOf(objects[0]!) !== end) {
      // Not where the known records end: the log was cut and written again since; list it whole.
      this.logsRead.delete(key);
      return this.logRecords(key);
    }
    for (const o of objects) {
      if (this.offsetOf(o) !== end) break;
      out.push({ key: o.key, offset: end, size: o.size });
      end += o.size;
    }
    if (out.length > 0) this.logsRead.set(key, out);
    else this.logsRead.delete(key);
    return out;
  }

  /** Stops renewing (without releasing) and closes the connections. */
  close(): void {
    if (this.lease) clearInterval(this.lease.timer);
    this.store.close();
  }

  /** The options it was made with (bucket, prefix, endpoint). */
  get options(): Readonly<S3StorageOptions> {
    return this.opts;
  }
}
