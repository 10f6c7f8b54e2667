/**
 * Invariant 3: two-phase commit across ranks. Every rank's vote gets the same
 * decision; a missing vote or an Abort aborts every rank; a retried Commit gets the
 * decision already made; an aborted checkpoint id can be saved again as a new
 * attempt that no message of the old attempt leaks into.
 */
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Daemon, startDaemon } from "./harness.js";
import { CkptdClient } from "../../clients/ts/src/index.js";
import {
  checkpointDir,
  compressibleBytes,
  expectLoadsBitExact,
  expectStatus,
  f32Entry,
  filesUnder,
  incompressibleBytes,
  objectEntry,
  type RankItems,
  saveAndCommit,
  saveItemOk,
  sleep,
  stagingDir,
  uncommittedBytes,
  uniqueName,
  waitUntil,
  testClient,
  getCheckpoint,
} from "./wire-helpers.js";
import { abortRaw, commitRaw, expectOutcome } from "./raw-wire.js";

const PREPARE_TIMEOUT_MS = 1500;

let daemon: Daemon;
let client: CkptdClient;

beforeAll(async () => {
  daemon = await startDaemon({ args: ["--prepare-timeout-ms", String(PREPARE_TIMEOUT_MS)] });
  client = testClient(daemon.address);
});

afterAll(async () => {
  client?.close();
  await daemon?.stop();
});

/** After an abort: nothing left under staging/, and the job's space given back. */
async function expectSpaceFreed(job: string): Promise<void> {
  const staging = stagingDir(daemon.dataDir, job);
  const freed = await waitUntil(() => filesUnder(staging).length === 0, 5_000);
  expect(freed, `staging still holds: ${filesUnder(staging).join(", ")}`).toBe(true);
  // Decision records may stay; the staged bytes (768 KiB incompressible here) may not.
  const gone = await waitUntil(() => uncommittedBytes(daemon.dataDir, job) < 64 * 1024, 5_000);
  expect(gone, `${uncommittedBytes(daemon.dataDir, job)} bytes still held outside checkpoints/`).toBe(true);
}

let seed = 1;
function rankItems(worldSize: number): RankItems[] {
  return Array.from({ length: worldSize }, () => ({
    model: [
      f32Entry("layers.0.weight", compressibleBytes(512 * 1024, seed++)),
      f32Entry("layers.0.bias", compressibleBytes(4096, seed++)),
      // Incompressible, so the space an abort must free is measurable.
      f32Entry("embedding", incompressibleBytes(256 * 1024)),
    ],
    optim: [objectEntry("state", compressibleBytes(8192, seed++))],
  }));
}

/** Saves every rank's items of a checkpoint; returns the attempt each Save reported. */
async function saveAll(job: string, checkpointId: string, step: number, ranks: RankItems[]): Promise<number[]> {
  return Promise.all(
    ranks.map(async (items, rank) => {
      let attempt = 0;
      for (const [item, entries] of Object.entries(items)) {
        const r = await saveItemOk(client, { job, checkpointId, step, rank, worldSize: ranks.length, item }, entries);
        attempt = r.attempt;
      }
      return attempt;
    }),
  );
}

function vote(job: string, checkpointId: string, step: number, rank: number, worldSize: number, attempt = 0, deadlineMs = 60_000) {
  return commitRaw(client, { job, checkpointId, step, rank, worldSize, items: ["model", "optim"], attempt }, deadlineMs);
}

