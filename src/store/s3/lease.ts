/**
 * The lock of an S3Storage: a lease object naming its holder, created with a conditional put
 * (If-None-Match: *), so of two daemons starting on one bucket and prefix exactly one gets it.
 *
 * Storage.lock() is synchronous (the daemon takes the storage before anything else, and the
 * POSIX lock is a synchronous file operation). An S3 request is not, so taking and releasing the
 * lease run in a short-lived child Node process (spawnSync) that speaks to the store with the
 * same SDK; the caller blocks until the store answered. That costs a process start (well under a
 * second) once at start and once at stop, never on a hot path. Renewal is asynchronous (S3Storage
 * renews with If-Match on the ETag it holds, so a renewal never overwrites a lease taken over).
 *
 * A holder is dead, and its lease is taken over, when its lease has expired (it stopped renewing)
 * or, sooner, when it ran on this host since this boot and its pid no longer exists. Takeover is
 * a put with If-Match on the dead holder's ETag: of two daemons taking over, one wins.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { hostname } from "node:os";
import { pathToFileURL } from "node:url";
import { unavailable } from "../../common/errors.js";

/** What the lease object holds. */
export interface LeaseHolder {
  /** Unique per S3Storage instance (two in one process are two holders). */
  owner: string;
  host: string;
  boot: string;
  pid: number;
  /** Milliseconds since the epoch after which the lease is dead unless renewed. */
  expiresAt: number;
}

/** Where the lease is and how to reach the store (passed to the child on stdin, never in argv). */
export interface LeaseTarget {
  bucket: string;
  /** The lease object's full key in the bucket. */
  key: string;
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

export type LeaseAnswer = { acquired: true; etag: string } | { acquired: false; holder: Partial<LeaseHolder> } | { released: boolean };

export function bootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "";
  }
}

export function holderRecord(owner: string, ttlMs: number): LeaseHolder {
  return { owner, host: hostname(), boot: bootId(), pid: process.pid, expiresAt: Date.now() + ttlMs };
}

/** The child's program: one acquire or release, answered as one JSON line on stdout. */
const CHILD = `
import { readFileSync } from "node:fs";
const { sdk, target, op, holder, here } = JSON.parse(readFileSync(0, "utf8"));
const { S3Client, PutObjectCommand, GetObjectCommand, DeleteObjectCommand } = await import(sdk);
const config = { region: target.region ?? "us-east-1", forcePathStyle: target.forcePathStyle, requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" };
if (target.endpoint) config.endpoint = target.endpoint;
if (target.credentials) config.credentials = target.credentials;
const client = new S3Client(config);
const Bucket = target.bucket, Key = target.key;
const status = (e) => e?.$metadata?.httpStatusCode;
const unquote = (t) => (t ?? "").replace(/^"(.*)"$/, "$1");
async function read() {
  try {
    const res = await client.send(new GetObjectCommand({ Bucket, Key }));
    const text = await res.Body.transformToString();
    let h = {};
    try { h = JSON.parse(text); } catch {}
    return { holder: h, etag: unquote(res.ETag) };
  } catch (e) {
    if (status(e) === 404) return undefined;
    throw e;
  }
}
function alive(h) {
  if (!(typeof h.expiresAt === "number" && h.expiresAt > Date.now())) return false;
  if (h.host === here.host && h.boot === here.boot && typeof h.pid === "number") {
    try { process.kill(h.pid, 0); } catch (e) { if (e.code === "ESRCH") return false; }
  }
  return true;
}
const body = JSON.stringify(holder);
let answer;
if (op === "acquire") {
  for (let i = 0; i < 8 && !answer; i++) {
    try {
      const res = await client.send(new PutObjectCommand({ Bucket, Key, Body: body, IfNoneMatch: "*" }));
      answer = { acquired: true, etag: unquote(res.ETag) };
      break;
    } catch (e) {
      // 412: someone holds it. RGW answers some losers of a race with 409 or 500: look at what is there.
      if (![409, 412, 500, 503].includes(status(e))) throw e;
    }
    const now = await read();
    if (!now) continue;
    if (now.holder.owner === holder.owner) {
      const res = await client.send(new PutObjectCommand({ Bucket, Key, Body: body, IfMatch: now.etag }));
      answer = { acquired: true, etag: unquote(res.ETag) };
    } else if (alive(now.holder)) {
      answer = { acquired: false, holder: now.holder };
    } else {
      try {
        const res = await client.send(new PutObjectCommand({ Bucket, Key, Body: body, IfMatch: now.etag }));
        answer = { acquired: true, etag: unquote(res.ETag) };
      } catch (e) {
        if (![404, 412].includes(status(e))) throw e;
      }
    }
  }
  if (!answer) throw new Error("the lease kept changing while it was being taken");
} else {
  const now = await read();
  if (now && now.holder.owner === holder.owner) {
    await client.send(new DeleteObjectCommand({ Bucket, Key }));
    answer = { released: true };
  } else answer = { released: false };
}
process.stdout.write(JSON.stringify(answer) + "\\n");
client.destroy();
`;

/** Runs one lease operation in a child process and waits for it (see above). */
export function leaseSync(op: "acquire" | "release", target: LeaseTarget, holder: LeaseHolder, where: string): LeaseAnswer {
  const sdk = pathToFileURL(createRequire(import.meta.url).resolve("@aws-sdk/client-s3")).href;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", CHILD], {
    input: JSON.stringify({ sdk, target, op, holder, here: { host: hostname(), boot: bootId() } }),
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
  });
  const line = run.status === 0 ? run.stdout.trim().split("\n").pop() : undefined;
  if (!line) {
    const why = run.error?.message ?? (run.stderr.trim().split("\n").slice(-3).join(" ") || `exit ${run.status}`);
    throw unavailable(`could not ${op} the lock of ${where} (lease object ${target.key}): ${why}`);
  }
  return JSON.parse(line) as LeaseAnswer;
}
