/**
 * Resharding on Load: a checkpoint saved by 2 ranks (row-, column- and 3-D-sharded tensors
 * with uneven shards, a tensor spanning several 4 MiB chunks, replicated tensors and
 * objects, several dtypes) and one saved by 4 ranks on a 2 × 2 grid, loaded by other world
 * sizes through shard_as and explicit boxes, on a real daemon. Every byte is checked
 * against the global tensors the test built; the daemon must read only the chunks a box
 * needs, refuse what it cannot serve right, and say so.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type * as grpc from "@grpc/grpc-js";
import type { Dtype } from "../../wire/gen/ckptd/v1/Dtype.js";
import type { LoadSharedResponse } from "../../wire/gen/ckptd/v1/LoadSharedResponse.js";
import type { LoadRequestIn } from "../../wire/gen/ckptd/v1/LoadRequest.js";
import type { TensorBoxIn } from "../../wire/gen/ckptd/v1/TensorBox.js";
import { CheckpointEngine, CkptdClient } from "../../clients/ts/src/index.js";
import { DTYPE_SIZES } from "../../wire/index.js";
import { type Daemon, metricsAddress, scrape, startDaemon } from "./harness.js";
import {
  MiB,
  compressibleBytes,
  entryFile,
  expectStatus,
  incompressibleBytes,
  objectEntry,
  saveAndCommit,
  type TestEntry,
  testClient,
} from "./wire-helpers.js";
import { loadAll, type LoadResult } from "./raw-wire.js";

const JOB = "reshard-job";
let daemon: Daemon;
let client: CkptdClient;
let shmDir: string;

/** A global tensor the test built, and how the saving ranks split it. */
interface Global {
  key: string;
  dtype: Dtype;
  shape: number[];
  data: Buffer;
  /** The dimension the saved shards differ along (what shard_as splits by default). */
  dim: number;
}

function elementSize(dtype: Dtype): number {
  return DTYPE_SIZES[dtype];
}

