/**
 * The multi-node cases, run against each place several daemons can share: one data directory on a
 * shared filesystem (multinode.test.ts) and one bucket of an object store with a scratch directory
 * per node (test/s3/multinode.test.ts). Three daemons on loopback (their own ports); n1 (the lowest
 * id) coordinates.
 */
import { randomFillSync } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import type { WatchCheckpointsResponse } from "../../wire/gen/ckptd/v1/WatchCheckpointsResponse.js";
import { CkptdClient, isNotFound, type SaveEntry, type Tensor } from "../../clients/ts/src/index.js";
import { startDaemon, writePeerTokenFile, type Daemon } from "./harness.js";
import { serviceStub } from "./raw-wire.js";

/** Where the nodes of one cluster keep their checkpoints. */
export interface SharedPlace {
  /** How node `node` is started: its data directory (shared or its own) and the flags naming the place. */
  node(node: string): { dataDir: string; args: string[]; env?: Record<string, string> };
  /** The names under a job's staging (attempts not yet decided or not yet freed). */
  staged(job: string): Promise<string[]>;
  /** The names under a node's attempt markers. */
  markers(node: string): Promise<string[]>;
  /** Whether anything is left behind once every attempt is decided and freed (e.g. incomplete uploads): what, or "". */
  leftOver?(): Promise<string>;
  /** Data objects being written right now (an object store's incomplete uploads), when the place can tell. */
  writing?(): Promise<number>;
}

export interface MultinodeBackend {
  name: string;
  /** A new place for one cluster. */
  place(): SharedPlace;
}

const NODES = ["n1", "n2", "n3"] as const;
type Node = (typeof NODES)[number];
const RANKS_PER_NODE = 4;
const WORLD = NODES.length * RANKS_PER_NODE;

interface Cluster {
  place: SharedPlace;
  daemons: Map<Node, Daemon>;
  clients: Map<Node, CkptdClient>;
  start(node: Node, env?: Record<string, string>): Promise<void>;
}

const running: Cluster[] = [];
afterEach(async () => {
  for (const c of running.splice(0)) {
    for (const cl of c.clients.values()) cl.close();
    for (const d of c.daemons.values()) {
      d.proc.kill("SIGCONT");
      await d.kill9();
    }
  }
});

async function cluster(backend: MultinodeBackend, prepareTimeoutMs = 2000): Promise<Cluster> {
  const peerToken = writePeerTokenFile();
  const c: Cluster = {
    place: backend.place(),
    daemons: new Map(),
    clients: new Map(),
    async start(node, env = {}) {
      const at = c.place.node(node);
      const d = await startDaemon({
        dataDir: at.dataDir,
        env: { ...at.env, ...env },
        args: [
          ...at.args,
          "--node-id",
          node,
          "--peers",
          NODES.join(","),
          "--peer-token-file",
          peerToken,
          "--prepare-timeout-ms",
          String(prepareTimeoutMs),
          "--shutdown-grace-ms",
          "1000",
        ],
      });
      c.daemons.set(node, d);
      c.clients.get(node)?.close();
      c.clients.set(node, new CkptdClient(d.address));
    },
  };
  running.push(c);
  for (const n of NODES) await c.start(n);
  return c;
}

const nodeOf = (rank: number): Node => NODES[Math.floor(rank / RANKS_PER_NODE)]!;

/** Rank-specific bytes, so a shard loaded from the wrong rank cannot pass. */
function shard(rank: number, step: number, bytes = 256 << 10): Tensor {
  const data = new Uint8Array(bytes);
  let x = (rank + 1) * 7919 + step;
  for (let i = 0; i < bytes; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = i % 3 === 0 ? 0 : x >>> 24;
  }
  return { dtype: "uint8", shape: [bytes], device: `cuda:${rank % RANKS_PER_NODE}`, data };
}

