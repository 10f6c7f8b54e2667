/**
 * A real daemon process (dist/src/cli.js, as test/integration/harness.ts starts it) keeping its
 * checkpoints in the RGW with --storage s3://BUCKET/PREFIX: a 4-rank save, commit and load through
 * CkptdClient, bit-exact; nothing copied at publish; an aborted attempt and a daemon killed mid-save
 * leave no objects and no incomplete multipart uploads; a restart keeps the checkpoint loadable;
 * deletion removes the manifest and the data; an unreachable store keeps the daemon from starting;
 * ranks handing their bytes over through shared memory save and load bit-exact.
 */
import { randomFillSync } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CkptdClient, isUnavailable, tensor, type SaveEntry } from "../../clients/ts/src/index.js";
import { layout } from "../../src/store/layout.js";
import type { S3Store } from "../../src/store/s3/client.js";
import { startDaemon, type Daemon } from "../integration/harness.js";
import { cleanedAfterAll } from "./cleanup.js";
import { expectItemsEqual, expectLoadsBitExact, s3Args, saveAndCommit, type Saved } from "./daemon-helpers.js";
import { freshPrefix, readRgwEnv, rgwScript, testStore } from "./rgw.js";

const keep = cleanedAfterAll();
const prefix = freshPrefix("daemon");
let store: S3Store;
let daemon: Daemon | undefined;
let client: CkptdClient | undefined;

async function start(extra: string[] = []): Promise<void> {
  const { args, env } = s3Args(prefix);
  daemon = await startDaemon({ args: [...args, "--prepare-timeout-ms", "3000", ...extra], env });
  client = new CkptdClient(daemon.address);
}

async function stop(how: "term" | "kill9" = "term"): Promise<void> {
  client?.close();
  client = undefined;
  if (how === "kill9") await daemon?.kill9();
  else await daemon?.stop();
  daemon = undefined;
}

beforeAll(() => {
  store = keep(testStore(prefix));
});

afterAll(async () => {
  await stop();
});

const random = (n: number) => randomFillSync(Buffer.alloc(n));

/** Each rank's one item: a large tensor (a multipart upload of several parts), small ones (the pack) and an object. */
function rankEntries(rank: number): SaveEntry[] {
  return [
    { key: "big", tensor: tensor(new Float32Array(random(20 << 20).buffer), { shape: [5 << 20], device: `cuda:${rank}` }) },
    {
      key: "small",
      tensor: tensor(
        new Int32Array(1000).map((_, i) => i * (rank + 1)),
        { shape: [1000], device: "cpu" },
      ),
    },
    { key: "scale", tensor: tensor(new Float32Array([rank + 0.5]), { shape: [], device: "cpu" }) },
    { key: "meta", object: { data: Buffer.from(JSON.stringify({ rank })), format: "json" } },
  ];
}

/** The keys below `key/` (the marker objects of empty prefixes left out). */
async function objectsBelow(key: string): Promise<string[]> {
  return (await store.list(`${key}/`)).objects.map((o) => o.key).filter((k) => !k.endsWith("/"));
}

