/**
 * Invariant 1: no torn checkpoint is ever visible. A daemon killed at any instant
 * restarts on the same data directory with every checkpoint either fully committed
 * and readable, or absent with its staging freed (presumed abort); a COMMIT that
 * was durable before the crash is published on restart.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type Daemon, startDaemon } from "./harness.js";
import { CkptdClient } from "../../clients/ts/src/index.js";
import {
  MiB,
  bytesUnder,
  checkpointDir,
  compressibleBytes,
  expectLoadsBitExact,
  expectStatus,
  f32Entry,
  filesUnder,
  hashTree,
  incompressibleBytes,
  objectEntry,
  type RankItems,
  saveAndCommit,
  saveItemOk,
  stagingDir,
  uncommittedBytes,
  waitUntil,
  testClient,
  getCheckpoint,
  listCheckpoints,
} from "./wire-helpers.js";
import { commitRaw, expectOutcome, itemStream, openSave } from "./raw-wire.js";

const JOB = "recovery-job";
const CONNECTION_LOST = ["UNAVAILABLE", "CANCELLED", "INTERNAL"] as const;

const daemons: Daemon[] = [];
const clients: CkptdClient[] = [];

async function start(opts: Parameters<typeof startDaemon>[0] = {}): Promise<{ daemon: Daemon; client: CkptdClient }> {
  const daemon = await startDaemon(opts);
  const client = testClient(daemon.address);
  daemons.push(daemon);
  clients.push(client);
  return { daemon, client };
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const d of daemons.splice(0)) await d.kill9();
});

function olderCheckpoint(): RankItems[] {
  return [0, 1].map((rank) => ({
    model: [f32Entry("layers.0.weight", compressibleBytes(3 * MiB, 40 + rank)), f32Entry("embedding", incompressibleBytes(1 * MiB))],
    optim: [objectEntry("state", compressibleBytes(16 * 1024, 50 + rank))],
  }));
}

async function expectOlderIntact(client: CkptdClient, dataDir: string, older: RankItems[], hashes: Record<string, string>): Promise<void> {
  expect(hashTree(checkpointDir(dataDir, JOB, "global_step100")), "older checkpoint files unchanged").toEqual(hashes);
  const got = await getCheckpoint(client, JOB, "global_step100");
  expect(got.error, `get older: ${got.error?.details}`).toBeUndefined();
  for (let rank = 0; rank < older.length; rank++) await expectLoadsBitExact(client, JOB, "global_step100", rank, older[rank]!);
}

async function expectStagingFreed(dataDir: string): Promise<void> {
  const staging = stagingDir(dataDir, JOB);
  const freed = await waitUntil(() => filesUnder(staging).length === 0, 5_000);
  expect(freed, `staging still holds after recovery: ${filesUnder(staging).join(", ")}`).toBe(true);
  // Whatever else the job keeps outside checkpoints/ (decision records) is small.
  const gone = await waitUntil(() => uncommittedBytes(dataDir, JOB) < 64 * 1024, 5_000);
  expect(gone, `${uncommittedBytes(dataDir, JOB)} bytes still held outside checkpoints/`).toBe(true);
}

describe("recovery", () => {
  it("recovery - kill -9 in the middle of a save leaves that checkpoint absent, its staging freed and older checkpoints intact", async () => {
    const { daemon: d1, client: c1 } = await start({ args: ["--prepare-timeout-ms", "600000"] });
    const dataDir = d1.dataDir;
    const older = olderCheckpoint();
    await saveAndCommit(c1, JOB, "global_step100", 100, older);
    const hashes = hashTree(checkpointDir(dataDir, JOB, "global_step100"));
    expect(Object.keys(hashes)).toContain("manifest.json");

    // Rank 1 has staged its item and voted; rank 0 is in the middle of a 20 MiB tensor.
    const rank1 = { model: [f32Entry("layers.0.weight", compressibleBytes(2 * MiB, 61))] };
    await saveItemOk(c1, { job: JOB, checkpointId: "global_step200", step: 200, rank: 1, worldSize: 2, item: "model" }, rank1.model);
    const vote1 = commitRaw(c1, { job: JOB, checkpointId: "global_step200", step: 200, rank: 1, worldSize: 2, items: ["model"] });
    const big = f32Entry("layers.0.weight", compressibleBytes(20 * MiB, 60));
    const msgs = itemStream({ job: JOB, checkpointId: "global_step200", step: 200, rank: 0, worldSize: 2, item: "model" }, [big], {
      chunkBytes: 2 * MiB,
    });
    const stagedBefore = bytesUnder(stagingDir(dataDir, JOB));
    const save = openSave(c1);
    for (const m of msgs.slice(0, 6)) await save.write(m); // header, entry, 4 of 10 chunks
    // Let the daemon get some of those chunks onto disk before it dies.
    const grew = await waitUntil(() => bytesUnder(stagingDir(dataDir, JOB)) > stagedBefore, 5_000);
    expect(grew, "some chunks of the big tensor reached staging before the kill").toBe(true);

    await d1.kill9();
    expectStatus(await vote1, [...CONNECTION_LOST]);
    expectStatus(await save.result, [...CONNECTION_LOST]);

    const { daemon: d2, client: c2 } = await start({ dataDir, args: ["--prepare-timeout-ms", "600000"] });
    expectStatus(await getCheckpoint(c2, JOB, "global_step200"), "NOT_FOUND");
    expect(fs.existsSync(checkpointDir(dataDir, JOB, "global_step200")), "no published directory for the torn checkpoint").toBe(false);
    const list = await listCheckpoints(c2, JOB);
    expect(list.error, `list: ${list.error?.details}`).toBeUndefined();
    expect(list.response!.checkpoints.map((c) => c.checkpointId)).toEqual(["global_step100"]);
    const latest = await getCheckpoint(c2, JOB, "latest");
    expect(latest.response?.checkpoint?.checkpointId, `latest: ${latest.error?.details}`).toBe("global_step100");
    await expectStagingFreed(dataDir);
    await expectOlderIntact(c2, dataDir, older, hashes);

    // A late vote of the lost attempt does not resurrect it.
    const late = await commitRaw(
      c2,
      { job: JOB, checkpointId: "global_step200", step: 200, rank: 1, worldSize: 2, items: ["model"] },
      10_000,
    );
    if (!late.error) expect(late.response!.outcome, "late vote after the crash").not.toBe("COMMIT_OUTCOME_COMMITTED");

    // The restarted job can save the same checkpoint again, and it commits.
    const again: RankItems[] = [
      { model: [f32Entry("layers.0.weight", compressibleBytes(4 * MiB, 70))] },
      { model: [f32Entry("layers.0.weight", compressibleBytes(4 * MiB, 71))] },
    ];
    await saveAndCommit(c2, JOB, "global_step200", 200, again);
    for (let rank = 0; rank < 2; rank++) await expectLoadsBitExact(c2, JOB, "global_step200", rank, again[rank]!);
    await expectOlderIntact(c2, dataDir, older, hashes);
    expect(d2.proc.exitCode).toBeNull();
  });

  it("recovery - a crash after the COMMIT decision is durable publishes the checkpoint on restart", async () => {
    const { daemon: d0, client: c0 } = await start();
    const dataDir = d0.dataDir;
    const older = olderCheckpoint();
    await saveAndCommit(c0, JOB, "global_step100", 100, older);
    c0.close();
    await d0.stop();
    const hashes = hashTree(checkpointDir(dataDir, JOB, "global_step100"));

    const { daemon: d1, client: c1 } = await start({ dataDir, env: { CKPTD_FAULT: "crash-after-decision" } });
    const ranks: RankItems[] = [0, 1].map((rank) => ({
      model: [f32Entry("layers.0.weight", compressibleBytes(6 * MiB, 80 + rank)), f32Entry("layers.0.bias", incompressibleBytes(2 * MiB))],
      optim: [objectEntry("state", compressibleBytes(32 * 1024, 90 + rank))],
    }));
    const attempts = await Promise.all(
      ranks.map(async (items, rank) => {
        let attempt = 0;
        for (const [item, entries] of Object.entries(items)) {
          attempt = (await saveItemOk(c1, { job: JOB, checkpointId: "global_step200", step: 200, rank, worldSize: 2, item }, entries))
            .attempt;
        }
        return attempt;
      }),
    );
    const votes = await Promise.all(
      [0, 1].map((rank) =>
        commitRaw(c1, { job: JOB, checkpointId: "global_step200", step: 200, rank, worldSize: 2, items: ["model", "optim"] }),
      ),
    );
    votes.forEach((v) => expectStatus(v, [...CONNECTION_LOST]));
    expect(await d1.exited, "the daemon killed itself at the fault point").toBe("SIGKILL");
    expect(fs.existsSync(path.join(checkpointDir(dataDir, JOB, "global_step200"), "manifest.json")), "not yet published at the crash").toBe(
      false,
    );

    const { client: c2 } = await start({ dataDir });
    const got = await getCheckpoint(c2, JOB, "global_step200");
    expect(got.error, `get after restart: ${got.error?.details}`).toBeUndefined();
    expect(got.response!.checkpoint!.step).toBe(200);
    expect(got.response!.checkpoint!.worldSize).toBe(2);
    expect(got.response!.checkpoint!.attempt).toBe(attempts[0]);
    expect(fs.existsSync(path.join(checkpointDir(dataDir, JOB, "global_step200"), "manifest.json"))).toBe(true);
    for (let rank = 0; rank < 2; rank++) await expectLoadsBitExact(c2, JOB, "global_step200", rank, ranks[rank]!);

    // The ranks whose replies were lost retry and learn the durable decision.
    for (let rank = 0; rank < 2; rank++) {
      const retry = await commitRaw(c2, {
        job: JOB,
        checkpointId: "global_step200",
        step: 200,
        rank,
        worldSize: 2,
        items: ["model", "optim"],
      });
      expectOutcome(retry, "COMMITTED", `rank ${rank} retry after restart`);
    }
    const latest = await getCheckpoint(c2, JOB, "latest");
    expect(latest.response?.checkpoint?.checkpointId, `latest: ${latest.error?.details}`).toBe("global_step200");
    await expectStagingFreed(dataDir);
    await expectOlderIntact(c2, dataDir, older, hashes);
  });

  it("recovery - kill -9 of an idle daemon loses nothing committed", async () => {
    const { daemon: d1, client: c1 } = await start();
    const dataDir = d1.dataDir;
    const older = olderCheckpoint();
    await saveAndCommit(c1, JOB, "global_step100", 100, older);
    const hashes = hashTree(checkpointDir(dataDir, JOB, "global_step100"));
    await d1.kill9();
    const { client: c2 } = await start({ dataDir });
    await expectOlderIntact(c2, dataDir, older, hashes);
    await expectStagingFreed(dataDir);
  });
});