async function saveRank(c: Cluster, rank: number, id: string, step: number) {
  const client = c.clients.get(nodeOf(rank))!;
  return client.save({
    job: "mn",
    checkpointId: id,
    step,
    rank,
    worldSize: WORLD,
    item: "model",
    entries: [{ key: "w", tensor: shard(rank, step) }],
  });
}

function commitRank(c: Cluster, rank: number, id: string, step: number, attempt: number, timeoutMs = 30_000) {
  return c.clients
    .get(nodeOf(rank))!
    .commit({ job: "mn", checkpointId: id, step, rank, worldSize: WORLD, items: ["model"], attempt }, { timeoutMs });
}

async function expectLoads(c: Cluster, id: string, step: number, rank: number, from: Node) {
  const loaded = await c.clients.get(from)!.loadItems({ job: "mn", checkpointId: id, rank: 0, sourceRank: rank });
  const entry = loaded.items.get("model")?.get("w");
  expect(entry?.kind).toBe("tensor");
  if (entry?.kind !== "tensor") return;
  expect(Buffer.from(entry.tensor.data).equals(Buffer.from(shard(rank, step).data)), `rank ${rank} loaded from ${from}`).toBe(true);
}

/** Every node lists the same checkpoints, and each of them loads completely (no torn checkpoint). */
async function expectSameCommittedSet(c: Cluster, expected: string[]) {
  for (const n of NODES) {
    const listed = (await c.clients.get(n)!.listCheckpoints("mn")).checkpoints.map((x) => x.checkpointId).sort();
    expect(listed, `checkpoints listed by ${n}`).toEqual([...expected].sort());
  }
  for (const id of expected) {
    const cp = await c.clients.get("n2")!.getCheckpoint("mn", id);
    for (let rank = 0; rank < WORLD; rank += 5) await expectLoads(c, id, cp.step, rank, NODES[rank % NODES.length]!);
  }
}

async function commitAll(c: Cluster, id: string, step: number) {
  const saved = await Promise.all(Array.from({ length: WORLD }, (_, r) => saveRank(c, r, id, step)));
  const attempts = new Set(saved.map((s) => s.attempt));
  expect(attempts.size, "every node stages into the attempt the coordinator handed out").toBe(1);
  return Promise.all(saved.map((s, r) => commitRank(c, r, id, step, s.attempt)));
}

/** Once freeing is done (it may still run when the staging looks empty), nothing is left behind. */
async function expectNothingLeft(c: Cluster): Promise<void> {
  const leftOver = c.place.leftOver;
  if (!leftOver) return;
  let left = "";
  await waitFor(async () => (left = await leftOver()) === "", 15_000, "nothing to be left").catch(() => undefined);
  expect(left, "left behind").toBe("");
}