describe("ckptd with --storage s3://", () => {
  const job = "s3job";
  const saved = new Map<number, SaveEntry[]>();

  it("s3 daemon - 4 ranks save, commit and load back bit-exact; the data stays staged, the manifest is the checkpoint", async () => {
    await start();
    for (let rank = 0; rank < 4; rank++) saved.set(rank, rankEntries(rank));
    const results = await Promise.all(
      [...saved].map(([rank, entries]) => client!.save({ job, checkpointId: "c1", step: 10, rank, worldSize: 4, item: "model", entries })),
    );
    const decisions = await Promise.all(
      [...saved].map(([rank]) =>
        client!.commit({ job, checkpointId: "c1", step: 10, rank, worldSize: 4, items: ["model"], attempt: results[0]!.attempt }),
      ),
    );
    for (const d of decisions) expect(d.outcome, d.reason).toBe("COMMITTED");
    const attempt = results[0]!.attempt;
    expect(await objectsBelow(layout.checkpoint(job, "c1")), "nothing copied: the checkpoint is its manifest").toEqual([
      layout.manifest(job, "c1"),
    ]);
    const data = await objectsBelow(layout.staging(job, "c1", attempt));
    expect(data.filter((k) => k.endsWith("/000000.lz4")).length, "each rank's big tensor is one object").toBe(4);
    expect(await store.listIncompleteUploads("")).toEqual([]);
    for (const [rank, entries] of saved) {
      const loaded = await client!.loadItems({ job, checkpointId: "c1", rank, localRank: 0, devices: [] });
      expectItemsEqual(loaded.items, entries, `rank ${rank}`);
    }
    const listed = await client!.listCheckpoints(job);
    const got = await client!.getCheckpoint(job, "c1");
    expect(listed.checkpoints.map((c) => c.checkpointId)).toEqual(["c1"]);
    expect(listed.checkpoints[0]).toMatchObject({ checkpointId: got.checkpointId, step: 10, worldSize: 4, storedBytes: got.storedBytes });
    const verify = await client!.verifyCheckpoint(job, "c1");
    expect(verify.damaged).toEqual([]);
  }, 180_000);

  it("s3 daemon - an aborted attempt leaves no staged objects and no incomplete uploads", async () => {
    const res = await client!.save({ job, checkpointId: "c2", step: 20, rank: 0, worldSize: 2, item: "model", entries: rankEntries(0) });
    const d = await client!.abort({ job, checkpointId: "c2", rank: 0, reason: "test", attempt: res.attempt });
    expect(d.outcome).toBe("ABORTED");
    await expect.poll(() => objectsBelow(layout.staging(job, "c2", res.attempt)), { timeout: 10_000 }).toEqual([]);
    expect(await store.listIncompleteUploads("")).toEqual([]);
    expect(await objectsBelow(layout.checkpoint(job, "c2"))).toEqual([]);
  }, 60_000);

  it("s3 daemon - after a restart the committed checkpoint is still listed and loads bit-exact", async () => {
    await stop();
    await start();
    expect((await client!.listCheckpoints(job)).checkpoints.map((c) => c.checkpointId)).toEqual(["c1"]);
    const loaded = await client!.loadItems({ job, checkpointId: "c1", rank: 2, localRank: 0, devices: [] });
    expectItemsEqual(loaded.items, saved.get(2)!, "rank 2 after restart");
  }, 60_000);

  it("s3 daemon - killed mid-save: after the restart nothing is torn, no staged object or upload is left", async () => {
    const big: SaveEntry[] = [{ key: "big", tensor: tensor(new Float32Array(random(96 << 20).buffer), { shape: [24 << 20] }) }];
    const saving = client!
      .save({ job, checkpointId: "c3", step: 30, rank: 0, worldSize: 1, item: "model", entries: big })
      .catch((e: Error) => e);
    // Killed once a multipart upload is under way (its parts hold storage a listing does not show).
    await expect.poll(async () => (await store.listIncompleteUploads("")).length, { timeout: 30_000, interval: 50 }).toBeGreaterThan(0);
    await stop("kill9");
    expect(await saving).toBeInstanceOf(Error);
    await start();
    expect(await store.listIncompleteUploads(""), "recovery aborted the dead daemon's uploads").toEqual([]);
    const staged = await store.list(`${layout.stagingRoot(job)}/`, { delimiter: "/" });
    expect(staged.prefixes, "only the published attempt's data stays staged").toEqual([`${layout.staging(job, "c1", 1)}/`]);
    expect((await client!.listCheckpoints(job)).checkpoints.map((c) => c.checkpointId)).toEqual(["c1"]);
    const loaded = await client!.loadItems({ job, checkpointId: "c1", rank: 0, localRank: 0, devices: [] });
    expectItemsEqual(loaded.items, saved.get(0)!, "rank 0 after the kill");
  }, 120_000);

  it("s3 daemon - the store unreachable at run time: a save fails UNAVAILABLE naming the endpoint; once it is back, loads work", async () => {
    const { endpoint } = readRgwEnv();
    rgwScript("stop-rgw.sh", "rgw");
    let failure: unknown;
    try {
      failure = await client!
        .save({ job, checkpointId: "c4", step: 40, rank: 0, worldSize: 1, item: "model", entries: rankEntries(0).slice(1) })
        .then(
          () => undefined,
          (err: unknown) => err,
        );
    } finally {
      rgwScript("start-rgw.sh");
    }
    expect(isUnavailable(failure), String(failure)).toBe(true);
    expect((failure as Error).message).toContain(endpoint);
    const loaded = await client!.loadItems({ job, checkpointId: "c1", rank: 1, localRank: 0, devices: [] });
    expectItemsEqual(loaded.items, saved.get(1)!, "rank 1 once the store is back");
  }, 180_000);

  it("s3 daemon - deleting a checkpoint removes its manifest, then its staged data", async () => {
    await client!.deleteCheckpoint(job, "c1");
    expect(await objectsBelow(layout.checkpoint(job, "c1"))).toEqual([]);
    expect(await objectsBelow(layout.staging(job, "c1", 1))).toEqual([]);
    expect((await client!.listCheckpoints(job)).checkpoints).toEqual([]);
  }, 60_000);
});

