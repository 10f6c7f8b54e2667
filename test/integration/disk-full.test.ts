/**
 * A full disk at each step of a commit and of a deletion, on a real small filesystem
 * (a tmpfs this test mounts as the data directory): nothing acknowledged is lost or
 * hidden, the event log keeps every acknowledged record with its sequence, a retried
 * Commit gets the decision and the checkpoint becomes visible without a restart,
 * nothing leaks, and saves work again once space is freed.
 *
 * The decision record, the manifest, the event append and the report log fail on a really full tmpfs
 * (a filler file leaves exactly the pages the earlier steps need). tmpfs never refuses a
 * rename, and an append into a freed disk cannot be timed, so publish and the DELETED
 * event use the daemon's test-only ENOSPC fault points (src/common/faults.ts), armed by a
 * switch file while the disk is "full".
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CkptdClient, CkptdError } from "../../clients/ts/src/index.js";
import { parseLog } from "../../src/catalog/events.js";
import { startDaemon, type Daemon } from "./harness.js";
import {
  checkpointDir,
  compressibleBytes,
  expectLoadsBitExact,
  f32Entry,
  filesUnder,
  objectEntry,
  type RankItems,
  saveItemOk,
  statusName,
  testClient,
  getCheckpoint,
  listCheckpoints,
  waitUntil,
} from "./wire-helpers.js";
import { commitRaw, expectOutcome } from "./raw-wire.js";

const PAGE = 4096;

/** Mounting needs root (CAP_SYS_ADMIN); CI runs as root. Elsewhere the suite is skipped, saying why. */
function tryMount(): { mountPoint: string; reason: string } {
  const mountPoint = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-diskfull-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", mountPoint], { stdio: "pipe" });
    return { mountPoint, reason: "" };
  } catch (err) {
    return { mountPoint, reason: `cannot mount a tmpfs here (${(err as Error).message.split("\n")[0]})` };
  }
}

const { mountPoint, reason: noMount } = tryMount();
if (noMount) console.warn(`disk-full tests skipped: ${noMount}`);
const dataDir = path.join(mountPoint, "data");
/** On the same filesystem as the data directory, outside it: what fills the disk. */
const filler = path.join(mountPoint, "filler");
/** Outside the tmpfs: arms the daemon's fault points while it exists. */
const faultSwitch = path.join(path.dirname(mountPoint), `${path.basename(mountPoint)}.fault`);

// The same bytes in every checkpoint, so every decision record and manifest has the same
// size as the calibration's (ids, job names and times have the same length throughout).
const ITEMS: RankItems = {
  model: [f32Entry("layers.0.weight", compressibleBytes(96 * 1024, 5)), f32Entry("layers.0.bias", compressibleBytes(8 * 1024, 6))],
  optim: [objectEntry("state", compressibleBytes(4 * 1024, 7))],
};
const JOB = "dfa";

let daemon: Daemon;
let client: CkptdClient;
/** Ids whose Commit returned COMMITTED, in that order, per job; and the ones deleted since. */
const acknowledged: { job: string; id: string }[] = [];
const deleted = new Set<string>();
/** Every event record seen so far: its seq must keep naming the same event. */
const seenEvents = new Map<string, string>();
let decisionPages = 0;
let manifestPages = 0;

function freeBytes(): number {
  const s = fs.statfsSync(mountPoint);
  return s.bavail * s.bsize;
}

/** Grows or shrinks the filler so exactly `bytes` (a multiple of a page) stay free. */
function leaveFree(bytes: number): void {
  const delta = freeBytes() - bytes;
  if (delta > 0) {
    const fd = fs.openSync(filler, "a");
    try {
      const zeros = Buffer.alloc(1 << 20);
      for (let left = delta; left > 0;) {
        const n = fs.writeSync(fd, zeros, 0, Math.min(left, zeros.length));
        left -= n;
      }
    } finally {
      fs.closeSync(fd);
    }
  } else if (delta < 0) {
    fs.truncateSync(filler, Math.max(0, fs.statSync(filler).size + delta));
  }
  expect(freeBytes(), "free space left by the filler").toBe(bytes);
}

function freeAll(): void {
  fs.rmSync(filler, { force: true });
  fs.rmSync(faultSwitch, { force: true });
}

function pages(file: string): number {
  return Math.ceil(fs.statSync(file).size / PAGE);
}

