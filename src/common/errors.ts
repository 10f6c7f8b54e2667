/**
 * Domain errors and the one place where any error becomes a gRPC status.
 */
import { status, type ServiceError, Metadata } from "@grpc/grpc-js";

/** An error with the gRPC status it should be reported as. */
export class CkptdError extends Error {
  constructor(
    readonly code: status,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "CkptdError";
  }
}

export const invalidArgument = (msg: string) => new CkptdError(status.INVALID_ARGUMENT, msg);
export const notFound = (msg: string) => new CkptdError(status.NOT_FOUND, msg);
export const failedPrecondition = (msg: string) => new CkptdError(status.FAILED_PRECONDITION, msg);
export const alreadyExists = (msg: string) => new CkptdError(status.ALREADY_EXISTS, msg);
export const aborted = (msg: string) => new CkptdError(status.ABORTED, msg);
export const dataLoss = (msg: string) => new CkptdError(status.DATA_LOSS, msg);
export const unavailable = (msg: string) => new CkptdError(status.UNAVAILABLE, msg);
export const resourceExhausted = (msg: string) => new CkptdError(status.RESOURCE_EXHAUSTED, msg);
export const deadlineExceeded = (msg: string) => new CkptdError(status.DEADLINE_EXCEEDED, msg);
export const cancelled = (msg: string) => new CkptdError(status.CANCELLED, msg);
export const internal = (msg: string, cause?: unknown) => new CkptdError(status.INTERNAL, msg, { cause });

/** Node errno codes that say something a caller can act on. */
const ERRNO_STATUS: Record<string, [status, string]> = {
  ENOSPC: [status.RESOURCE_EXHAUSTED, "the daemon's data directory is full"],
  EDQUOT: [status.RESOURCE_EXHAUSTED, "the daemon's disk quota is exhausted"],
  ENOENT: [status.NOT_FOUND, "a file the request needs does not exist"],
  EACCES: [status.INTERNAL, "the daemon has no permission on its data directory"],
  EROFS: [status.UNAVAILABLE, "the daemon's data directory is read-only"],
  EIO: [status.DATA_LOSS, "an I/O error occurred on the daemon's disk"],
  EMFILE: [status.RESOURCE_EXHAUSTED, "the daemon ran out of file descriptors"],
};

/** Maps any error to a status the client gets; never leaks a stack trace. */
export function toServiceError(err: unknown): Partial<ServiceError> & { code: status; details: string } {
  let code: status = status.INTERNAL;
  let details: string;
  if (err instanceof CkptdError) {
    code = err.code;
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
