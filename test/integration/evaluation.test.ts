/**
 * Evaluators and retention against real daemons, through the TypeScript client:
 * WatchCheckpoints delivers every commit and deletion in order, exactly once, across
 * disconnections and daemon restarts; ReportEvaluation and WaitForEvaluators; and
 * retention (keep-last, keep-every, keep-best, pins) never deleting the latest
 * checkpoint, a pinned one, or one an evaluator holds a lease on.
 */
import * as net from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import {
  CkptdClient,
  isDeadlineExceeded,
  isUnavailable,
  tensor,
  type CheckpointEvent,
  type CkptdError,
  type CommitResult,
  type WatchOptions,
} from "../../clients/ts/src/index.js";
import { startDaemon, tempDataDir, type Daemon } from "./harness.js";
import { sleep, uniqueName, waitUntil } from "./wire-helpers.js";

/** Long enough that no lease expires during a test that does not wait for it. */
const LONG_LEASE_MS = 120_000;
const SHORT_LEASE_MS = 2_000;
const GC_INTERVAL_MS = 250;

const clients: CkptdClient[] = [];
const extraDaemons: Daemon[] = [];

function connect(address: string): CkptdClient {
  const c = new CkptdClient(address);
  clients.push(c);
  return c;
}

async function start(opts: Parameters<typeof startDaemon>[0] = {}): Promise<Daemon> {
  const d = await startDaemon(opts);
  extraDaemons.push(d);
  return d;
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const d of extraDaemons.splice(0)) await d.kill9();
});

function tagOf(step: number): string {
  return `global_step${step}`;
}

/** Saves and commits a small checkpoint (4 KiB per rank) on every rank; fails the test unless COMMITTED. */
async function commitStep(client: CkptdClient, job: string, step: number, worldSize = 1): Promise<CommitResult> {
  const checkpointId = tagOf(step);
  const ranks = Array.from({ length: worldSize }, (_, rank) => rank);
  await Promise.all(
    ranks.map((rank) =>
      client.save({
        job,
        checkpointId,
        step,
        rank,
        worldSize,
        item: "model",
        entries: [{ key: "w", tensor: tensor(new Float32Array(1024).fill(step + rank / 10), { shape: [32, 32], device: "cpu" }) }],
      }),
    ),
  );
  const results = await Promise.all(
    ranks.map((rank) => client.commit({ job, checkpointId, step, rank, worldSize, items: ["model"] }, { timeoutMs: 30_000 })),
  );
  for (const r of results) expect(r.outcome, `commit of ${job}/${checkpointId}: ${r.reason}`).toBe("COMMITTED");
  return results[0]!;
}

async function committedSteps(client: CkptdClient, job: string): Promise<number[]> {
  const steps: number[] = [];
  for await (const c of client.listAllCheckpoints(job)) steps.push(c.step);
  return steps.sort((a, b) => a - b);
}

/** Polls the committed steps until they equal `expected`, for at most `timeoutMs`; returns the last listing. */
async function eventuallySteps(client: CkptdClient, job: string, expected: number[], timeoutMs = 10_000): Promise<number[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const steps = await committedSteps(client, job);
    if (steps.join() === expected.join() || Date.now() >= end) return steps;
    await sleep(50);
  }
}

/** A watch consumed in the background into `events`. */
interface Subscriber {
  readonly events: CheckpointEvent[];
  /** The error the watch ended with, if any. */
  error: unknown;
  ended: boolean;
  readonly done: Promise<void>;
  /** Aborts the watch and waits for the loop to end. */
  stop(): Promise<void>;
}

function subscribe(
  client: CkptdClient,
  job: string,
  options: Omit<WatchOptions, "signal"> & {
    /** Runs for each event before the next is pulled. */
    onEvent?: (ev: CheckpointEvent) => Promise<void> | void;
    /** Leaves the loop (cancelling the call) after the event for which it returns true. */
    until?: (ev: CheckpointEvent) => boolean;
  } = {},
): Subscriber {
  const abort = new AbortController();
  const { onEvent, until, ...watchOptions } = options;
  const sub: Subscriber = {
    events: [],
    error: undefined,
    ended: false,
    done: Promise.resolve(),
    stop: async () => {
      abort.abort();
      await sub.done;
    },
  };
  (sub as { done: Promise<void> }).done = (async () => {
    try {
      for await (const ev of client.watch(job, { ...watchOptions, signal: abort.signal })) {
        sub.events.push(ev);
        await onEvent?.(ev);
        if (until?.(ev)) break;
      }
    } catch (err) {
      sub.error = err;
    } finally {
      sub.ended = true;
    }
  })();
  return sub;
}