async function waitFor(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The multi-node cases on `backend`. */
export function multinodeCases(backend: MultinodeBackend): void {
  describe(`multi-node two-phase commit (${backend.name})`, () => {
    it("multinode - 3 nodes × 4 ranks commit, and any node loads any rank's shard bit-exact", async () => {
      const c = await cluster(backend);
      const results = await commitAll(c, "global_step10", 10);
      expect(results.map((r) => r.outcome)).toEqual(Array(WORLD).fill("COMMITTED"));
      // Loaded from a node other than the one that saved it.
      await expectLoads(c, "global_step10", 10, 1, "n3");
      await expectLoads(c, "global_step10", 10, 6, "n1");
      await expectLoads(c, "global_step10", 10, 11, "n2");
      await expectSameCommittedSet(c, ["global_step10"]);
      // Watch on a participant sees the commit.
      const ev = serviceStub("EvaluationService", c.daemons.get("n3")!.address);
      const watch = ev.WatchCheckpoints({ job: "mn" });
      const first = await firstEvent(watch);
      watch.cancel();
      ev.close();
      expect(first.event?.type).toBe("CHECKPOINT_EVENT_TYPE_COMMITTED");
      expect(first.event?.checkpointId).toBe("global_step10");
      // A participant pushes live commits too, from the coordinator's event log.
      const live = serviceStub("EvaluationService", c.daemons.get("n2")!.address);
      const follow = live.WatchCheckpoints({ job: "mn", fromNow: true });
      const next = firstEvent(follow);
      expect((await commitAll(c, "global_step20", 20)).every((r) => r.outcome === "COMMITTED")).toBe(true);
      expect((await next).event?.checkpointId).toBe("global_step20");
      follow.cancel();
      live.close();
      // Deletions are the coordinator's; a participant says where to go.
      await expect(c.clients.get("n2")!.deleteCheckpoint("mn", "global_step10")).rejects.toThrow(/coordinating node 'n1'/);
      await expectSameCommittedSet(c, ["global_step10", "global_step20"]);
    });

    it("multinode - kill -9 of a participant before it votes aborts everywhere; after its restart nothing of it is visible", async () => {
      const c = await cluster(backend);
      await commitAll(c, "global_step1", 1);
      const saved = await Promise.all(Array.from({ length: WORLD }, (_, r) => saveRank(c, r, "global_step2", 2)));
      await c.daemons.get("n3")!.kill9();
      const votes = await Promise.all(
        saved.map((s, r) => (nodeOf(r) === "n3" ? undefined : commitRank(c, r, "global_step2", 2, s.attempt))),
      );
      for (const v of votes.filter(Boolean)) {
        expect(v!.outcome).toBe("ABORTED");
        expect(v!.reason).toMatch(/timeout/);
      }
      await c.start("n3");
      for (const n of NODES) await expect(c.clients.get(n)!.getCheckpoint("mn", "global_step2")).rejects.toSatisfy(isNotFound);
      await waitFor(async () => (await c.place.staged("mn")).length === 0, 10_000, "aborted staging to be removed");
      await expectSameCommittedSet(c, ["global_step1"]);
      await expectNothingLeft(c);
    });

    it("multinode - kill -9 of a participant in the middle of a large save: aborted everywhere, its partial data freed without its restart", async () => {
      const c = await cluster(backend);
      const big = 8; // n3's first rank
      const small = Array.from({ length: WORLD }, (_, r) => r).filter((r) => r !== big);
      const saved = await Promise.all(small.map((r) => saveRank(c, r, "global_step3", 3)));
      const attempt = saved[0]!.attempt;
      // Incompressible, so it is stored raw: an upload of many parts, not one small object.
      const bigData = new Uint8Array(randomFillSync(Buffer.alloc(128 << 20)));
      // The save's stream stays open after its first entry until n3 is dead, so the kill
      // lands in the middle of the save however fast the machine writes.
      let sentFirst!: () => void;
      const firstSent = new Promise<void>((r) => (sentFirst = r));
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      async function* entries(): AsyncGenerator<SaveEntry> {
        yield { key: "w", tensor: { dtype: "uint8", shape: [bigData.length], device: "cpu", data: bigData } };
        sentFirst();
        await released;
        yield { key: "v", tensor: { dtype: "uint8", shape: [16], device: "cpu", data: new Uint8Array(16) } };
      }
      const bigSave = c.clients
        .get("n3")!
        .save({ job: "mn", checkpointId: "global_step3", step: 3, rank: big, worldSize: WORLD, item: "model", entries: entries() })
        .catch((err: unknown) => err);
      let settled = false;
      void bigSave.then(() => (settled = true));
      // Killed while its data is being written (an object store: while an upload is open).
      const writing = c.place.writing;
      let sent = false;
      void firstSent.then(() => (sent = true));
      await waitFor(async () => settled || (writing ? (await writing()) > 0 : sent), 30_000, "n3's data to be written");
      expect(settled, "the large save was still running when n3 was killed").toBe(false);
      await c.daemons.get("n3")!.kill9();
      release();
      expect(await bigSave).toBeInstanceOf(Error);
      const votes = await Promise.all(small.filter((r) => nodeOf(r) !== "n3").map((r) => commitRank(c, r, "global_step3", 3, attempt)));
      for (const v of votes) expect(v.outcome).toBe("ABORTED");
      await waitFor(async () => (await c.place.staged("mn")).length === 0, 15_000, "the aborted attempt's staging to be freed");
      await expectNothingLeft(c);
      for (const n of ["n1", "n2"] as const)
        await expect(c.clients.get(n)!.getCheckpoint("mn", "global_step3")).rejects.toSatisfy(isNotFound);
    });

    it("multinode - kill -9 of the coordinator after the decision is durable: after its restart every node has the checkpoint", async () => {
      const c = await cluster(backend);
      await c.daemons.get("n1")!.kill9();
      await c.start("n1", { CKPTD_FAULT: "crash-after-decision" });
      const saved = await Promise.all(Array.from({ length: WORLD }, (_, r) => saveRank(c, r, "global_step5", 5)));
      const votes = saved.map((s, r) => commitRank(c, r, "global_step5", 5, s.attempt, 60_000).catch((err: unknown) => err));
      // The coordinator dies right after the COMMIT record is durable, before anyone hears it.
      expect(await c.daemons.get("n1")!.exited).toBe("SIGKILL");
      await c.start("n1");
      const outcomes = await Promise.all(votes);
      for (let r = 0; r < WORLD; r++) {
        const o = outcomes[r];
        if (nodeOf(r) === "n1") {
          // Its own ranks lost their connection; a retry gets the durable decision.
          const retry = await commitRank(c, r, "global_step5", 5, saved[r]!.attempt);
          expect(retry.outcome).toBe("COMMITTED");
        } else {
          expect((o as { outcome?: string }).outcome, `rank ${r}'s participant relayed until the coordinator came back`).toBe("COMMITTED");
        }
      }
      await expectSameCommittedSet(c, ["global_step5"]);
    });

    it("multinode - a participant frozen past the timeout: aborted everywhere; when it resumes it learns the abort and cleans up", async () => {
      const c = await cluster(backend);
      const saved = await Promise.all(Array.from({ length: WORLD }, (_, r) => saveRank(c, r, "global_step7", 7)));
      const n3 = c.daemons.get("n3")!;
      n3.proc.kill("SIGSTOP");
      const votes = saved.map((s, r) => commitRank(c, r, "global_step7", 7, s.attempt, 60_000));
      for (let r = 0; r < WORLD; r++) {
        if (nodeOf(r) === "n3") continue;
        const v = await votes[r]!;
        expect(v.outcome).toBe("ABORTED");
      }
      n3.proc.kill("SIGCONT");
      for (let r = 0; r < WORLD; r++) if (nodeOf(r) === "n3") expect((await votes[r]!).outcome).toBe("ABORTED");
      await waitFor(async () => (await c.place.markers("n3")).length === 0, 10_000, "n3 to clean up its attempt markers");
      await waitFor(async () => (await c.place.staged("mn")).length === 0, 10_000, "aborted staging to be removed");
      await expectSameCommittedSet(c, []);
      await expectNothingLeft(c);
      // The job can save the step again, as a new attempt, across all nodes.
      const again = await commitAll(c, "global_step7", 7);
      expect(again.map((r) => r.outcome)).toEqual(Array(WORLD).fill("COMMITTED"));
      await expectSameCommittedSet(c, ["global_step7"]);
    });
  });
}

/** The first event of a watch (after the daemon's started marker). */
function firstEvent(call: grpc.ClientReadableStream<WatchCheckpointsResponse>): Promise<WatchCheckpointsResponse> {
  return new Promise((resolve, reject) => {
    const onData = (m: WatchCheckpointsResponse) => {
      if (!m.event) return;
      call.off("data", onData);
      resolve(m);
    };
    call.on("data", onData);
    call.once("error", reject);
  });
}
