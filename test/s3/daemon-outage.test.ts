/**
 * A long object-store outage (the gateway down for longer than the daemon's retries) while an
 * attempt is staged and undecided: the prepare timeout aborts it while nothing can be written.
 * Once the gateway is back, without restarting the daemon, the ABORT holds, the attempt's staged
 * data objects are freed (nothing else would free them until a restart) and the same id saves and
 * commits again.
 *
 * It stops the gateway, so it is a file of its own (the files run one at a time).
 */
import { expect, it } from "vitest";
import { layout } from "../../src/store/layout.js";
import {
  expectAbsent,
  expectLoadsBitExact,
  expectOnlyCommitted,
  makeSaved,
  objectsBelow,
  onFreshPrefix,
  saveAndCommit,
} from "./daemon-helpers.js";
import { rgwScript } from "./rgw.js";

const { node, store } = onFreshPrefix("daemon-outage", [], { restartsGateway: true });
const job = "outage";

it("s3 outage - an attempt aborted by the prepare timeout while the store is down has its staged data freed once the store is back", async () => {
  const client = await node.start();
  const saved = makeSaved(2, 9 << 20);
  // Rank 0 saves; rank 1 never does, so the attempt stays undecided until the prepare timeout (3 s).
  const res = await client.save({ job, checkpointId: "c1", step: 1, rank: 0, worldSize: 2, item: "model", entries: saved.get(0)! });
  const staging = layout.staging(job, "c1", res.attempt);
  expect((await objectsBelow(store, staging)).length, "staged data objects").toBeGreaterThan(0);

  rgwScript("stop-rgw.sh", "rgw");
  try {
    // The timeout's ABORT cannot be recorded and its staging cannot be freed while the store is down
    // (each fails once the store's retries, some 11 s, are spent).
    await expect
      .poll(() => node.daemon!.output(), { timeout: 45_000, interval: 250 })
      .toMatch(/could not (free aborted staging|free the staging)/);
  } finally {
    rgwScript("start-rgw.sh");
  }

  // The store is back: the ABORT is recorded and the staged data freed, without a restart.
  await expect
    .poll(async () => (await store.get(layout.decision(job, "c1", res.attempt)))?.toString("utf8") ?? "", {
      timeout: 15_000,
      interval: 250,
    })
    .toMatch(/"outcome":"ABORTED"/);
  await expectAbsent(client, job, "c1");
  await expect.poll(() => objectsBelow(store, staging), { timeout: 15_000, interval: 500 }).toEqual([]);
  expect(await expectOnlyCommitted(client, store, job)).toEqual([]);

  const decisions = await saveAndCommit(client, job, "c1", 1, saved);
  for (const d of decisions) expect(d.outcome, d.reason).toBe("COMMITTED");
  await expectLoadsBitExact(client, job, "c1", saved);
  expect(await expectOnlyCommitted(client, store, job)).toEqual(["c1"]);
}, 120_000);