const committed = (events: readonly CheckpointEvent[]) => events.filter((e) => e.type === "COMMITTED");
const deleted = (events: readonly CheckpointEvent[]) => events.filter((e) => e.type === "DELETED");

/** Every event's sequence is one more than the previous one's. */
function expectGapless(events: readonly CheckpointEvent[], first: number, what: string): void {
  expect(
    events.map((e) => e.sequence),
    `${what}: sequences`,
  ).toEqual(events.map((_, i) => first + i));
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function expectStatusName(err: unknown, codeName: string, what: string): CkptdError {
  expect(err, `${what}: expected ${codeName}, got success`).toBeDefined();
  const e = err as CkptdError;
  expect(e.codeName, `${what}: ${e.message}`).toBe(codeName);
  return e;
}

/** "OK" when `err` is undefined, else its status name and details. */
function statusOf(err: unknown): string {
  if (err === undefined) return "OK";
  const e = err as CkptdError;
  return e.codeName === undefined ? String(err) : e.codeName;
}

/**
 * Waits until the client's channel is connected. After a daemon restart on the same port,
 * grpc-js fails calls at once while its (shared) connection is still backing off.
 */
async function ready(client: CkptdClient, timeoutMs = 15_000): Promise<CkptdClient> {
  await new Promise<void>((resolve, reject) => client.raw.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())));
  return client;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  return undefined;
}

