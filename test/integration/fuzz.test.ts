/**
 * Fuzz: seeded random cases against one real daemon — mutated Save streams (dropped,
 * duplicated, reordered, replaced, corrupted, truncated, cancelled messages; huge and
 * negative-looking sizes; random header fields) and random requests on every RPC of
 * every public service. Each case must end in a documented status (never INTERNAL,
 * UNKNOWN or a dead daemon); a control job saves, commits and loads bit-exact all along;
 * afterwards no staging is left once the attempts time out, and the daemon's RSS is back
 * near where it started.
 *
 * `npm test` runs CKPTD_FUZZ_CASES (default 2000) cases; `npm run fuzz` runs 10,000.
 * A failure prints its seed and case number: CKPTD_FUZZ_SEED=<seed> replays it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import type protobuf from "protobufjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CheckpointServiceClient } from "../../wire/gen/ckptd/v1/CheckpointService.js";
import type { SaveRequestIn } from "../../wire/gen/ckptd/v1/SaveRequest.js";
import { FUZZ_JOBS, MUTATIONS, mutateStream, protoRoot, randomMessage, Rng } from "../fuzz/generators.js";
import { type Daemon, startDaemon } from "./harness.js";
import {
  compressibleBytes,
  expectLoadsBitExact,
  f32Entry,
  incompressibleBytes,
  objectEntry,
  saveAndCommit,
  statusName,
  tensorEntry,
  waitUntil,
  testClient,
} from "./wire-helpers.js";
import { itemStream, serviceStub } from "./raw-wire.js";
import { CkptdClient } from "../../clients/ts/src/index.js";

const CASES = Number(process.env["CKPTD_FUZZ_CASES"] ?? 2000);
const SEED = Number(process.env["CKPTD_FUZZ_SEED"] ?? 20261130);
/** Cases in flight at once (the daemon must cope with many bad clients at a time). */
const CONCURRENCY = 16;
const PREPARE_TIMEOUT_MS = 1500;
const CONTROL_JOB = "fuzz-control";

/** Every status a case may end with. Anything else (INTERNAL, UNKNOWN, UNAVAILABLE, DATA_LOSS) is a bug. */
const DOCUMENTED = new Set([
  "OK",
  "INVALID_ARGUMENT",
  "FAILED_PRECONDITION",
  "ALREADY_EXISTS",
  "ABORTED",
  "NOT_FOUND",
  "OUT_OF_RANGE",
  "RESOURCE_EXHAUSTED",
  "UNIMPLEMENTED",
  // The fuzzer's own doing: it cancels streams and gives every call a short deadline.
  "CANCELLED",
  "DEADLINE_EXCEEDED",
]);

const SERVICES = ["CheckpointService", "EvaluationService", "RetentionService", "AdminService", "PeerService"] as const;

let daemon: Daemon;
const clients = new Map<string, grpc.Client>();
/** The control job's client: the TypeScript client, as a good trainer uses it. */
let good: CkptdClient;

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) / 1024;
}

beforeAll(async () => {
  daemon = await startDaemon({ args: ["--prepare-timeout-ms", String(PREPARE_TIMEOUT_MS), "--shared-memory-dir", ""] });
  // Stock channel options: the daemon must answer clients that raised no limits.
  for (const s of SERVICES) clients.set(s, serviceStub(s, daemon.address));
  good = testClient(daemon.address);
});

afterAll(async () => {
  for (const c of clients.values()) c.close();
  good?.close();
  await daemon?.stop();
});

interface Outcome {
  status: string;
  details: string;
}

const cp = () => clients.get("CheckpointService") as unknown as CheckpointServiceClient;

/** Sends a (mutated) Save stream; cancels where told; resolves with the status. */
function runSave(messages: SaveRequestIn[], end: boolean, cancelAt: number | undefined): Promise<Outcome> {
  return new Promise((resolve) => {
    const call = cp().Save({ deadline: Date.now() + 3000 }, (err) =>
      resolve({ status: err ? statusName(err.code) : "OK", details: err?.details ?? "" }),
    );
    call.on("error", () => undefined);
    messages.forEach((m, i) => {
      if (cancelAt === i) call.cancel();
      else call.write(m);
    });
    if (end && cancelAt === undefined) call.end();
  });
}

/** One random request on one RPC; streams are read (or dropped) until their end or a short deadline. */
function runRpc(rng: Rng, service: string, method: protobuf.Method): Promise<Outcome> {
  const req = randomMessage(rng, method.resolvedRequestType!);
  const client = clients.get(service)! as unknown as Record<string, (...a: unknown[]) => grpc.ClientReadableStream<unknown>>;
  const fn = client[method.name]!.bind(client);
  const deadline = Date.now() + rng.pick([200, 1000]);
  return new Promise((resolve) => {
    const done = (err: grpc.ServiceError | null) => resolve({ status: err ? statusName(err.code) : "OK", details: err?.details ?? "" });
    if (method.requestStream) {
      // Client streams other than Save (LoadShared): one random message, then half-close.
      const call = fn({ deadline }) as unknown as grpc.ClientDuplexStream<unknown, unknown>;
      call.on("data", () => undefined);
      call.on("error", (e: grpc.ServiceError) => done(e));
      call.on("end", () => done(null));
      call.write(req);
      call.end();
    } else if (method.responseStream) {
      const call = fn(req, { deadline });
      let n = 0;
      call.on("data", () => {
        // A client that reads a little and leaves.
        if (++n === 3 && rng.chance(0.5)) call.cancel();
      });
      call.on("error", (e: grpc.ServiceError) => done(e));
      call.on("end", () => done(null));
    } else {
      fn(req, { deadline }, (err: grpc.ServiceError | null) => done(err));
    }
  });
}

