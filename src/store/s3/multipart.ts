/**
 * S3Upload: one object written as a stream of Buffers, uploaded as multipart parts in parallel.
 *
 * Memory is bounded by a byte budget: bytes are copied into part-sized buffers, and a new part
 * buffer is taken only while the parts being filled and uploaded hold less than the budget, so
 * `write` waits (backpressure) instead of holding the whole object. A caller may reuse the Buffer it
 * passed to `write` as soon as the returned promise resolves (e.g. hand it back to a pool).
 * `appendFrom` lets the caller put bytes straight into the part buffers instead (read from a file,
 * checksummed there): the part buffers are then the only copy of them in the daemon.
 *
 * An object smaller than one part never starts a multipart upload: `finish` sends it as one
 * PutObject. Parts are at least 5 MiB (S3's minimum) except the last.
 *
 * Call order: (write | appendFrom) × N (one at a time), then finish | abort. After a failed write or finish,
 * call abort (finish already aborts the upload it could not complete).
 *
 * RGW quirks this relies on or works around:
 * - CompleteMultipartUpload ignores If-None-Match on RGW 16, so an upload cannot be a create-only
 *   write: records that decide something (a commit decision, a manifest) must be single PutObjects
 *   with If-None-Match (S3Store.putIfAbsent).
 * - CompleteMultipartUpload answers with an empty ETag on RGW 16; the ETag is then read with HeadObject.
 * - Parts still being written when an upload is aborted can outlive the abort, so abort waits for
 *   every part request to settle first.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { failedPrecondition, invalidArgument } from "../../common/errors.js";
import type { ByteBudget } from "../../common/byte-budget.js";
import type { SpareBuffers } from "../buffer-pool.js";
import { classify } from "./errors.js";

export const MIN_PART_BYTES = 5 * 1024 * 1024;
const FIRST_BUFFER_BYTES = 64 * 1024;
/** S3's limit on parts per upload. */
export const MAX_PARTS = 10_000;

/** What an upload needs from the store that created it. */
export interface UploadContext {
  readonly client: S3Client;
  readonly bucket: string;
  /** Runs one request with the store's retries; a final failure becomes a CkptdError naming `what`. */
  call<T>(what: string, fn: () => Promise<T>): Promise<T>;
  /** The object's ETag without quotes, read with HeadObject. */
  etagOf(fullKey: string): Promise<string | undefined>;
}

export interface UploadOptions {
  /** Bytes per part (≥ 5 MiB). @default 8 MiB */
  partBytes?: number;
  /** Bytes the parts being filled and uploaded may hold at once (≥ one part). @default 64 MiB */
  budgetBytes?: number;
  /**
   * What the part buffers of many uploads count against together (e.g. a daemon's save-path
   * budget): an upload's first part buffer is always counted (so every upload makes progress and
   * none waits on another's), each further one only while the shared budget has room.
   */
  shared?: ByteBudget;
  /**
   * Where the part buffers come from and go back to (buffers of partBytes), shared by the uploads
   * of one store: a buffer is reused by the next upload instead of each upload faulting in and
   * freeing fresh ones (the garbage collector then runs after every few objects). Without it,
   * each upload allocates its own, the first starting small.
   */
  buffers?: SpareBuffers;
}

export interface UploadResult {
  /** The object's ETag, without quotes (the form If-Match wants on RGW). */
  etag: string;
  size: number;
}

type UploadState = "WRITING" | "FINISHING" | "DONE" | "ABORTED" | "FAILED";

export const stripQuotes = (etag: string | undefined) => (etag ?? "").replace(/^"(.*)"$/, "$1");

export class S3Upload {
  private state: UploadState = "WRITING";
  private failure: unknown;
  private uploadId: Promise<string> | undefined;
  private current: Buffer | undefined;
  private fill = 0;
  private size = 0;
  private nextPart = 1;
  private readonly parts: { PartNumber: number; ETag: string }[] = [];
  private readonly pending = new Set<Promise<void>>();
  private readonly spare: Buffer[] = [];
  private inFlight = 0;
  /** Bytes of inFlight counted against opts.shared. */
  private sharedBytes = 0;
  private readonly shared: ByteBudget | undefined;
  private readonly buffers: SpareBuffers | undefined;
  private peak = 0;
  private wake: (() => void) | undefined;
  private writing = false;
  readonly partBytes: number;
  readonly budgetBytes: number;

