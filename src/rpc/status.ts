/**
 * The one place where an error becomes a gRPC status, and a peer's status an error again.
 * Domain errors carry a kind (common/errors.ts); Node errno errors that say something a
 * caller can act on get their own status and text; anything else is INTERNAL, without a stack.
 */
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { CkptdError, type ErrorKind } from "../common/errors.js";

export { status };

/** The status of each kind of domain error. */
export const KIND_STATUS: Readonly<Record<ErrorKind, status>> = {
  invalid_argument: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  failed_precondition: status.FAILED_PRECONDITION,
  already_exists: status.ALREADY_EXISTS,
  aborted: status.ABORTED,
  data_loss: status.DATA_LOSS,
  unavailable: status.UNAVAILABLE,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  deadline_exceeded: status.DEADLINE_EXCEEDED,
  cancelled: status.CANCELLED,
  out_of_range: status.OUT_OF_RANGE,
  unauthenticated: status.UNAUTHENTICATED,
  permission_denied: status.PERMISSION_DENIED,
  unimplemented: status.UNIMPLEMENTED,
  unknown: status.UNKNOWN,
  internal: status.INTERNAL,
};

const STATUS_KIND = new Map<number, ErrorKind>(Object.entries(KIND_STATUS).map(([k, s]) => [s, k as ErrorKind]));

/** The kind of a status a peer answered with (OK and unknown codes count as "unknown"). */
export function kindOf(code: number): ErrorKind {
  return STATUS_KIND.get(code) ?? "unknown";
}

/** A failed call to a peer as a domain error of the same kind, its message prefixed with `who`. */
export function fromServiceError(err: { code?: number; details?: string; message?: string }, who: string): CkptdError {
  return new CkptdError(kindOf(err.code ?? status.UNKNOWN), `${who}: ${err.details ?? err.message ?? ""}`, { cause: err });
}

/** Node errno codes that say something a caller can act on. */
export const ERRNO_STATUS: Readonly<Record<string, readonly [status, string]>> = {
  ENOSPC: [status.RESOURCE_EXHAUSTED, "the daemon's data directory is full"],
  EDQUOT: [status.RESOURCE_EXHAUSTED, "the daemon's disk quota is exhausted"],
  ENOENT: [status.NOT_FOUND, "a file the request needs does not exist"],
  EACCES: [status.INTERNAL, "the daemon has no permission on its data directory"],
  EROFS: [status.UNAVAILABLE, "the daemon's data directory is read-only"],
  EIO: [status.DATA_LOSS, "an I/O error occurred on the daemon's disk"],
  EMFILE: [status.RESOURCE_EXHAUSTED, "the daemon ran out of file descriptors"],
};

/** What a client is told of an error. */
export type StatusError = Partial<ServiceError> & { code: status; details: string };

/** Maps any error to a status the client gets; never leaks a stack trace. */
export function toServiceError(err: unknown): StatusError {
  let code: status = status.INTERNAL;
  let details: string;
  if (err instanceof CkptdError) {
    code = KIND_STATUS[err.kind];
    details = err.message;
  } else if (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === "string") {
    const errno = (err as NodeJS.ErrnoException).code!;
    const mapped = ERRNO_STATUS[errno];
    if (mapped) code = mapped[0];
    details = mapped ? `${mapped[1]} (${err.message})` : `internal error: ${err.message}`;
  } else {
    details = `internal error: ${err instanceof Error ? err.message : String(err)}`;
  }
  return { code, details, message: details, metadata: new Metadata() };
}

/** The name of a status ("NOT_FOUND"), as logs and metrics label it. */
export function statusName(code: status): string {
  return status[code] ?? String(code);
}
