/**
 * Resharding geometry: torch.chunk parts, intersections, coverage checks and the walk that
 * turns a box into byte ranges of the shards, checked against an element-by-element
 * reference on grids of uneven shards of 0 to 4 dimensions.
 */
import { describe, expect, it } from "vitest";
import { markChunks } from "../../../src/load/loader.js";
import {
  CoverageError,
  coalesce,
  coveringShards,
  evenPart,
  intersect,
  type Region,
  segments,
  shardBox,
  sizedPart,
  volume,
} from "../../../src/load/reshard.js";

/** A seeded PRNG (mulberry32): the same cases on every run. */
function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** Row-major flat index of `at` in `shape`. */
function flat(shape: readonly number[], at: readonly number[]): number {
  let f = 0;
  for (let d = 0; d < shape.length; d++) f = f * shape[d]! + at[d]!;
  return f;
}

/** Every index of a box, row-major. */
function* indices(r: Region): Generator<number[]> {
  const n = volume(r.lengths);
  const idx = r.offsets.slice();
  for (let k = 0; k < n; k++) {
    yield idx.slice();
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d]! < r.offsets[d]! + r.lengths[d]!) break;
      idx[d] = r.offsets[d]!;
    }
  }
}

/** The bytes of `r` of a global tensor whose element i holds bytes (i*es .. i*es+es) of `global`. */
function extract(global: Buffer, shape: readonly number[], r: Region, es: number): Buffer {
  const out: Buffer[] = [];
  for (const at of indices(r)) {
    const f = flat(shape, at);
    out.push(global.subarray(f * es, f * es + es));
  }
  return Buffer.concat(out);
}

/** The box assembled from the shards' bytes by following segments(). */
function assemble(shape: number[], box: Region, shards: Region[], shardBytes: Buffer[], es: number): Buffer {
  const out: Buffer[] = [];
  for (const s of segments(shape, box, shards, es)) {
    expect(s.bytes).toBeGreaterThan(0);
    expect(s.from + s.bytes).toBeLessThanOrEqual(shardBytes[s.shard]!.length);
    out.push(shardBytes[s.shard]!.subarray(s.from, s.from + s.bytes));
  }
  return Buffer.concat(out);
}

/** Uneven cuts of `n` into up to `parts` pieces (some may be empty). */
function cuts(n: number, parts: number, r: (n: number) => number): number[] {
  const points = [0, n];
  for (let i = 1; i < parts; i++) points.push(r(n + 1));
  return points.sort((a, b) => a - b);
}

/** A grid of shards: per dimension, uneven cuts; empty shards dropped. */
function grid(shape: number[], parts: number[], r: (n: number) => number): Region[] {
  const perDim = shape.map((n, d) => cuts(n, parts[d]!, r));
  let regions: Region[] = [{ offsets: [], lengths: [] }];
  perDim.forEach((points) => {
    const next: Region[] = [];
    for (const reg of regions)
      for (let i = 0; i + 1 < points.length; i++)
        next.push({ offsets: [...reg.offsets, points[i]!], lengths: [...reg.lengths, points[i + 1]! - points[i]!] });
    regions = next;
  });
  return regions.filter((s) => volume(s.lengths) > 0 || shape.length === 0);
}

