/**
 * Invariant 7: a restarted job is never blocked by its own past. Saves, votes and aborts
 * carry the trainer's incarnation; the first message of a newer incarnation of a rank
 * durably aborts the undecided attempt that rank took part in, and no message of an older
 * incarnation has a say in a newer attempt.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CkptdClient, isFailedPrecondition, processIncarnation } from "../../clients/ts/src/index.js";
import { startDaemon, tempDataDir, writePeerTokenFile, type Daemon } from "./harness.js";
import {
  compressibleBytes,
  expectLoadsBitExact,
  expectStatus,
  f32Entry,
  stagingDir,
  type ItemRef,
  type TestEntry,
  waitUntil,
  testClient,
} from "./wire-helpers.js";
import {
  abortRaw,
  chunkMsg,
  commitRaw,
  entryMsg,
  expectOutcome,
  headerMsg,
  itemStream,
  openSave,
  saveRaw,
  type SaveResult,
} from "./raw-wire.js";

const JOB = "fence";
// Far longer than any test: a restart that had to wait for it would time the test out.
const PREPARE_TIMEOUT_MS = 600_000;
const OLD = [f32Entry("w", compressibleBytes(96 * 1024, 1))];
const NEW = [f32Entry("w", compressibleBytes(96 * 1024, 2))];
const running: { daemon: Daemon; client: CkptdClient }[] = [];

afterEach(async () => {
  for (const r of running.splice(0)) {
    r.client.close();
    await r.daemon.kill9();
  }
});

async function start(dataDir?: string) {
  const daemon = await startDaemon({ args: ["--prepare-timeout-ms", String(PREPARE_TIMEOUT_MS)], ...(dataDir ? { dataDir } : {}) });
  const client = testClient(daemon.address);
  running.push({ daemon, client });
  return { daemon, client };
}

function ref(id: string, rank: number, worldSize: number): ItemRef {
  return { job: JOB, checkpointId: id, step: 7, rank, worldSize, item: "model" };
}

function save(client: CkptdClient, r: ItemRef, incarnation: number | string, entries: TestEntry[]): Promise<SaveResult> {
  return saveRaw(client, itemStream({ ...r, incarnation }, entries));
}

async function saveOk(client: CkptdClient, r: ItemRef, incarnation: number, entries: TestEntry[]): Promise<number> {
  const res = await save(client, r, incarnation, entries);
  expect(res.error, `save rank ${r.rank} incarnation ${incarnation}: ${res.error?.details}`).toBeUndefined();
  return res.response!.attempt;
}

function commit(client: CkptdClient, r: ItemRef, incarnation: number, attempt = 0) {
  return commitRaw(client, { ...r, items: [r.item], attempt, incarnation });
}

function decisionRecord(dataDir: string, id: string, attempt: number): { outcome: string; reason: string } {
  return JSON.parse(fs.readFileSync(path.join(dataDir, "jobs", JOB, "decisions", `${id}@${attempt}.json`), "utf8")) as {
    outcome: string;
    reason: string;
  };
}

describe("incarnation fencing", () => {
  it("fencing - a rank restarted between save and commit saves the same item at once; the old attempt is aborted durably", async () => {
    const { daemon, client } = await start();
    const r0 = ref("ck1", 0, 2);
    expect(await saveOk(client, r0, 1, OLD)).toBe(1);
    // Rank 0 dies before its vote and comes back as incarnation 2: no ALREADY_EXISTS, no
    // wait for the prepare timeout.
    const t0 = Date.now();
    expect(await saveOk(client, r0, 2, NEW)).toBe(2);
    expect(Date.now() - t0, "the restarted rank's save did not wait").toBeLessThan(10_000);
    const record = decisionRecord(daemon.dataDir, "ck1", 1);
    expect(record.outcome).toBe("ABORTED");
    expect(record.reason).toMatch(/rank 0 restarted \(incarnation 1 → 2\)/);
    // Rank 1 never restarted; both vote on attempt 2 and it commits with the new bytes.
    const r1 = ref("ck1", 1, 2);
    expect(await saveOk(client, r1, 5, OLD)).toBe(2);
    const votes = await Promise.all([commit(client, r0, 2), commit(client, r1, 5)]);
    for (const v of votes) expect(expectOutcome(v, "COMMITTED").attempt).toBe(2);
    await expectLoadsBitExact(client, JOB, "ck1", 0, { model: NEW });
    // Commit stays idempotent for the same incarnation.
    expect(expectOutcome(await commit(client, r0, 2), "COMMITTED", "retried commit").attempt).toBe(2);
  });

  it("fencing - late Save, Commit and Abort of the old incarnation are FAILED_PRECONDITION and leave the new attempt alone", async () => {
    const { client } = await start();
    const r0 = ref("ck2", 0, 1);
    expect(await saveOk(client, r0, 100, OLD)).toBe(1);
    expect(await saveOk(client, r0, 200, NEW)).toBe(2);
    const superseded = /superseded by a newer incarnation of rank 0/;
    expectStatus(await save(client, r0, 100, OLD), "FAILED_PRECONDITION", superseded);
    expectStatus(await save(client, { ...r0, item: "optim" }, 100, OLD), "FAILED_PRECONDITION", superseded);
    expectStatus(await commit(client, r0, 100), "FAILED_PRECONDITION", superseded);
    expectStatus(await commit(client, r0, 100, 2), "FAILED_PRECONDITION", superseded);
    expectStatus(
      await abortRaw(client, { job: JOB, checkpointId: "ck2", rank: 0, reason: "late", incarnation: 100 }),
      "FAILED_PRECONDITION",
      superseded,
    );
    // Attempt 2 is untouched: it commits with exactly what incarnation 200 saved.
    expect(expectOutcome(await commit(client, r0, 200), "COMMITTED").attempt).toBe(2);
    await expectLoadsBitExact(client, JOB, "ck2", 0, { model: NEW });
  });

  it("fencing - the old incarnation's open Save stream ends ABORTED once the new one arrives", async () => {
    const { daemon, client } = await start();
    const r0 = ref("ck3", 0, 1);
    const old = openSave(client);
    await old.write(headerMsg({ ...r0, incarnation: 1 }));
    await old.write(entryMsg({ key: "w", tensor: { dtype: "DTYPE_FLOAT32", shape: [1 << 20] } }));
    await old.write(chunkMsg(compressibleBytes(1 << 20, 3)));
    // Only once the daemon took the old stream's header is it part of attempt 1.
    const oldItem = path.join(stagingDir(daemon.dataDir, JOB), "ck3@1", "rank-00000", "model");
    expect(await waitUntil(() => fs.existsSync(oldItem)), "the old stream's item is staging").toBe(true);
    expect(await saveOk(client, r0, 2, NEW)).toBe(2);
    await old.write(chunkMsg(compressibleBytes(1 << 20, 4)));
    const res = await old.end();
    expectStatus(res, "ABORTED", /rank 0 restarted/);
    expect(expectOutcome(await commit(client, r0, 2), "COMMITTED").attempt).toBe(2);
  });

  it("fencing - an Abort of a newer incarnation before any save aborts the old attempt; the next save opens a new one", async () => {
    const { daemon, client } = await start();
    const r0 = ref("ck4", 0, 1);
    expect(await saveOk(client, r0, 1, OLD)).toBe(1);
    const a = await abortRaw(client, { job: JOB, checkpointId: "ck4", rank: 0, reason: "restart", incarnation: 2 });
    expect(a.error, a.error?.details).toBeUndefined();
    expect(a.response!.outcome).toBe("COMMIT_OUTCOME_ABORTED");
    expect(a.response!.attempt).toBe(1);
    expect(decisionRecord(daemon.dataDir, "ck4", 1).reason).toMatch(/rank 0 restarted \(incarnation 1 → 2\)/);
    expect(await saveOk(client, r0, 2, NEW)).toBe(2);
    expect(expectOutcome(await commit(client, r0, 2), "COMMITTED").attempt).toBe(2);
  });

  it("fencing - incarnation 0 (not sent) keeps the old behaviour: a second save of the item is ALREADY_EXISTS", async () => {
    const { client } = await start();
    const r0 = ref("ck5", 0, 1);
    expect(await saveOk(client, r0, 0, OLD)).toBe(1);
    expectStatus(await save(client, r0, 0, NEW), "ALREADY_EXISTS", /already saved item 'model'/);
    // And a message without an incarnation does not fence one that has it.
    expect(await saveOk(client, { ...r0, item: "optim" }, 9, OLD)).toBe(1);
    expectStatus(await save(client, { ...r0, item: "optim" }, 0, OLD), "ALREADY_EXISTS");
    expect(expectOutcome(await commitRaw(client, { ...r0, items: ["model", "optim"] }), "COMMITTED").attempt).toBe(1);
  });

  it("fencing - an incarnation beyond 2^53 - 1 is INVALID_ARGUMENT", async () => {
    const { client } = await start();
    expectStatus(await save(client, ref("ck6", 0, 1), "18446744073709551615", OLD), "INVALID_ARGUMENT", /incarnation .* out of range/);
  });

  it("fencing - after a daemon restart a stale incarnation's vote commits nothing and does not abort the new attempt", async () => {
    const dataDir = tempDataDir();
    const first = await start(dataDir);
    const r0 = ref("ck7", 0, 2);
    const r1 = ref("ck7", 1, 2);
    expect(await saveOk(first.client, r0, 1, OLD)).toBe(1);
    await first.daemon.kill9();
    const { client } = await start(dataDir);
    // The job restarts: rank 1 saves into a new attempt and votes; recovery aborted attempt 1.
    expect(await saveOk(client, r1, 2, NEW)).toBe(2);
    const vote1 = commit(client, r1, 2);
    // Rank 0's dead incarnation retries its vote: naming attempt 1 it hears attempt 1's
    // ABORT; naming none it hears the same, and attempt 2 is not touched by it.
    expect(expectOutcome(await commit(client, r0, 1, 1), "ABORTED", "stale vote on attempt 1").attempt).toBe(1);
    expect(expectOutcome(await commit(client, r0, 1), "ABORTED", "stale vote on the current attempt").attempt).toBe(1);
    // The restarted rank 0 saves and votes: attempt 2 commits with both new items.
    expect(await saveOk(client, r0, 2, NEW)).toBe(2);
    expect(expectOutcome(await commit(client, r0, 2), "COMMITTED").attempt).toBe(2);
    expect(expectOutcome(await vote1, "COMMITTED").attempt).toBe(2);
    await expectLoadsBitExact(client, JOB, "ck7", 0, { model: NEW });
    // Committed is final, whatever incarnation asks.
    expectStatus(await save(client, r0, 1, OLD), "FAILED_PRECONDITION", /already committed/);
  });

  it("fencing - a rank that voted before a peer's restart hears ABORTED at once, naming the restart, and never hangs", async () => {
    // The restarted peer's items sit in the open attempt: it is aborted under the rank that
    // voted (the engine's first-create abort and barrier keep a restarted job out of this).
    const { client } = await start();
    const r0 = ref("ck8", 0, 2);
    const r1 = ref("ck8", 1, 2);
    expect(await saveOk(client, r0, 1, OLD)).toBe(1);
    expect(await saveOk(client, r1, 1, OLD)).toBe(1);
    const vote1 = commit(client, r1, 1);
    expect(await saveOk(client, r0, 2, NEW)).toBe(2);
    const heard = expectOutcome(await vote1, "ABORTED", "the peer's vote");
    expect(heard.attempt).toBe(1);
    expect(heard.reason).toMatch(/rank 0 restarted \(incarnation 1 → 2\)/);
  });
});

describe("incarnation fencing across nodes", () => {
  it("fencing - a rank on a participant node restarts: the coordinator aborts its old attempt and refuses the old incarnation", async () => {
    const dataDir = tempDataDir();
    const peerToken = writePeerTokenFile();
    const clients: CkptdClient[] = [];
    for (const node of ["n1", "n2"]) {
      const daemon = await startDaemon({
        dataDir,
        args: ["--node-id", node, "--peers", "n1,n2", "--peer-token-file", peerToken, "--prepare-timeout-ms", String(PREPARE_TIMEOUT_MS)],
      });
      const client = testClient(daemon.address);
      running.push({ daemon, client });
      clients.push(client);
    }
    const [coordinator, participant] = clients as [CkptdClient, CkptdClient];
    const r0 = ref("mn1", 0, 2);
    const r1 = ref("mn1", 1, 2);
    // Rank 1 lives on the participant n2: its incarnation reaches the coordinator n1.
    expect(await saveOk(participant, r1, 1, OLD)).toBe(1);
    expect(await saveOk(participant, r1, 2, NEW)).toBe(2);
    expect(decisionRecord(dataDir, "mn1", 1).reason).toMatch(/rank 1 restarted \(incarnation 1 → 2\)/);
    const superseded = /superseded by a newer incarnation of rank 1/;
    expectStatus(await save(participant, { ...r1, item: "optim" }, 1, OLD), "FAILED_PRECONDITION", superseded);
    expectStatus(await commit(participant, r1, 1), "FAILED_PRECONDITION", superseded);
    expectStatus(
      await abortRaw(participant, { job: JOB, checkpointId: "mn1", rank: 1, reason: "late", incarnation: 1 }),
      "FAILED_PRECONDITION",
      superseded,
    );
    expect(await saveOk(coordinator, r0, 9, OLD)).toBe(2);
    const votes = await Promise.all([commit(coordinator, r0, 9), commit(participant, r1, 2)]);
    for (const v of votes) expect(expectOutcome(v, "COMMITTED").attempt).toBe(2);
    await expectLoadsBitExact(coordinator, JOB, "mn1", 1, { model: NEW });
  });
});

describe("incarnation fencing from the TypeScript client", () => {
  it("fencing - CkptdClient sends its incarnation: a restarted client saves at once, the old one is refused", async () => {
    const { daemon } = await start();
    // Real clients default to one incarnation per process; two explicit ones stand for two processes.
    const dead = new CkptdClient({ address: daemon.address, incarnation: 10, sharedMemory: false });
    const restarted = new CkptdClient({ address: daemon.address, incarnation: 11, sharedMemory: false });
    try {
      expect(new CkptdClient(daemon.address).incarnation).toBe(processIncarnation());
      const req = { job: JOB, checkpointId: "ts1", step: 7, rank: 0, worldSize: 1, item: "model" };
      const tensor = (fill: number) => ({ dtype: "float32" as const, shape: [256], device: "cpu", data: new Uint8Array(1024).fill(fill) });
      expect((await dead.save({ ...req, entries: [{ key: "w", tensor: tensor(1) }] })).attempt).toBe(1);
      expect((await restarted.save({ ...req, entries: [{ key: "w", tensor: tensor(2) }] })).attempt).toBe(2);
      const late = await dead.commit({ ...req, items: ["model"] }).catch((err: unknown) => err);
      expect(isFailedPrecondition(late), String(late)).toBe(true);
      const done = await restarted.commit({ ...req, items: ["model"] });
      expect(done.outcome).toBe("COMMITTED");
      expect(done.attempt).toBe(2);
    } finally {
      dead.close();
      restarted.close();
    }
  });
});
