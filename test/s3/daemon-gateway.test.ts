/**
 * The RGW gateway stopped and started again while a daemon with --storage s3:// is saving (the
 * daemon keeps running): the save either completes (a short outage its retries ride out) or fails
 * with a clear UNAVAILABLE naming the endpoint (an outage longer than its retries); either way the
 * checkpoint afterwards is committed and bit-exact or absent (never a manifest without its data,
 * Get/List agreeing with Load), what was committed before is intact, the next save, commit and load
 * work without restarting the daemon, and no staged data or incomplete upload is left.
 *
 * It restarts the gateway, so it is a file of its own (the files run one at a time).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { isUnavailable, type CkptdClient } from "../../clients/ts/src/index.js";
import {
  expectAbsent,
  expectLoadsBitExact,
  expectOnlyCommitted,
  makeSaved,
  onFreshPrefix,
  saveAndCommit,
  type Saved,
} from "./daemon-helpers.js";
import { readRgwEnv, rgwScript } from "./rgw.js";

// A prepare timeout longer than the outage: the trainer whose save failed aborts the attempt itself, once
// the store is back (an attempt the timeout aborts while the store is down: daemon-outage.test.ts).
const { node, store } = onFreshPrefix("daemon-gateway", ["--prepare-timeout-ms", "60000"], { restartsGateway: true });
const job = "gw";
let client: CkptdClient;
const committed = new Map<string, Saved>();

beforeAll(async () => {
  client = await node.start();
  const saved = makeSaved(1, 9 << 20);
  for (const d of await saveAndCommit(client, job, "c0", 0, saved)) expect(d.outcome, d.reason).toBe("COMMITTED");
  committed.set("c0", saved);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts a one-rank save of `id`, stops the gateway once its multipart upload is under way, and
 * starts the gateway again after `outage(saving)` resolves. Resolves with the save's error, if any.
 */
async function saveThroughRestart(id: string, step: number, saved: Saved, outage: (saving: Promise<unknown>) => Promise<unknown>) {
  const saving = client.save({ job, checkpointId: id, step, rank: 0, worldSize: 1, item: "model", entries: saved.get(0)! }).then(
    () => undefined,
    (e: unknown) => e,
  );
  await expect.poll(async () => (await store.listIncompleteUploads("")).length, { timeout: 30_000, interval: 20 }).toBeGreaterThan(0);
  rgwScript("stop-rgw.sh", "rgw");
  try {
    await outage(saving);
  } finally {
    rgwScript("start-rgw.sh");
  }
  return saving;
}

/** The trainer's answer to a failed save: it aborts the attempt (rank 0, the current attempt). */
async function abortAfterFailure(id: string): Promise<void> {
  const d = await client.abort({ job, checkpointId: id, rank: 0, reason: "the save failed" });
  expect(d.outcome).toBe("ABORTED");
}

/** Afterwards: `id` is committed and bit-exact or absent everywhere; all else committed is intact; nothing stray is left. */
async function expectWholeOrAbsent(id: string, saved: Saved): Promise<"committed" | "absent"> {
  const listed = (await client.listCheckpoints(job)).checkpoints.map((c) => c.checkpointId);
  const got = await client.getCheckpoint(job, id).then(
    () => true,
    () => false,
  );
  expect(listed.includes(id), "Get and List agree").toBe(got);
  if (got) {
    await expectLoadsBitExact(client, job, id, saved);
    committed.set(id, saved);
  } else await expectAbsent(client, job, id);
  for (const [old, s] of committed) await expectLoadsBitExact(client, job, old, s);
  // The aborted attempt's staging (and the upload the failed save could not abort) is freed in the background.
  await expect
    .poll(
      () =>
        expectOnlyCommitted(client, store, job).then(
          (ids) => ids,
          (e: Error) => e.message,
        ),
      { timeout: 15_000, interval: 500 },
    )
    .toEqual([...committed.keys()]);
  return got ? "committed" : "absent";
}

describe("ckptd on s3:// while the gateway restarts", () => {
  it("s3 gateway - a short outage mid-upload: the save completes or fails UNAVAILABLE; the checkpoint is whole or absent; the next save works", async () => {
    const saved = makeSaved(1, 40 << 20);
    const failure = await saveThroughRestart("c1", 1, saved, () => sleep(500));
    if (failure !== undefined) {
      expect(isUnavailable(failure), String(failure)).toBe(true);
      expect((failure as Error).message).toContain(readRgwEnv().endpoint);
      await abortAfterFailure("c1");
    } else {
      const d = await client.commit({ job, checkpointId: "c1", step: 1, rank: 0, worldSize: 1, items: ["model"] });
      expect(d.outcome, d.reason).toBe("COMMITTED");
    }
    console.log(`short outage: the save ${failure === undefined ? "completed" : "failed"}; c1 ${await expectWholeOrAbsent("c1", saved)}`);

    const next = makeSaved(1, 9 << 20);
    for (const d of await saveAndCommit(client, job, "c2", 2, next)) expect(d.outcome, d.reason).toBe("COMMITTED");
    committed.set("c2", next);
    await expectWholeOrAbsent("c2", next);
  }, 90_000);

  it("s3 gateway - an outage longer than the retries: the save fails UNAVAILABLE naming the endpoint; nothing torn or left; the next save works", async () => {
    const saved = makeSaved(1, 40 << 20);
    const t0 = Date.now();
    const failure = await saveThroughRestart("c3", 3, saved, (saving) => saving);
    expect(Date.now() - t0, "the save fails within the retry bound").toBeLessThan(60_000);
    expect(isUnavailable(failure), String(failure)).toBe(true);
    expect((failure as Error).message).toContain(readRgwEnv().endpoint);
    await abortAfterFailure("c3");
    expect(await expectWholeOrAbsent("c3", saved)).toBe("absent");

    const next = makeSaved(1, 9 << 20);
    for (const d of await saveAndCommit(client, job, "c4", 4, next)) expect(d.outcome, d.reason).toBe("COMMITTED");
    committed.set("c4", next);
    await expectWholeOrAbsent("c4", next);
  }, 120_000);
});
