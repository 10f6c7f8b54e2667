/**
 * How ckptctl fails: every error becomes one line on stderr, `ckptctl: <CODE>: <details>`
 * for a daemon status (with a hint when the fix is on the caller's side), and an exit code.
 */
import { CkptdError } from "@ckptd/client";

/** Exit code of any failure. */
export const EXIT_FAILURE = 1;
/** Exit code of `verify` when the checkpoint has damaged chunks. */
export const EXIT_DAMAGED = 2;

/** A failure ckptctl detected itself (bad flags, an unreadable file, a refusal); no status code. */
export class UsageError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = EXIT_FAILURE) {
    super(message);
    this.name = "UsageError";
    this.exitCode = exitCode;
  }
}

/** What the failure line needs to know about the connection. */
export interface FailureContext {
  address: string;
  hasToken: boolean;
}

/** The one-line message (without the `ckptctl: ` prefix) and the exit code for anything thrown. */
export function describeFailure(err: unknown, ctx: FailureContext): { message: string; exitCode: number } {
  if (err instanceof UsageError) return { message: err.message, exitCode: err.exitCode };
  const status = CkptdError.from(err);
  // CkptdError.from makes every non-gRPC error UNKNOWN; a local error (a file we could not write) has no daemon status.
  if (status.cause === err && !isStatus(err)) return { message: oneLine(status.details), exitCode: EXIT_FAILURE };
  // grpc-js appends an empty "Resolution note:" to connection failures.
  const details = oneLine(status.details).replace(/\.?\s*Resolution note:\s*$/, "") || "(no details)";
  if (status.codeName === "UNAVAILABLE" && UNREACHABLE.test(details) && !TLS_FAILURE.test(details)) {
    return {
      message: `UNAVAILABLE: cannot reach ckptd at ${ctx.address} (${details}). Is the daemon running there? Set --address or CKPTD_ADDRESS.`,
      exitCode: EXIT_FAILURE,
    };
  }
  return { message: `${status.codeName}: ${details}${hint(status, ctx)}`, exitCode: EXIT_FAILURE };
}

const TLS_FAILURE = /ssl|tls|certificate|handshake|alpn/i;
const UNREACHABLE =
  /no connection established|failed to connect|ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ECONNRESET|getaddrinfo|name resolution|dns/i;

function isStatus(err: unknown): boolean {
  return err instanceof CkptdError || (err instanceof Error && typeof (err as { code?: unknown }).code === "number");
}

function hint(err: CkptdError, ctx: FailureContext): string {
  const d = err.details;
  if (err.codeName === "UNAVAILABLE" && TLS_FAILURE.test(d)) {
    return " (the TLS handshake failed: check --tls-ca, --tls-cert, --tls-key and --tls-server-name against the daemon's TLS setup)";
  }
  if (err.codeName === "UNAUTHENTICATED") {
    return ctx.hasToken ? " (the daemon rejected the token)" : " (the daemon wants a token: pass --token or set CKPTD_TOKEN)";
  }
  return "";
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, "; ").trim();
}
