/**
 * A daemon with --storage s3:// killed (kill -9) in the middle of a commit or of a save, then
 * restarted on the same prefix: nothing committed is lost, nothing is torn (a checkpoint is either
 * committed, listed and bit-exact, or invisible), recovery republishes a durable COMMIT and aborts
 * an undecided attempt (presumed abort), and the bucket holds no staged data of an uncommitted
 * attempt and no incomplete multipart upload afterwards.
 */
import { describe, expect, it } from "vitest";
import type { CkptdClient } from "../../clients/ts/src/index.js";
import { layout } from "../../src/store/layout.js";
import {
  expectAbsent,
  expectLoadsBitExact,
  expectOnlyCommitted,
  makeSaved,
  onFreshPrefix,
  replayLog,
  saveAndCommit,
  type Saved,
} from "./daemon-helpers.js";

const { node, store } = onFreshPrefix("daemon-faults");

/** The decision record of an attempt as the bucket holds it. */
async function decisionOf(job: string, id: string, attempt: number): Promise<{ outcome: string; reason: string } | undefined> {
  const b = await store.get(layout.decision(job, id, attempt));
  return b && (JSON.parse(b.toString("utf8")) as { outcome: string; reason: string });
}

/** Saves on both ranks and starts both COMMIT votes; resolves with the votes' outcomes (or their errors) once settled. */
async function saveThenVote(client: CkptdClient, job: string, id: string, step: number, saved: Saved) {
  const results = await Promise.all(
    [...saved].map(([rank, entries]) => client.save({ job, checkpointId: id, step, rank, worldSize: saved.size, item: "model", entries })),
  );
  const votes = [...saved].map(([rank]) =>
    client
      .commit(
        { job, checkpointId: id, step, rank, worldSize: saved.size, items: ["model"], attempt: results[0]!.attempt },
        { timeoutMs: 30_000 },
      )
      .then(
        (r) => r.outcome as string,
        (e: Error) => e,
      ),
  );
  return { attempt: results[0]!.attempt, votes };
}

/** After the restart: the checkpoint is committed by `attempt`, loads bit-exact, ranks retrying learn COMMITTED, one COMMITTED event. */
async function expectRecoveredCommit(client: CkptdClient, job: string, id: string, step: number, attempt: number, saved: Saved) {
  const got = await client.getCheckpoint(job, id);
  expect(got).toMatchObject({ checkpointId: id, step, worldSize: saved.size, attempt });
  expect((await client.listCheckpoints(job)).checkpoints.map((c) => c.checkpointId)).toContain(id);
  await expectLoadsBitExact(client, job, id, saved);
  for (const rank of saved.keys()) {
    const retry = await client.commit({ job, checkpointId: id, step, rank, worldSize: saved.size, items: ["model"], attempt });
    expect(retry.outcome, `rank ${rank} retrying its vote after the restart: ${retry.reason}`).toBe("COMMITTED");
  }
  const events = await replayLog(client, job);
  expect(events.map((e) => `${e.type} ${e.checkpointId}`)).toEqual([`COMMITTED ${id}`]);
  expect(await expectOnlyCommitted(client, store, job)).toEqual([id]);
}