  constructor(
    private readonly ctx: UploadContext,
    /** The object's full key in the bucket. */
    readonly key: string,
    opts: UploadOptions = {},
  ) {
    this.partBytes = opts.partBytes ?? 8 * 1024 * 1024;
    this.budgetBytes = opts.budgetBytes ?? 64 * 1024 * 1024;
    this.shared = opts.shared;
    this.buffers = opts.buffers;
    if (!Number.isSafeInteger(this.partBytes) || this.partBytes < MIN_PART_BYTES)
      throw invalidArgument(`S3 part size must be at least ${MIN_PART_BYTES} bytes (got ${this.partBytes})`);
    if (this.buffers && this.buffers.size !== this.partBytes)
      throw invalidArgument(`S3 upload buffers of ${this.buffers.size} bytes for parts of ${this.partBytes} bytes`);
    if (!(this.budgetBytes >= this.partBytes))
      throw invalidArgument(`S3 upload budget (${this.budgetBytes} bytes) must hold at least one part (${this.partBytes} bytes)`);
  }

  /** Bytes written so far. */
  get bytesWritten(): number {
    return this.size;
  }

  /** The most bytes the upload's part buffers held at once (filling and in flight); never above the budget. */
  get peakBytes(): number {
    return this.peak;
  }

  /** Takes `data`'s bytes; resolves once they are copied (backpressure: waits while the budget is spent). */
  async write(data: Uint8Array): Promise<void> {
    let off = 0;
    await this.appendFrom(data.length, (buf, at, n) => {
      buf.set(data.subarray(off, off + n), at);
      off += n;
    });
  }

  /**
   * Appends `n` bytes that `fill` puts straight into the part buffers, one call per part buffer
   * they span: `fill(buf, offset, length)` must fill exactly buf[offset, offset + length) (e.g.
   * read a file into it, or checksum bytes where they lie). Saves the copy `write` makes; the
   * parts are the same as `write` would make of the same bytes. Waits while the budget is spent.
   */
  async appendFrom(n: number, fill: (buf: Buffer, offset: number, length: number) => void | Promise<void>): Promise<void> {
    this.checkWritable();
    if (this.writing) throw failedPrecondition(`upload of ${this.key}: write called while another write is pending`);
    this.writing = true;
    try {
      let done = 0;
      while (done < n) {
        if (!this.current) {
          await this.reserve();
          this.checkWritable();
          // Without shared buffers the first part's buffer starts at what this write needs and
          // grows, so a small object does not allocate a whole part (the budget still counts one).
          const size = this.nextPart === 1 ? Math.min(this.partBytes, Math.max(FIRST_BUFFER_BYTES, n - done)) : this.partBytes;
          this.current = this.buffers?.take() ?? this.spare.pop() ?? Buffer.allocUnsafe(size);
          this.fill = 0;
        } else if (this.fill === this.current.length) {
          const bigger = Buffer.allocUnsafe(Math.min(this.partBytes, Math.max(this.current.length * 2, this.fill + n - done)));
          this.current.copy(bigger, 0, 0, this.fill);
          this.current = bigger;
        }
        const buf = this.current;
        const k = Math.min(n - done, buf.length - this.fill);
        const filling = fill(buf, this.fill, k);
        if (filling) await filling;
        // An abort (or a failed part) while `fill` ran: nothing more is added.
        this.checkWritable();
        done += k;
        this.fill += k;
        this.size += k;
        if (this.fill === this.partBytes) this.sendPart();
      }
    } finally {
      this.writing = false;
    }
  }

  /** Uploads what is left and completes the object. */
  async finish(): Promise<UploadResult> {
    this.checkWritable();
    if (this.writing) throw failedPrecondition(`upload of ${this.key}: finish called while a write is pending`);
    this.state = "FINISHING";
    try {
      if (!this.uploadId) {
        // Smaller than one part: a single PutObject, no multipart upload to leave behind.
        const body = this.current ? this.current.subarray(0, this.fill) : Buffer.alloc(0);
        const res = await this.ctx.call(`put of ${this.key}`, () =>
          this.ctx.client.send(new PutObjectCommand({ Bucket: this.ctx.bucket, Key: this.key, Body: body, ContentLength: body.length })),
        );
        this.release();
        this.state = "DONE";
        return { etag: stripQuotes(res.ETag), size: this.size };
      }
      if (this.fill > 0) this.sendPart();
      await this.settle();
      if (this.failure !== undefined) throw this.failure;
      const uploadId = await this.uploadId;
      const parts = [...this.parts].sort((a, b) => a.PartNumber - b.PartNumber);
      let res;
      try {
        res = await this.ctx.call(`completing the upload of ${this.key}`, () =>
          this.ctx.client.send(
            new CompleteMultipartUploadCommand({
              Bucket: this.ctx.bucket,
              Key: this.key,
              UploadId: uploadId,
              MultipartUpload: { Parts: parts },
            }),
          ),
        );
      } catch (err) {
        // A retried Complete whose first try went through finds the upload gone: the object is there.
        if (classify((err as Error).cause ?? err) !== "noSuchUpload") throw err;
      }
      let etag = stripQuotes(res?.ETag);
      if (!etag) etag = (await this.ctx.etagOf(this.key)) ?? "";
      this.release();
      this.state = "DONE";
      return { etag, size: this.size };
    } catch (err) {
      this.failure ??= err;
      this.state = "FAILED";
      await this.abortUpload().catch(() => undefined);
      throw err;
    }
  }

