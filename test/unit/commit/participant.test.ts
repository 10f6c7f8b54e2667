import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { ItemRecord } from "../../../src/catalog/manifest.js";
import type { CheckpointRef } from "../../../src/commit/protocol.js";
import type { Cluster } from "../../../src/commit/cluster.js";
import { ParticipantCoordinator } from "../../../src/commit/participant.js";
import { layout } from "../../../src/store/layout.js";
import { PosixStorage } from "../../../src/store/posix.js";
import { fromServiceError } from "../../../src/rpc/status.js";

describe("participant recovery", () => {
  it("participant - a marker tmp file left by a crash before its rename is removed, not taken for an attempt", async () => {
    const dataDir = new PosixStorage(fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-participant-")));
    const markers = path.join(dataDir.root, "nodes", "n2", "attempts");
    fs.mkdirSync(markers, { recursive: true });
    const marker = JSON.stringify({ job: "j", checkpointId: "c", attempt: 1 });
    // Written whole and fsynced, then killed before the rename: valid JSON under the tmp name.
    fs.writeFileSync(path.join(markers, "j@c@1.json.tmp-4242"), marker);
    fs.writeFileSync(path.join(markers, "j@c@2.json"), JSON.stringify({ job: "j", checkpointId: "c", attempt: 2 }));
    // recover() only reads this node's markers: the cluster is needed for its id alone.
    const cluster = { nodeId: "n2" } as Cluster;
    const p = new ParticipantCoordinator(
      dataDir,
      cluster,
      { prepareTimeoutMs: 1000, peerError: fromServiceError },
      pino({ level: "silent" }),
    );
    await p.recover();
    expect(fs.readdirSync(markers)).toEqual(["j@c@2.json"]);
    expect(p.inFlight(), "only the renamed marker is an attempt to ask the coordinator about").toBe(1);
  });
});

/** A scripted coordinator: records every PeerService call the participant makes and answers from `answers`. */
class FakeCoordinator {
  readonly calls: Array<{ rpc: string; req: Record<string, unknown>; token: string | undefined }> = [];
  /** Answer of each rpc: a response, or a gRPC error; a function is called with the request. */
  answers: Record<string, (req: Record<string, unknown>) => object | grpc.ServiceError> = {
    OpenAttempt: () => ({ attempt: 3 }),
    Vote: () => ({ outcome: "COMMIT_OUTCOME_COMMITTED", reason: "", attempt: 3 }),
    AbortAttempt: (req) => ({ outcome: "COMMIT_OUTCOME_ABORTED", reason: String(req["reason"]) }),
    GetDecision: () => ({ outcome: "COMMIT_OUTCOME_UNSPECIFIED", reason: "" }),
    Heartbeat: () => ({ outcome: "COMMIT_OUTCOME_UNSPECIFIED", reason: "" }),
  };

  readonly client = new Proxy(
    {},
    {
      get:
        (_t, rpc: string) =>
        (
          req: Record<string, unknown>,
          md: grpc.Metadata,
          _o: grpc.CallOptions,
          cb: (err: grpc.ServiceError | null, res?: object) => void,
        ) => {
          this.calls.push({ rpc, req, token: md.get("authorization")[0] as string | undefined });
          const answer = this.answers[rpc]!(req);
          setImmediate(() => (answer instanceof Error ? cb(answer as grpc.ServiceError) : cb(null, answer)));
        },
    },
  );

  of(rpc: string) {
    return this.calls.filter((c) => c.rpc === rpc).map((c) => c.req);
  }
}

function serviceError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) fs.rmSync(r, { recursive: true, force: true });
});

function participant(fake: FakeCoordinator) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-participant-"));
  roots.push(root);
  const dataDir = new PosixStorage(root);
  const cluster = {
    nodeId: "n2",
    coordinatorId: "n1",
    coordinator: () => fake.client,
    locate: async () => "127.0.0.1:1",
    metadata: () => {
      const md = new grpc.Metadata();
      md.set("authorization", "Bearer the-peer-token");
      return md;
    },
    close: () => undefined,
  } as unknown as Cluster;
  return {
    dataDir,
    p: new ParticipantCoordinator(dataDir, cluster, { prepareTimeoutMs: 1000, peerError: fromServiceError }, pino({ level: "silent" })),
  };
}

