/**
 * S3Store: the object operations an S3-backed checkpoint store needs, on one bucket and key prefix,
 * over @aws-sdk/client-s3 (pinned exactly in package.json to 3.1175.0, the newest release when chosen;
 * its `engines` is node >=20.0.0, which this daemon runs on). The SDK announces that releases after the
 * first week of January 2027 need Node 22 (and warns once per process on Node 20; setting
 * AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true silences it): moving past this pin means moving to Node 22.
 *
 * Keys are relative to the prefix. Credentials come from the default AWS chain (AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, web identity, instance metadata) unless given.
 * Transient failures (no answer, 5xx, throttling) are retried with backoff and jitter within a
 * bounded number of attempts and time (the SDK's own retries are off, so the bound is ours); what
 * still fails becomes a CkptdError (see errors.ts).
 *
 * RGW (Ceph 16) quirks, which decide how callers may use this:
 * - Checksums: the SDK's default trailing checksums on streamed bodies are answered 411 by RGW 16,
 *   so checksums are computed only when an operation requires one (WHEN_REQUIRED).
 * - If-None-Match: * works on PutObject but is ignored on CompleteMultipartUpload: a record that
 *   must be created exactly once (a decision, a manifest) must be a single put (`putIfAbsent`).
 * - RGW sometimes answers the losers of concurrent conditional puts with 500 instead of 412;
 *   `putIfAbsent` re-reads the key to tell a lost race from a failure.
 * - If-Match wants the ETag without its quotes; every ETag here is returned unquoted.
 * - CopyObject's conditional headers (x-amz-copy-source-if-*) are ignored by RGW 16: a copy is no
 *   way to make a conditional write.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCopyCommand,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { finished, type Readable } from "node:stream";
import { internal, invalidArgument } from "../../common/errors.js";
import { classify, isRetryable, toCkptdError, type S3Place } from "./errors.js";
import { S3Upload, stripQuotes, type UploadContext, type UploadOptions } from "./multipart.js";
import { DEFAULT_RETRY, withRetry, type RetryPolicy } from "./retry.js";

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix every key is under ("" for the bucket's root). Slashes at either end are dropped. */
  prefix?: string;
  /** e.g. http://127.0.0.1:7480 for a local RGW; AWS S3 when absent. */
  endpoint?: string;
  /** @default AWS_REGION / AWS_DEFAULT_REGION, else us-east-1 when an endpoint is given */
  region?: string;
  /** Bucket in the path rather than the host name (RGW, MinIO). @default true when an endpoint is given */
  forcePathStyle?: boolean;
  /** Static credentials; the default AWS chain when absent. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  retry?: Partial<RetryPolicy>;
  /** Time to establish a connection. @default 5000 */
  connectTimeoutMs?: number;
  /** Time a connection may sit idle during a request (no bytes either way) before the request fails and is retried. @default 60000 */
  idleTimeoutMs?: number;
  /** Concurrent connections to the endpoint. @default 64 */
  maxSockets?: number;
  /** Defaults for createUpload. */
  upload?: UploadOptions;
}

export interface ObjectInfo {
  /** Relative to the store's prefix. */
  key: string;
  size: number;
  etag: string;
}

export interface Listing {
  objects: ObjectInfo[];
  /** With a delimiter: the "directories" one level down, relative to the store's prefix, ending in the delimiter. */
  prefixes: string[];
}

export interface IncompleteUpload {
  /** Relative to the store's prefix. */
  key: string;
  uploadId: string;
  initiated: Date | undefined;
}

const MAX_DELETE_BATCH = 1000;
/** The largest object one CopyObject copies (5 GiB); larger ones are copied in parts of this size. */
const MAX_COPY_BYTES = 5 * 1024 * 1024 * 1024;

export class S3Store {
  readonly client: S3Client;
  readonly bucket: string;
  /** The key prefix with a trailing slash, or "". */
  readonly root: string;
  private readonly place: S3Place;
  private readonly retry: RetryPolicy;
  private readonly uploadDefaults: UploadOptions;
  private readonly uploadContext: UploadContext;

