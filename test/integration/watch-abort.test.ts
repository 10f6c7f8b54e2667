/**
 * What a client nobody here wrote needs from Watch and Abort: a subscription that says at
 * once that it is live and where the log's head is; one rule for jobs that do not exist
 * (yet); and an Abort that is always recorded, even before anything was saved.
 */
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CkptdClient } from "../../clients/ts/src/index.js";
import type { EvaluationServiceClient } from "../../wire/gen/ckptd/v1/EvaluationService.js";
import type { WatchCheckpointsResponse } from "../../wire/gen/ckptd/v1/WatchCheckpointsResponse.js";
import { type Daemon, startDaemon } from "./harness.js";
import {
  compressibleBytes,
  expectStatus,
  f32Entry,
  saveAndCommit,
  saveItemOk,
  uniqueName,
  testClient,
  getCheckpoint,
  listCheckpoints,
} from "./wire-helpers.js";
import { abortRaw, commitRaw, expectOutcome, loadAll, serviceStub } from "./raw-wire.js";

let daemon: Daemon;
let cp: CkptdClient;
let ev: EvaluationServiceClient;

beforeAll(async () => {
  daemon = await startDaemon({ args: ["--prepare-timeout-ms", "600000"] });
  cp = testClient(daemon.address);
  // The watch stream message by message, on a stock stub (default channel options).
  ev = serviceStub("EvaluationService", daemon.address);
});

afterAll(async () => {
  cp?.close();
  ev?.close();
  await daemon?.stop();
});

/** Opens a watch and collects its messages; `first` resolves with the first one. */
function watch(request: object) {
  const messages: WatchCheckpointsResponse[] = [];
  let headers = false;
  const call = ev.WatchCheckpoints(request);
  call.on("metadata", () => (headers = true));
  const first = new Promise<WatchCheckpointsResponse>((resolve, reject) => {
    call.on("data", (m: WatchCheckpointsResponse) => {
      messages.push(m);
      if (messages.length === 1) resolve(m);
    });
    call.on("error", reject);
  });
  first.catch(() => undefined);
  return { call, messages, first, headers: () => headers };
}

const one = (_id: string, step: number) => [{ model: [f32Entry("w", compressibleBytes(4096, step))] }];

describe("watch - the live marker", () => {
  it("sends headers and a started message at once, with the log's head; a commit made right after it is never missed", async () => {
    const job = uniqueName("watch-live");
    await saveAndCommit(cp, job, "s1", 1, one("s1", 1));
    await saveAndCommit(cp, job, "s2", 2, one("s2", 2));
    const w = watch({ job, fromNow: true });
    try {
      const first = await w.first;
      expect(w.headers()).toBe(true);
      expect(first.msg).toBe("started");
      expect(first.started).toEqual({ headSequence: 2, afterSequence: 2 });
      // Committed the instant the subscription said it is live: it must arrive.
      await saveAndCommit(cp, job, "s3", 3, one("s3", 3));
      await expect.poll(() => w.messages.length, { timeout: 5000 }).toBe(2);
      expect(w.messages[1]!.event).toMatchObject({ sequence: 3, checkpointId: "s3", type: "CHECKPOINT_EVENT_TYPE_COMMITTED" });
    } finally {
      w.call.cancel();
    }
  });

  it("a replay starts with the marker too, then the events after the cursor", async () => {
    const job = uniqueName("watch-replay");
    for (const s of [1, 2, 3]) await saveAndCommit(cp, job, `s${s}`, s, one(`s${s}`, s));
    const w = watch({ job, afterSequence: 1 });
    try {
      expect((await w.first).started).toEqual({ headSequence: 3, afterSequence: 1 });
      await expect.poll(() => w.messages.length, { timeout: 5000 }).toBe(3);
      expect(w.messages.slice(1).map((m) => m.event!.sequence)).toEqual([2, 3]);
    } finally {
      w.call.cancel();
    }
  });
});

describe("unknown jobs - one rule", () => {
  it("a job nobody saved into: List is empty, Get and Load are NOT_FOUND naming the job, Watch starts at 0 and gets the first commit", async () => {
    const job = uniqueName("never-saved");
    const list = await listCheckpoints(cp, job);
    expect(list.error).toBeUndefined();
    expect(list.response!.checkpoints).toEqual([]);
    for (const checkpointId of ["latest", "s1"]) {
      expectStatus((await getCheckpoint(cp, job, checkpointId)).error, "NOT_FOUND", new RegExp(job));
      expectStatus((await loadAll(cp, { job, checkpointId })).error, "NOT_FOUND", new RegExp(job));
    }
    const w = watch({ job });
    try {
      expect((await w.first).started).toEqual({ headSequence: 0, afterSequence: 0 });
      await saveAndCommit(cp, job, "s1", 1, one("s1", 1));
      await expect.poll(() => w.messages.length, { timeout: 5000 }).toBe(2);
      expect(w.messages[1]!.event!.checkpointId).toBe("s1");
    } finally {
      w.call.cancel();
    }
  });

  it("a job name that can never exist is INVALID_ARGUMENT on Watch, before any marker", async () => {
    const w = watch({ job: "../etc" });
    await expect(w.first).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
  });
});

describe("abort - before anything was saved", () => {
  it("is recorded at once as an ABORTED attempt; the id is saved and committed again afterwards", async () => {
    const job = uniqueName("abort-early");
    const a = await abortRaw(cp, { job, checkpointId: "s1", rank: 1, reason: "data loader died" });
    expect(a.error).toBeUndefined();
    expect(a.response).toMatchObject({ outcome: "COMMIT_OUTCOME_ABORTED", attempt: 1 });
    expect(a.response!.reason).toMatch(/rank 1 aborted before anything was saved: data loader died/);
    // A retried Abort gets the same decision.
    expect((await abortRaw(cp, { job, checkpointId: "s1", rank: 1, reason: "again" })).response).toMatchObject({ attempt: 1 });
    // The restarted job saves the same id as a new attempt.
    const saved = await saveItemOk(cp, { job, checkpointId: "s1", step: 1, rank: 0, worldSize: 1, item: "model" }, one("s1", 1)[0]!.model!);
    expect(saved.attempt).toBe(2);
    expectOutcome(await commitRaw(cp, { job, checkpointId: "s1", step: 1, rank: 0, worldSize: 1, items: ["model"] }), "COMMITTED");
  });

  it("an abort while another rank has saved aborts that attempt for everyone", async () => {
    const job = uniqueName("abort-open");
    await saveItemOk(cp, { job, checkpointId: "s1", step: 1, rank: 0, worldSize: 2, item: "model" }, one("s1", 1)[0]!.model!);
    const vote = commitRaw(cp, { job, checkpointId: "s1", step: 1, rank: 0, worldSize: 2, items: ["model"] });
    const a = await abortRaw(cp, { job, checkpointId: "s1", rank: 1, reason: "oom" });
    expect(a.response).toMatchObject({ outcome: "COMMIT_OUTCOME_ABORTED", attempt: 1 });
    expect(expectOutcome(await vote, "ABORTED").reason).toMatch(/rank 1 aborted: oom/);
  });
});