/** Deterministic bytes: a xorshift stream. */
function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The bytes of box (offsets, lengths) of a row-major global tensor, element by element (independent of the daemon's walk). */
function boxBytes(g: Global, offsets: readonly number[], lengths: readonly number[]): Buffer {
  const es = elementSize(g.dtype);
  const n = numel(lengths);
  const out = Buffer.alloc(n * es);
  const idx = lengths.map(() => 0);
  for (let k = 0; k < n; k++) {
    let flat = 0;
    for (let d = 0; d < g.shape.length; d++) flat = flat * g.shape[d]! + offsets[d]! + idx[d]!;
    g.data.copy(out, k * es, flat * es, flat * es + es);
    for (let d = lengths.length - 1; d >= 0; d--) {
      if (++idx[d]! < lengths[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** A faster boxBytes for boxes that are whole rows of dim 0. */
function rowsBytes(g: Global, start: number, count: number): Buffer {
  const row = (g.data.length / g.shape[0]!) | 0;
  return Buffer.from(g.data.subarray(start * row, (start + count) * row));
}

/** The shard entry of box (offsets, lengths) of `g`. */
function shardEntry(g: Global, offsets: number[], lengths: number[]): TestEntry {
  const data =
    g.dim === 0 && lengths.slice(1).every((l, i) => l === g.shape[i + 1])
      ? rowsBytes(g, offsets[0]!, lengths[0]!)
      : boxBytes(g, offsets, lengths);
  return { key: g.key, tensor: { dtype: g.dtype, shape: lengths, device: "cuda:0", globalShape: g.shape, globalOffsets: offsets }, data };
}

/** torch.chunk's part `r` of `n` split in `w`. */
function chunkPart(n: number, w: number, r: number): [number, number] {
  const step = Math.ceil(n / w);
  const start = Math.min(r * step, n);
  return [start, Math.min(step, n - start)];
}

function global(key: string, dtype: Dtype, shape: number[], dim: number, seed: number): Global {
  return { key, dtype, shape, dim, data: noise(numel(shape) * elementSize(dtype), seed) };
}

// The 2-rank checkpoint.
const ROW = global("row", "DTYPE_COMPLEX128", [10, 3], 0, 1); // rows 0-5 | 6-9
const COL = global("col", "DTYPE_BFLOAT16", [5, 9], 1, 2); // cols 0-4 | 5-8
const CUBE = global("cube", "DTYPE_INT8", [4, 5, 6], 1, 3); // dim 1: 0-2 | 3-4
const BIG_ROWS = 6000;
const BIG: Global = {
  key: "big",
  dtype: "DTYPE_FLOAT32",
  shape: [BIG_ROWS, 1024],
  dim: 0,
  // Half noise (stored raw), half compressible (stored LZ4): ~24 MiB, several 4 MiB chunks per shard.
  data: Buffer.concat([incompressibleBytes(BIG_ROWS * 2048), compressibleBytes(BIG_ROWS * 2048, 7)]),
};
const BIG_SPLIT = 3500;
const REPLICATED = { key: "rep", dtype: "DTYPE_FLOAT16" as Dtype, shape: [7], data: noise(14, 9) };
const OBJECT = Buffer.from("an optimizer state, pickled");

function twoRankItems(rank: number): Record<string, TestEntry[]> {
  const r0 = rank === 0;
  const model: TestEntry[] = [
    shardEntry(ROW, [r0 ? 0 : 6, 0], [r0 ? 6 : 4, 3]),
    shardEntry(COL, [0, r0 ? 0 : 5], [5, r0 ? 5 : 4]),
    { key: REPLICATED.key, tensor: { dtype: REPLICATED.dtype, shape: REPLICATED.shape, device: `cuda:${rank}` }, data: REPLICATED.data },
    shardEntry(CUBE, [0, r0 ? 0 : 3, 0], [4, r0 ? 3 : 2, 6]),
    shardEntry(BIG, [r0 ? 0 : BIG_SPLIT, 0], [r0 ? BIG_SPLIT : BIG_ROWS - BIG_SPLIT, 1024]),
    objectEntry("opt", OBJECT),
    // Saved by each rank with its own bytes: the lowest rank's copy is the one served.
    objectEntry("local", Buffer.from(`rank ${rank}`)),
  ];
  return { model, extra: [objectEntry("config", Buffer.from("{}"))] };
}

// The 4-rank checkpoint: a 2 × 2 grid of uneven shards (TP along dim 1, FSDP along dim 0).
const GRID = global("grid", "DTYPE_INT64", [7, 5], 0, 11);
function gridItems(rank: number): Record<string, TestEntry[]> {
  const rows = rank < 2 ? [0, 4] : [4, 3];
  const cols = rank % 2 === 0 ? [0, 2] : [2, 3];
  return { model: [shardEntry(GRID, [rows[0]!, cols[0]!], [rows[1]!, cols[1]!])] };
}

async function load(req: Omit<LoadRequestIn, "job">): Promise<LoadResult> {
  return loadAll(client, { job: JOB, ...req });
}

function expectOk(r: LoadResult): void {
  expect(r.error, `${r.error?.details}`).toBeUndefined();
}

/** Asserts a streamed box entry: its spec and its bytes. */
function expectBox(r: LoadResult, i: number, g: Global, offsets: number[], lengths: number[]): void {
  const e = r.entries[i]!;
  expect(e.entry.key).toBe(g.key);
  expect(e.entry.tensor!.dtype).toBe(g.dtype);
  expect(e.entry.tensor!.shape).toEqual(lengths);
  expect(e.entry.tensor!.globalShape).toEqual(g.shape);
  expect(e.entry.tensor!.globalOffsets).toEqual(offsets);
  expect(Number(e.entry.sizeBytes)).toBe(numel(lengths) * elementSize(g.dtype));
  const want = g === BIG && lengths[1] === 1024 ? rowsBytes(g, offsets[0]!, lengths[0]!) : boxBytes(g, offsets, lengths);
  expect(e.data.equals(want), `bytes of ${g.key} box [${offsets}] + [${lengths}]`).toBe(true);
}

beforeAll(async () => {
  shmDir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-reshard-shm-"));
  daemon = await startDaemon({ args: ["--metrics-listen", "127.0.0.1:0", "--shared-memory-dir", shmDir, "--log-level", "debug"] });
  client = testClient(daemon.address);
  await saveAndCommit(client, JOB, "two", 1, [twoRankItems(0), twoRankItems(1)]);
  await saveAndCommit(client, JOB, "grid", 2, [gridItems(0), gridItems(1), gridItems(2), gridItems(3)]);
}, 120_000);

afterAll(async () => {
  client?.close();
  await daemon?.stop();
  fs.rmSync(shmDir, { recursive: true, force: true });
});

describe("shard_as", () => {
  for (const world of [1, 3, 4]) {
    it(`loads the 2-rank checkpoint into world size ${world}, bit-exact`, async () => {
      for (let rank = 0; rank < world; rank++) {
        const r = await load({ checkpointId: "two", rank, worldSize: world, items: ["model"], shardAs: { rank, worldSize: world } });
        expectOk(r);
        expect(r.plan!.resharded).toBe(true);
        expect(r.entries.map((e) => e.entry.key)).toEqual(["row", "col", "rep", "cube", "big", "opt", "local"]);
        let i = 0;
        for (const g of [ROW, COL]) {
          const [start, len] = chunkPart(g.shape[g.dim]!, world, rank);
          const offsets = g.shape.map((_, d) => (d === g.dim ? start : 0));
          const lengths = g.shape.map((n, d) => (d === g.dim ? len : n));
          expectBox(r, i++, g, offsets, lengths);
        }
        // The replicated tensor, whole as rank 0 saved it.
        const rep = r.entries[i++]!;
        expect(rep.entry.tensor!.shape).toEqual([7]);
        expect(rep.entry.tensor!.globalShape).toEqual([]);
        expect(rep.data.equals(REPLICATED.data)).toBe(true);
        expect(rep.entry.targetDevice).toBe("cpu");
        for (const g of [CUBE, BIG]) {
          const [start, len] = chunkPart(g.shape[g.dim]!, world, rank);
          const offsets = g.shape.map((_, d) => (d === g.dim ? start : 0));
          const lengths = g.shape.map((n, d) => (d === g.dim ? len : n));
          expectBox(r, i++, g, offsets, lengths);
        }
        expect(r.entries[i++]!.data.equals(OBJECT)).toBe(true);
        expect(r.entries[i++]!.data.toString()).toBe("rank 0");
        expect(Number(r.plan!.totalBytes)).toBe(r.entries.reduce((n, e) => n + e.data.length, 0));
      }
    }, 60_000);
  }

  it("splits unevenly by sizes, along an explicit dim, and replicates", async () => {
    const r = await load({ checkpointId: "two", items: ["model"], shardAs: { rank: 1, worldSize: 3, dim: 0, sizes: [1, 2, 2] } });
    // sizes must add up to the split dimension of every sharded tensor loaded: [1, 2, 2] does not fit row's 10 rows.
    expectStatus(r, "INVALID_ARGUMENT", /shard_as.sizes add up to 5, but dimension 0 of item "model" key "row"/);
    const g = await load({ checkpointId: "grid", shardAs: { rank: 2, worldSize: 3, dim: 0, sizes: [1, 2, 4] } });
    expectOk(g);
    expectBox(g, 0, GRID, [3, 0], [4, 5]);
    const c = await load({ checkpointId: "grid", shardAs: { rank: 1, worldSize: 2, dim: 1 } });
    expectOk(c);
    expectBox(c, 0, GRID, [0, 3], [7, 2]);
    const rep = await load({ checkpointId: "two", items: ["model"], shardAs: { rank: 2, worldSize: 3, replicate: true } });
    expectOk(rep);
    expectBox(rep, 0, ROW, [0, 0], [10, 3]);
    expectBox(rep, 4, BIG, [0, 0], [BIG_ROWS, 1024]);
  });

  it("needs a dim for a tensor saved split along two dimensions", async () => {
    const r = await load({ checkpointId: "grid", shardAs: { rank: 0, worldSize: 2 } });
    expectStatus(r, "FAILED_PRECONDITION", /key "grid" was saved split along dimensions 0 and 1.*shard_as.dim/);
  });

  it("streams every item when items is empty, each key once", async () => {
    const r = await load({ checkpointId: "two", shardAs: { rank: 0, worldSize: 1 } });
    expectOk(r);
    expect(r.entries.map((e) => `${e.entry.item}/${e.entry.key}`)).toEqual([
      "model/row",
      "model/col",
      "model/rep",
      "model/cube",
      "model/big",
      "model/opt",
      "model/local",
      "extra/config",
    ]);
  });

  it("refuses bad shard_as values", async () => {
    expectStatus(
      await load({ checkpointId: "two", shardAs: { rank: 3, worldSize: 3 } }),
      "INVALID_ARGUMENT",
      /shard_as.rank 3 is out of range/,
    );
    expectStatus(await load({ checkpointId: "two", shardAs: { rank: 0, worldSize: 0 } }), "INVALID_ARGUMENT", /shard_as.world_size 0/);
    expectStatus(
      await load({ checkpointId: "two", shardAs: { rank: 0, worldSize: 3, sizes: [1, 2] } }),
      "INVALID_ARGUMENT",
      /shard_as.sizes has 2 values/,
    );
    expectStatus(
      await load({ checkpointId: "two", shardAs: { rank: 0, worldSize: 2, sizes: [-1, 11] } }),
      "INVALID_ARGUMENT",
      /non-negative/,
    );
    expectStatus(
      await load({ checkpointId: "two", items: ["model"], shardAs: { rank: 0, worldSize: 2, dim: 2 } }),
      "INVALID_ARGUMENT",
      /shard_as.dim 2 is not a dimension of item "model" key "row"/,
    );
    expectStatus(
      await load({ checkpointId: "two", items: ["nope"], shardAs: { rank: 0, worldSize: 2 } }),
      "NOT_FOUND",
      /no item "nope".*"model", "extra"/,
    );
  });
});

describe("boxes", () => {
  it("assembles explicit boxes, in the order asked, bit-exact", async () => {
    const boxes: [Global, number[], number[]][] = [
      [ROW, [5, 1], [3, 2]], // across the row split
      [COL, [1, 3], [4, 4]], // across the column split
      [CUBE, [1, 2, 3], [3, 2, 2]], // 3-D, across the split
      [CUBE, [0, 0, 0], [4, 5, 6]],
      [ROW, [2, 0], [0, 3]], // empty
      [ROW, [9, 2], [1, 1]], // one element
      [BIG, [3400, 100], [200, 3]], // a thin box across the split of the big tensor
      [BIG, [0, 0], [BIG_ROWS, 1024]],
    ];
    const r = await load({
      checkpointId: "two",
      boxes: boxes.map(([g, offsets, lengths]) => ({ item: "model", key: g.key, offsets, lengths })),
    });
    expectOk(r);
    expect(r.plan!.resharded).toBe(true);
    expect(r.entries).toHaveLength(boxes.length);
    boxes.forEach(([g, offsets, lengths], i) => expectBox(r, i, g, offsets, lengths));
    // Every message fits a stock client's 4 MiB limit.
    expect(r.entries[7]!.chunkCount).toBeGreaterThanOrEqual(Math.ceil(BIG.data.length / (4 * MiB - 64 * 1024)));
  }, 60_000);

  it("assembles 2-D (TP × FSDP) boxes of a grid saved by 4 ranks, and whole tensors and objects with empty boxes", async () => {
    // A 3 × 2 target grid with uneven parts.
    const rows = [
      [0, 3],
      [3, 2],
      [5, 2],
    ];
    const cols = [
      [0, 3],
      [3, 2],
    ];
    const boxes: TensorBoxIn[] = [];
    for (const [r0, rl] of rows)
      for (const [c0, cl] of cols) boxes.push({ item: "model", key: "grid", offsets: [r0!, c0!], lengths: [rl!, cl!] });
    boxes.push({ item: "model", key: "grid" });
    const r = await load({ checkpointId: "grid", boxes });
    expectOk(r);
    boxes.forEach((b, i) =>
      i < 6 ? expectBox(r, i, GRID, b.offsets as number[], b.lengths as number[]) : expectBox(r, i, GRID, [0, 0], [7, 5]),
    );
    const two = await load({
      checkpointId: "two",
      boxes: [
        { item: "model", key: "opt" },
        { item: "model", key: "rep", offsets: [2], lengths: [3] },
      ],
    });
    expectOk(two);
    expect(two.entries[0]!.data.equals(OBJECT)).toBe(true);
    expect(two.entries[1]!.entry.tensor!.globalShape).toEqual([7]);
    expect(two.entries[1]!.data.equals(REPLICATED.data.subarray(4, 10))).toBe(true);
  });

  it("refuses a box outside the global shape with OUT_OF_RANGE naming it", async () => {
    const r = await load({ checkpointId: "two", boxes: [{ item: "model", key: "col", offsets: [0, 6], lengths: [5, 4] }] });
    expectStatus(r, "OUT_OF_RANGE", /item "model" key "col" \(offsets \[0, 6\], lengths \[5, 4\]\) lies outside its global shape \[5, 9\]/);
    expect(r.entries).toHaveLength(0);
  });

  it("refuses malformed boxes with INVALID_ARGUMENT and unknown names with NOT_FOUND", async () => {
    const one = (b: TensorBoxIn) => load({ checkpointId: "two", boxes: [b] });
    expectStatus(await one({ item: "model", key: "row", offsets: [0], lengths: [1] }), "INVALID_ARGUMENT", /has 1 dimensions.*has 2/);
    expectStatus(await one({ item: "model", key: "row", offsets: [0, 0], lengths: [1] }), "INVALID_ARGUMENT", /2 offsets and 1 lengths/);
    expectStatus(await one({ item: "model", key: "row", offsets: [-1, 0], lengths: [1, 1] }), "INVALID_ARGUMENT", /non-negative/);
    expectStatus(
      await one({ item: "model", key: "row", offsets: [0, 0], lengths: ["9007199254740993", 1] }),
      "INVALID_ARGUMENT",
      /below 2\^53/,
    );
    expectStatus(await one({ item: "model", key: "opt", offsets: [0], lengths: [1] }), "INVALID_ARGUMENT", /is an object/);
    expectStatus(await one({ item: "model", key: "nope" }), "NOT_FOUND", /no key "nope" \(it has: "row", "col", "rep"/);
    expectStatus(await one({ item: "nope", key: "row" }), "NOT_FOUND", /no item "nope"/);
    const many = await load({ checkpointId: "two", boxes: Array.from({ length: 65537 }, () => ({ item: "model", key: "rep" })) });
    expectStatus(many, "INVALID_ARGUMENT", /request.boxes has 65537 values; at most 65536 are allowed/);
    // Boxes within the limit whose plan would not fit one message (each placement names a 1000-character device).
    const huge = await load({
      checkpointId: "two",
      mapLocation: { "*": "d".repeat(1000) },
      boxes: Array.from({ length: 30000 }, () => ({ item: "model", key: "rep" })),
    });
    expectStatus(huge, "INVALID_ARGUMENT", /the plan of this load would take about \d+ bytes \(30000 tensors\).*ask for fewer boxes/);
    const longKey = "k".repeat(4000);
    expectStatus(await one({ item: "model", key: longKey }), "NOT_FOUND", /no key "k{80}"… \(4000 characters\)/);
    const both = await load({ checkpointId: "two", boxes: [{ item: "model", key: "row" }], shardAs: { rank: 0, worldSize: 1 } });
    expectStatus(both, "INVALID_ARGUMENT", /boxes and shard_as were both set/);
  });

  it("reads only the chunks a large box needs (ckptd_load_stored_bytes_read_total)", async () => {
    const metrics = metricsAddress(daemon);
    const read = async () => (await scrape(metrics)).get("ckptd_load_stored_bytes_read_total") ?? 0;
    const before = await read();
    const [start, count] = [2000, 3000]; // 12 MiB across the split at row 3500
    const r = await load({ checkpointId: "two", boxes: [{ item: "model", key: "big", offsets: [start, 0], lengths: [count, 1024] }] });
    expectOk(r);
    expectBox(r, 0, BIG, [start, 0], [count, 1024]);
    const bytesRead = (await read()) - before;
    const requested = count * 1024 * 4;
    console.log(`reshard: a box of ${requested} bytes read ${bytesRead} stored bytes (${(bytesRead / requested).toFixed(3)}x)`);
    // Two shards: at most one extra chunk (4 MiB + its frame) at each end of each.
    expect(bytesRead).toBeGreaterThan(0);
    expect(bytesRead).toBeLessThanOrEqual(1.1 * requested + 2 * 2 * (4 * MiB + 64));
    // A thin box in the middle of rank 0's 14 MiB shard reads the one or two chunks holding it, not the shard.
    const thinBefore = await read();
    const thin = await load({ checkpointId: "two", boxes: [{ item: "model", key: "big", offsets: [1500, 0], lengths: [10, 1024] }] });
    expectOk(thin);
    expectBox(thin, 0, BIG, [1500, 0], [10, 1024]);
    const thinRead = (await read()) - thinBefore;
    expect(thinRead).toBeGreaterThanOrEqual(10 * 4096);
    expect(thinRead).toBeLessThanOrEqual(2 * (4 * MiB + 64));
  });
});

describe("world size checks", () => {
  it("refuses a plain load of a sharded item by another world size", async () => {
    const r = await load({ checkpointId: "two", rank: 1, worldSize: 3, items: ["model"] });
    expectStatus(
      r,
      "FAILED_PRECONDITION",
      /item 'model' holds shards saved by world size 2.*this loader has world size 3: pass shard_as or boxes/,
    );
    const high = await load({ checkpointId: "two", rank: 2, worldSize: 3 });
    expectStatus(high, "FAILED_PRECONDITION", /world size 2/);
  });

  it("serves source_rank, the same world size, and unsharded items as before", async () => {
    const src = await load({ checkpointId: "two", rank: 2, worldSize: 3, items: ["model"], sourceRank: 1 });
    expectOk(src);
    expect(src.plan!.resharded).toBe(false);
    expect(src.entries[0]!.entry.tensor!.globalOffsets).toEqual([6, 0]);
    expect(src.entries[0]!.data.equals(rowsBytes(ROW, 6, 4))).toBe(true);
    const same = await load({ checkpointId: "two", rank: 1, worldSize: 2, items: ["model"] });
    expectOk(same);
    expect(same.entries[6]!.data.toString()).toBe("rank 1");
    const extra = await load({ checkpointId: "two", rank: 0, worldSize: 3, items: ["extra"] });
    expectOk(extra);
    expect(extra.entries.map((e) => e.entry.key)).toEqual(["config"]);
  });
});

describe("LoadShared and the TypeScript client", () => {
  it("loads resharded entries through shared memory, and fills typed arrays in place", async () => {
    const ts = new CkptdClient({ address: daemon.address, sharedMemory: true, sharedMemoryDir: shmDir });
    const metrics = metricsAddress(daemon);
    const shared = async () => (await scrape(metrics)).get('ckptd_shared_memory_bytes_total{direction="load"}') ?? 0;
    try {
      const before = await shared();
      const res = await ts.loadItems({ job: JOB, checkpointId: "two", items: ["model"], shardAs: { rank: 1, worldSize: 3 } });
      expect(res.plan.resharded).toBe(true);
      const big = res.items.get("model")!.get("big")!;
      if (big.kind !== "tensor") throw new Error("big is not a tensor");
      const [start, len] = chunkPart(BIG_ROWS, 3, 1);
      expect(big.tensor.shape).toEqual([len, 1024]);
      expect(big.tensor.globalShape).toEqual([BIG_ROWS, 1024]);
      expect(big.tensor.globalOffsets).toEqual([start, 0]);
      expect(Buffer.from(big.tensor.data).equals(rowsBytes(BIG, start, len))).toBe(true);
      const col = res.items.get("model")!.get("col")!;
      if (col.kind !== "tensor") throw new Error("col is not a tensor");
      expect(Buffer.from(col.tensor.data).equals(boxBytes(COL, [0, 3], [5, 3]))).toBe(true);
      // The bytes came through the shared-memory file, not the stream.
      expect((await shared()) - before).toBe(Number(res.plan.totalBytes));

      const colBox = new Uint16Array(15);
      const cube = new Int8Array(72);
      const grid = new BigInt64Array(6);
      const into = await ts.loadInto({
        job: JOB,
        checkpointId: "two",
        targets: [
          { item: "model", key: "col", offsets: [1, 2], lengths: [3, 5], data: colBox },
          { item: "model", key: "cube", offsets: [0, 1, 0], lengths: [4, 3, 6], data: cube },
          { item: "model", key: "col", offsets: [4, 8], lengths: [1, 1], data: colBox.subarray(14) },
        ],
      });
      expect(into.entries.map((e) => e.key)).toEqual(["col", "cube", "col"]);
      expect(Buffer.from(colBox.buffer, 0, 28).equals(boxBytes(COL, [1, 2], [3, 5]).subarray(0, 28))).toBe(true);
      expect(Buffer.from(colBox.buffer, 28, 2).equals(boxBytes(COL, [4, 8], [1, 1]))).toBe(true);
      expect(Buffer.from(cube.buffer).equals(boxBytes(CUBE, [0, 1, 0], [4, 3, 6]))).toBe(true);
      await ts.loadInto({
        job: JOB,
        checkpointId: "grid",
        targets: [{ item: "model", key: "grid", offsets: [3, 1], lengths: [2, 3], data: grid }],
      });
      expect(Buffer.from(grid.buffer).equals(boxBytes(GRID, [3, 1], [2, 3]))).toBe(true);
      await expect(
        ts.loadInto({
          job: JOB,
          checkpointId: "grid",
          targets: [{ item: "model", key: "grid", offsets: [0, 0], lengths: [2, 3], data: new BigInt64Array(5) }],
        }),
      ).rejects.toThrow(/targets\[0\] \(model\/grid\) has 40 bytes; the box holds 48/);
      await expect(
        ts.loadItems({
          job: JOB,
          checkpointId: "two",
          boxes: [
            { item: "model", key: "col" },
            { item: "model", key: "col" },
          ],
        }),
      ).rejects.toThrow(/twice/);
    } finally {
      ts.close();
    }
  }, 60_000);

  it("a raw LoadShared of boxes pauses while the client holds its only slot, and resumes bit-exact", async () => {
    const pauses = () => daemon.output().split("load paused: the client is not reading").length - 1;
    const pausedBefore = pauses();
    const ring = path.join(shmDir, "one-slot-ring");
    fs.writeFileSync(ring, Buffer.alloc(4 * MiB));
    const got: Buffer[][] = [];
    const boxes: [Global, number[], number[]][] = [
      [BIG, [2000, 0], [3000, 1024]], // three pieces, across the shard split
      [COL, [0, 4], [5, 2]],
    ];
    const error = await new Promise<grpc.ServiceError | undefined>((resolve) => {
      const call = client.raw.LoadShared();
      let released = 0;
      call.on("data", (m: LoadSharedResponse) => {
        const r = m.response!;
        if (r.msg === "entry") got.push([]);
        else if (r.msg === "sharedChunk") {
          const { offset, length } = r.sharedChunk!;
          const fd = fs.openSync(ring, "r");
          const bytes = Buffer.alloc(length);
          fs.readSync(fd, bytes, 0, length, Number(offset));
          fs.closeSync(fd);
          got[got.length - 1]!.push(bytes);
          // Longer than the daemon waits for a slot before it pauses the load.
          setTimeout(() => {
            released += length;
            call.write({ progress: { sharedBytesReleased: released } });
          }, 800);
        }
      });
      call.on("error", (e: grpc.ServiceError) => resolve(e));
      call.on("end", () => resolve(undefined));
      call.write({
        start: {
          request: {
            job: JOB,
            checkpointId: "two",
            boxes: boxes.map(([g, offsets, lengths]) => ({ item: "model", key: g.key, offsets, lengths })),
          },
          sharedMemoryPath: ring,
        },
      });
    });
    expect(error, `${error?.details}`).toBeUndefined();
    expect(got).toHaveLength(2);
    expect(got[0]).toHaveLength(3);
    expect(Buffer.concat(got[0]!).equals(rowsBytes(BIG, 2000, 3000))).toBe(true);
    expect(Buffer.concat(got[1]!).equals(boxBytes(COL, [0, 4], [5, 2]))).toBe(true);
    expect(pauses(), "the daemon paused the load mid-box").toBeGreaterThan(pausedBefore);
  }, 60_000);

  it("a LoadShared of boxes in destination mode writes each box at its place in the layout, bit-exact", async () => {
    const ring = path.join(shmDir, "dest-ring");
    fs.writeFileSync(ring, Buffer.alloc(4 * MiB));
    const dest = path.join(shmDir, "dest-file");
    const boxes: [Global, number[], number[]][] = [
      [BIG, [2000, 0], [3000, 1024]], // long runs across the shard split: views of the decoded chunks
      [COL, [0, 4], [5, 2]], // short runs: copied together
      [BIG, [10, 0], [1, 1024]],
    ];
    const sizes: number[] = [];
    const slices: { offset: number; length: number }[][] = [];
    let destinationBytes = 0;
    const error = await new Promise<grpc.ServiceError | undefined>((resolve) => {
      const call = client.raw.LoadShared();
      call.on("data", (m: LoadSharedResponse) => {
        const r = m.response!;
        if (r.msg === "plan") {
          destinationBytes = Number(r.plan!.destinationBytes);
          fs.writeFileSync(dest, Buffer.alloc(destinationBytes, 0xa5));
          call.write({ destination: { sharedMemoryPath: dest } });
        } else if (r.msg === "entry") {
          sizes.push(Number(r.entry!.sizeBytes));
          slices.push([]);
        } else if (r.msg === "sharedChunk") {
          expect(r.sharedChunk!.crc32c, "in place, a box's pieces carry no CRC of their own").toBeUndefined();
          slices[slices.length - 1]!.push({ offset: Number(r.sharedChunk!.offset), length: r.sharedChunk!.length });
        }
      });
      call.on("error", (e: grpc.ServiceError) => resolve(e));
      call.on("end", () => resolve(undefined));
      call.write({
        start: {
          request: {
            job: JOB,
            checkpointId: "two",
            boxes: boxes.map(([g, offsets, lengths]) => ({ item: "model", key: g.key, offsets, lengths })),
          },
          sharedMemoryPath: ring,
          destination: true,
        },
      });
    });
    expect(error, `${error?.details}`).toBeUndefined();
    expect(sizes).toHaveLength(3);
    const file = fs.readFileSync(dest);
    expect(file.length).toBe(destinationBytes);
    const want = [rowsBytes(BIG, 2000, 3000), boxBytes(COL, [0, 4], [5, 2]), rowsBytes(BIG, 10, 1)];
    let at = 0;
    for (let i = 0; i < 3; i++) {
      // Each entry starts 64-aligned after the last, and its slices follow each other there.
      let next = at;
      for (const s of slices[i]!) {
        expect(s.offset).toBe(next);
        next += s.length;
      }
      expect(next - at).toBe(sizes[i]);
      expect(file.subarray(at, at + sizes[i]!).equals(want[i]!), `box ${i}`).toBe(true);
      at += Math.ceil(sizes[i]! / 64) * 64;
    }
    expect(at).toBe(destinationBytes);
    // The first box went out in runs longer than a copied piece: views of the decoded chunks.
    expect(slices[0]!.length).toBeGreaterThan(1);
  }, 60_000);

  it("loads resharded boxes on the Load stream with the TypeScript client", async () => {
    const ts = new CkptdClient({ address: daemon.address });
    try {
      const res = await ts.loadItems({
        job: JOB,
        checkpointId: "two",
        worldSize: 3,
        boxes: [{ item: "model", key: "row", offsets: [4, 0], lengths: [4, 3] }],
      });
      const row = res.items.get("model")!.get("row")!;
      if (row.kind !== "tensor") throw new Error("row is not a tensor");
      expect(row.tensor.dtype).toBe("complex128");
      expect(Buffer.from(row.tensor.data).equals(rowsBytes(ROW, 4, 4))).toBe(true);
      // CheckpointEngine sends its world size: a job restarted with 3 ranks is refused rank 1's saved shard.
      const engine = new CheckpointEngine({ client: ts, job: JOB, rank: 1, worldSize: 3 });
      await expect(engine.load("two/model")).rejects.toThrow(/item 'model' holds shards saved by world size 2/);
      const same = await new CheckpointEngine({ client: ts, job: JOB, rank: 1, worldSize: 2 }).load("two/model");
      expect((same["row"] as { globalOffsets: number[] }).globalOffsets).toEqual([6, 0]);
      await expect(ts.loadItems({ job: JOB, checkpointId: "two", rank: 0, worldSize: 3, items: ["model"] })).rejects.toThrow(
        /holds shards saved by world size 2/,
      );
    } finally {
      ts.close();
    }
  });
});

describe("damage and inconsistent shards", () => {
  it("names a region no saved shard covers, and shards that disagree, with FAILED_PRECONDITION", async () => {
    const g = global("g", "DTYPE_FLOAT32", [10, 3], 0, 31);
    const items = (rank: number) => ({
      model: [
        shardEntry(g, [rank === 0 ? 0 : 6, 0], [4, 3]), // rows 4-5 were never saved
        {
          key: "mixed",
          tensor: { dtype: rank === 0 ? "DTYPE_FLOAT32" : "DTYPE_INT32", shape: [2], globalShape: [4], globalOffsets: [rank * 2] },
          data: noise(8, rank),
        } as TestEntry,
      ],
    });
    await saveAndCommit(client, JOB, "gappy", 4, [items(0), items(1)]);
    const gap = await load({ checkpointId: "gappy", boxes: [{ item: "model", key: "g", offsets: [2, 0], lengths: [6, 3] }] });
    expectStatus(
      gap,
      "FAILED_PRECONDITION",
      /item "model" key "g": the saved shards of global shape \[10, 3\] do not cover the box .* no saved shard covers element \[4, 0\]/,
    );
    const covered = await load({ checkpointId: "gappy", boxes: [{ item: "model", key: "g", offsets: [6, 1], lengths: [4, 2] }] });
    expectOk(covered);
    expectBox(covered, 0, g, [6, 1], [4, 2]);
    const mixed = await load({ checkpointId: "gappy", boxes: [{ item: "model", key: "mixed" }] });
    expectStatus(mixed, "FAILED_PRECONDITION", /key "mixed": rank 0 saved a shard of dtype DTYPE_FLOAT32, rank 1 one of DTYPE_INT32/);
  });

  it("reports a corrupt chunk inside a box as DATA_LOSS", async () => {
    const g = global("w", "DTYPE_FLOAT32", [1024, 1024], 0, 21); // 4 MiB: its own entry file per rank
    const items = (rank: number) => ({ model: [shardEntry(g, [rank * 512, 0], [512, 1024])] });
    await saveAndCommit(client, JOB, "damaged", 3, [items(0), items(1)]);
    const file = entryFile(daemon.dataDir, JOB, "damaged", 1, "model", 0);
    const fd = fs.openSync(file, "r+");
    fs.writeSync(fd, Buffer.from([0xff ^ fs.readFileSync(file)[1000]!]), 0, 1, 1000);
    fs.closeSync(fd);
    // A box of rank 0's shard only still loads; one reaching into rank 1's does not.
    const ok = await load({ checkpointId: "damaged", boxes: [{ item: "model", key: "w", offsets: [0, 0], lengths: [512, 1024] }] });
    expectOk(ok);
    const bad = await load({ checkpointId: "damaged", boxes: [{ item: "model", key: "w", offsets: [500, 0], lengths: [20, 1024] }] });
    expectStatus(bad, "DATA_LOSS", /rank 1 item 'model' key 'w' chunk 0 .* is corrupt/);
  });
});