  constructor(opts: S3StoreOptions) {
    if (!opts.bucket) throw invalidArgument("an S3 store needs a bucket");
    this.bucket = opts.bucket;
    const prefix = (opts.prefix ?? "").replace(/^\/+|\/+$/g, "");
    this.root = prefix ? `${prefix}/` : "";
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.uploadDefaults = opts.upload ?? {};
    this.place = { bucket: this.bucket, prefix, endpoint: opts.endpoint ?? "AWS S3" };
    const config: S3ClientConfig = {
      region: opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? (opts.endpoint ? "us-east-1" : undefined),
      forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      maxAttempts: 1,
      requestHandler: {
        connectionTimeout: opts.connectTimeoutMs ?? 5_000,
        // An idle bound, not a total one: a large GET may rightly take long while bytes keep flowing.
        socketTimeout: opts.idleTimeoutMs ?? 60_000,
        httpAgent: { keepAlive: true, maxSockets: opts.maxSockets ?? 64 },
        httpsAgent: { keepAlive: true, maxSockets: opts.maxSockets ?? 64 },
      },
    };
    if (opts.endpoint) config.endpoint = opts.endpoint;
    if (opts.credentials) config.credentials = opts.credentials;
    this.client = new S3Client(config);
    this.uploadContext = {
      client: this.client,
      bucket: this.bucket,
      call: (what, fn) => this.call(what, fn),
      etagOf: async (fullKey) => (await this.headFull(fullKey))?.etag,
    };
  }

  /** The full key in the bucket of a key relative to the prefix. */
  fullKey(key: string): string {
    return this.root + key;
  }

  /** Runs one request with retries; a final failure becomes a CkptdError. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await withRetry(this.retry, isRetryable, fn);
    } catch (err) {
      throw toCkptdError(err, what, this.place);
    }
  }

  /** Runs one request with retries; errors of the kinds in `expected` come back as the kind instead of being thrown. */
  private async callExpecting<T, K extends string>(what: string, expected: readonly K[], fn: () => Promise<T>): Promise<T | { kind: K }> {
    try {
      return await withRetry(this.retry, isRetryable, fn);
    } catch (err) {
      const kind = classify(err);
      if ((expected as readonly string[]).includes(kind)) return { kind: kind as K };
      throw toCkptdError(err, what, this.place);
    }
  }

