/**
 * Per-job bearer tokens. Off unless --auth-tokens names a token file. When on:
 * a job's own calls (save, commit, load, watch, report, ...) need that job's token
 * or the admin token; deletes, retention changes and AdminService need the admin
 * token. Health and reflection stay open so probes and grpcurl work.
 *
 * PeerService (multi-node daemons only) has its own credential, the peer token
 * (--peer-token-file): the daemons of a job present it to each other, and neither the
 * admin token nor a job token opens PeerService, nor the peer token any other service.
 */
import { timingSafeEqual, createHash } from "node:crypto";
import * as fs from "node:fs";
import type { Metadata } from "@grpc/grpc-js";
import { permissionDenied, unauthenticated } from "../common/errors.js";

export interface AuthScope {
  /** The job the call touches, or undefined for daemon-wide calls. */
  job?: string;
  /** Only the admin token will do. */
  admin?: boolean;
}

export interface Authorizer {
  readonly enabled: boolean;
  /** Throws UNAUTHENTICATED (no or unknown token) or PERMISSION_DENIED (a token for something else). */
  check(metadata: Metadata, scope: AuthScope): void;
  /** Whose token this is ("the admin token", "job 'x''s token"), or undefined when it is none of them. */
  owner(token: string): string | undefined;
}

export const OPEN: Authorizer = { enabled: false, check() {}, owner: () => undefined };

/** Who may call PeerService. */
export interface PeerAuthorizer {
  /** The token this daemon presents to its peers (undefined with --insecure-peers). */
  readonly token: string | undefined;
  /** Throws UNAUTHENTICATED unless the call carries the peer token; PERMISSION_DENIED for an admin or job token. */
  checkPeer(metadata: Metadata): void;
}

/** The peer token must be hard to guess; it guards the commit protocol of every job. */
const MIN_PEER_TOKEN_LENGTH = 16;

/** Reads the peer token: the file's one line (surrounding whitespace ignored). Throws one clear line. */
export function loadPeerToken(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8").trim();
  } catch (err) {
    throw new Error(`peer token file ${file} cannot be read: ${(err as Error).message}`);
  }
  if (text.length < MIN_PEER_TOKEN_LENGTH || /\s/.test(text))
    throw new Error(`peer token file ${file} must hold one token of at least ${MIN_PEER_TOKEN_LENGTH} characters without spaces`);
  return text;
}

function bearer(metadata: Metadata): string | undefined {
  const header = metadata.get("authorization")[0];
  const m = typeof header === "string" ? /^Bearer\s+(\S+)$/i.exec(header) : null;
  return m?.[1];
}

/**
 * The peer check. `token` undefined means --insecure-peers: anyone who reaches the port
 * may take part in the commit protocol, for trusted test setups only.
 */
export function peerAuthorizer(token: string | undefined, clients: Authorizer): PeerAuthorizer {
  if (token !== undefined && clients.owner(token) !== undefined)
    throw new Error(`the peer token is also ${clients.owner(token)}; give peers a token of their own`);
  return {
    token,
    checkPeer(metadata) {
      if (token === undefined) return;
      const given = bearer(metadata);
      if (!given) throw unauthenticated('PeerService is for the daemons of this job: send "authorization: Bearer <peer token>"');
      if (same(given, token)) return;
      const owner = clients.owner(given);
      if (owner !== undefined) throw permissionDenied(`PeerService needs the peer token (--peer-token-file); the token given is ${owner}`);
      throw unauthenticated("the bearer token is not this job's peer token");
    },
  };
}

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
    owner(token) {
      if (admin && same(token, admin)) return "the admin token";
      const job = [...jobs.entries()].find(([, t]) => same(token, t))?.[0];
      return job === undefined ? undefined : `job '${job}''s token`;
    },
    check(metadata, scope) {
      const token = bearer(metadata);
      if (!token) throw unauthenticated('this daemon requires a token: send metadata "authorization: Bearer <token>"');
      if (admin && same(token, admin)) return;
      const ownerJob = [...jobs.entries()].find(([, t]) => same(token, t))?.[0];
      if (ownerJob === undefined) throw unauthenticated("the bearer token is not known to this daemon");
      if (scope.admin) throw permissionDenied(`this call needs the admin token; the token given belongs to job '${ownerJob}'`);
      if (scope.job === undefined) throw permissionDenied(`this call is not scoped to a job; job '${ownerJob}''s token does not cover it`);
      if (scope.job !== ownerJob) throw permissionDenied(`the token given belongs to job '${ownerJob}', not to job '${scope.job}'`);
    },
  };
}
