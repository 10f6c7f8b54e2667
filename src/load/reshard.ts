/**
 * Resharding geometry: boxes of a global tensor, their intersections with the shards the
 * saving ranks stored, and the walk that turns a box into the byte ranges of those shards
 * in the box's row-major order.
 *
 * A shard is stored row-major over its own shape, so while a box is walked in row-major
 * order the byte offsets read from each shard only grow: a loader keeps one cursor per
 * shard (its current decoded chunk) and never goes back. The walk works on "rows": the
 * box's last dimension, after dimensions that the box and every shard it touches span
 * whole are merged into the one before (a row-sharded [n, m] tensor is walked as one row
 * of n·m elements, not n rows).
 */

/** A box of a global tensor: its start and length in each dimension. */
export interface Region {
  offsets: number[];
  lengths: number[];
}

/** A run of bytes of one shard that comes next in the box's row-major order. */
export interface Segment {
  /** The shard's index in the list the walk was given. */
  shard: number;
  /** Byte offset in the shard's raw (row-major) bytes. */
  from: number;
  bytes: number;
}

/** Where a box is not covered exactly once by the shards given. */
export class CoverageError extends Error {
  constructor(
    readonly problem: "gap" | "overlap",
    /** The element (global coordinates) where the problem starts. */
    readonly at: number[],
  ) {
    super(`${problem === "gap" ? "no saved shard covers" : "saved shards overlap at"} element [${at.join(", ")}]`);
  }
}

/** The number of elements of a box with these lengths (1 for a 0-d box). */
export function volume(lengths: readonly number[]): number {
  let n = 1;
  for (const l of lengths) n *= l;
  return n;
}

/** The intersection of two regions of the same tensor, or undefined when it holds no element. */
export function intersect(a: Region, b: Region): Region | undefined {
  const offsets: number[] = [];
  const lengths: number[] = [];
  for (let d = 0; d < a.offsets.length; d++) {
    const start = Math.max(a.offsets[d]!, b.offsets[d]!);
    const end = Math.min(a.offsets[d]! + a.lengths[d]!, b.offsets[d]! + b.lengths[d]!);
    if (end <= start) return undefined;
    offsets.push(start);
    lengths.push(end - start);
  }
  return { offsets, lengths };
}

/** Part `index` of `size` split in `parts` as torch.chunk splits it: parts of ceil(size / parts), the last ones shorter or empty. */
export function evenPart(size: number, parts: number, index: number): { offset: number; length: number } {
  const step = Math.ceil(size / parts);
  const offset = Math.min(index * step, size);
  return { offset, length: Math.min(step, size - offset) };
}

/** Part `index` of a split into parts of the given sizes. */
export function sizedPart(sizes: readonly number[], index: number): { offset: number; length: number } {
  let offset = 0;
  for (let i = 0; i < index; i++) offset += sizes[i]!;
  return { offset, length: sizes[index]! };
}

/**
 * The box of rank `rank` of `worldSize` splitting `globalShape` along `dim` (evenly, or in
 * `sizes` when given; those must have been checked to sum to the dimension's size).
 */
export function shardBox(
  globalShape: readonly number[],
  dim: number,
  rank: number,
  worldSize: number,
  sizes: readonly number[] = [],
): Region {
  const offsets = globalShape.map(() => 0);
  const lengths = [...globalShape];
  const part = sizes.length > 0 ? sizedPart(sizes, rank) : evenPart(globalShape[dim]!, worldSize, rank);
  offsets[dim] = part.offset;
  lengths[dim] = part.length;
  return { offsets, lengths };
}

/**
 * Checks that the shards given cover `box` exactly once (throws CoverageError otherwise) and
 * returns the indices of those that intersect it. Exact for up to `pairwiseMax` intersecting
 * shards; beyond, overlaps that the volumes do not reveal are found by the walk.
 */
export function coveringShards(box: Region, shards: readonly Region[], pairwiseMax = 512): number[] {
  const hits: number[] = [];
  const parts: Region[] = [];
  let covered = 0;
  shards.forEach((s, i) => {
    const x = intersect(box, s);
    if (!x) return;
    hits.push(i);
    parts.push(x);
    covered += volume(x.lengths);
  });
  const want = volume(box.lengths);
  if (want === 0) return [];
  if (parts.length <= pairwiseMax)
    for (let i = 0; i < parts.length; i++)
      for (let j = i + 1; j < parts.length; j++) {
        const o = intersect(parts[i]!, parts[j]!);
        if (o) throw new CoverageError("overlap", o.offsets);
      }
  if (covered < want) throw new CoverageError("gap", firstGap(box, parts));
  if (covered > want) throw new CoverageError("overlap", box.offsets);
  return hits;
}

/**
 * True when `shards` cover the whole tensor of `globalShape` exactly once (every box is then
 * covered exactly once); false when they do not, or when there are too many to tell cheaply.
 */
export function tilesWhole(globalShape: readonly number[], shards: readonly Region[], pairwiseMax = 512): boolean {
  if (shards.length > pairwiseMax) return false;
  try {
    coveringShards({ offsets: globalShape.map(() => 0), lengths: [...globalShape] }, shards, pairwiseMax);
    return volume(globalShape) > 0;
  } catch (err) {
    if (err instanceof CoverageError) return false;
    throw err;
  }
}