const REF: CheckpointRef = { job: "j", checkpointId: "c", step: 7, rank: 1, worldSize: 2, incarnation: 42 };

function record(name: string): ItemRecord {
  return {
    name,
    rawBytes: 8,
    storedBytes: 27,
    entries: [
      {
        key: "w",
        kind: "tensor",
        tensor: { dtype: "DTYPE_FLOAT32", shape: [2], device: "cpu", globalShape: [], globalOffsets: [] },
        file: "pack.lz4",
        rawBytes: 8,
        storedBytes: 27,
        chunks: [{ offset: 0, rawBytes: 8, storedBytes: 27, crc32c: 0x12345678, raw: true }],
      },
    ],
  };
}

/** Stages `items` for REF's rank as a Save stream would: beginSave, then stage on the ticket. */
async function stage(p: ParticipantCoordinator, items: string[]): Promise<void> {
  for (const item of items) {
    const t = await p.beginSave(REF, item);
    t.stage(record(item));
  }
}

describe("participant messages", () => {
  it("participant - a save opens the attempt at the coordinator with the rank's identity, the peer token and this node's id, once per checkpoint", async () => {
    const fake = new FakeCoordinator();
    const { dataDir, p } = participant(fake);
    const t = await p.beginSave(REF, "model");
    expect(t.attempt, "the coordinator's attempt number is the one staged into").toBe(3);
    expect(t.dir.startsWith(dataDir.localPath(layout.staging("j", "c", 3)))).toBe(true);
    expect(fake.calls.map((c) => c.rpc)).toEqual(["OpenAttempt"]);
    expect(fake.calls[0]!.token).toBe("Bearer the-peer-token");
    expect(fake.of("OpenAttempt")[0]).toEqual({
      job: "j",
      checkpointId: "c",
      step: 7,
      worldSize: 2,
      rank: 1,
      nodeId: "n2",
      incarnation: 42,
    });
    // A marker records the attempt, so a restart asks the coordinator about it.
    expect(fs.readdirSync(path.join(dataDir.root, "nodes", "n2", "attempts"))).toEqual(["j@c@3.json"]);
  });

  it("participant - a vote relays the staged records as typed StagedItems and returns the coordinator's decision", async () => {
    const fake = new FakeCoordinator();
    const { dataDir, p } = participant(fake);
    await stage(p, ["model", "optim"]);
    const d = await p.vote(REF, ["model", "optim"], 0);
    expect(d).toEqual({ outcome: "COMMITTED", reason: "", attempt: 3 });
    const [vote] = fake.of("Vote");
    expect(vote).toMatchObject({ job: "j", checkpointId: "c", step: 7, rank: 1, worldSize: 2, attempt: 3, nodeId: "n2", incarnation: 42 });
    expect(vote).not.toHaveProperty("itemsJson");
    const items = vote!["items"] as Array<Record<string, unknown>>;
    expect(items.map((i) => i["name"])).toEqual(["model", "optim"]);
    // Each StagedItem is the staged record field for field, without the domain-only entry kind (the oneof says it).
    const { entries, ...rest } = record("model");
    expect(items[0]).toEqual({ ...rest, entries: entries.map(({ kind: _kind, ...e }) => e) });
    expect((items[1]!["entries"] as Array<Record<string, unknown>>)[0]!["chunks"]).toEqual([
      { offset: 0, rawBytes: 8, storedBytes: 27, crc32c: 0x12345678, raw: true },
    ]);
    // Decided: the marker goes, and a second vote is answered locally.
    await new Promise((r) => setTimeout(r, 50));
    expect(fs.readdirSync(path.join(dataDir.root, "nodes", "n2", "attempts"))).toEqual([]);
    expect(await p.vote(REF, ["model", "optim"], 3)).toEqual(d);
    expect(fake.of("Vote")).toHaveLength(1);
  });

  it("participant - a vote naming an item the rank did not stage here is relayed as an abort with the rank's incarnation, not as a vote", async () => {
    const fake = new FakeCoordinator();
    const { p } = participant(fake);
    await stage(p, ["model"]);
    const d = await p.vote(REF, ["model", "extra"], 0);
    expect(d.outcome).toBe("ABORTED");
    expect(fake.of("Vote")).toEqual([]);
    const [abort] = fake.of("AbortAttempt");
    expect(abort).toMatchObject({ job: "j", checkpointId: "c", attempt: 3, nodeId: "n2", rank: 1, incarnation: 42 });
    expect(abort!["reason"]).toMatch(/rank 1 voted for item\(s\) 'extra' that it did not stage on node 'n2' in attempt 3/);
    expect(d.reason).toBe(abort!["reason"]);
  });

  it("participant - a rank's abort is relayed with its reason and attempt; an abort with no attempt is refused locally", async () => {
    const fake = new FakeCoordinator();
    const { p } = participant(fake);
    await expect(p.abort({ job: "j", checkpointId: "c", rank: 1 }, "oom", 0)).rejects.toThrow(/has no attempt on node 'n2' to abort/);
    expect(fake.calls).toEqual([]);
    await stage(p, ["model"]);
    const d = await p.abort({ job: "j", checkpointId: "c", rank: 1, incarnation: 42 }, "oom", 0);
    expect(d).toEqual({ outcome: "ABORTED", reason: "rank 1 aborted: oom", attempt: 3 });
    expect(fake.of("AbortAttempt")[0]).toEqual({
      job: "j",
      checkpointId: "c",
      attempt: 3,
      reason: "rank 1 aborted: oom",
      nodeId: "n2",
      rank: 1,
      incarnation: 42,
    });
  });

  it("participant - a coordinator that answers an abort with COMMITTED wins: the participant takes the coordinator's decision", async () => {
    const fake = new FakeCoordinator();
    fake.answers["AbortAttempt"] = () => ({ outcome: "COMMIT_OUTCOME_COMMITTED", reason: "" });
    const { p } = participant(fake);
    await stage(p, ["model"]);
    expect(await p.abort({ job: "j", checkpointId: "c", rank: 1 }, "late", 3)).toEqual({ outcome: "COMMITTED", reason: "", attempt: 3 });
  });

  it("participant - a refused vote is passed on with the coordinator's status and named; the rank may vote again", async () => {
    const fake = new FakeCoordinator();
    fake.answers["Vote"] = () => serviceError(grpc.status.FAILED_PRECONDITION, "incarnation 42 of rank 1 was superseded");
    const { p } = participant(fake);
    await stage(p, ["model"]);
    const err = await p.vote(REF, ["model"], 0).catch((e: unknown) => e);
    expect(err).toMatchObject({
      kind: "failed_precondition",
      message: "coordinator 'n1': incarnation 42 of rank 1 was superseded",
    });
    expect(fake.of("Vote"), "a refusal is not retried").toHaveLength(1);
    fake.answers["Vote"] = () => ({ outcome: "COMMIT_OUTCOME_ABORTED", reason: "timed out", attempt: 3 });
    expect(await p.vote(REF, ["model"], 0)).toEqual({ outcome: "ABORTED", reason: "timed out", attempt: 3 });
  });

  it("participant - an unreachable coordinator is retried until it answers", async () => {
    const fake = new FakeCoordinator();
    let failures = 2;
    fake.answers["Vote"] = () =>
      failures-- > 0
        ? serviceError(grpc.status.UNAVAILABLE, "connection refused")
        : { outcome: "COMMIT_OUTCOME_COMMITTED", reason: "", attempt: 3 };
    const { p } = participant(fake);
    await stage(p, ["model"]);
    expect((await p.vote(REF, ["model"], 0)).outcome).toBe("COMMITTED");
    expect(fake.of("Vote")).toHaveLength(3);
  });
});
