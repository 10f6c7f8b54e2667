/**
 * An in-memory stand-in for the S3 requests S3Upload sends (PutObject, CreateMultipartUpload,
 * UploadPart, CompleteMultipartUpload, AbortMultipartUpload), for unit tests of the upload and of
 * the item writer on top of it. Parts can be held in flight (`hold`) to test backpressure, and
 * every part's size and the most part bytes in flight at once are recorded.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { MIN_PART_BYTES, S3Upload, type UploadContext, type UploadOptions } from "../../../../src/store/s3/multipart.js";
import type { ObjectWriter } from "../../../../src/store/storage.js";

interface Upload {
  key: string;
  parts: Map<number, Buffer>;
}

export class FakeS3 {
  /** Completed objects by key. */
  readonly objects = new Map<string, Buffer>();
  /** Multipart uploads neither completed nor aborted, by upload id. */
  readonly uploads = new Map<string, Upload>();
  /** Sizes of the parts of each completed object, in part order (a PutObject: one entry). */
  readonly partSizes = new Map<string, number[]>();
  readonly commands: string[] = [];
  partBytesInFlight = 0;
  maxPartBytesInFlight = 0;
  private nextId = 1;
  private held: (() => void)[] | undefined;

  /** Part requests wait from now until `release` (each still counts as in flight). */
  hold(): void {
    this.held ??= [];
  }

  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const go of held) go();
  }

  get heldParts(): number {
    return this.held?.length ?? 0;
  }

  readonly context: UploadContext = {
    client: {
      send: (cmd: { constructor: { name: string }; input: unknown }) => this.send(cmd.constructor.name, cmd.input),
    } as unknown as S3Client,
    bucket: "bucket",
    call: (_what, fn) => fn(),
    etagOf: (key) => Promise.resolve(this.objects.has(key) ? "etag" : undefined),
  };

  upload(key: string, opts: UploadOptions): S3Upload {
    return new S3Upload(this.context, key, opts);
  }

  /** An upload as a Storage's ObjectWriter (as S3Storage.createObjectWriter wraps it). */
  objectWriter(key: string, opts: UploadOptions): ObjectWriter & { upload: S3Upload } {
    const upload = this.upload(key, opts);
    return {
      upload,
      write: (data) => upload.write(data),
      appendFrom: (n, fill) => upload.appendFrom(n, fill),
      finish: async () => {
        await upload.finish();
      },
      abort: () => upload.abort(),
    };
  }

  private async send(name: string, input: unknown): Promise<unknown> {
    this.commands.push(name);
    await Promise.resolve();
    const i = input as { Key: string; UploadId?: string; PartNumber?: number; Body?: Uint8Array; ContentLength?: number };
    switch (name) {
      case "PutObjectCommand":
        this.objects.set(i.Key, Buffer.from(i.Body!));
        this.partSizes.set(i.Key, [i.Body!.length]);
        return { ETag: '"etag"' };
      case "CreateMultipartUploadCommand": {
        const id = `upload-${this.nextId++}`;
        this.uploads.set(id, { key: i.Key, parts: new Map() });
        return { UploadId: id };
      }
      case "UploadPartCommand": {
        const len = i.ContentLength!;
        if (i.Body!.length !== len) throw new Error(`part body of ${i.Body!.length} bytes, ContentLength ${len}`);
        this.partBytesInFlight += len;
        this.maxPartBytesInFlight = Math.max(this.maxPartBytesInFlight, this.partBytesInFlight);
        try {
          if (this.held) await new Promise<void>((go) => this.held!.push(go));
          else await new Promise((go) => setImmediate(go));
          // What the upload sent is what lies in its buffer now (it must not reuse it before this resolves).
          const up = this.uploads.get(i.UploadId!);
          if (!up) throw Object.assign(new Error("NoSuchUpload"), { name: "NoSuchUpload" });
          up.parts.set(i.PartNumber!, Buffer.from(i.Body!));
          return { ETag: `"part-${i.PartNumber}"` };
        } finally {
          this.partBytesInFlight -= len;
        }
      }
      case "CompleteMultipartUploadCommand": {
        const up = this.uploads.get(i.UploadId!)!;
        this.uploads.delete(i.UploadId!);
        const numbers = [...up.parts.keys()].sort((a, b) => a - b);
        const parts = numbers.map((n) => up.parts.get(n)!);
        if (parts.slice(0, -1).some((p) => p.length < MIN_PART_BYTES))
          throw new Error("EntityTooSmall: a part but the last is under 5 MiB");
        this.objects.set(up.key, Buffer.concat(parts));
        this.partSizes.set(
          up.key,
          parts.map((p) => p.length),
        );
        return { ETag: '"etag-n"' };
      }
      case "AbortMultipartUploadCommand":
        this.uploads.delete(i.UploadId!);
        return {};
      default:
        throw new Error(`FakeS3: unexpected ${name}`);
    }
  }
}