describe("WatchCheckpoints", () => {
  let daemon: Daemon;
  let client: CkptdClient;

  beforeAll(async () => {
    daemon = await startDaemon({ args: ["--lease-ttl-ms", String(LONG_LEASE_MS)] });
    client = new CkptdClient(daemon.address);
  });

  afterAll(async () => {
    client?.close();
    await daemon?.stop();
  });

  test("3 evaluators subscribed while 20 checkpoints commit each see all 20, in commit order, exactly once", async () => {
    const job = uniqueName("watch20");
    const names = ["eval-a", "eval-b", "eval-c"];
    // Each evaluator on its own connection, as separate processes would be; they report as they go.
    const subs = names.map((evaluator) => {
      const c = connect(daemon.address);
      return subscribe(c, job, {
        evaluator,
        onEvent: async (ev) => {
          if (ev.type === "COMMITTED")
            await c.reportEvaluation({ job, checkpointId: ev.checkpointId, evaluator, metrics: { step: ev.step } });
        },
      });
    });
    const steps = Array.from({ length: 20 }, (_, i) => (i + 1) * 10);
    const commitTimes = new Map<number, number>();
    for (const step of steps) {
      const before = Date.now();
      const res = await commitStep(client, job, step, 2);
      commitTimes.set(step, before);
      expect(res.checkpoint?.step).toBe(step);
    }
    const all = await waitUntil(() => subs.every((s) => s.events.length >= 20), 15_000);
    expect(all, `events seen: ${subs.map((s) => s.events.length).join(", ")}`).toBe(true);
    // Anything extra (a duplicate) would arrive right behind the 20th.
    await sleep(300);
    for (const [i, sub] of subs.entries()) {
      const what = names[i]!;
      expect(sub.error, `${what} watch error`).toBeUndefined();
      expect(
        sub.events.map((e) => e.type),
        what,
      ).toEqual(steps.map(() => "COMMITTED"));
      expect(
        sub.events.map((e) => e.step),
        what,
      ).toEqual(steps);
      expect(
        sub.events.map((e) => e.checkpointId),
        what,
      ).toEqual(steps.map(tagOf));
      expectGapless(sub.events, 1, what);
      for (const ev of sub.events) {
        expect(ev.job).toBe(job);
        expect(ev.checkpoint?.worldSize, `${what} ${ev.checkpointId} summary`).toBe(2);
        expect(ev.checkpoint?.rawBytes, `${what} ${ev.checkpointId} summary`).toBe(2 * 4096);
        expect(ev.checkpoint?.ranks.length, `${what} ${ev.checkpointId} summary`).toBe(2);
        const t = ev.commitTime.getTime();
        // Second-granular clocks allowed: the commit time lies within the Commit call, give or take a second.
        expect(t, `${what} ${ev.checkpointId} commit time`).toBeGreaterThanOrEqual(commitTimes.get(ev.step)! - 1_000);
        expect(t, `${what} ${ev.checkpointId} commit time`).toBeLessThanOrEqual(Date.now());
      }
    }
    const reports = await client.waitForEvaluators({ job, checkpointId: tagOf(200), evaluators: names, timeoutMs: 10_000 });
    expect(reports.map((r) => [r.evaluator, r.metrics["step"]])).toEqual(names.map((n) => [n, 200]));
    await Promise.all(subs.map((s) => s.stop()));
  });

  test("a watch on a job without events waits for the first one; from_now skips the past, from_step starts at the step", async () => {
    const job = uniqueName("watch-start");
    const first = subscribe(client, job, { until: () => true });
    await sleep(200);
    expect(first.ended, "a watch on an empty job must wait, not end").toBe(false);
    await commitStep(client, job, 1);
    await waitUntil(() => first.ended, 5_000);
    expect(first.error).toBeUndefined();
    expect(first.events.map((e) => [e.sequence, e.type, e.step])).toEqual([[1, "COMMITTED", 1]]);

    await commitStep(client, job, 2);
    await commitStep(client, job, 3);
    const fromStep = subscribe(client, job, { fromStep: 2, until: () => true });
    await fromStep.done;
    expect(fromStep.error).toBeUndefined();
    expect(fromStep.events.map((e) => [e.sequence, e.step])).toEqual([[2, 2]]);

    const after = subscribe(client, job, { afterSequence: 1 });
    const now = subscribe(client, job, { fromNow: true });
    // The subscription has no acknowledgement, so commit until from_now has seen something.
    let step = 4;
    for (; step <= 20 && now.events.length === 0; step++) {
      await commitStep(client, job, step);
      await waitUntil(() => now.events.length > 0, 500);
    }
    expect(now.events.length, "from_now saw no event").toBeGreaterThan(0);
    expect(now.events[0]!.sequence, "from_now replayed a past event").toBeGreaterThan(3);
    expectGapless(now.events, now.events[0]!.sequence, "from_now");
    await waitUntil(() => after.events.length >= step - 2, 5_000);
    expect(after.events.map((e) => e.step)).toEqual(Array.from({ length: step - 2 }, (_, i) => i + 2));
    expectGapless(after.events, 2, "after_sequence 1");
    await Promise.all([now.stop(), after.stop()]);
  });

  test("DeleteCheckpoint appends a DELETED event naming it", async () => {
    const job = uniqueName("watch-delete");
    await commitStep(client, job, 1);
    await commitStep(client, job, 2);
    await client.deleteCheckpoint(job, tagOf(1));
    const sub = subscribe(client, job, { until: (e) => e.sequence >= 3 });
    await waitUntil(() => sub.ended, 5_000);
    expect(sub.error).toBeUndefined();
    expect(sub.events.map((e) => [e.sequence, e.type, e.checkpointId, e.step])).toEqual([
      [1, "COMMITTED", tagOf(1), 1],
      [2, "COMMITTED", tagOf(2), 2],
      [3, "DELETED", tagOf(1), 1],
    ]);
    expect(sub.events[2]!.reason).toContain("DeleteCheckpoint");
    expect(sub.events[2]!.commitTime.getTime(), "a DELETED event carries the commit time").toBe(sub.events[0]!.commitTime.getTime());
    expect(await committedSteps(client, job)).toEqual([2]);
  });

  test("checkpoints() yields each commit once and ends after timeoutMs without a new one", async () => {
    const job = uniqueName("iter-timeout");
    await commitStep(client, job, 1);
    await commitStep(client, job, 2);
    await client.deleteCheckpoint(job, tagOf(1));
    const seen: CheckpointEvent[] = [];
    const started = Date.now();
    let lastAt = 0;
    const follow = (async () => {
      for await (const ev of client.checkpoints(job, { evaluator: "eval-timeout", timeoutMs: 800 })) {
        seen.push(ev);
        lastAt = Date.now();
        if (ev.step === 2) void commitStep(client, job, 3);
      }
    })();
    await follow;
    const idle = Date.now() - lastAt;
    expect(seen.map((e) => [e.sequence, e.type, e.step])).toEqual([
      [1, "COMMITTED", 1],
      [2, "COMMITTED", 2],
      [4, "COMMITTED", 3],
    ]);
    expect(idle, "ended before the timeout").toBeGreaterThanOrEqual(750);
    expect(Date.now() - started, "did not end after the timeout").toBeLessThan(10_000);
  });

  test("ReportEvaluation on an unknown checkpoint is NOT_FOUND; a path-like evaluator is INVALID_ARGUMENT", async () => {
    const job = uniqueName("report-bad");
    await commitStep(client, job, 1);
    const unknown = await rejection(client.reportEvaluation({ job, checkpointId: "global_step999", evaluator: "eval-a", metrics: {} }));
    const bad = await rejection(client.reportEvaluation({ job, checkpointId: tagOf(1), evaluator: "../x", metrics: {} }));
    // Both in one comparison, so a failure shows what each call got.
    expect({ unknownCheckpoint: statusOf(unknown), pathLikeEvaluator: statusOf(bad) }).toEqual({
      unknownCheckpoint: "NOT_FOUND",
      pathLikeEvaluator: "INVALID_ARGUMENT",
    });
  });
});