  async put(key: string, body: Uint8Array | string): Promise<{ etag: string }> {
    const res = await this.call(`put of ${key}`, () =>
      this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key), Body: body })),
    );
    return { etag: stripQuotes(res.ETag) };
  }

  /**
   * Creates `key` only if it does not exist (If-None-Match: *): true if this call created it, false if
   * the key existed. Races between writers are outcomes, not errors, and are not retried. When an
   * answer is lost or is a 5xx (RGW answers some losers of a race with 500), the key is read back: other
   * bytes there mean another writer won (false); the same bytes mean this write landed, possibly on an
   * earlier attempt (true); nothing there means the write is tried again. So two writers of identical
   * bytes can both be told true after a 5xx: writers that must know which one won write bytes of their
   * own (e.g. naming the writer).
   */
  async putIfAbsent(key: string, body: Uint8Array | string): Promise<boolean> {
    const bytes = typeof body === "string" ? Buffer.from(body) : body;
    const fullKey = this.fullKey(key);
    const what = `create-only put of ${key}`;
    let ambiguous = false;
    let lastErr: unknown;
    const once = { ...this.retry, attempts: 1 };
    try {
      return await withRetry(
        this.retry,
        (err) => err === RETRY_CONDITIONAL,
        async () => {
          try {
            await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: fullKey, Body: bytes, IfNoneMatch: "*" }));
            return true;
          } catch (err) {
            const kind = classify(err);
            if (kind === "precondition" && !ambiguous) return false;
            if (kind !== "precondition" && !isRetryable(err)) throw err;
            // Lost answer, 5xx, or a 412 after an earlier attempt may have landed: look at what is there.
            ambiguous = true;
            lastErr = err;
            let existing: Buffer | undefined;
            try {
              existing = await this.getFull(fullKey, once);
            } catch (readErr) {
              if (!isRetryable(readErr)) throw readErr;
              lastErr = readErr;
              throw RETRY_CONDITIONAL;
            }
            if (existing === undefined) {
              if (kind === "precondition") return false; // Created and then deleted by someone else: not ours.
              throw RETRY_CONDITIONAL;
            }
            return Buffer.compare(existing, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) === 0;
          }
        },
      );
    } catch (err) {
      throw toCkptdError(err === RETRY_CONDITIONAL ? lastErr : err, what, this.place);
    }
  }

  /**
   * Replaces `key` only if its ETag is still `etag` (If-Match): the new ETag, or undefined when the
   * object changed or is gone (a lease renewed by its holder only while nobody took it over).
   */
  async putIfMatch(key: string, body: Uint8Array | string, etag: string): Promise<string | undefined> {
    const res = await this.callExpecting(`conditional put of ${key}`, ["precondition", "notFound"] as const, () =>
      this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key), Body: body, IfMatch: etag })),
    );
    return "kind" in res ? undefined : stripQuotes(res.ETag);
  }

  /**
   * Copies `from` to `to` inside the bucket, server-side: one CopyObject up to `partBytes`, else a
   * multipart copy (UploadPartCopy of `partBytes` ranges; CopyObject stops at 5 GiB). `size` is the
   * source's size when the caller listed it (else it is read with HeadObject). A failed multipart copy
   * is aborted.
   */
  async copy(from: string, to: string, opts: { size?: number; partBytes?: number } = {}): Promise<void> {
    const what = `copy of ${from} to ${to}`;
    const source = `${this.bucket}/${this.fullKey(from)}`.split("/").map(encodeURIComponent).join("/");
    const partBytes = opts.partBytes ?? MAX_COPY_BYTES;
    const size = opts.size ?? (await this.head(from))?.size ?? 0;
    const Bucket = this.bucket;
    const Key = this.fullKey(to);
    if (size <= partBytes) {
      await this.call(what, () => this.client.send(new CopyObjectCommand({ Bucket, Key, CopySource: source })));
      return;
    }
    const { UploadId } = await this.call(what, () => this.client.send(new CreateMultipartUploadCommand({ Bucket, Key })));
    try {
      const parts: { PartNumber: number; ETag: string }[] = [];
      for (let offset = 0, n = 1; offset < size; offset += partBytes, n++) {
        const range = `bytes=${offset}-${Math.min(size, offset + partBytes) - 1}`;
        const res = await this.call(`${what} (part ${n})`, () =>
          this.client.send(new UploadPartCopyCommand({ Bucket, Key, UploadId, PartNumber: n, CopySource: source, CopySourceRange: range })),
        );
        parts.push({ PartNumber: n, ETag: res.CopyPartResult?.ETag ?? "" });
      }
      await this.call(what, () =>
        this.client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } })),
      );
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
      throw err;
    }
  }

  /** The whole object, or undefined if there is none. */
  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await this.getFull(this.fullKey(key));
    } catch (err) {
      throw toCkptdError(err, `get of ${key}`, this.place);
    }
  }

  private async getFull(fullKey: string, policy = this.retry): Promise<Buffer | undefined> {
    return withRetry(policy, isRetryable, async () => {
      let res;
      try {
        res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: fullKey }));
      } catch (err) {
        if (classify(err) === "notFound") return undefined;
        throw err;
      }
      const chunks: Buffer[] = [];
      for await (const chunk of res.Body as AsyncIterable<Uint8Array>)
        chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      return Buffer.concat(chunks);
    });
  }

  /**
   * `length` bytes from `offset` (fewer at the object's end; none past it), read into `into` when given
   * (it must hold `length` bytes) and returned as a view of it. Undefined if the object does not exist.
   */
  async getRange(key: string, offset: number, length: number, into?: Buffer): Promise<Buffer | undefined> {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0)
      throw invalidArgument(`bad range of ${key}: offset ${offset}, length ${length}`);
    if (into && into.length < length) throw invalidArgument(`a ${into.length}-byte buffer cannot hold ${length} bytes of ${key}`);
    if (length === 0) return (await this.head(key)) ? Buffer.alloc(0) : undefined;
    const dest = into ?? Buffer.allocUnsafe(length);
    const input = { Bucket: this.bucket, Key: this.fullKey(key), Range: `bytes=${offset}-${offset + length - 1}` };
    const res = await this.callExpecting(`ranged get of ${key}`, ["notFound", "invalidRange"] as const, async () => {
      const out = await this.client.send(new GetObjectCommand(input));
      // The body's socket reads go straight into `dest` from its 'data' events: an async iterator costs
      // a promise and a turn of the event loop per socket read, which at 64 KiB a read adds up.
      const body = out.Body as Readable;
      return new Promise<number>((resolve, reject) => {
        let n = 0;
        body.on("data", (chunk: Buffer) => {
          if (n + chunk.length > length) {
            body.destroy(internal(`the object store sent more than the ${length} bytes asked of ${key}`));
            return;
          }
          dest.set(chunk, n);
          n += chunk.length;
        });
        finished(body, (err) => (err ? reject(err) : resolve(n)));
      });
    });
    if (typeof res === "number") return dest.subarray(0, res);
    return res.kind === "invalidRange" ? dest.subarray(0, 0) : undefined;
  }

  /**
   * Size and ETag (unquoted), or undefined if there is no such object. HeadObject answers have no body,
   * so a missing bucket looks like a missing object here; every other operation names the bucket.
   */
  async head(key: string): Promise<{ size: number; etag: string } | undefined> {
    return this.headFull(this.fullKey(key), key);
  }

  private async headFull(fullKey: string, key = fullKey): Promise<{ size: number; etag: string } | undefined> {
    const res = await this.callExpecting(`head of ${key}`, ["notFound"] as const, () =>
      this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: fullKey })),
    );
    if ("kind" in res) return undefined;
    return { size: res.ContentLength ?? 0, etag: stripQuotes(res.ETag) };
  }

  /**
   * The objects under `prefix` (relative to the store's prefix). With a delimiter ("/"), one level like
   * readdir: objects directly under it and the sub-prefixes; without, every object below it.
   * `pageSize` (≤ 1000) is the page each request asks for.
   */
  async list(prefix: string, opts: { delimiter?: string; pageSize?: number; startAfter?: string } = {}): Promise<Listing> {
    const out: Listing = { objects: [], prefixes: [] };
    for await (const page of this.listPages(prefix, opts)) {
      out.objects.push(...page.objects);
      out.prefixes.push(...page.prefixes);
    }
    return out;
  }

  /** `list`, one page at a time. */
  async *listPages(prefix: string, opts: { delimiter?: string; pageSize?: number; startAfter?: string } = {}): AsyncGenerator<Listing> {
    let token: string | undefined;
    do {
      const res = await this.call(`list of ${prefix || "/"}`, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.fullKey(prefix),
            Delimiter: opts.delimiter,
            MaxKeys: opts.pageSize,
            // Only keys after this one (listings are in key order): a log's new records.
            StartAfter: opts.startAfter === undefined ? undefined : this.fullKey(opts.startAfter),
            ContinuationToken: token,
          }),
        ),
      );
      yield {
        objects: (res.Contents ?? []).map((o) => ({ key: this.relative(o.Key ?? ""), size: o.Size ?? 0, etag: stripQuotes(o.ETag) })),
        prefixes: (res.CommonPrefixes ?? []).map((p) => this.relative(p.Prefix ?? "")),
      };
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  }

  private relative(fullKey: string): string {
    return fullKey.startsWith(this.root) ? fullKey.slice(this.root.length) : fullKey;
  }

  /** Deletes `key`; deleting a missing key is not an error. */
  async delete(key: string): Promise<void> {
    await this.call(`delete of ${key}`, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) })));
  }

  /** Deletes every object under `prefix` in batches of up to 1000; returns how many. */
  async deletePrefix(prefix: string): Promise<number> {
    let deleted = 0;
    for await (const page of this.listPages(prefix, { pageSize: MAX_DELETE_BATCH })) {
      if (page.objects.length === 0) continue;
      const keys = page.objects.map((o) => ({ Key: this.fullKey(o.key) }));
      const res = await this.call(`delete of ${keys.length} objects under ${prefix || "/"}`, () =>
        this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys, Quiet: true } })),
      );
      const failed = (res.Errors ?? []).filter((e) => e.Code !== "NoSuchKey");
      if (failed.length > 0) {
        const first = failed[0]!;
        throw toCkptdError(
          Object.assign(new Error(first.Message ?? "delete failed"), { name: first.Code ?? "DeleteFailed" }),
          `delete of ${failed.length} objects under ${prefix || "/"} (first: ${first.Key})`,
          this.place,
        );
      }
      deleted += keys.length;
    }
    return deleted;
  }

  /** A streaming multipart writer for `key` (see S3Upload). Nothing is sent until a part is full or it finishes. */
  createUpload(key: string, opts: UploadOptions = {}): S3Upload {
    return new S3Upload(this.uploadContext, this.fullKey(key), { ...this.uploadDefaults, ...opts });
  }

  /** Multipart uploads under `prefix` that were started and neither completed nor aborted. */
  async listIncompleteUploads(prefix: string): Promise<IncompleteUpload[]> {
    const out: IncompleteUpload[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const res = await this.call(`list of incomplete uploads under ${prefix || "/"}`, () =>
        this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.fullKey(prefix),
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        ),
      );
      for (const u of res.Uploads ?? []) {
        if (u.Key && u.UploadId) out.push({ key: this.relative(u.Key), uploadId: u.UploadId, initiated: u.Initiated });
      }
      if (!res.IsTruncated) return out;
      keyMarker = res.NextKeyMarker;
      uploadIdMarker = res.NextUploadIdMarker;
      if (!keyMarker && !uploadIdMarker) return out;
    }
  }

  /** Aborts the incomplete uploads under `prefix` (started before `olderThan`, when given); returns how many. */
  async abortIncompleteUploads(prefix: string, opts: { olderThan?: Date } = {}): Promise<number> {
    let n = 0;
    for (const u of await this.listIncompleteUploads(prefix)) {
      if (opts.olderThan && u.initiated && u.initiated >= opts.olderThan) continue;
      const res = await this.callExpecting(`abort of the upload of ${u.key}`, ["noSuchUpload", "notFound"] as const, () =>
        this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.fullKey(u.key), UploadId: u.uploadId })),
      );
      if (!("kind" in res)) n++;
    }
    return n;
  }

  /** Closes the client's connections. */
  close(): void {
    this.client.destroy();
  }
}

/** Thrown inside putIfAbsent's retry loop to try the conditional put again. */
const RETRY_CONDITIONAL = new Error("retry the conditional put");