  /** Abandons the object: waits for part requests in flight, then aborts the multipart upload. Idempotent. */
  async abort(): Promise<void> {
    if (this.state === "DONE") return;
    if (this.state === "WRITING" || this.state === "FINISHING") this.state = "ABORTED";
    await this.abortUpload();
  }

  private async abortUpload(): Promise<void> {
    await this.settle();
    this.release();
    const pendingId = this.uploadId;
    if (!pendingId) return;
    this.uploadId = undefined;
    let uploadId: string;
    try {
      uploadId = await pendingId;
    } catch {
      return; // The upload was never created.
    }
    try {
      await this.ctx.call(`aborting the upload of ${this.key}`, () =>
        this.ctx.client.send(new AbortMultipartUploadCommand({ Bucket: this.ctx.bucket, Key: this.key, UploadId: uploadId })),
      );
    } catch (err) {
      if (classify((err as Error).cause ?? err) !== "noSuchUpload") throw err;
    }
  }

  private checkWritable(): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.state !== "WRITING") throw failedPrecondition(`upload of ${this.key} is ${this.state.toLowerCase()}`);
  }

  /** Waits until one more part buffer fits in the budget, then counts it. */
  private async reserve(): Promise<void> {
    for (;;) {
      if (this.failure !== undefined) break;
      if (this.inFlight === 0) {
        this.shared?.force(this.partBytes);
        this.sharedBytes += this.shared ? this.partBytes : 0;
        break;
      }
      if (this.inFlight + this.partBytes <= this.budgetBytes && (this.shared?.tryTake(this.partBytes) ?? true)) {
        this.sharedBytes += this.shared ? this.partBytes : 0;
        break;
      }
      // Woken when one of this upload's parts is sent (its buffer comes back).
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    this.inFlight += this.partBytes;
    this.peak = Math.max(this.peak, this.inFlight);
  }

  private sendPart(): void {
    const buf = this.current!;
    const len = this.fill;
    this.current = undefined;
    this.fill = 0;
    const partNumber = this.nextPart++;
    if (partNumber > MAX_PARTS) {
      this.failure ??= failedPrecondition(`upload of ${this.key} needs more than ${MAX_PARTS} parts: raise the part size`);
      this.giveBack(buf);
      return;
    }
    this.uploadId ??= this.ctx
      .call(`starting the upload of ${this.key}`, () =>
        this.ctx.client.send(new CreateMultipartUploadCommand({ Bucket: this.ctx.bucket, Key: this.key })),
      )
      .then((res) => {
        if (!res.UploadId) throw failedPrecondition(`the object store returned no upload id for ${this.key}`);
        return res.UploadId;
      });
    const uploadId = this.uploadId;
    const body = buf.subarray(0, len);
    const p = (async () => {
      try {
        const id = await uploadId;
        const res = await this.ctx.call(`upload of part ${partNumber} of ${this.key}`, () =>
          this.ctx.client.send(
            new UploadPartCommand({
              Bucket: this.ctx.bucket,
              Key: this.key,
              UploadId: id,
              PartNumber: partNumber,
              Body: body,
              ContentLength: len,
            }),
          ),
        );
        this.parts.push({ PartNumber: partNumber, ETag: res.ETag ?? "" });
      } catch (err) {
        this.failure ??= err;
      } finally {
        this.giveBack(buf);
      }
    })();
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** One part buffer is no longer counted. */
  private uncount(): void {
    this.inFlight -= this.partBytes;
    const g = Math.min(this.sharedBytes, this.partBytes);
    this.sharedBytes -= g;
    this.shared?.give(g);
  }

  private giveBack(buf: Buffer): void {
    this.uncount();
    if (this.buffers) this.buffers.give(buf);
    else if (this.state === "WRITING") this.spare.push(buf);
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  private release(): void {
    if (this.current) {
      this.uncount();
      // A buffer an appendFrom is still filling (an abort meanwhile) is left to the collector.
      if (!this.writing) this.buffers?.give(this.current);
      this.current = undefined;
    }
    this.spare.length = 0;
  }
}
