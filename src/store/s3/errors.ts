/**
 * What an S3 (or RGW) failure means to the store, and the one place where it becomes a CkptdError.
 *
 * The SDK throws two shapes: service exceptions (a `name` such as `NoSuchBucket`, an HTTP status in
 * `$metadata.httpStatusCode`) and Node network errors (`code` such as `ECONNREFUSED`, sometimes inside an
 * AggregateError when a host name resolved to several addresses). `classify` reads both.
 */
import { CkptdError, failedPrecondition, internal, permissionDenied, resourceExhausted, unavailable } from "../../common/errors.js";

export type S3ErrorKind =
  /** 412: a conditional request's condition did not hold (e.g. `If-None-Match: *` on an existing key). */
  | "precondition"
  /** 404 on an object (`NoSuchKey`, or HeadObject's body-less `NotFound`). */
  | "notFound"
  | "noSuchBucket"
  /** The multipart upload id is unknown (already completed or aborted). */
  | "noSuchUpload"
  /** 416: a range past the object's end. */
  | "invalidRange"
  | "accessDenied"
  /** 403 QuotaExceeded: the bucket's or the user's quota is used up (the object store's "disk full"). */
  | "quota"
  /** No HTTP answer at all: refused, unreachable, reset, timed out. Retried. */
  | "network"
  /** 5xx, 429 and throttling answers. Retried. */
  | "transient"
  | "other";

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "ESOCKETTIMEDOUT",
  "UND_ERR_SOCKET",
]);
const THROTTLING = new Set(["SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "TooManyRequests", "ServiceUnavailable"]);
const DENIED = new Set(["AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden", "AllAccessDisabled"]);

interface SdkErrorShape {
  name?: string;
  code?: string;
  Code?: string;
  errors?: unknown[];
  $metadata?: { httpStatusCode?: number };
}

function networkCode(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const e = err as SdkErrorShape & { cause?: unknown };
  if (typeof e.code === "string" && NETWORK_CODES.has(e.code)) return e.code;
  for (const inner of e.errors ?? []) {
    const code = networkCode(inner);
    if (code) return code;
  }
  return e.cause !== undefined && e.cause !== err ? networkCode(e.cause) : undefined;
}

/** The HTTP status of a service answer, if there was one. */
export function httpStatusOf(err: unknown): number | undefined {
  return typeof err === "object" && err !== null ? (err as SdkErrorShape).$metadata?.httpStatusCode : undefined;
}

export function classify(err: unknown): S3ErrorKind {
  if (err instanceof CkptdError) return "other";
  if (networkCode(err)) return "network";
  if (typeof err !== "object" || err === null) return "other";
  const e = err as SdkErrorShape;
  const name = e.Code ?? e.name ?? "";
  const http = httpStatusOf(err);
  // node-http-handler reports its connection and request timeouts as TimeoutError, with no status.
  if (name === "TimeoutError" || (name === "AbortError" && http === undefined)) return "network";
  if (http === 412 || name === "PreconditionFailed") return "precondition";
  if (name === "NoSuchBucket") return "noSuchBucket";
  if (name === "NoSuchUpload") return "noSuchUpload";
  if (name === "NoSuchKey" || name === "NotFound" || http === 404) return "notFound";
  if (http === 416 || name === "InvalidRange") return "invalidRange";
  if (name === "QuotaExceeded") return "quota";
  if (DENIED.has(name) || http === 403) return "accessDenied";
  if (THROTTLING.has(name) || http === 429 || (http !== undefined && http >= 500)) return "transient";
  return "other";
}

export const isRetryable = (err: unknown): boolean => {
  const kind = classify(err);
  return kind === "network" || kind === "transient";
};

/** Where a request went, for messages: the bucket, the prefix and the endpoint. */
export interface S3Place {
  bucket: string;
  prefix: string;
  endpoint: string;
}

const describe = (p: S3Place) => `s3://${p.bucket}/${p.prefix} at ${p.endpoint}`;

function detail(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = networkCode(err);
  const http = httpStatusOf(err);
  const parts = [
    err.name && err.name !== "Error" ? err.name : undefined,
    code,
    http ? `HTTP ${http}` : undefined,
    err.message || undefined,
  ];
  return [...new Set(parts.filter((p): p is string => !!p))].join(": ");
}

/**
 * The CkptdError a failed S3 request becomes. `what` names the operation and key ("put of x/y").
 * An unreachable endpoint and exhausted retries are UNAVAILABLE (the store may come back);
 * a missing bucket and denied access are configuration errors a person must fix.
 */
export function toCkptdError(err: unknown, what: string, place: S3Place): CkptdError {
  if (err instanceof CkptdError) return err;
  let out: CkptdError;
  switch (classify(err)) {
    case "network":
      out = unavailable(`object store at ${place.endpoint} (bucket ${place.bucket}) is unreachable: ${what} failed: ${detail(err)}`);
      break;
    case "transient":
      out = unavailable(`object store at ${place.endpoint} (bucket ${place.bucket}) kept failing: ${what}: ${detail(err)}`);
      break;
    case "noSuchBucket":
      out = failedPrecondition(`S3 bucket "${place.bucket}" does not exist at ${place.endpoint} (${what})`);
      break;
    case "quota":
      // EDQUOT as a full disk's quota says it, so callers telling "full" apart (Storage's promise) see it.
      out = Object.assign(resourceExhausted(`the object store's quota for ${describe(place)} is used up (${what}): ${detail(err)}`), {
        code: "EDQUOT",
      });
      break;
    case "accessDenied":
      out = permissionDenied(
        `access denied to ${describe(place)} (${what}): ${detail(err)}; check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE) and the bucket policy`,
      );
      break;
    default:
      out = internal(`object store request failed: ${what} on ${describe(place)}: ${detail(err)}`, err);
  }
  if (out.cause === undefined) Object.defineProperty(out, "cause", { value: err, enumerable: false, configurable: true, writable: true });
  return out;
}
