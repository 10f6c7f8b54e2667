/**
 * The client's errors: every failure a caller sees is a {@link CkptdError} carrying a
 * gRPC status code, whether the daemon sent it or the client detected it first.
 */
import * as grpc from "@grpc/grpc-js";

/** The gRPC status codes, re-exported so callers need not import grpc-js. */
export const Code = grpc.status;
/** A gRPC status code. */
export type Code = grpc.status;

/** Name of a status code, e.g. `NOT_FOUND`; `UNKNOWN` for numbers outside the enum. */
export function codeName(code: number): string {
  const name: unknown = (grpc.status as unknown as Record<number, unknown>)[code];
  return typeof name === "string" ? name : "UNKNOWN";
}

/** Options of the {@link CkptdError} constructor. */
export interface CkptdErrorOptions {
  /** The error this one was converted from. */
  cause?: unknown;
  /** Trailing metadata the daemon sent with the status. */
  metadata?: grpc.Metadata;
}

/**
 * An error of a ckptd call: a gRPC status (`code`, `codeName`) with the daemon's
 * `details`, which are written to be acted on (they name the job, rank, entry or chunk).
 */
export class CkptdError extends Error {
  /** The gRPC status code, e.g. `5` for `NOT_FOUND`. */
  readonly code: number;
  /** The status code's name, e.g. `NOT_FOUND`. */
  readonly codeName: string;
  /** The message without the code prefix, as sent by the daemon. */
  readonly details: string;
  /** Trailing metadata of the failed call, when there was a call. */
  readonly metadata: grpc.Metadata | undefined;
  /** The original error (a grpc-js `ServiceError`, a Node error, ...). */
  override readonly cause: unknown;

  constructor(code: number, details: string, options: CkptdErrorOptions = {}) {
    const name = codeName(code);
    super(`${name}: ${details}`);
    this.name = "CkptdError";
    this.code = code;
    this.codeName = name;
    this.details = details;
    this.metadata = options.metadata;
    this.cause = options.cause;
  }

  /**
   * Converts anything thrown into a CkptdError: a grpc-js `ServiceError` keeps its
   * status, an error of ours is returned as is, and anything else becomes `UNKNOWN`
   * with the original kept as `cause`.
   */
  static from(err: unknown): CkptdError {
    if (err instanceof CkptdError) return err;
    if (isServiceError(err)) {
      return new CkptdError(err.code, err.details || err.message, { cause: err, metadata: err.metadata });
    }
    if (err instanceof Error) {
      // An aborted signal is a cancellation, not a failure of the daemon.
      const code = err.name === "AbortError" ? grpc.status.CANCELLED : grpc.status.UNKNOWN;
      return new CkptdError(code, err.message, { cause: err });
    }
    return new CkptdError(grpc.status.UNKNOWN, String(err), { cause: err });
  }
}

/**
 * Thrown by {@link CheckpointEngine.commit} when the two-phase commit decided ABORTED:
 * nothing of that attempt is visible, and the checkpoint id may be saved again.
 */
export class CheckpointAbortedError extends CkptdError {
  /** Why the daemon aborted the attempt (a rank aborted, an item was missing, the prepare timeout passed, ...). */
  readonly reason: string;
  /** The attempt the decision is about. */
  readonly attempt: number;
  /** The job of the checkpoint. */
  readonly job: string;
  /** The checkpoint id (tag). */
  readonly checkpointId: string;

  constructor(job: string, checkpointId: string, reason: string, attempt: number) {
    super(grpc.status.ABORTED, `checkpoint ${job}/${checkpointId} attempt ${attempt} was aborted: ${reason || "no reason given"}`);
    this.name = "CheckpointAbortedError";
    this.job = job;
    this.checkpointId = checkpointId;
    this.reason = reason;
    this.attempt = attempt;
  }
}

function isServiceError(err: unknown): err is grpc.ServiceError {
  if (!(err instanceof Error)) return false;
  const e = err as Partial<grpc.ServiceError>;
  // Node system errors also have `code`, but as a string ("ECONNRESET"): only a numeric one is a status.
  return typeof e.code === "number" && typeof e.details === "string";
}

function hasCode(err: unknown, code: grpc.status): boolean {
  if (err instanceof CkptdError) return err.code === code;
  return isServiceError(err) && err.code === code;
}

/** True when `err` is (or wraps) a `NOT_FOUND` status: unknown job, checkpoint, rank or item. */
export function isNotFound(err: unknown): boolean {
  return hasCode(err, grpc.status.NOT_FOUND);
}
/** True for `INVALID_ARGUMENT`: the request itself is malformed. */
export function isInvalidArgument(err: unknown): boolean {
  return hasCode(err, grpc.status.INVALID_ARGUMENT);
}
/** True for `FAILED_PRECONDITION`: the request is well-formed but the state does not allow it. */
export function isFailedPrecondition(err: unknown): boolean {
  return hasCode(err, grpc.status.FAILED_PRECONDITION);
}
/** True for `DATA_LOSS`: stored or streamed bytes failed a checksum or size check. */
export function isDataLoss(err: unknown): boolean {
  return hasCode(err, grpc.status.DATA_LOSS);
}
/** True for `UNAVAILABLE`: the daemon is not reachable or is draining; retrying may help. */
export function isUnavailable(err: unknown): boolean {
  return hasCode(err, grpc.status.UNAVAILABLE);
}
/** True for `ALREADY_EXISTS`: what the call would create exists already. */
export function isAlreadyExists(err: unknown): boolean {
  return hasCode(err, grpc.status.ALREADY_EXISTS);
}
/** True for `DEADLINE_EXCEEDED`: the call's deadline passed. */
export function isDeadlineExceeded(err: unknown): boolean {
  return hasCode(err, grpc.status.DEADLINE_EXCEEDED);
}