describe("splits", () => {
  it("splits like torch.chunk: parts of ceil(n / w), the last ones shorter or empty", () => {
    expect([0, 1, 2, 3].map((i) => evenPart(10, 4, i))).toEqual([
      { offset: 0, length: 3 },
      { offset: 3, length: 3 },
      { offset: 6, length: 3 },
      { offset: 9, length: 1 },
    ]);
    expect([0, 1, 2, 3].map((i) => evenPart(5, 4, i))).toEqual([
      { offset: 0, length: 2 },
      { offset: 2, length: 2 },
      { offset: 4, length: 1 },
      { offset: 5, length: 0 },
    ]);
    expect(evenPart(0, 3, 2)).toEqual({ offset: 0, length: 0 });
    expect(evenPart(7, 1, 0)).toEqual({ offset: 0, length: 7 });
  });

  it("splits by sizes and builds a rank's box", () => {
    expect([0, 1, 2].map((i) => sizedPart([1, 0, 4], i))).toEqual([
      { offset: 0, length: 1 },
      { offset: 1, length: 0 },
      { offset: 1, length: 4 },
    ]);
    expect(shardBox([6, 8], 1, 2, 3)).toEqual({ offsets: [0, 6], lengths: [6, 2] });
    expect(shardBox([6, 8], 0, 1, 2, [2, 4])).toEqual({ offsets: [2, 0], lengths: [4, 8] });
  });
});

describe("intersections and coverage", () => {
  it("intersects boxes, and finds none when they only touch", () => {
    expect(intersect({ offsets: [0, 2], lengths: [4, 4] }, { offsets: [3, 0], lengths: [4, 3] })).toEqual({
      offsets: [3, 2],
      lengths: [1, 1],
    });
    expect(intersect({ offsets: [0], lengths: [4] }, { offsets: [4], lengths: [4] })).toBeUndefined();
    expect(intersect({ offsets: [0, 0], lengths: [0, 4] }, { offsets: [0, 0], lengths: [4, 4] })).toBeUndefined();
    expect(intersect({ offsets: [], lengths: [] }, { offsets: [], lengths: [] })).toEqual({ offsets: [], lengths: [] });
  });

  it("names the first gap and overlap", () => {
    const shards: Region[] = [
      { offsets: [0, 0], lengths: [2, 4] },
      { offsets: [2, 0], lengths: [2, 2] },
    ];
    expect(coveringShards({ offsets: [0, 0], lengths: [2, 4] }, shards)).toEqual([0]);
    expect(coveringShards({ offsets: [1, 1], lengths: [2, 1] }, shards)).toEqual([0, 1]);
    try {
      coveringShards({ offsets: [0, 0], lengths: [4, 4] }, shards);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(CoverageError);
      expect((err as CoverageError).problem).toBe("gap");
      expect((err as CoverageError).at).toEqual([2, 2]);
    }
    const overlapping = [...shards, { offsets: [1, 3], lengths: [3, 1] }];
    expect(() => coveringShards({ offsets: [0, 0], lengths: [4, 4] }, overlapping)).toThrow(/overlap at element \[1, 3\]/);
    // An empty box needs no shard.
    expect(coveringShards({ offsets: [4, 4], lengths: [0, 0] }, [])).toEqual([]);
  });

  it("the walk finds gaps and overlaps the volumes alone would miss", () => {
    // Overlap + gap of the same size: volumes match.
    const shards: Region[] = [
      { offsets: [0], lengths: [3] },
      { offsets: [2], lengths: [3] },
    ];
    expect(() => [...segments([6], { offsets: [0], lengths: [6] }, shards, 1)]).toThrow(CoverageError);
    expect(() => [...segments([5], { offsets: [0], lengths: [5] }, shards, 1)]).toThrow(/overlap/);
    expect(() => [...segments([5], { offsets: [0], lengths: [5] }, [{ offsets: [0], lengths: [3] }], 1)]).toThrow(
      /no saved shard covers element \[3\]/,
    );
  });
});