async function save(job: string, id: string, step: number): Promise<void> {
  for (const [item, entries] of Object.entries(ITEMS))
    await saveItemOk(client, { job, checkpointId: id, step, rank: 0, worldSize: 1, item }, entries);
}

function commit(job: string, id: string, step: number) {
  return commitRaw(client, { job, checkpointId: id, step, rank: 0, worldSize: 1, items: Object.keys(ITEMS) }, 20_000);
}

function expectUnavailable(r: Awaited<ReturnType<typeof commit>>, pattern: RegExp, what: string): void {
  expect(r.error, `${what}: expected UNAVAILABLE, got ${r.response?.outcome ?? ""} ${r.response?.reason ?? ""}`).toBeDefined();
  expect(statusName(r.error!.code), `${what}: ${r.error!.details}`).toBe("UNAVAILABLE");
  expect(r.error!.details).toMatch(pattern);
}

async function listed(job: string): Promise<string[]> {
  const r = await listCheckpoints(client, job, 1000);
  expect(r.error, r.error?.details).toBeUndefined();
  return (r.response!.checkpoints ?? []).map((c) => c.checkpointId!).sort();
}

function deleteCheckpoint(job: string, id: string): Promise<CkptdError | null> {
  return client.deleteCheckpoint(job, id, { timeoutMs: 20_000 }).then(
    () => null,
    (err: CkptdError) => err,
  );
}

function eventsOf(job: string) {
  const file = path.join(dataDir, "jobs", job, "events.log");
  return fs.existsSync(file) ? parseLog(fs.readFileSync(file)).records : [];
}

/**
 * What holds after every fault: acknowledged commits listed and loadable, each logged
 * COMMITTED once and in commit order, sequences 1..n and never renumbered, no staging,
 * tmp or trash left behind.
 */
async function expectConsistent(): Promise<void> {
  for (const job of new Set(acknowledged.map((a) => a.job))) {
    const expectListed = acknowledged.filter((a) => a.job === job && !deleted.has(`${job}/${a.id}`)).map((a) => a.id);
    expect(await listed(job), `listed checkpoints of ${job}`).toEqual([...expectListed].sort());
    for (const id of expectListed) await expectLoadsBitExact(client, job, id, 0, ITEMS);
    const events = eventsOf(job);
    expect(
      events.map((e) => e.seq),
      `${job}: sequences`,
    ).toEqual(events.map((_, i) => i + 1));
    const committedEvents = events.filter((e) => e.type === "COMMITTED").map((e) => e.checkpointId);
    expect(committedEvents, `${job}: each acknowledged commit logged once, in commit order`).toEqual(
      acknowledged.filter((a) => a.job === job).map((a) => a.id),
    );
    for (const e of events) {
      const key = `${job}#${e.seq}`;
      const what = `${e.type} ${e.checkpointId}`;
      expect(seenEvents.get(key) ?? what, `${key} still names the same event`).toBe(what);
      seenEvents.set(key, what);
    }
    const jobFiles = filesUnder(path.join(dataDir, "jobs", job));
    expect(
      jobFiles.filter((f) => f.startsWith("staging/") || f.startsWith("trash/") || f.includes(".tmp-")),
      `${job}: staging, trash and tmp files left`,
    ).toEqual([]);
  }
}