describe("WaitForEvaluators", () => {
  let daemon: Daemon;
  let client: CkptdClient;

  beforeAll(async () => {
    daemon = await startDaemon({ args: ["--lease-ttl-ms", String(LONG_LEASE_MS)] });
    client = new CkptdClient(daemon.address);
  });

  afterAll(async () => {
    client?.close();
    await daemon?.stop();
  });

  test("returns every named evaluator's metrics, in the order named, once all have reported", async () => {
    const job = uniqueName("wait-all");
    await commitStep(client, job, 100);
    let settled = false;
    const waiting = client.waitForEvaluators({ job, checkpointId: tagOf(100), evaluators: ["eval-a", "eval-b"], timeoutMs: 20_000 });
    void waiting.then(
      () => (settled = true),
      () => (settled = true),
    );
    await client.reportEvaluation({ job, checkpointId: tagOf(100), evaluator: "eval-b", metrics: { accuracy: 0.75 } });
    await sleep(300);
    expect(settled, "returned before eval-a reported").toBe(false);
    await client.reportEvaluation({ job, checkpointId: tagOf(100), evaluator: "eval-a", metrics: { loss: 0.25, perplexity: 1.28 } });
    const reports = await waiting;
    expect(reports.map((r) => r.evaluator)).toEqual(["eval-a", "eval-b"]);
    expect(reports[0]!.metrics).toEqual({ loss: 0.25, perplexity: 1.28 });
    expect(reports[1]!.metrics).toEqual({ accuracy: 0.75 });
    for (const r of reports) {
      expect(r.status).toBe("SUCCEEDED");
      expect(r.step).toBe(100);
      expect(r.checkpointId).toBe(tagOf(100));
    }
    // Already reported: "latest" resolves to the same checkpoint and returns at once.
    const again = await client.waitForEvaluators({ job, evaluators: ["eval-b"], timeoutMs: 1_000 });
    expect(again.map((r) => [r.evaluator, r.metrics])).toEqual([["eval-b", { accuracy: 0.75 }]]);
  });

  test("fails with DEADLINE_EXCEEDED naming the evaluator that did not report", async () => {
    const job = uniqueName("wait-missing");
    await commitStep(client, job, 1);
    await client.reportEvaluation({ job, checkpointId: tagOf(1), evaluator: "eval-a", metrics: { loss: 1 } });
    const started = Date.now();
    const err = await rejection(
      client.waitForEvaluators({ job, checkpointId: tagOf(1), evaluators: ["eval-a", "eval-b"], timeoutMs: 700 }),
    );
    const waited = Date.now() - started;
    const e = expectStatusName(err, "DEADLINE_EXCEEDED", "wait for eval-a and eval-b");
    expect(isDeadlineExceeded(e)).toBe(true);
    // The message names the missing evaluators in quotes (it may go on to name those that reported).
    const missing = /missing evaluator\(s\) ('[^']*'(?:,\s*'[^']*')*)/.exec(e.details)?.[1];
    expect(missing, `no "missing evaluator(s) '…'" in: ${e.details}`).toBeDefined();
    expect(missing).toContain("'eval-b'");
    expect(missing).not.toContain("'eval-a'");
    expect(waited, "gave up before the timeout").toBeGreaterThanOrEqual(650);
    expect(waited, "the daemon's timeout, not the client's safety deadline").toBeLessThan(5_000);
  });

  test("a failed evaluation counts as reported; no evaluators is INVALID_ARGUMENT; an unknown checkpoint is NOT_FOUND", async () => {
    const job = uniqueName("wait-failed");
    await commitStep(client, job, 1);
    const rec = await client.reportEvaluation({ job, checkpointId: tagOf(1), evaluator: "eval-x", failed: true, message: "out of memory" });
    expect(rec.status).toBe("FAILED");
    const [r] = await client.waitForEvaluators({ job, checkpointId: tagOf(1), evaluators: ["eval-x"], timeoutMs: 2_000 });
    expect(r?.status).toBe("FAILED");
    expect(r?.message).toBe("out of memory");
    expectStatusName(
      await rejection(client.waitForEvaluators({ job, checkpointId: tagOf(1), evaluators: [], timeoutMs: 1_000 })),
      "INVALID_ARGUMENT",
      "no evaluators",
    );
    expectStatusName(
      await rejection(client.waitForEvaluators({ job, checkpointId: "global_step404", evaluators: ["eval-x"], timeoutMs: 1_000 })),
      "NOT_FOUND",
      "unknown checkpoint",
    );
  });
});