describe("segments", () => {
  it("walks a row-sharded 2-D tensor as one run per shard, and a column-sharded one row by row", () => {
    const rows: Region[] = [
      { offsets: [0, 0], lengths: [3, 4] },
      { offsets: [3, 0], lengths: [2, 4] },
    ];
    expect([...segments([5, 4], { offsets: [1, 0], lengths: [4, 4] }, rows, 2)]).toEqual([
      { shard: 0, from: 8, bytes: 16 },
      { shard: 1, from: 0, bytes: 16 },
    ]);
    const cols: Region[] = [
      { offsets: [0, 0], lengths: [2, 3] },
      { offsets: [0, 3], lengths: [2, 1] },
    ];
    expect([...segments([2, 4], { offsets: [0, 2], lengths: [2, 2] }, cols, 4)]).toEqual([
      { shard: 0, from: 8, bytes: 4 },
      { shard: 1, from: 0, bytes: 4 },
      { shard: 0, from: 20, bytes: 4 },
      { shard: 1, from: 4, bytes: 4 },
    ]);
    expect(
      coalesce(
        [5, 4, 3],
        { offsets: [1, 0, 0], lengths: [2, 4, 3] },
        rows.map((r) => ({ offsets: [...r.offsets, 0], lengths: [...r.lengths, 3] })),
      ).globalShape,
    ).toEqual([60]);
  });

  it("walks 0-d and empty boxes", () => {
    expect([...segments([], { offsets: [], lengths: [] }, [{ offsets: [], lengths: [] }], 8)]).toEqual([{ shard: 0, from: 0, bytes: 8 }]);
    expect([...segments([4, 0], { offsets: [0, 0], lengths: [4, 0] }, [], 4)]).toEqual([]);
    expect([...segments([4, 3], { offsets: [2, 1], lengths: [0, 2] }, [{ offsets: [0, 0], lengths: [4, 3] }], 4)]).toEqual([]);
  });

  it("assembles every box of random uneven grids bit-exact (1-D to 4-D, several element sizes)", () => {
    const r = rng(42);
    let cases = 0;
    for (let t = 0; t < 400; t++) {
      const dims = t % 5; // 0-d to 4-d
      const shape = Array.from({ length: dims }, () => r(6));
      const es = [1, 2, 4, 8, 16][r(5)]!;
      const shards = grid(
        shape,
        shape.map(() => 1 + r(3)),
        r,
      );
      const global = Buffer.alloc(volume(shape) * es);
      for (let i = 0; i < global.length; i++) global[i] = r(256);
      const shardBytes = shards.map((s) => extract(global, shape, s, es));
      for (let b = 0; b < 5; b++) {
        const offsets = shape.map((n) => r(n + 1));
        const lengths = shape.map((n, d) => r(n - offsets[d]! + 1));
        const box = { offsets, lengths };
        if (volume(lengths) > 0) expect(coveringShards(box, shards).length).toBeGreaterThan(0);
        const got = assemble(shape, box, shards, shardBytes, es);
        expect(got.equals(extract(global, shape, box, es)), `shape [${shape}] box [${offsets}]+[${lengths}]`).toBe(true);
        cases++;
      }
    }
    expect(cases).toBe(2000);
  });

  it("keeps each shard's byte offsets growing (one cursor per shard never goes back)", () => {
    const r = rng(7);
    for (let t = 0; t < 100; t++) {
      const shape = [1 + r(7), 1 + r(7), 1 + r(5)];
      const shards = grid(shape, [1 + r(3), 1 + r(3), 1 + r(2)], r);
      const box = { offsets: shape.map((n) => r(n)), lengths: [] as number[] };
      box.lengths = shape.map((n, d) => 1 + r(n - box.offsets[d]!));
      const last = new Map<number, number>();
      for (const s of segments(shape, box, shards, 4)) {
        expect(s.from).toBeGreaterThanOrEqual(last.get(s.shard) ?? 0);
        last.set(s.shard, s.from + s.bytes);
      }
    }
  });
});

describe("markChunks", () => {
  it("lists each chunk a byte range touches once, in order", () => {
    const starts = [0, 10, 20, 20, 35]; // chunk 2 is empty
    const list: number[] = [];
    markChunks(list, starts, 0, 5);
    markChunks(list, starts, 5, 12);
    markChunks(list, starts, 19, 21);
    markChunks(list, starts, 34, 35);
    expect(list).toEqual([0, 1, 3]);
    const tail: number[] = [];
    markChunks(tail, starts, 20, 21);
    expect(tail).toEqual([3]);
  });
});