/** An element of `box` no part covers (the box's start when the search gives up: only used for the message). */
function firstGap(box: Region, parts: readonly Region[]): number[] {
  // Candidate corners: the box's start and, per dimension, every part's end.
  const candidates = box.offsets.map((o, d) =>
    [o, ...parts.map((p) => p.offsets[d]! + p.lengths[d]!)].filter((v) => v >= o && v < o + box.lengths[d]!),
  );
  const idx = candidates.map(() => 0);
  for (let tries = 0; tries < 10_000; tries++) {
    const at = idx.map((k, d) => candidates[d]![k]!);
    if (!parts.some((p) => at.every((v, d) => v >= p.offsets[d]! && v < p.offsets[d]! + p.lengths[d]!))) return at;
    let d = idx.length - 1;
    while (d >= 0 && ++idx[d]! >= candidates[d]!.length) idx[d--] = 0;
    if (d < 0) break;
  }
  return box.offsets;
}

interface Geometry {
  globalShape: number[];
  box: Region;
  shards: Region[];
}

/**
 * Merges each dimension that the box and every shard span whole into the one before it
 * (0-d becomes 1-d of one element): the walk then has as few rows as it can.
 */
export function coalesce(globalShape: readonly number[], box: Region, shards: readonly Region[]): Geometry {
  const g = globalShape.length === 0 ? [1] : [...globalShape];
  const copy = (r: Region): Region =>
    globalShape.length === 0 ? { offsets: [0], lengths: [1] } : { offsets: [...r.offsets], lengths: [...r.lengths] };
  const b = copy(box);
  const s = shards.map(copy);
  for (let d = g.length - 1; d >= 1; d--) {
    const whole = (r: Region) => r.offsets[d] === 0 && r.lengths[d] === g[d];
    if (!whole(b) || !s.every(whole)) continue;
    const n = g[d]!;
    for (const r of [b, ...s]) {
      r.offsets[d - 1]! *= n;
      r.lengths[d - 1]! *= n;
      r.offsets.splice(d, 1);
      r.lengths.splice(d, 1);
    }
    g[d - 1]! *= n;
    g.splice(d, 1);
  }
  return { globalShape: g, box: b, shards: s };
}

/**
 * The byte ranges of `shards` (regions of the global tensor, each stored row-major over its
 * lengths) that make up `box` in row-major order; consecutive ranges of one shard that
 * follow each other are merged. Throws CoverageError where the shards leave a gap or overlap.
 */
export function* segments(globalShape: readonly number[], box: Region, shards: readonly Region[], elementSize: number): Generator<Segment> {
  if (volume(box.lengths) === 0) return;
  const hits = shards.map((s, i) => ({ i, x: intersect(box, s) })).filter((h) => h.x !== undefined);
  const geo = coalesce(
    globalShape,
    box,
    hits.map((h) => shards[h.i]!),
  );
  const n = geo.globalShape.length;
  const last = n - 1;
  const parts = geo.shards.map((s, k) => {
    const x = intersect(geo.box, s)!;
    // Element strides of the shard's own row-major layout.
    const strides = new Array<number>(n);
    let st = 1;
    for (let d = last; d >= 0; d--) {
      strides[d] = st;
      st *= s.lengths[d]!;
    }
    return { shard: hits[k]!.i, region: s, x, strides };
  });
  const idx = geo.box.offsets.slice(0, last);
  const end = geo.box.offsets[last]! + geo.box.lengths[last]!;
  let pending: Segment | undefined;
  for (;;) {
    const row = parts.filter((p) => {
      for (let d = 0; d < last; d++) if (idx[d]! < p.x.offsets[d]! || idx[d]! >= p.x.offsets[d]! + p.x.lengths[d]!) return false;
      return true;
    });
    if (row.length > 1) row.sort((a, b) => a.x.offsets[last]! - b.x.offsets[last]!);
    let pos = geo.box.offsets[last]!;
    for (const p of row) {
      const start = p.x.offsets[last]!;
      if (start !== pos) throw new CoverageError(start > pos ? "gap" : "overlap", unmerge(box, [...idx, pos]));
      let element = start - p.region.offsets[last]!;
      for (let d = 0; d < last; d++) element += (idx[d]! - p.region.offsets[d]!) * p.strides[d]!;
      const from = element * elementSize;
      const bytes = p.x.lengths[last]! * elementSize;
      if (pending && pending.shard === p.shard && pending.from + pending.bytes === from) pending.bytes += bytes;
      else {
        if (pending) yield pending;
        pending = { shard: p.shard, from, bytes };
      }
      pos += p.x.lengths[last]!;
    }
    if (pos !== end) throw new CoverageError("gap", unmerge(box, [...idx, pos]));
    let d = last - 1;
    while (d >= 0 && ++idx[d]! >= geo.box.offsets[d]! + geo.box.lengths[d]!) {
      idx[d] = geo.box.offsets[d]!;
      d--;
    }
    if (d < 0) break;
  }
  if (pending) yield pending;
}

/** Coordinates of the walk in the tensor's own dimensions, or the box's start once dimensions were merged (for messages). */
function unmerge(box: Region, at: number[]): number[] {
  return at.length === box.offsets.length ? at : box.offsets;
}
