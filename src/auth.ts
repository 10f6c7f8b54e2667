/**
 * Per-job bearer tokens. Off unless --auth-tokens names a token file. When on:
 * a job's own calls (save, commit, load, watch, report, ...) need that job's token
 * or the admin token; deletes, retention changes and AdminService need the admin
 * token. Health and reflection stay open so probes and grpcurl work.
 */
import { timingSafeEqual, createHash } from "node:crypto";
import * as fs from "node:fs";
import { status, type Metadata } from "@grpc/grpc-js";
import { CkptdError } from "./errors.js";

export interface AuthScope {
  /** The job the call touches, or undefined for daemon-wide calls. */
  job?: string;
  /** Only the admin token will do. */
  admin?: boolean;
}

export interface Authorizer {
  readonly enabled: boolean;
  /** The admin token, which daemons of a multi-node job present to each other. */
  readonly adminToken?: string | undefined;
  /** Throws UNAUTHENTICATED (no or unknown token) or PERMISSION_DENIED (a token for something else). */
  check(metadata: Metadata, scope: AuthScope): void;
}

export const OPEN: Authorizer = { enabled: false, check() {} };

/** Compares digests so neither length nor content leaks through timing. */
function same(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb);
}

export function loadTokens(file: string): Authorizer {
  let parsed: { admin?: unknown; jobs?: unknown };
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`cannot read auth token file ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch (err) {
    throw new Error(`auth token file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new Error(`auth token file ${file} must hold a JSON object {"admin": TOKEN, "jobs": {JOB: TOKEN}}`);
  if (parsed.admin !== undefined && (typeof parsed.admin !== "string" || parsed.admin.length < 8))
    throw new Error(`auth token file ${file}: "admin" must be a string of at least 8 characters`);
  const admin = typeof parsed.admin === "string" && parsed.admin.length > 0 ? parsed.admin : undefined;
  const jobs = new Map<string, string>();
  if (parsed.jobs !== undefined) {
    if (typeof parsed.jobs !== "object" || parsed.jobs === null || Array.isArray(parsed.jobs))
      throw new Error(`auth token file ${file}: "jobs" must map job names to tokens`);
    for (const [job, token] of Object.entries(parsed.jobs as Record<string, unknown>)) {
      if (typeof token !== "string" || token.length < 8)
        throw new Error(`auth token file ${file}: the token of job '${job}' must be a string of at least 8 characters`);
      jobs.set(job, token);
    }
  }
  if (!admin && jobs.size === 0) throw new Error(`auth token file ${file} defines no token ("admin" or "jobs")`);

  return {
    enabled: true,
    adminToken: admin,
    check(metadata, scope) {
      const header = metadata.get("authorization")[0];
      const m = typeof header === "string" ? /^Bearer\s+(\S+)$/i.exec(header) : null;
      if (!m?.[1])
        throw new CkptdError(status.UNAUTHENTICATED, 'this daemon requires a token: send metadata "authorization: Bearer <token>"');
      const token = m[1];
      if (admin && same(token, admin)) return;
      const ownerJob = [...jobs.entries()].find(([, t]) => same(token, t))?.[0];
      if (ownerJob === undefined) throw new CkptdError(status.UNAUTHENTICATED, "the bearer token is not known to this daemon");
      if (scope.admin)
        throw new CkptdError(status.PERMISSION_DENIED, `this call needs the admin token; the token given belongs to job '${ownerJob}'`);
      if (scope.job === undefined)
        throw new CkptdError(status.PERMISSION_DENIED, `this call is not scoped to a job; job '${ownerJob}''s token does not cover it`);
      if (scope.job !== ownerJob)
        throw new CkptdError(status.PERMISSION_DENIED, `the token given belongs to job '${ownerJob}', not to job '${scope.job}'`);
    },
  };
}