/** A valid item stream of a fuzz job, as the base of a mutation. */
function baseStream(rng: Rng, n: number): SaveRequestIn[] {
  const entries = [
    f32Entry("w", rng.chance(0.5) ? compressibleBytes(4096 * (1 + rng.int(8)), n) : incompressibleBytes(4096)),
    ...(rng.chance(0.5) ? [objectEntry("o", Buffer.from(`obj-${n}`))] : []),
    ...(rng.chance(0.3) ? [tensorEntry("empty", "DTYPE_INT64", [0])] : []),
  ];
  // The step follows the id, as trainers do, so streams of one checkpoint agree and reach the writer.
  const id = rng.int(20);
  const header = {
    job: rng.pick(FUZZ_JOBS),
    checkpointId: `c${id}`,
    step: id,
    rank: rng.int(2),
    worldSize: 2,
    item: rng.pick(["m", "o"]),
  };
  return itemStream(header, entries, { chunkBytes: 1024 * (1 + rng.int(8)) });
}

describe(`fuzz (${CASES} cases, seed ${SEED})`, () => {
  it("every case ends in a documented status; the control job commits and loads bit-exact throughout; nothing leaks", async () => {
    const rng = new Rng(SEED);
    const methods: [string, protobuf.Method][] = SERVICES.flatMap((s) =>
      protoRoot()
        .lookupService(`ckptd.v1.${s}`)
        .methodsArray.map((m) => [s, m] as [string, protobuf.Method]),
    );
    // Warm up (first compilations, pools) before the baseline.
    await saveAndCommit(good, CONTROL_JOB, "warmup", 1, [{ m: [f32Entry("w", compressibleBytes(64 * 1024, 1))] }]);
    const baseline = rssMiB(daemon.proc.pid!);
    const counts = new Map<string, number>();
    const bad: string[] = [];
    let controls = 0;
    let next = 0;
    const worker = async () => {
      for (;;) {
        const n = next++;
        if (n >= CASES) return;
        let what: string;
        let out: Outcome;
        if (rng.chance(0.5)) {
          const mutation = rng.pick(MUTATIONS);
          const { messages, end, cancelAt } = mutateStream(rng, baseStream(rng, n), mutation);
          what = `Save/${mutation}`;
          out = await runSave(messages, end, cancelAt);
        } else {
          const [service, method] = rng.pick(methods);
          what = `${service}.${method.name}`;
          out =
            method.name === "Save"
              ? await runSave([randomMessage(rng, method.resolvedRequestType!) as SaveRequestIn], true, undefined)
              : await runRpc(rng, service, method);
        }
        const key = `${what} ${out.status}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
        if (!DOCUMENTED.has(out.status)) bad.push(`case ${n} (seed ${SEED}) ${what}: ${out.status} ${out.details.slice(0, 300)}`);
        if (n % 250 === 0) {
          // The control job, mid-fuzz: a good client is unharmed.
          const id = `control-${n}`;
          const ranks = [
            { m: [f32Entry("w", compressibleBytes(128 * 1024, n))] },
            { m: [f32Entry("w", compressibleBytes(128 * 1024, n + 1))] },
          ];
          await saveAndCommit(good, CONTROL_JOB, id, n + 10, ranks);
          await expectLoadsBitExact(good, CONTROL_JOB, id, 1, ranks[1]!);
          controls++;
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const summary = [...counts.entries()].sort().map(([k, v]) => `${k}: ${v}`);
    console.log(`fuzz: ${CASES} cases, seed ${SEED}, ${controls} control round trips\n  ${summary.join("\n  ")}`);
    expect(bad, bad.join("\n")).toEqual([]);
    expect(daemon.proc.exitCode).toBeNull();
    expect(controls).toBeGreaterThan(0);

    // Every undecided fuzz attempt times out and its staging is freed.
    const staging = (job: string) => {
      const dir = path.join(daemon.dataDir, "jobs", job, "staging");
      return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
    };
    const allJobs = () => fs.readdirSync(path.join(daemon.dataDir, "jobs"));
    const clean = await waitUntil(() => allJobs().every((j) => staging(j).length === 0), PREPARE_TIMEOUT_MS * 4 + 5000, 200);
    expect(
      clean,
      `staging left: ${allJobs()
        .map((j) => `${j}: ${staging(j).join(",")}`)
        .join("; ")}`,
    ).toBe(true);

    // Memory held for bad clients is given back.
    let rss = rssMiB(daemon.proc.pid!);
    await waitUntil(() => (rss = rssMiB(daemon.proc.pid!)) < baseline + 150, 10_000, 500);
    console.log(`fuzz: daemon RSS ${baseline.toFixed(0)} MiB before, ${rss.toFixed(0)} MiB after`);
    expect(rss).toBeLessThan(baseline + 150);

    // And the daemon still does its job.
    const ranks = [{ m: [f32Entry("w", compressibleBytes(512 * 1024, 99))] }];
    await saveAndCommit(good, CONTROL_JOB, "after-fuzz", 100_000, ranks);
    await expectLoadsBitExact(good, CONTROL_JOB, "after-fuzz", 0, ranks[0]!);
  });
});