describe.skipIf(noMount !== "")("disk full", () => {
  beforeAll(async () => {
    fs.mkdirSync(dataDir);
    daemon = await startDaemon({
      dataDir,
      args: ["--prepare-timeout-ms", "20000", "--gc-interval-ms", "500"],
      env: { CKPTD_FAULT_ENOSPC: "publish,event", CKPTD_FAULT_SWITCH: faultSwitch },
    });
    client = testClient(daemon.address);
    // Calibration: how many pages this checkpoint's decision record and manifest take.
    await save("dfc", "s0", 1);
    expectOutcome(await commit("dfc", "s0", 1), "COMMITTED", "calibration commit");
    acknowledged.push({ job: "dfc", id: "s0" });
    decisionPages = pages(path.join(dataDir, "jobs", "dfc", "decisions", "s0@1.json"));
    manifestPages = pages(path.join(checkpointDir(dataDir, "dfc", "s0"), "manifest.json"));
  });

  // A failed test must not leave the disk full for the next one.
  afterEach(() => freeAll());

  afterAll(async () => {
    client?.close();
    await daemon?.stop();
    freeAll();
    if (!noMount) execFileSync("umount", [mountPoint]);
    fs.rmSync(mountPoint, { recursive: true, force: true });
  });

  it("disk full - the decision record cannot be written: the attempt aborts with the reason, its staging is freed, and a re-save commits", async () => {
    await save(JOB, "s1", 1);
    leaveFree(0);
    const first = await commit(JOB, "s1", 1);
    const r = expectOutcome(first, "ABORTED", "commit on a full disk");
    expect(r.reason).toMatch(/could not be recorded.*full.*save the checkpoint again/);
    // The retried Commit gets the same decision, not "has no attempt".
    const retry = await commitRaw(client, {
      job: JOB,
      checkpointId: "s1",
      step: 1,
      rank: 0,
      worldSize: 1,
      items: Object.keys(ITEMS),
      attempt: 1,
    });
    expect(expectOutcome(retry, "ABORTED", "retried commit").reason).toBe(r.reason);
    expect(filesUnder(path.join(dataDir, "jobs", JOB, "staging")), "staging freed").toEqual([]);
    expect(
      filesUnder(dataDir).filter((f) => f.includes(".tmp-")),
      "no tmp files",
    ).toEqual([]);
    freeAll();
    await save(JOB, "s1", 1);
    expectOutcome(await commit(JOB, "s1", 1), "COMMITTED", "re-saved commit");
    acknowledged.push({ job: JOB, id: "s1" });
    // Only the highest attempt's record stays: the aborted one's went with the new decision.
    expect(fs.readdirSync(path.join(dataDir, "jobs", JOB, "decisions")).sort()).toEqual(["s1@2.json"]);
    await expectConsistent();
  });

  it("disk full - the manifest cannot be written: UNAVAILABLE until space is back, then published by the background retry without a restart", async () => {
    await save(JOB, "s2", 2);
    leaveFree(decisionPages * PAGE); // the decision record fits, the manifest does not
    const first = await commit(JOB, "s2", 2);
    expectUnavailable(first, /decided COMMITTED but is not yet visible: publishing failed.*ENOSPC.*retry Commit/, "commit");
    expect(first.error!.details, "a real full disk, not a fault point").not.toMatch(/fault injected/);
    expectUnavailable(await commit(JOB, "s2", 2), /not yet visible/, "retried commit, disk still full");
    expect(await listed(JOB), "an unacknowledged commit is not listed").not.toContain("s2");
    freeAll();
    // Nobody retries: the daemon's background retry publishes it.
    let visible = false;
    for (let i = 0; i < 50 && !visible; i++) {
      visible = (await getCheckpoint(client, JOB, "s2")).error === undefined;
      if (!visible) await new Promise((r) => setTimeout(r, 100));
    }
    expect(visible, "published in the background").toBe(true);
    expectOutcome(await commit(JOB, "s2", 2), "COMMITTED", "retried commit once visible");
    acknowledged.push({ job: JOB, id: "s2" });
    await expectConsistent();
  });

  it("disk full - publish fails: later commits wait behind it, and a retried Commit publishes both in commit order", async () => {
    await save(JOB, "s3", 3);
    await save(JOB, "s4", 4);
    fs.writeFileSync(faultSwitch, "publish");
    expectUnavailable(await commit(JOB, "s3", 3), /publishing failed.*ENOSPC/, "commit s3");
    // s4's decision is durable but its event may not overtake s3's.
    fs.writeFileSync(faultSwitch, "publish");
    expectUnavailable(await commit(JOB, "s4", 4), /not yet visible: it waits behind checkpoint 's3'/, "commit s4");
    expect(await listed(JOB)).not.toContain("s4");
    fs.rmSync(faultSwitch);
    expectOutcome(await commit(JOB, "s4", 4), "COMMITTED", "retried commit s4");
    expectOutcome(await commit(JOB, "s3", 3), "COMMITTED", "retried commit s3");
    acknowledged.push({ job: JOB, id: "s3" }, { job: JOB, id: "s4" });
    await expectConsistent();
  });

  it("disk full - the event append fails: the commit is not acknowledged until its event is logged, then a retried Commit gets COMMITTED", async () => {
    const job = "dfe"; // a job without an events.log yet: its first append needs a new page
    await save(job, "s1", 1);
    leaveFree((decisionPages + manifestPages) * PAGE);
    const first = await commit(job, "s1", 1);
    expectUnavailable(first, /its event could not be logged.*ENOSPC.*retry Commit/, "commit");
    expect(first.error!.details, "a real full disk, not a fault point").not.toMatch(/fault injected/);
    expect(fs.existsSync(path.join(checkpointDir(dataDir, job, "s1"), "manifest.json")), "published on disk").toBe(true);
    expect(await listed(job), "not listed before its event is logged").toEqual([]);
    expectUnavailable(await commit(job, "s1", 1), /its event could not be logged/, "retried commit, disk still full");
    freeAll();
    expectOutcome(await commit(job, "s1", 1), "COMMITTED", "retried commit after space is freed");
    acknowledged.push({ job, id: "s1" });
    await save(job, "s2", 2);
    expectOutcome(await commit(job, "s2", 2), "COMMITTED", "the next commit");
    acknowledged.push({ job, id: "s2" });
    await expectConsistent();
  });

  it("disk full - a report cannot be logged: RESOURCE_EXHAUSTED and no fragment; reports work again once space is freed", async () => {
    const evaluator = new CkptdClient(daemon.address);
    try {
      const report = (id: string, loss: number) =>
        evaluator.reportEvaluation({ job: "dfe", checkpointId: id, evaluator: "eval-a", metrics: { loss } });
      leaveFree(0); // the job has no evaluations.log yet: its first line needs a page
      const err = await report("s1", 0.5).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, "report on a full disk").toBeInstanceOf(CkptdError);
      expect((err as CkptdError).codeName, (err as CkptdError).details).toBe("RESOURCE_EXHAUSTED");
      freeAll();
      await report("s1", 0.25);
      await report("s2", 0.125);
      const log = fs.readFileSync(path.join(dataDir, "jobs", "dfe", "evaluations.log"), "utf8");
      expect(
        log
          .split("\n")
          .filter(Boolean)
          .map((l) => (JSON.parse(l) as { checkpointId: string; metrics: { loss: number } }).metrics.loss),
        "only the acknowledged reports, whole",
      ).toEqual([0.25, 0.125]);
    } finally {
      evaluator.close();
    }
  });

  it("disk full - a deletion on a full disk frees the bytes before logging; a DELETED event that fails is logged by the retried delete", async () => {
    leaveFree(0);
    expect(await deleteCheckpoint(JOB, "s1"), "delete on a full disk").toBeNull();
    deleted.add(`${JOB}/s1`);
    const tombstone = JSON.parse(fs.readFileSync(path.join(dataDir, "jobs", JOB, "decisions", "s1@2.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(tombstone, "the decision record shrank to a tombstone").toMatchObject({ outcome: "COMMITTED", deleted: true });
    expect(tombstone.manifest).toBeUndefined();

    leaveFree(0);
    fs.writeFileSync(faultSwitch, "event");
    const err = await deleteCheckpoint(JOB, "s2");
    expect(statusName(err?.code), err?.details).toBe("UNAVAILABLE");
    expect(err!.details).toMatch(/was deleted but its DELETED event could not be logged yet/);
    deleted.add(`${JOB}/s2`);
    expect(await listed(JOB)).not.toContain("s2");
    freeAll();
    // The daemon retries the event in the background too: a retried delete logs it, or finds the
    // background retry did (NOT_FOUND: deleted and logged).
    const retried = await deleteCheckpoint(JOB, "s2");
    if (retried) expect(statusName(retried.code), `retried delete: ${retried.details}`).toBe("NOT_FOUND");
    await waitUntil(() => eventsOf(JOB).some((e) => e.checkpointId === "s2" && e.type === "DELETED"));
    expect(
      eventsOf(JOB)
        .filter((e) => e.checkpointId === "s2")
        .map((e) => e.type),
      "s2 logged committed, then deleted, once each",
    ).toEqual(["COMMITTED", "DELETED"]);
    // Saves work again, and the deleted ids are never reused.
    await save(JOB, "s5", 5);
    expectOutcome(await commit(JOB, "s5", 5), "COMMITTED", "commit after the deletions");
    acknowledged.push({ job: JOB, id: "s5" });
    await expectConsistent();
  });

  it("disk full - after all of it, a restart finds the log complete: nothing is appended or renumbered", async () => {
    const before = fs.readFileSync(path.join(dataDir, "jobs", JOB, "events.log"));
    client.close();
    await daemon.stop();
    daemon = await startDaemon({ dataDir });
    client = testClient(daemon.address);
    expect(fs.readFileSync(path.join(dataDir, "jobs", JOB, "events.log")).equals(before), "event log unchanged by recovery").toBe(true);
    await expectConsistent();
  });
});
