/**
 * Decision records stay bounded and recovery still works on what pruning leaves:
 * aborted attempts' records go once a later attempt is decided (only the highest
 * number stays, so numbers are never reused), a deleted checkpoint's COMMIT record
 * shrinks to a tombstone (so its id is never reused), and a restart finishes a shrink
 * or a prune a crash interrupted.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startDaemon, type Daemon } from "./harness.js";
import { CkptdClient } from "../../clients/ts/src/index.js";
import {
  compressibleBytes,
  expectLoadsBitExact,
  expectStatus,
  f32Entry,
  type RankItems,
  saveAndCommit,
  saveItemOk,
  stagingDir,
  testClient,
} from "./wire-helpers.js";
import { abortRaw, commitRaw, expectOutcome, saveItem } from "./raw-wire.js";

const JOB = "dec";
const ITEMS: RankItems = { model: [f32Entry("w", compressibleBytes(128 * 1024, 9))] };
const running: { daemon: Daemon; client: CkptdClient }[] = [];

afterEach(async () => {
  for (const r of running.splice(0)) {
    r.client.close();
    await r.daemon.stop();
  }
});

async function start(dataDir?: string) {
  const daemon = await startDaemon(dataDir ? { dataDir } : {});
  const client = testClient(daemon.address);
  running.push({ daemon, client });
  return { daemon, client };
}

const decisions = (dataDir: string) => fs.readdirSync(path.join(dataDir, "jobs", JOB, "decisions")).sort();
const record = (dataDir: string, f: string) =>
  JSON.parse(fs.readFileSync(path.join(dataDir, "jobs", JOB, "decisions", f), "utf8")) as Record<string, unknown>;

async function saveAttempt(client: CkptdClient, id: string, step: number): Promise<number> {
  return (await saveItemOk(client, { job: JOB, checkpointId: id, step, rank: 0, worldSize: 1, item: "model" }, ITEMS.model!)).attempt;
}

/** Saves `aborted` attempts of `id` and aborts each, then saves and commits one more. */
async function abortThenCommit(client: CkptdClient, id: string, step: number, aborted: number): Promise<void> {
  for (let n = 1; n <= aborted; n++) {
    expect(await saveAttempt(client, id, step)).toBe(n);
    const r = await abortRaw(client, { job: JOB, checkpointId: id, rank: 0, reason: "test", attempt: n });
    expect(r.error, r.error?.details).toBeUndefined();
    expect(r.response!.outcome).toBe("COMMIT_OUTCOME_ABORTED");
  }
  const n = await saveAttempt(client, id, step);
  expect(n).toBe(aborted + 1);
  expectOutcome(
    await commitRaw(client, { job: JOB, checkpointId: id, step, rank: 0, worldSize: 1, items: ["model"], attempt: n }),
    "COMMITTED",
  );
}

describe("decision records", () => {
  it("decisions - aborted attempts' records are pruned to the highest, and after a restart a stale vote of a pruned attempt still gets ABORTED", async () => {
    const { daemon } = await start();
    await abortThenCommit(running[0]!.client, "c1", 1, 2);
    expect(decisions(daemon.dataDir)).toEqual(["c1@3.json"]);
    running[0]!.client.close();
    await daemon.stop();
    running.splice(0);

    const { client } = await start(daemon.dataDir);
    const stale = await commitRaw(client, { job: JOB, checkpointId: "c1", step: 1, rank: 0, worldSize: 1, items: ["model"], attempt: 1 });
    expect(expectOutcome(stale, "ABORTED", "stale vote of attempt 1").reason).toMatch(/attempt 1 was aborted; attempt 3 superseded it/);
    const retry = await commitRaw(client, { job: JOB, checkpointId: "c1", step: 1, rank: 0, worldSize: 1, items: ["model"], attempt: 3 });
    expectOutcome(retry, "COMMITTED", "retried vote of the committed attempt");
    expect(decisions(daemon.dataDir)).toEqual(["c1@3.json"]);
  });

  it("decisions - a deleted checkpoint's record shrinks to a tombstone that still refuses the id; a restart finishes a shrink or prune a crash interrupted", async () => {
    const { daemon, client } = await start();
    const dataDir = daemon.dataDir;
    await saveAndCommit(client, JOB, "c2", 2, [ITEMS]);
    const full = fs.readFileSync(path.join(dataDir, "jobs", JOB, "decisions", "c2@1.json"));
    expect(record(dataDir, "c2@1.json").manifest, "a live checkpoint's record holds its manifest").toBeDefined();
    const deleted = await client.deleteCheckpoint(JOB, "c2").then(
      () => null,
      (err: Error) => err,
    );
    expect(deleted).toBeNull();
    const tomb = record(dataDir, "c2@1.json");
    expect(tomb).toMatchObject({ outcome: "COMMITTED", attempt: 1, deleted: true });
    expect(tomb.manifest).toBeUndefined();
    expect(fs.statSync(path.join(dataDir, "jobs", JOB, "decisions", "c2@1.json")).size).toBeLessThan(200);
    const again = await saveItem(client, { job: JOB, checkpointId: "c2", step: 2, rank: 0, worldSize: 1, item: "model" }, ITEMS.model!);
    expectStatus(again, "FAILED_PRECONDITION", /committed ids are never reused/);
    await abortThenCommit(client, "c3", 3, 1);
    client.close();
    await daemon.stop();
    running.splice(0);

    // What a crash leaves: the delete done but its record not shrunk yet, and the staging of
    // an attempt whose record a later attempt's decision pruned.
    fs.writeFileSync(path.join(dataDir, "jobs", JOB, "decisions", "c2@1.json"), full);
    fs.mkdirSync(path.join(stagingDir(dataDir, JOB), "c3@1", "rank-00000"), { recursive: true });
    fs.writeFileSync(path.join(stagingDir(dataDir, JOB), "c3@1", "rank-00000", "junk"), "x");

    const { client: c2 } = await start(dataDir);
    expect(record(dataDir, "c2@1.json").manifest, "shrunk at start").toBeUndefined();
    expect(fs.readdirSync(stagingDir(dataDir, JOB)), "the superseded attempt's staging is freed").toEqual([]);
    expect(decisions(dataDir), "no record made up for the superseded attempt").toEqual(["c2@1.json", "c3@2.json"]);
    await expectLoadsBitExact(c2, JOB, "c3", 0, ITEMS);
    const stale = await commitRaw(c2, { job: JOB, checkpointId: "c3", step: 3, rank: 0, worldSize: 1, items: ["model"], attempt: 1 });
    expectOutcome(stale, "ABORTED", "stale vote of the superseded attempt");
  });
});