describe("ckptd on s3:// killed mid-commit", () => {
  it("s3 faults - killed right after the COMMIT decision is durable: the restart publishes it, bit-exact, nothing orphaned", async () => {
    const job = "crash-after-decision";
    const saved = makeSaved(2);
    const client = await node.start({ CKPTD_FAULT: "crash-after-decision" });
    const { attempt, votes } = await saveThenVote(client, job, "c1", 100, saved);
    for (const v of await Promise.all(votes)) expect(v, "the votes' replies are lost with the daemon").toBeInstanceOf(Error);
    expect(await node.daemon!.exited, "the daemon killed itself at the fault point").toBe("SIGKILL");
    await node.stop();
    expect((await decisionOf(job, "c1", attempt))?.outcome).toBe("COMMITTED");
    expect(await store.head(layout.manifest(job, "c1")), "not published at the crash").toBeUndefined();

    await expectRecoveredCommit(await node.start(), job, "c1", 100, attempt, saved);
    await node.stop();
  }, 60_000);

  it("s3 faults - killed with the COMMIT durable but its manifest not written (publish failing): the restart publishes it", async () => {
    const job = "kill-before-manifest";
    const saved = makeSaved(2);
    // Every publish fails just before the manifest is written, so the commit stays durable but invisible.
    const client = await node.start({ CKPTD_FAULT_ENOSPC: "manifest" });
    const { attempt, votes } = await saveThenVote(client, job, "c1", 200, saved);
    for (const v of await Promise.all(votes)) expect(v, "not visible: the vote is not answered COMMITTED").toBeInstanceOf(Error);
    expect((await decisionOf(job, "c1", attempt))?.outcome).toBe("COMMITTED");
    expect(await store.head(layout.manifest(job, "c1"))).toBeUndefined();
    expect(await node.stop("kill9")).toBe("SIGKILL");

    await expectRecoveredCommit(await node.start(), job, "c1", 200, attempt, saved);
    await node.stop();
  }, 60_000);

  it("s3 faults - killed after the manifest was written but before the COMMITTED event: listed after the restart, the event recovered", async () => {
    const job = "kill-after-manifest";
    const saved = makeSaved(2);
    // The manifest lands, then the step after it and the event log fail: published, never logged.
    const client = await node.start({ CKPTD_FAULT_ENOSPC: "publish,event" });
    const { attempt, votes } = await saveThenVote(client, job, "c1", 300, saved);
    await Promise.all(votes);
    await expect.poll(() => store.head(layout.manifest(job, "c1")), { timeout: 10_000 }).toBeDefined();
    expect(await node.stop("kill9")).toBe("SIGKILL");

    await expectRecoveredCommit(await node.start(), job, "c1", 300, attempt, saved);
    await node.stop();
  }, 60_000);

  it("s3 faults - kill -9 at a random instant of a commit, 3 times: committed and bit-exact or invisible and saved again; nothing orphaned", async () => {
    const job = "kill-random";
    const committed = new Map<string, Saved>();
    const outcomes: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = `r${i}`;
      const saved = makeSaved(2, 9 << 20);
      const client = await node.start();
      const results = await Promise.all(
        [...saved].map(([rank, entries]) => client.save({ job, checkpointId: id, step: i, rank, worldSize: 2, item: "model", entries })),
      );
      const vote = (rank: number) =>
        client
          .commit({ job, checkpointId: id, step: i, rank, worldSize: 2, items: ["model"], attempt: results[0]!.attempt })
          .catch((e: Error) => e);
      // The first time between the two votes (undecided: presumed abort); then at a random instant of the commit
      // (decision record, manifest, event: some milliseconds on the RGW) the last vote started.
      const votes = [vote(0)];
      if (i > 0) votes.push(vote(1));
      await new Promise((r) => setTimeout(r, Math.random() * 20));
      await node.stop("kill9");
      await Promise.all(votes);

      const after = await node.start();
      const visible = await after.getCheckpoint(job, id).then(
        () => true,
        () => false,
      );
      outcomes.push(visible ? "committed" : "aborted");
      if (i === 0) expect(visible, "decided by one vote of two").toBe(false);
      if (visible) {
        await expectLoadsBitExact(after, job, id, saved);
      } else {
        await expectAbsent(after, job, id);
        expect(await expectOnlyCommitted(after, store, job), "the aborted attempt's data freed").toEqual([...committed.keys()]);
        // Presumed abort: the same id saves and commits again, as a later attempt.
        for (const d of await saveAndCommit(after, job, id, i, saved)) expect(d.outcome, d.reason).toBe("COMMITTED");
        await expectLoadsBitExact(after, job, id, saved);
      }
      committed.set(id, saved);
      expect(await expectOnlyCommitted(after, store, job)).toEqual([...committed.keys()]);
      const events = await replayLog(after, job);
      expect(events.map((e) => `${e.type} ${e.checkpointId}`)).toEqual([...committed.keys()].map((k) => `COMMITTED ${k}`));
      if (i === 2) for (const [old, s] of committed) await expectLoadsBitExact(after, job, old, s);
      await node.stop();
    }
    console.log(`kill -9 mid-commit outcomes: ${outcomes.join(", ")}`);
  }, 60_000);
});

describe("ckptd on s3:// killed mid-save", () => {
  it("s3 faults - presumed abort: killed with uploads in flight, the attempt is aborted, the same id saves again, nothing orphaned", async () => {
    const job = "presumed-abort";
    const client = await node.start();
    const first = makeSaved(2, 24 << 20);
    const saving = [...first].map(([rank, entries]) =>
      client.save({ job, checkpointId: "c1", step: 1, rank, worldSize: 2, item: "model", entries }).catch((e: Error) => e),
    );
    // Killed once a multipart upload is under way.
    await expect.poll(async () => (await store.listIncompleteUploads("")).length, { timeout: 30_000, interval: 50 }).toBeGreaterThan(0);
    await node.stop("kill9");
    for (const s of await Promise.all(saving)) expect(s).toBeInstanceOf(Error);
    expect((await store.list(`${layout.staging(job, "c1", 1)}/`)).objects.length, "the dead daemon left its staging").toBeGreaterThan(0);

    const after = await node.start();
    const decision = await decisionOf(job, "c1", 1);
    expect(decision?.outcome).toBe("ABORTED");
    expect(decision?.reason).toMatch(/presumed abort/);
    await expectAbsent(after, job, "c1");
    // A rank of the dead attempt voting now learns it was aborted.
    const late = await after.commit({ job, checkpointId: "c1", step: 1, rank: 0, worldSize: 2, items: ["model"], attempt: 1 });
    expect(late.outcome).toBe("ABORTED");
    expect(await expectOnlyCommitted(after, store, job)).toEqual([]);

    const again = makeSaved(2);
    const decisions = await saveAndCommit(after, job, "c1", 1, again);
    for (const d of decisions) expect(d.outcome, d.reason).toBe("COMMITTED");
    expect(decisions[0]!.attempt).toBe(2);
    await expectLoadsBitExact(after, job, "c1", again);
    expect(await expectOnlyCommitted(after, store, job)).toEqual(["c1"]);
    await node.stop();
  }, 90_000);
});
