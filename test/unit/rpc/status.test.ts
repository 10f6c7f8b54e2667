import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import * as errors from "../../../src/common/errors.js";
import { CkptdError, ERROR_KINDS, SharedMemoryUnavailable } from "../../../src/common/errors.js";
import { fromServiceError, kindOf, toServiceError } from "../../../src/rpc/status.js";

function errno(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

describe("status mapping", () => {
  it("status - every kind maps to its status with the error's message, and a peer's status maps back to the same kind", () => {
    // One kind per status but OK, each named after its status.
    const codes = Object.values(status).filter((c): c is number => typeof c === "number" && c !== status.OK);
    expect(ERROR_KINDS).toHaveLength(codes.length);
    for (const kind of ERROR_KINDS) {
      const s = toServiceError(new CkptdError(kind, `a ${kind} error`));
      expect(status[s.code], kind).toBe(kind.toUpperCase());
      expect(s.details).toBe(`a ${kind} error`);
      expect(kindOf(s.code)).toBe(kind);
      const back = fromServiceError({ code: s.code, details: "no attempt 3" }, "coordinator 'n1'");
      expect(back.kind).toBe(kind);
      expect(back.message).toBe("coordinator 'n1': no attempt 3");
    }
    expect(kindOf(status.OK)).toBe("unknown");
    expect(kindOf(999)).toBe("unknown");
  });

  it("status - the factories keep their statuses", () => {
    const cases: [CkptdError, status][] = [
      [errors.invalidArgument("m"), status.INVALID_ARGUMENT],
      [errors.notFound("m"), status.NOT_FOUND],
      [errors.failedPrecondition("m"), status.FAILED_PRECONDITION],
      [errors.alreadyExists("m"), status.ALREADY_EXISTS],
      [errors.aborted("m"), status.ABORTED],
      [errors.dataLoss("m"), status.DATA_LOSS],
      [errors.unavailable("m"), status.UNAVAILABLE],
      [errors.resourceExhausted("m"), status.RESOURCE_EXHAUSTED],
      [errors.deadlineExceeded("m"), status.DEADLINE_EXCEEDED],
      [errors.cancelled("m"), status.CANCELLED],
      [errors.outOfRange("m"), status.OUT_OF_RANGE],
      [errors.unauthenticated("m"), status.UNAUTHENTICATED],
      [errors.permissionDenied("m"), status.PERMISSION_DENIED],
      [errors.internal("m", new Error("why")), status.INTERNAL],
    ];
    for (const [err, code] of cases) expect(toServiceError(err).code, err.kind).toBe(code);
    expect(errors.internal("m", "the cause").cause).toBe("the cause");
  });

  it("status - every errno the daemon names maps to its status and text; any other is INTERNAL", () => {
    const table: [string, status, string][] = [
      ["ENOSPC", status.RESOURCE_EXHAUSTED, "the daemon's data directory is full"],
      ["EDQUOT", status.RESOURCE_EXHAUSTED, "the daemon's disk quota is exhausted"],
      ["ENOENT", status.NOT_FOUND, "a file the request needs does not exist"],
      ["EACCES", status.INTERNAL, "the daemon has no permission on its data directory"],
      ["EROFS", status.UNAVAILABLE, "the daemon's data directory is read-only"],
      ["EIO", status.DATA_LOSS, "an I/O error occurred on the daemon's disk"],
      ["EMFILE", status.RESOURCE_EXHAUSTED, "the daemon ran out of file descriptors"],
    ];
    for (const [code, want, text] of table) {
      const s = toServiceError(errno(code, `${code}: write '/data/x'`));
      expect(s.code, code).toBe(want);
      expect(s.details).toBe(`${text} (${code}: write '/data/x')`);
    }
    const other = toServiceError(errno("EPIPE", "EPIPE: broken pipe"));
    expect(other.code).toBe(status.INTERNAL);
    expect(other.details).toBe("internal error: EPIPE: broken pipe");
  });

  it("status - anything else is INTERNAL with its message only, never a stack", () => {
    const err = new RangeError("offset out of bounds");
    expect(err.stack).toMatch(/\n\s+at /);
    const s = toServiceError(err);
    expect(s.code).toBe(status.INTERNAL);
    expect(s.details).toBe("internal error: offset out of bounds");
    expect(s.message).toBe(s.details);
    expect(toServiceError("a string").details).toBe("internal error: a string");
    expect(toServiceError(undefined).code).toBe(status.INTERNAL);
  });

  it("status - a refused shared-memory file is a SharedMemoryUnavailable: FAILED_PRECONDITION with the marker clients fall back on", () => {
    const err = new SharedMemoryUnavailable("this daemon has its shared-memory path off (--shared-memory-dir)");
    expect(err).toBeInstanceOf(CkptdError);
    expect(err.kind).toBe("failed_precondition");
    const s = toServiceError(err);
    expect(s.code).toBe(status.FAILED_PRECONDITION);
    expect(s.details).toBe(
      `${errors.SHARED_MEMORY_UNAVAILABLE}: this daemon has its shared-memory path off (--shared-memory-dir); send the bytes in Chunk messages`,
    );
    expect(errors.failedPrecondition("x")).not.toBeInstanceOf(SharedMemoryUnavailable);
  });
});