describe("restarts", () => {
  test("an evaluator that leaves after 5 resumes from its cursor across a daemon restart and sees 6..20 exactly once", async () => {
    const dataDir = tempDataDir();
    // A fixed port, so that checkpoints() can reconnect to the restarted daemon on its own.
    const port = await freePort();
    const args = ["--listen", `127.0.0.1:${port}`, "--lease-ttl-ms", String(LONG_LEASE_MS), "--shutdown-grace-ms", "3000"];
    const job = uniqueName("resume");
    let d1: Daemon | undefined = await start({ dataDir, args });
    const trainer1 = connect(d1.address);

    // eval-a follows with checkpoints(): it must ride through the restart by itself.
    const follower = connect(d1.address);
    const seenA: CheckpointEvent[] = [];
    const followA = (async () => {
      for await (const ev of follower.checkpoints(job, { evaluator: "eval-a", minBackoffMs: 50, maxBackoffMs: 500, timeoutMs: 60_000 })) {
        seenA.push(ev);
        // The daemon may stop between the event and the report: retry, as an evaluator would.
        for (let attempt = 0; ; attempt++) {
          try {
            await follower.reportEvaluation({ job, checkpointId: ev.checkpointId, evaluator: "eval-a", metrics: { step: ev.step } });
            break;
          } catch (err) {
            if (!isUnavailable(err) || attempt >= 100) throw err;
            await sleep(100);
          }
        }
        if (ev.step === 20) return;
      }
    })();
    // Awaited below; this keeps an early failure from being reported as unhandled first.
    followA.catch(() => undefined);
    // eval-b watches plainly: its stream breaks at the restart, and it resumes by hand.
    const b1 = subscribe(connect(d1.address), job, { evaluator: "eval-b" });
    // eval-c leaves after the 5th checkpoint.
    const c1 = subscribe(connect(d1.address), job, { evaluator: "eval-c", until: (e) => e.step === 5 });

    for (let step = 1; step <= 5; step++) await commitStep(trainer1, job, step);
    expect(await waitUntil(() => c1.ended, 5_000), "eval-c did not see 5 checkpoints").toBe(true);
    expect(c1.error).toBeUndefined();
    expect(c1.events.map((e) => e.step)).toEqual([1, 2, 3, 4, 5]);
    const cursorC = c1.events[4]!.sequence;

    for (let step = 6; step <= 12; step++) await commitStep(trainer1, job, step);
    expect(
      await waitUntil(() => b1.events.length >= 12 && seenA.length >= 12, 5_000),
      "eval-a/eval-b did not see 12 before the restart",
    ).toBe(true);
    await d1.stop();
    d1 = undefined;
    expect(await waitUntil(() => b1.ended, 10_000), "eval-b's watch did not end when its daemon stopped").toBe(true);
    const cursorB = b1.events[b1.events.length - 1]!.sequence;

    const d2 = await start({ dataDir, args });
    expect(d2.address).toBe(`127.0.0.1:${port}`);
    const trainer2 = await ready(connect(d2.address));
    const b2 = subscribe(await ready(connect(d2.address)), job, { evaluator: "eval-b", afterSequence: cursorB });
    for (let step = 13; step <= 20; step++) await commitStep(trainer2, job, step);

    const c2 = subscribe(await ready(connect(d2.address)), job, { evaluator: "eval-c", afterSequence: cursorC });
    expect(await waitUntil(() => c2.events.length >= 15 && b2.events.length >= 20 - b1.events.length, 10_000)).toBe(true);
    await followA;
    await sleep(300);

    const stepsC = committed(c2.events).map((e) => e.step);
    expect(stepsC, "eval-c after resuming").toEqual(Array.from({ length: 15 }, (_, i) => i + 6));
    expectGapless(c2.events, cursorC + 1, "eval-c after resuming");
    const stepsB = [...b1.events, ...b2.events].map((e) => e.step);
    expect(stepsB, "eval-b across the restart").toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expectGapless([...b1.events, ...b2.events], 1, "eval-b across the restart");
    expect(
      seenA.map((e) => e.step),
      "eval-a (checkpoints()) across the restart",
    ).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expectGapless(seenA, 1, "eval-a (checkpoints()) across the restart");

    // eval-a's reports are durable: after another restart WaitForEvaluators answers at once.
    await Promise.all([b2.stop(), c2.stop()]);
    await extraDaemons.pop()!.stop();
    const d3 = await start({ dataDir, args });
    const c3 = await ready(connect(d3.address));
    const started = Date.now();
    const reports = await c3.waitForEvaluators({ job, checkpointId: tagOf(7), evaluators: ["eval-a"], timeoutMs: 5_000 });
    expect(Date.now() - started, "WaitForEvaluators after a restart must not wait").toBeLessThan(1_000);
    expect(reports.map((r) => [r.evaluator, r.step, r.metrics])).toEqual([["eval-a", 7, { step: 7 }]]);
  });

  test("reports and retention policies survive a restart", async () => {
    const dataDir = tempDataDir();
    const args = ["--lease-ttl-ms", String(LONG_LEASE_MS)];
    const job = uniqueName("durable");
    const d1 = await start({ dataDir, args });
    const c1 = connect(d1.address);
    await commitStep(c1, job, 10);
    await c1.reportEvaluation({ job, checkpointId: tagOf(10), evaluator: "eval-a", metrics: { loss: 0.5 } });
    await c1.reportEvaluation({ job, checkpointId: tagOf(10), evaluator: "eval-b", metrics: { accuracy: 0.9 } });
    await c1.setRetentionPolicy(job, { keepLast: 4, keepEverySteps: 1000, keepBest: 2, bestMetric: "loss", bestMode: "min" });
    await c1.pinCheckpoint(job, tagOf(10), true);
    await extraDaemons.pop()!.stop();

    const d2 = await start({ dataDir, args });
    const c2 = connect(d2.address);
    const started = Date.now();
    const reports = await c2.waitForEvaluators({ job, checkpointId: tagOf(10), evaluators: ["eval-b", "eval-a"], timeoutMs: 5_000 });
    expect(Date.now() - started, "WaitForEvaluators after a restart must not wait").toBeLessThan(1_000);
    expect(reports.map((r) => [r.evaluator, r.metrics])).toEqual([
      ["eval-b", { accuracy: 0.9 }],
      ["eval-a", { loss: 0.5 }],
    ]);
    const got = await c2.getRetentionPolicy(job);
    expect(got.policy).toEqual({ keepLast: 4, keepEverySteps: 1000, keepBest: 2, bestMetric: "loss", bestMode: "min" });
    expect(got.pinnedCheckpointIds).toEqual([tagOf(10)]);
  });
});

