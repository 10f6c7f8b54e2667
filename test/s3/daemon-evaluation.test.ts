/**
 * Evaluation and retention on a daemon with --storage s3://: an evaluator watching a job sees each
 * commit and reports on it, the trainer's WaitForEvaluators returns the report, and after a kill -9
 * and restart the reports and the event log (a replay from the start) are the same. With --keep-last
 * 2 the oldest checkpoints are deleted whole (manifest and staged data objects gone from the bucket),
 * the newest load bit-exact, a pinned checkpoint survives, also across a restart, and a deletion a
 * kill -9 interrupts completes after the restart.
 */
import { describe, expect, it } from "vitest";
import { CkptdClient, type CheckpointEvent, type EvaluationReport } from "../../clients/ts/src/index.js";
import { layout } from "../../src/store/layout.js";
import {
  expectAbsent,
  expectLoadsBitExact,
  expectOnlyCommitted,
  makeSaved,
  objectsBelow,
  onFreshPrefix,
  replayLog,
  saveAndCommit,
  type Saved,
} from "./daemon-helpers.js";

const brief = (events: CheckpointEvent[]) =>
  events.map((e) => ({ seq: e.sequence, type: e.type, id: e.checkpointId, step: e.step, reason: e.reason }));
const reportBrief = (r: EvaluationReport) => ({
  id: r.checkpointId,
  step: r.step,
  evaluator: r.evaluator,
  metrics: r.metrics,
  status: r.status,
  at: r.reportTime.getTime(),
});

async function commitOk(client: CkptdClient, job: string, id: string, step: number, saved: Saved) {
  const decisions = await saveAndCommit(client, job, id, step, saved);
  for (const d of decisions) expect(d.outcome, `${job}/${id}: ${d.reason}`).toBe("COMMITTED");
  return decisions[0]!;
}

describe("evaluators on s3://", () => {
  const { node, store } = onFreshPrefix("daemon-eval", ["--lease-ttl-ms", "120000"]);

  it("s3 evaluation - the evaluator sees the commits and reports; WaitForEvaluators returns it; reports and events survive a kill -9", async () => {
    const job = "evaljob";
    const trainer = await node.start();
    // The evaluator's own connection to the same daemon.
    const evalClient = new CkptdClient(node.daemon!.address);
    const seen: CheckpointEvent[] = [];
    const abort = new AbortController();
    const following = (async () => {
      for await (const ev of evalClient.watch(job, { evaluator: "eval-a", signal: abort.signal })) {
        seen.push(ev);
        if (ev.type === "COMMITTED")
          await evalClient.reportEvaluation({
            job,
            checkpointId: ev.checkpointId,
            evaluator: "eval-a",
            metrics: { loss: 1 / ev.step, step: ev.step },
          });
      }
    })();

    const saved = new Map<string, Saved>();
    const reports = new Map<string, EvaluationReport[]>();
    for (const [id, step] of [
      ["e1", 10],
      ["e2", 20],
    ] as const) {
      saved.set(id, makeSaved(2, 9 << 20));
      await commitOk(trainer, job, id, step, saved.get(id)!);
      const got = await trainer.waitForEvaluators({ job, checkpointId: id, evaluators: ["eval-a"], timeoutMs: 10_000 });
      expect(got.map((r) => [r.evaluator, r.checkpointId, r.step, r.metrics, r.status])).toEqual([
        ["eval-a", id, step, { loss: 1 / step, step }, "SUCCEEDED"],
      ]);
      reports.set(id, got);
    }
    expect(brief(seen).map((e) => `${e.seq} ${e.type} ${e.id}`)).toEqual(["1 COMMITTED e1", "2 COMMITTED e2"]);
    const before = brief(await replayLog(trainer, job));
    expect(before).toEqual(brief(seen));
    expect((await objectsBelow(store, `${layout.evaluations(job)}.records`)).length, "the reports are in the bucket").toBeGreaterThan(0);
    abort.abort();
    await following;
    evalClient.close();

    // kill -9, restart on the same prefix: nothing of it is local.
    expect(await node.stop("kill9")).toBe("SIGKILL");
    const after = await node.start();
    for (const id of ["e1", "e2"]) {
      const started = Date.now();
      const got = await after.waitForEvaluators({ job, checkpointId: id, evaluators: ["eval-a"], timeoutMs: 5_000 });
      expect(Date.now() - started, "the report is there: no waiting").toBeLessThan(2_000);
      expect(got.map(reportBrief)).toEqual(reports.get(id)!.map(reportBrief));
      await expectLoadsBitExact(after, job, id, saved.get(id)!);
    }
    expect(brief(await replayLog(after, job)), "the event log replayed from 0 after the restart").toEqual(before);

    // The log goes on where it was: the next commit is event 3, seen by an evaluator resuming after event 2.
    saved.set("e3", makeSaved(1, 9 << 20));
    const resumed: CheckpointEvent[] = [];
    const abort2 = new AbortController();
    const follow2 = (async () => {
      for await (const ev of after.watch(job, { evaluator: "eval-a", afterSequence: 2, signal: abort2.signal })) {
        resumed.push(ev);
        await after.reportEvaluation({
          job,
          checkpointId: ev.checkpointId,
          evaluator: "eval-a",
          metrics: { loss: 1 / ev.step, step: ev.step },
        });
        break;
      }
    })();
    await commitOk(after, job, "e3", 30, saved.get("e3")!);
    const got3 = await after.waitForEvaluators({ job, checkpointId: "e3", evaluators: ["eval-a"], timeoutMs: 10_000 });
    expect(got3.map((r) => [r.evaluator, r.metrics])).toEqual([["eval-a", { loss: 1 / 30, step: 30 }]]);
    abort2.abort();
    await follow2;
    expect(brief(resumed).map((e) => `${e.seq} ${e.type} ${e.id}`)).toEqual(["3 COMMITTED e3"]);
    expect(await expectOnlyCommitted(after, store, job)).toEqual(["e1", "e2", "e3"]);
    await node.stop();
  }, 90_000);
});

