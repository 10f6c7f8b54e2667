/**
 * Domain errors: what went wrong, as a kind a caller can act on. They know nothing of the
 * wire; src/rpc/status.ts is the one place a kind (or any other error) becomes a status.
 */

/** What kind of failure an error is. */
export type ErrorKind =
  | "invalid_argument"
  | "not_found"
  | "failed_precondition"
  | "already_exists"
  | "aborted"
  | "data_loss"
  | "unavailable"
  | "resource_exhausted"
  | "deadline_exceeded"
  | "cancelled"
  | "out_of_range"
  | "unauthenticated"
  | "permission_denied"
  | "unimplemented"
  | "unknown"
  | "internal";

/** Every kind, for tests and mappings that must cover them all. */
export const ERROR_KINDS: readonly ErrorKind[] = [
  "invalid_argument",
  "not_found",
  "failed_precondition",
  "already_exists",
  "aborted",
  "data_loss",
  "unavailable",
  "resource_exhausted",
  "deadline_exceeded",
  "cancelled",
  "out_of_range",
  "unauthenticated",
  "permission_denied",
  "unimplemented",
  "unknown",
  "internal",
];

/** An error of a known kind; its message is what the client is told. */
export class CkptdError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "CkptdError";
  }
}

/** The marker every "shared memory unavailable" message starts with (clients fall back to the stream on it). */
export const SHARED_MEMORY_UNAVAILABLE = "shared memory unavailable";

/**
 * A client's shared-memory file cannot be used here (FAILED_PRECONDITION): the client sends
 * its bytes on the stream instead. Its message starts with SHARED_MEMORY_UNAVAILABLE.
 */
export class SharedMemoryUnavailable extends CkptdError {
  constructor(why: string) {
    super("failed_precondition", `${SHARED_MEMORY_UNAVAILABLE}: ${why}; send the bytes in Chunk messages`);
    this.name = "SharedMemoryUnavailable";
  }
}

export const invalidArgument = (msg: string) => new CkptdError("invalid_argument", msg);
export const notFound = (msg: string) => new CkptdError("not_found", msg);
export const failedPrecondition = (msg: string) => new CkptdError("failed_precondition", msg);
export const alreadyExists = (msg: string) => new CkptdError("already_exists", msg);
export const aborted = (msg: string) => new CkptdError("aborted", msg);
export const dataLoss = (msg: string) => new CkptdError("data_loss", msg);
export const unavailable = (msg: string) => new CkptdError("unavailable", msg);
export const resourceExhausted = (msg: string) => new CkptdError("resource_exhausted", msg);
export const deadlineExceeded = (msg: string) => new CkptdError("deadline_exceeded", msg);
export const cancelled = (msg: string) => new CkptdError("cancelled", msg);
export const outOfRange = (msg: string) => new CkptdError("out_of_range", msg);
export const unauthenticated = (msg: string) => new CkptdError("unauthenticated", msg);
export const permissionDenied = (msg: string) => new CkptdError("permission_denied", msg);
export const internal = (msg: string, cause?: unknown) => new CkptdError("internal", msg, { cause });