describe("retention", () => {
  let daemon: Daemon;
  let client: CkptdClient;

  beforeAll(async () => {
    daemon = await startDaemon({ args: ["--lease-ttl-ms", String(LONG_LEASE_MS), "--gc-interval-ms", String(GC_INTERVAL_MS)] });
    client = new CkptdClient(daemon.address);
  });

  afterAll(async () => {
    client?.close();
    await daemon?.stop();
  });

  test("keep-last-3 keeps an old step while an evaluator holds a lease on it, and deletes it once the evaluator reports", async () => {
    const job = uniqueName("lease-report");
    const set = await client.setRetentionPolicy(job, { keepLast: 3 });
    expect(set.policy.keepLast).toBe(3);
    const evaluator = "eval-slow";
    const evalClient = connect(daemon.address);
    // A live evaluator that reports on every checkpoint but step 1.
    const sub = subscribe(evalClient, job, {
      evaluator,
      onEvent: async (ev) => {
        if (ev.type === "COMMITTED" && ev.step !== 1)
          await evalClient.reportEvaluation({ job, checkpointId: ev.checkpointId, evaluator, metrics: { loss: 1 / ev.step } });
      },
    });
    for (let step = 1; step <= 6; step++) {
      await commitStep(client, job, step);
      // Wait for the evaluator to have this checkpoint (lease taken, report sent for step > 1).
      expect(await waitUntil(() => committed(sub.events).length >= step, 5_000), `evaluator did not get step ${step}`).toBe(true);
    }
    await client.waitForEvaluators({ job, checkpointId: tagOf(6), evaluators: [evaluator], timeoutMs: 5_000 });
    expect(await eventuallySteps(client, job, [1, 4, 5, 6]), "step 1 (leased) and the last 3 stay").toEqual([1, 4, 5, 6]);
    await sleep(3 * GC_INTERVAL_MS);
    expect(await committedSteps(client, job), "the lease still holds after timer GCs").toEqual([1, 4, 5, 6]);
    expect(await waitUntil(() => deleted(sub.events).length >= 2, 5_000)).toBe(true);
    expect(
      deleted(sub.events)
        .map((e) => e.step)
        .sort(),
    ).toEqual([2, 3]);
    for (const e of deleted(sub.events)) expect(e.reason, `reason of deleting step ${e.step}`).toMatch(/^retention/);

    await evalClient.reportEvaluation({ job, checkpointId: tagOf(1), evaluator, metrics: { loss: 2 } });
    expect(await eventuallySteps(client, job, [4, 5, 6]), "step 1 goes once reported").toEqual([4, 5, 6]);
    expect(await waitUntil(() => deleted(sub.events).length >= 3, 5_000)).toBe(true);
    expect(deleted(sub.events)[2]!.checkpointId).toBe(tagOf(1));
    expectGapless(sub.events, 1, "the evaluator's events");
    await sub.stop();
  });

  test("a lease that expires frees the checkpoint without a report", async () => {
    const d = await start({ args: ["--lease-ttl-ms", String(SHORT_LEASE_MS), "--gc-interval-ms", String(GC_INTERVAL_MS)] });
    const c = connect(d.address);
    const job = uniqueName("lease-expiry");
    await c.setRetentionPolicy(job, { keepLast: 2 });
    const evaluator = "eval-stuck";
    const evalClient = connect(d.address);
    let sentAt = 0;
    // A live evaluator that never gets round to step 1 but reports on the others.
    const sub = subscribe(evalClient, job, {
      evaluator,
      onEvent: async (ev) => {
        if (ev.type !== "COMMITTED") return;
        if (ev.step === 1) sentAt = Date.now();
        else await evalClient.reportEvaluation({ job, checkpointId: ev.checkpointId, evaluator, metrics: { loss: 1 } });
      },
    });
    await commitStep(c, job, 1);
    expect(await waitUntil(() => sentAt > 0, 5_000), "the evaluator did not get step 1").toBe(true);
    for (let step = 2; step <= 4; step++) await commitStep(c, job, step);
    await c.waitForEvaluators({ job, checkpointId: tagOf(4), evaluators: [evaluator], timeoutMs: 5_000 });
    const soon = await committedSteps(c, job);
    const elapsed = Date.now() - sentAt;
    expect(elapsed, "the commits took longer than the lease; the check below would be meaningless").toBeLessThan(SHORT_LEASE_MS - 300);
    expect(soon, "step 1 is leased, steps 3 and 4 are the last 2").toEqual(expect.arrayContaining([1, 3, 4]));
    expect(await eventuallySteps(c, job, [3, 4], SHORT_LEASE_MS + 10_000), "step 1 goes once its lease expired").toEqual([3, 4]);
    expect(Date.now() - sentAt, "deleted before the lease expired").toBeGreaterThanOrEqual(SHORT_LEASE_MS - 100);
    expect(await waitUntil(() => deleted(sub.events).length >= 2, 5_000)).toBe(true);
    expect(
      deleted(sub.events)
        .map((e) => e.step)
        .sort(),
    ).toEqual([1, 2]);
    for (const e of deleted(sub.events)) expect(e.reason, `reason of deleting step ${e.step}`).toMatch(/^retention/);
    await sub.stop();
  });

  test("keep-every-K keeps the multiples of K, and the latest is never deleted", async () => {
    const job = uniqueName("keep-every");
    await client.setRetentionPolicy(job, { keepEverySteps: 100 });
    await commitStep(client, job, 100);
    await commitStep(client, job, 150);
    await sleep(3 * GC_INTERVAL_MS);
    expect(await committedSteps(client, job), "150 is the latest").toEqual([100, 150]);
    await commitStep(client, job, 170);
    expect(await eventuallySteps(client, job, [100, 170]), "150 is no longer the latest").toEqual([100, 170]);
    await commitStep(client, job, 200);
    expect(await eventuallySteps(client, job, [100, 200])).toEqual([100, 200]);

    // A policy that keeps nothing by its rules still keeps the latest.
    const job2 = uniqueName("latest");
    await commitStep(client, job2, 1);
    await commitStep(client, job2, 2);
    const res = await client.setRetentionPolicy(job2, { keepEverySteps: 1000 });
    expect(res.deletedCheckpointIds, "SetRetentionPolicy returns what its new policy deleted, even with a timer GC running").toEqual([
      tagOf(1),
    ]);
    await sleep(3 * GC_INTERVAL_MS);
    expect(await committedSteps(client, job2)).toEqual([2]);
    await client.setRetentionPolicy(job2, { keepBest: 1, bestMetric: "loss", bestMode: "min" });
    await sleep(3 * GC_INTERVAL_MS);
    expect(await committedSteps(client, job2), "unreported but latest").toEqual([2]);
  });

  test("keep-best keeps the best checkpoint by a reported metric, min and max", async () => {
    const job = uniqueName("best-min");
    await client.setRetentionPolicy(job, { keepLast: 1, keepBest: 1, bestMetric: "loss", bestMode: "min" });
    const losses = [0.9, 0.3, 0.5, 0.7, 0.8];
    for (const [i, loss] of losses.entries()) {
      const step = i + 1;
      await commitStep(client, job, step);
      await client.reportEvaluation({ job, checkpointId: tagOf(step), evaluator: "eval-loss", metrics: { loss, accuracy: 1 - loss } });
    }
    expect(await eventuallySteps(client, job, [2, 5]), "best loss (step 2) and the last").toEqual([2, 5]);
    // The latest report with the metric wins, whoever sent it: step 2 gets worse than step 5.
    await client.reportEvaluation({ job, checkpointId: tagOf(2), evaluator: "eval-loss-rerun", metrics: { loss: 0.95 } });
    expect(await eventuallySteps(client, job, [5]), "step 5 is now best and last").toEqual([5]);

    const job2 = uniqueName("best-max");
    await client.setRetentionPolicy(job2, { keepLast: 1, keepBest: 2, bestMetric: "accuracy", bestMode: "max" });
    const accuracies = [0.6, 0.9, 0.1, 0.8, 0.2, 0.3];
    for (const [i, accuracy] of accuracies.entries()) {
      const step = (i + 1) * 10;
      await commitStep(client, job2, step);
      await client.reportEvaluation({ job: job2, checkpointId: tagOf(step), evaluator: "eval-acc", metrics: { accuracy } });
    }
    expect(await eventuallySteps(client, job2, [20, 40, 60]), "2 best accuracies (20, 40) and the last").toEqual([20, 40, 60]);
    const policy = await client.getRetentionPolicy(job2);
    expect(policy.policy).toEqual({ keepLast: 1, keepEverySteps: 0, keepBest: 2, bestMetric: "accuracy", bestMode: "max" });
  });

  test("a pinned checkpoint is never deleted; unpinned, it goes at the next GC", async () => {
    const job = uniqueName("pin");
    await client.setRetentionPolicy(job, { keepLast: 1 });
    await commitStep(client, job, 1);
    expect(await client.pinCheckpoint(job, tagOf(1), true)).toBe(true);
    await commitStep(client, job, 2);
    await commitStep(client, job, 3);
    expect(await eventuallySteps(client, job, [1, 3])).toEqual([1, 3]);
    await sleep(3 * GC_INTERVAL_MS);
    expect(await committedSteps(client, job), "pinned step 1 survives timer GCs").toEqual([1, 3]);
    expect((await client.getRetentionPolicy(job)).pinnedCheckpointIds).toEqual([tagOf(1)]);
    expect(await client.pinCheckpoint(job, tagOf(1), false)).toBe(false);
    await commitStep(client, job, 4);
    expect(await eventuallySteps(client, job, [4])).toEqual([4]);
    expect((await client.getRetentionPolicy(job)).pinnedCheckpointIds).toEqual([]);
    expectStatusName(await rejection(client.pinCheckpoint(job, "global_step404", true)), "NOT_FOUND", "pin an unknown checkpoint");
  });
});
