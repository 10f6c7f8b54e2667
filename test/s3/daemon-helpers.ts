/**
 * Real daemon processes (dist/src/cli.js, as test/integration/harness.ts starts them) keeping their
 * checkpoints in the RGW with --storage s3://BUCKET/PREFIX, and what the daemon-level object-store
 * tests check about the bucket: bit-exact loads, and that a job's prefix holds nothing but its
 * committed checkpoints (manifest + the data under the manifest's attempt), its logs and records.
 */
import { randomFillSync } from "node:crypto";
import { afterAll, expect } from "vitest";
import { CkptdClient, isNotFound, tensor, type CheckpointEvent, type SaveEntry } from "../../clients/ts/src/index.js";
import { layout } from "../../src/store/layout.js";
import type { S3Store } from "../../src/store/s3/client.js";
import { startDaemon, type Daemon } from "../integration/harness.js";
import { cleanedAfterAll } from "./cleanup.js";
import { freshPrefix, readRgwEnv, rgwScript, TEST_BUCKET, testStore } from "./rgw.js";

/** The flags and environment that point a daemon at `s3://TEST_BUCKET/<prefix>` of the test RGW. */
export function s3Args(prefix: string, endpoint = readRgwEnv().endpoint): { args: string[]; env: Record<string, string> } {
  const env = readRgwEnv();
  return {
    args: ["--storage", `s3://${TEST_BUCKET}/${prefix}`, "--s3-endpoint", endpoint, "--s3-region", env.region],
    env: { AWS_ACCESS_KEY_ID: env.accessKeyId, AWS_SECRET_ACCESS_KEY: env.secretAccessKey, AWS_REGION: env.region },
  };
}

/** One daemon on an object-store prefix, restartable (kill -9 or SIGTERM) with the same flags. */
export class S3Daemon {
  daemon: Daemon | undefined;
  client: CkptdClient | undefined;

  constructor(
    readonly prefix: string,
    private readonly extraArgs: string[] = [],
  ) {}

  /** Starts the daemon (with `env` added, e.g. a fault point) and connects a client. */
  async start(env: Record<string, string> = {}): Promise<CkptdClient> {
    const s3 = s3Args(this.prefix);
    this.daemon = await startDaemon({
      args: [...s3.args, "--prepare-timeout-ms", "3000", ...this.extraArgs],
      env: { ...s3.env, ...env },
    });
    this.client = new CkptdClient(this.daemon.address);
    return this.client;
  }

  get c(): CkptdClient {
    if (!this.client) throw new Error("the daemon is not running");
    return this.client;
  }

  /** Stops the daemon (SIGTERM, or SIGKILL for "kill9"); resolves with how it exited. */
  async stop(how: "term" | "kill9" = "term"): Promise<number | string | undefined> {
    this.client?.close();
    this.client = undefined;
    const d = this.daemon;
    this.daemon = undefined;
    if (!d) return undefined;
    return how === "kill9" ? d.kill9() : d.stop();
  }
}

/**
 * For a test file: a daemon (not started) on a fresh prefix of the test bucket and an S3Store on that
 * prefix. After the file's tests the daemon is killed and the prefix emptied; with `restartsGateway`
 * the gateway is started again first, whatever the tests did to it.
 */
export function onFreshPrefix(
  name: string,
  extraArgs: string[] = [],
  opts: { restartsGateway?: boolean } = {},
): { node: S3Daemon; store: S3Store } {
  const keep = cleanedAfterAll();
  const prefix = freshPrefix(name);
  const node = new S3Daemon(prefix, extraArgs);
  const store = keep(testStore(prefix));
  // Runs before the cleanup (after-hooks run last registered first).
  afterAll(async () => {
    if (opts.restartsGateway) rgwScript("start-rgw.sh");
    await node.stop("kill9");
  });
  return { node, store };
}

export const random = (n: number) => randomFillSync(Buffer.alloc(n));

/**
 * A rank's item: a tensor of `bigBytes` random bytes (one data object; a multipart upload once it is
 * past a part, 8 MiB), small tensors (the pack) and an object.
 */
export function rankEntries(rank: number, bigBytes = 9 << 20): SaveEntry[] {
  return [
    { key: "big", tensor: tensor(new Float32Array(random(bigBytes).buffer), { shape: [bigBytes / 4], device: `cuda:${rank}` }) },
    {
      key: "small",
      tensor: tensor(
        new Int32Array(1000).map((_, i) => i * (rank + 1)),
        { shape: [1000], device: "cpu" },
      ),
    },
    { key: "meta", object: { data: Buffer.from(JSON.stringify({ rank })), format: "json" } },
  ];
}

/** Every rank's entries of one checkpoint, by rank. */
export type Saved = Map<number, SaveEntry[]>;

export function makeSaved(worldSize: number, bigBytes?: number): Saved {
  return new Map(Array.from({ length: worldSize }, (_, rank) => [rank, rankEntries(rank, bigBytes)]));
}

/** Saves the item "model" on every rank, then votes COMMIT on every rank; resolves with the decisions. */
export async function saveAndCommit(client: CkptdClient, job: string, checkpointId: string, step: number, saved: Saved) {
  const worldSize = saved.size;
  const results = await Promise.all(
    [...saved].map(([rank, entries]) => client.save({ job, checkpointId, step, rank, worldSize, item: "model", entries })),
  );
  return Promise.all(
    [...saved].map(([rank]) =>
      client.commit({ job, checkpointId, step, rank, worldSize, items: ["model"], attempt: results[0]!.attempt }, { timeoutMs: 60_000 }),
    ),
  );
}