describe("ckptd with an unreachable object store", () => {
  it("s3 daemon - refuses to start with one line naming the endpoint", async () => {
    const { args, env } = s3Args(freshPrefix("unreachable"), "http://127.0.0.1:9");
    const err = (await startDaemon({ args, env }).catch((e: Error) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/ckptd: .*object store at http:\/\/127\.0\.0\.1:9.*unreachable/);
  }, 60_000);
});

describe("ckptd with --storage s3:// and ranks on shared memory", () => {
  it("s3 daemon - chunks read from the ranks' shared memory into the uploads: raw and compressed, packed and not, bit-exact", async () => {
    const shmDir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-s3-shm-"));
    const sharedPrefix = freshPrefix("shared");
    const sharedStore = keep(testStore(sharedPrefix));
    const { args, env } = s3Args(sharedPrefix);
    const d = await startDaemon({ args: [...args, "--shared-memory-dir", shmDir, "--log-level", "debug"], env });
    const c = new CkptdClient({ address: d.address, sharedMemory: true, sharedMemoryDir: shmDir });
    try {
      /** Bytes LZ4 shrinks: runs of zeros between stretches of a repeating pattern. */
      const compressible = (n: number, seed: number) => {
        const b = Buffer.alloc(n);
        for (let i = 0; i < n; i++) b[i] = i % 8192 < 4096 ? 0 : ((i % 61) * 7 + seed) & 0xff;
        return new Float32Array(b.buffer, b.byteOffset, n / 4);
      };
      const saved: Saved = new Map(
        [0, 1].map((rank) => [
          rank,
          [
            // An entry object of several parts stored raw, one stored compressed, packed entries of both kinds.
            { key: "weights", tensor: tensor(new Float32Array(random((9 << 20) + 4 * 333).buffer), { device: `cuda:${rank}` }) },
            { key: "exp_avg", tensor: tensor(compressible(6 << 20, rank), { device: `cuda:${rank}` }) },
            { key: "ln.weight", tensor: tensor(new Float32Array(random(600 << 10).buffer)) },
            { key: "mask", tensor: tensor(compressible(300 << 10, rank + 2)) },
            { key: "meta", object: { data: Buffer.from(JSON.stringify({ rank })), format: "json" } },
          ] satisfies SaveEntry[],
        ]),
      );
      const decisions = await saveAndCommit(c, "shm", "c1", 1, saved);
      expect(decisions.map((x) => x.outcome)).toEqual(["COMMITTED", "COMMITTED"]);
      expect(c.sharedMemory, "the daemon took the shared-memory files").toBe(true);
      const staged = d
        .output()
        .split("\n")
        .filter((l) => l.includes('"item staged"'))
        .map((l) => JSON.parse(l) as { shared: boolean });
      expect(staged.map((l) => l.shared)).toEqual([true, true]);
      await expectLoadsBitExact(c, "shm", "c1", saved);
      expect(await sharedStore.listIncompleteUploads("")).toEqual([]);
    } finally {
      c.close();
      await d.stop();
      fs.rmSync(shmDir, { recursive: true, force: true });
    }
  }, 120_000);
});