describe("retention on s3:// (--keep-last 2)", () => {
  const { node, store } = onFreshPrefix("daemon-retention", [
    "--keep-last",
    "2",
    "--gc-interval-ms",
    "250",
    // After a restart, checkpoints nobody reported on are held this long (leases lost in the restart may be live).
    "--lease-ttl-ms",
    "1000",
  ]);

  it("s3 retention - of 4 checkpoints the 2 oldest are deleted: manifest and data objects gone; the newest 2 load bit-exact", async () => {
    const job = "keeplast";
    const client = await node.start();
    const saved = new Map<string, Saved>();
    const dataOf = new Map<string, string>();
    for (let i = 1; i <= 4; i++) {
      const id = `k${i}`;
      saved.set(id, makeSaved(1, 9 << 20));
      const d = await commitOk(client, job, id, i, saved.get(id)!);
      dataOf.set(id, layout.staging(job, id, d.attempt));
      expect((await objectsBelow(store, dataOf.get(id)!)).length, `${id}'s data objects`).toBeGreaterThan(0);
    }
    await expect
      .poll(async () => (await client.listCheckpoints(job)).checkpoints.map((c) => c.checkpointId), { timeout: 10_000 })
      .toEqual(["k4", "k3"]);
    for (const id of ["k1", "k2"]) {
      await expectAbsent(client, job, id);
      expect(await store.head(layout.manifest(job, id)), `${id}'s manifest`).toBeUndefined();
      expect(await objectsBelow(store, layout.checkpoint(job, id))).toEqual([]);
      await expect.poll(() => objectsBelow(store, dataOf.get(id)!), { timeout: 10_000 }).toEqual([]);
    }
    for (const id of ["k3", "k4"]) await expectLoadsBitExact(client, job, id, saved.get(id)!);
    expect(await expectOnlyCommitted(client, store, job)).toEqual(["k3", "k4"]);
    expect(await objectsBelow(store, layout.trash(job)), "the trash is emptied").toEqual([]);
    const events = brief(await replayLog(client, job));
    expect(events.filter((e) => e.type === "DELETED").map((e) => e.id)).toEqual(["k1", "k2"]);
    for (const e of events.filter((e) => e.type === "DELETED")) expect(e.reason).toMatch(/keep_last=2/);
  }, 60_000);

  it("s3 retention - a pinned checkpoint survives --keep-last 2, also across a restart; the unpinned old one goes", async () => {
    const job = "pinned";
    const client = node.c;
    const saved = new Map<string, Saved>();
    saved.set("p1", makeSaved(1, 9 << 20));
    await commitOk(client, job, "p1", 1, saved.get("p1")!);
    expect(await client.pinCheckpoint(job, "p1")).toBe(true);
    for (let i = 2; i <= 4; i++) {
      saved.set(`p${i}`, makeSaved(1, 9 << 20));
      await commitOk(client, job, `p${i}`, i, saved.get(`p${i}`)!);
    }
    const ids = async (c: CkptdClient) => (await c.listCheckpoints(job)).checkpoints.map((x) => x.checkpointId);
    await expect.poll(() => ids(client), { timeout: 10_000 }).toEqual(["p4", "p3", "p1"]);
    await expectAbsent(client, job, "p2");
    await expect
      .poll(() => expectOnlyCommitted(client, store, job).catch((e: Error) => e.message), { timeout: 10_000 })
      .toEqual(["p1", "p3", "p4"]);

    await node.stop();
    const after = await node.start();
    expect((await after.getRetentionPolicy(job)).pinnedCheckpointIds).toEqual(["p1"]);
    // GC passes after the restart's grace (its timer runs every 250 ms) keep the pinned one.
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await ids(after)).toEqual(["p4", "p3", "p1"]);
    for (const id of ["p1", "p3", "p4"]) await expectLoadsBitExact(after, job, id, saved.get(id)!);
    expect(await expectOnlyCommitted(after, store, job)).toEqual(["p1", "p3", "p4"]);
    await node.stop();
  }, 60_000);

  it("s3 retention - kill -9 while retention deletes: after the restart the deletion completes, whole, with one DELETED event", async () => {
    const job = "crashgc";
    const saved = new Map<string, Saved>();
    const dataOf = new Map<string, string>();
    let client = await node.start();
    const commit = async (id: string, step: number) => {
      saved.set(id, makeSaved(1, 9 << 20));
      dataOf.set(id, layout.staging(job, id, (await commitOk(client, job, id, step, saved.get(id)!)).attempt));
    };
    await commit("x1", 1);
    await commit("x2", 2);
    for (let i = 3; i <= 4; i++) {
      // The commit of x<i> starts the deletion of x<i-2> (keep_last=2) in the background: killed during it.
      const gone = `x${i - 2}`;
      await commit(`x${i}`, i);
      // Killed as soon as the deletion shows in the bucket: its manifest copied to the trash, or gone.
      for (const end = Date.now() + 5_000; Date.now() < end;) {
        const [trash, manifest] = await Promise.all([objectsBelow(store, layout.trash(job)), store.head(layout.manifest(job, gone))]);
        if (trash.length > 0 || !manifest) break;
      }
      expect(await node.stop("kill9")).toBe("SIGKILL");
      const state = [
        (await store.head(layout.manifest(job, gone))) ? "manifest there" : "manifest gone",
        `${(await objectsBelow(store, layout.trash(job))).length} in the trash`,
        `${(await objectsBelow(store, dataOf.get(gone)!)).length} data objects`,
      ];
      console.log(`killed during the deletion of ${gone}: ${state.join(", ")}`);
      client = await node.start();
      const kept = [`x${i}`, `x${i - 1}`];
      await expect
        .poll(async () => (await client.listCheckpoints(job)).checkpoints.map((c) => c.checkpointId), { timeout: 10_000 })
        .toEqual(kept);
      await expectAbsent(client, job, gone);
      expect(await store.head(layout.manifest(job, gone))).toBeUndefined();
      await expect.poll(() => objectsBelow(store, dataOf.get(gone)!), { timeout: 10_000 }).toEqual([]);
      for (const id of kept) await expectLoadsBitExact(client, job, id, saved.get(id)!);
      await expect
        .poll(() => expectOnlyCommitted(client, store, job).catch((e: Error) => e.message), { timeout: 10_000 })
        .toEqual([...kept].reverse());
      expect(await objectsBelow(store, layout.trash(job)), "the trash is emptied").toEqual([]);
    }
    // Each checkpoint committed once, each deleted one deleted once, in order.
    const events = brief(await replayLog(client, job)).map((e) => `${e.type} ${e.id}`);
    expect(events.filter((e) => e.startsWith("COMMITTED"))).toEqual(["COMMITTED x1", "COMMITTED x2", "COMMITTED x3", "COMMITTED x4"]);
    expect(events.filter((e) => e.startsWith("DELETED"))).toEqual(["DELETED x1", "DELETED x2"]);
    await node.stop();
  }, 60_000);
});