describe("commit", () => {
  it("commit - every rank that votes gets COMMITTED and the checkpoint loads bit-exact", async () => {
    const job = uniqueName("job");
    const ranks = rankItems(3);
    const attempts = await saveAll(job, "global_step100", 100, ranks);
    const votes = await Promise.all(ranks.map((_, rank) => vote(job, "global_step100", 100, rank, 3)));
    const res = votes.map((v, rank) => expectOutcome(v, "COMMITTED", `rank ${rank}`));
    for (const r of res) {
      expect(r.attempt).toBe(attempts[0]);
      expect(r.checkpoint?.checkpointId).toBe("global_step100");
      expect(r.checkpoint?.step).toBe(100);
      expect(r.checkpoint?.worldSize).toBe(3);
    }
    const got = await getCheckpoint(client, job, "global_step100");
    expect(got.error).toBeUndefined();
    expect(got.response!.checkpoint!.worldSize).toBe(3);
    for (let rank = 0; rank < 3; rank++) await expectLoadsBitExact(client, job, "global_step100", rank, ranks[rank]!);
  });

  it("commit - a rank that never votes aborts every rank after the timeout", async () => {
    const job = uniqueName("job");
    const ranks = rankItems(3);
    const attempts = await saveAll(job, "global_step200", 200, ranks);
    expect(filesUnder(stagingDir(daemon.dataDir, job)).length, "the saved items are staged").toBeGreaterThan(0);
    const started = Date.now();
    // Rank 2 saved but never votes.
    const votes = await Promise.all([0, 1].map((rank) => vote(job, "global_step200", 200, rank, 3)));
    const elapsed = Date.now() - started;
    votes.forEach((v, rank) => {
      const res = expectOutcome(v, "ABORTED", `rank ${rank}`);
      expect(res.reason, `rank ${rank} reason`).toMatch(/time/i);
      expect(res.checkpoint ?? null, "no checkpoint on abort").toBeNull();
    });
    // Waited for the prepare timeout, not much less and not forever.
    expect(elapsed).toBeGreaterThanOrEqual(PREPARE_TIMEOUT_MS - 300);
    expect(elapsed).toBeLessThan(PREPARE_TIMEOUT_MS + 15_000);

    expectStatus(await getCheckpoint(client, job, "global_step200"), "NOT_FOUND");
    expect(fs.existsSync(checkpointDir(daemon.dataDir, job, "global_step200")), "no published checkpoint directory").toBe(false);
    await expectSpaceFreed(job);

    // The late rank, voting for the attempt it saved into, learns the same decision.
    const late = expectOutcome(await vote(job, "global_step200", 200, 2, 3, attempts[2]), "ABORTED", "late rank 2");
    expect(late.reason).toMatch(/time/i);
  });

  it("commit - one rank's Abort aborts every rank's pending Commit with its reason", async () => {
    const job = uniqueName("job");
    const ranks = rankItems(3);
    await saveAll(job, "global_step300", 300, ranks);
    expect(uncommittedBytes(daemon.dataDir, job), "the saved items are staged").toBeGreaterThan(3 * 256 * 1024);
    const pending = [0, 1].map((rank) => vote(job, "global_step300", 300, rank, 3));
    await sleep(200);
    const started = Date.now();
    const ab = await abortRaw(client, { job, checkpointId: "global_step300", rank: 2, reason: "rank 2 hit CUDA OOM" });
    expect(ab.error, `abort failed: ${ab.error?.details}`).toBeUndefined();
    expect(ab.response!.outcome).toBe("COMMIT_OUTCOME_ABORTED");
    const votes = await Promise.all(pending);
    votes.forEach((v, rank) => {
      const res = expectOutcome(v, "ABORTED", `rank ${rank}`);
      // The abort decided it, not the prepare timeout.
      expect(res.reason, `rank ${rank} reason`).toMatch(/OOM|abort/i);
    });
    expect(Date.now() - started, "pending commits answered promptly after the abort").toBeLessThan(PREPARE_TIMEOUT_MS);
    expectOutcome(await vote(job, "global_step300", 300, 2, 3), "ABORTED", "aborting rank's own commit");
    expectStatus(await getCheckpoint(client, job, "global_step300"), "NOT_FOUND");
    await expectSpaceFreed(job);
  });

  it("commit - an Abort before any vote makes every later Commit ABORTED", async () => {
    const job = uniqueName("job");
    const ranks = rankItems(2);
    const attempts = await saveAll(job, "global_step350", 350, ranks);
    const ab = await abortRaw(client, { job, checkpointId: "global_step350", rank: 1, reason: "preempted" });
    expect(ab.error, `abort failed: ${ab.error?.details}`).toBeUndefined();
    const votes = await Promise.all([0, 1].map((rank) => vote(job, "global_step350", 350, rank, 2, attempts[rank])));
    votes.forEach((v, rank) => {
      const res = expectOutcome(v, "ABORTED", `rank ${rank}`);
      expect(res.attempt).toBe(attempts[rank]);
      expect(res.reason, `rank ${rank} reason`).toMatch(/preempted/);
    });
    expectStatus(await getCheckpoint(client, job, "global_step350"), "NOT_FOUND");
  });

  it("commit - a retry after a lost reply gets the same COMMITTED decision", async () => {
    const job = uniqueName("job");
    const ranks = rankItems(2);
    await saveAll(job, "global_step400", 400, ranks);
    // Rank 0's first vote loses its reply (the client gives up before the decision).
    const lost = await vote(job, "global_step400", 400, 0, 2, 0, 300);
    expectStatus(lost, "DEADLINE_EXCEEDED");
    const [retry, other] = await Promise.all([vote(job, "global_step400", 400, 0, 2), vote(job, "global_step400", 400, 1, 2)]);
    const a = expectOutcome(retry, "COMMITTED", "rank 0 retry");
    const b = expectOutcome(other, "COMMITTED", "rank 1");
    expect(a.attempt).toBe(b.attempt);
    // Retrying after the decision, any number of times, gives the same answer.
    for (const rank of [0, 1, 0]) {
      const again = expectOutcome(await vote(job, "global_step400", 400, rank, 2), "COMMITTED", `rank ${rank} again`);
      expect(again.attempt).toBe(a.attempt);
      expect(again.checkpoint?.checkpointId).toBe("global_step400");
    }
    for (let rank = 0; rank < 2; rank++) await expectLoadsBitExact(client, job, "global_step400", rank, ranks[rank]!);
  });

  it("commit - a retry after an abort gets the same ABORTED decision and reason", async () => {
    const job = uniqueName("job");
    const ranks = rankItems(2);
    const attempts = await saveAll(job, "global_step450", 450, ranks);
    const ab = await abortRaw(client, { job, checkpointId: "global_step450", rank: 1, reason: "NaN loss" });
    expect(ab.error).toBeUndefined();
    const first = expectOutcome(await vote(job, "global_step450", 450, 0, 2, attempts[0]), "ABORTED", "rank 0");
    expect(first.attempt).toBe(attempts[0]);
    expect(first.reason).toMatch(/NaN loss/);
    for (let i = 0; i < 3; i++) {
      const again = expectOutcome(await vote(job, "global_step450", 450, 0, 2, attempts[0]), "ABORTED", `rank 0 retry ${i}`);
      expect(again.reason).toBe(first.reason);
      expect(again.attempt).toBe(first.attempt);
    }
  });

  it("commit - a retry naming attempt 0 (the current one) after an abort gets the same decision, not a new attempt", async () => {
    const job = uniqueName("job");
    const ranks = rankItems(2);
    const attempts = await saveAll(job, "global_step470", 470, ranks);
    const ab = await abortRaw(client, { job, checkpointId: "global_step470", rank: 1, reason: "NaN loss" });
    expect(ab.error).toBeUndefined();
    // No Save has started another attempt, so the current attempt is still the aborted one.
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(expectOutcome(await vote(job, "global_step470", 470, 0, 2, 0), "ABORTED", `rank 0 vote ${i}`));
    for (const a of answers) {
      expect(a.attempt, "the decision is about the attempt rank 0 saved into").toBe(attempts[0]);
      expect(a.reason).toMatch(/NaN loss/);
    }
  });

  it("commit - an aborted checkpoint id saved again is a new attempt that commits, and a stale attempt's Commit gets ABORTED", async () => {
    const job = uniqueName("job");
    const id = "global_step500";
    const old = rankItems(2);
    const oldAttempts = await saveAll(job, id, 500, old);
    expect(oldAttempts[0]).toBe(oldAttempts[1]);
    const a1 = oldAttempts[0]!;
    expect(a1, "the first attempt is numbered").toBeGreaterThan(0);
    const ab = await abortRaw(client, { job, checkpointId: id, rank: 0, reason: "job restarted" });
    expect(ab.error).toBeUndefined();
    expect(ab.response!.attempt).toBe(a1);

    // The restarted job saves the same step again, with different data.
    const fresh = rankItems(2);
    const newAttempts = await saveAll(job, id, 500, fresh);
    expect(newAttempts[0]).toBe(newAttempts[1]);
    const a2 = newAttempts[0]!;
    expect(a2, "the re-save is a later attempt").toBeGreaterThan(a1);

    // Late messages of the old attempt: a Commit and an Abort naming it.
    const staleCommit = expectOutcome(await vote(job, id, 500, 0, 2, a1), "ABORTED", "stale commit of rank 0");
    expect(staleCommit.attempt).toBe(a1);
    const staleAbort = await abortRaw(client, { job, checkpointId: id, rank: 1, reason: "late abort", attempt: a1 });
    if (!staleAbort.error) expect(staleAbort.response!.attempt).toBe(a1);

    // If the stale vote had counted for rank 0, rank 1's vote alone would commit.
    const rank1 = vote(job, id, 500, 1, 2, a2);
    await sleep(300);
    expectStatus(await getCheckpoint(client, job, id), "NOT_FOUND");
    const rank0 = vote(job, id, 500, 0, 2, a2);
    const res = [await rank0, await rank1].map((v, rank) => expectOutcome(v, "COMMITTED", `attempt ${a2} rank ${rank}`));
    for (const r of res) {
      expect(r.attempt).toBe(a2);
      expect(r.checkpoint?.attempt).toBe(a2);
    }
    for (let rank = 0; rank < 2; rank++) await expectLoadsBitExact(client, job, id, rank, fresh[rank]!);
    // And the old attempt still reads as aborted, never as the new commit.
    expectOutcome(await vote(job, id, 500, 0, 2, a1), "ABORTED", "stale commit after the new commit");
  });

  it("commit - an abort of one checkpoint leaves the job's other checkpoints alone", async () => {
    const job = uniqueName("job");
    const kept = rankItems(2);
    await saveAndCommit(client, job, "global_step600", 600, kept);
    await saveAll(job, "global_step700", 700, rankItems(2));
    const other = rankItems(2);
    await saveAll(job, "global_step800", 800, other);
    await abortRaw(client, { job, checkpointId: "global_step700", rank: 0, reason: "test" });
    const votes = await Promise.all([0, 1].map((rank) => vote(job, "global_step800", 800, rank, 2)));
    votes.forEach((v, rank) => expectOutcome(v, "COMMITTED", `global_step800 rank ${rank}`));
    for (let rank = 0; rank < 2; rank++) {
      await expectLoadsBitExact(client, job, "global_step600", rank, kept[rank]!);
      await expectLoadsBitExact(client, job, "global_step800", rank, other[rank]!);
    }
    expectStatus(await getCheckpoint(client, job, "global_step700"), "NOT_FOUND");
  });
});