/** The loaded items hold "model" with exactly `entries`, byte for byte. */
export function expectItemsEqual(items: Map<string, Map<string, unknown>>, entries: SaveEntry[], where: string): void {
  const got = items.get("model")!;
  expect([...got.keys()].sort(), where).toEqual(entries.map((e) => e.key).sort());
  for (const e of entries) {
    const l = got.get(e.key) as { kind: string; tensor?: { data: Uint8Array }; data?: Uint8Array };
    const want = "tensor" in e ? e.tensor.data : e.object.data;
    const have = l.kind === "tensor" ? l.tensor!.data : l.data!;
    expect(
      Buffer.compare(
        Buffer.from(have.buffer, have.byteOffset, have.byteLength),
        Buffer.from(want.buffer, want.byteOffset, want.byteLength),
      ),
      `${where} ${e.key}`,
    ).toBe(0);
  }
}

/** Every rank loads the checkpoint back and gets exactly the bytes it saved. */
export async function expectLoadsBitExact(client: CkptdClient, job: string, checkpointId: string, saved: Saved): Promise<void> {
  for (const [rank, entries] of saved) {
    const loaded = await client.loadItems({ job, checkpointId, rank, localRank: 0, devices: [] });
    expectItemsEqual(loaded.items, entries, `${job}/${checkpointId} rank ${rank}`);
  }
}

/** The checkpoint is invisible: Get says NOT_FOUND, List leaves it out, Load fails NOT_FOUND. */
export async function expectAbsent(client: CkptdClient, job: string, checkpointId: string): Promise<void> {
  const got = await client.getCheckpoint(job, checkpointId).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isNotFound(got), `get ${job}/${checkpointId}: ${String(got)}`).toBe(true);
  expect((await client.listCheckpoints(job)).checkpoints.map((c) => c.checkpointId)).not.toContain(checkpointId);
  const load = await client.loadItems({ job, checkpointId, rank: 0, localRank: 0, devices: [] }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isNotFound(load), `load ${job}/${checkpointId}: ${String(load)}`).toBe(true);
}

/** Every key below `key/` (empty-prefix markers left out). */
export async function objectsBelow(store: S3Store, key: string): Promise<string[]> {
  return (await store.list(`${key}/`)).objects.map((o) => o.key).filter((k) => !k.endsWith("/"));
}

/**
 * The job's prefix holds only what its committed checkpoints (as the daemon lists them) need and its
 * records: per checkpoint its manifest and data staged under the manifest's attempt (some data, none
 * torn: a manifest always has its data), the decision records, the event and evaluation logs and
 * retention.json; no other staged attempt (not even its empty prefix's marker), nothing in the trash or
 * quarantine, no incomplete multipart upload anywhere under the store's prefix. Returns the committed
 * ids (oldest first).
 */
export async function expectOnlyCommitted(client: CkptdClient, store: S3Store, job: string): Promise<string[]> {
  const listed = (await client.listCheckpoints(job)).checkpoints;
  const committed = new Map(listed.map((c) => [c.checkpointId, c.attempt]));
  const stray: string[] = [];
  const withData = new Set<string>();
  const root = `${layout.job(job)}/`;
  for (const { key } of (await store.list(root)).objects) {
    const rest = key.slice(root.length);
    // The job's own prefixes (staging/, decisions/, ...) exist empty: their markers are no strays.
    if (/^([^/]+\/)?$/.test(rest)) continue;
    const [dir, name, ...below] = rest.split("/");
    if (dir === "checkpoints" && below.length === 1 && below[0] === "manifest.json" && committed.has(name!)) continue;
    if (dir === "staging" && below.length > 0) {
      const m = /^(.+)@(\d+)$/.exec(name!);
      if (m && committed.get(m[1]!) === Number(m[2])) {
        if (!key.endsWith("/")) withData.add(m[1]!);
        continue;
      }
    }
    if (dir === "decisions" && below.length === 0 && name!.endsWith(".json")) continue;
    if (/^(events|evaluations)\.log\.records$/.test(dir!) && below.length === 0) continue;
    if (rest === "retention.json") continue;
    stray.push(key);
  }
  expect(stray, `objects of ${job} no committed checkpoint needs`).toEqual([]);
  for (const id of committed.keys()) {
    expect(await store.head(layout.manifest(job, id)), `the manifest of ${job}/${id}`).toBeDefined();
    expect(withData.has(id), `the data of ${job}/${id}`).toBe(true);
  }
  expect(
    (await store.listIncompleteUploads("")).map((u) => u.key),
    "incomplete multipart uploads",
  ).toEqual([]);
  return listed.map((c) => c.checkpointId).reverse();
}

/** The job's whole event log as a watch replays it from the start: every event up to the head it reported. */
export async function replayLog(client: CkptdClient, job: string): Promise<CheckpointEvent[]> {
  const out: CheckpointEvent[] = [];
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 10_000);
  let head = Infinity;
  const onStarted = (s: { headSequence: number }) => {
    head = s.headSequence;
    if (head === 0) abort.abort();
  };
  try {
    for await (const ev of client.watch(job, { afterSequence: 0, signal: abort.signal, onStarted })) {
      out.push(ev);
      if (ev.sequence >= head) break;
    }
  } finally {
    clearTimeout(timer);
  }
  expect(out.length, `the replay of ${job}'s log reached its head`).toBe(head);
  return out;
}
