/**
 * Seeded generators for the fuzz suite: random request messages of any ckptd.v1 RPC
 * (walking the .proto types, so a new field is fuzzed the day it is added) and mutated
 * Save streams. The same seed gives the same cases, so a failure is replayed with
 * CKPTD_FUZZ_SEED=<seed>.
 */
import * as path from "node:path";
import protobuf from "protobufjs";
import { PROTO_FILES, PROTO_ROOT } from "../../wire/index.js";
import type { SaveRequestIn } from "../../wire/gen/ckptd/v1/SaveRequest.js";

/** mulberry32: small, fast, good enough to pick cases; not for anything secret. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/** Jobs the fuzzer may touch; the control job is never among them. */
export const FUZZ_JOBS = ["fuzz-a", "fuzz-b"];

const STRINGS = (rng: Rng): string =>
  rng.pick([
    "",
    "latest",
    "a",
    "m",
    "model",
    "ckpt-1",
    "../x",
    "../../etc/passwd",
    "a/b",
    ".hidden",
    "-dash",
    "nul\u0000byte",
    "__proto__",
    "constructor",
    "toString",
    "cuda:0",
    "cpu",
    "*",
    "ünïcödé",
    "x".repeat(129),
    "y".repeat(1025),
    "z".repeat(5000),
    ...FUZZ_JOBS,
  ]);

const INTS = [0, 1, 2, 3, -1, 7, 255, 65535, 65536, 65537, 2 ** 31 - 1, -(2 ** 31), 2 ** 32 - 1];
const LONGS = [...INTS, 2 ** 53 - 1, "9007199254740993", "18446744073709551615", "9223372036854775807", "-9223372036854775808"];
const DOUBLES = [0, -0, 1.5, -1, NaN, Infinity, -Infinity, 1e308, 5e-324];

let root: protobuf.Root | undefined;

/** The ckptd.v1 protos as protobufjs reflection (camelCase names, like the wire types). */
export function protoRoot(): protobuf.Root {
  if (!root) {
    root = new protobuf.Root();
    root.resolvePath = (_origin, target) => (target.startsWith("google/") ? target : path.join(PROTO_ROOT, target));
    root.loadSync(PROTO_FILES, { keepCase: false });
    root.resolveAll();
  }
  return root;
}

/** A random value of a message type, as proto-loader objects look (oneofs: one member set). */
export function randomMessage(rng: Rng, type: protobuf.Type, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const inOneof = new Set<string>();
  for (const oneof of type.oneofsArray) {
    // proto3 `optional` is a synthetic oneof of one field: treat it as a plain field.
    if (oneof.fieldsArray.length === 1 && oneof.name.startsWith("_")) continue;
    for (const f of oneof.fieldsArray) inOneof.add(f.name);
    if (rng.chance(0.9)) {
      const f = rng.pick(oneof.fieldsArray);
      out[f.name] = randomField(rng, f, depth);
    }
  }
  for (const f of type.fieldsArray) {
    if (inOneof.has(f.name) || rng.chance(0.25)) continue;
    out[f.name] = randomField(rng, f, depth);
  }
  return out;
}

/** Mostly plausible values for the fields that pick a job, checkpoint, item or evaluator, so cases reach deep code. */
function plausible(rng: Rng, name: string): string | undefined {
  if (rng.chance(0.3)) return undefined;
  if (name === "job") return rng.pick(FUZZ_JOBS);
  if (name === "checkpointId") return rng.pick(["c1", "c2", "c3", "latest", ""]);
  if (name === "item" || name === "items") return rng.pick(["m", "o"]);
  if (name === "evaluator" || name === "evaluators") return rng.pick(["e1", "e2"]);
  // Entry keys the fuzz jobs save, so boxes of Load reach the resharding planner.
  if (name === "key") return rng.pick(["w", "o", "empty"]);
  return undefined;
}

function randomField(rng: Rng, f: protobuf.Field, depth: number): unknown {
  if (f.type === "string" && !(f instanceof protobuf.MapField)) {
    const p = plausible(rng, f.name);
    if (p !== undefined) return f.repeated ? [p] : p;
  }
  if (f instanceof protobuf.MapField) {
    const n = rng.chance(0.02) ? 1100 : rng.int(4);
    const m: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) m[n > 4 ? `k${i}` : STRINGS(rng)] = randomScalar(rng, f.type, f.resolvedType, depth);
    return m;
  }
  if (f.repeated) {
    const n = rng.chance(0.02) ? 4100 : rng.int(4);
    // A huge repeated field holds the cheapest valid value of its type, so the client can still serialize it.
    const filler = f.resolvedType instanceof protobuf.Type ? {} : f.type === "string" ? "x" : f.type === "bool" ? true : 1;
    return Array.from({ length: n }, () => (n > 4 ? filler : randomScalar(rng, f.type, f.resolvedType, depth)));
  }
  return randomScalar(rng, f.type, f.resolvedType, depth);
}

function randomScalar(rng: Rng, type: string, resolved: protobuf.Type | protobuf.Enum | null, depth: number): unknown {
  if (resolved instanceof protobuf.Enum) return rng.pick(Object.keys(resolved.values));
  if (resolved instanceof protobuf.Type) {
    if (resolved.fullName === ".google.protobuf.Timestamp") return { seconds: rng.pick(LONGS), nanos: rng.pick(INTS) };
    return depth > 3 ? {} : randomMessage(rng, resolved, depth + 1);
  }
  switch (type) {
    case "string":
      return STRINGS(rng);
    case "bool":
      return rng.chance(0.5);
    case "bytes":
      return rng.bytes(rng.pick([0, 1, 16, 1000]));
    case "double":
    case "float":
      return rng.pick(DOUBLES);
    case "int64":
    case "uint64":
    case "sint64":
    case "fixed64":
    case "sfixed64":
      return rng.pick(LONGS);
    default: {
      const v = rng.pick(INTS);
      return type.startsWith("u") || type.startsWith("fixed") ? Math.abs(v) : v;
    }
  }
}

/** What can be done to a valid Save stream. */
export type Mutation = "none" | "drop" | "duplicate" | "swap" | "replace" | "corrupt" | "truncate" | "cancel" | "sizes" | "header";

export const MUTATIONS: readonly Mutation[] = [
  "none",
  "drop",
  "duplicate",
  "swap",
  "replace",
  "corrupt",
  "truncate",
  "cancel",
  "sizes",
  "header",
];

/** Applies one mutation to a copy of `stream`; `cancelAt` says where a cancel happens. */
export function mutateStream(
  rng: Rng,
  stream: SaveRequestIn[],
  mutation: Mutation,
): { messages: SaveRequestIn[]; cancelAt?: number; end: boolean } {
  const m = stream.map((x) => ({ ...x }));
  const at = () => rng.int(m.length);
  const saveRequest = protoRoot().lookupType("ckptd.v1.SaveRequest");
  switch (mutation) {
    case "none":
      break;
    case "drop":
      m.splice(at(), 1);
      break;
    case "duplicate": {
      const i = at();
      m.splice(i, 0, m[i]!);
      break;
    }
    case "swap": {
      const [i, j] = [at(), at()];
      [m[i], m[j]] = [m[j]!, m[i]!];
      break;
    }
    case "replace":
      m[at()] = randomMessage(rng, saveRequest) as SaveRequestIn;
      break;
    case "corrupt": {
      const chunks = m.flatMap((x, i) => (x.chunk?.data ? [i] : []));
      if (chunks.length === 0) break;
      const i = rng.pick(chunks);
      const data = Buffer.from(m[i]!.chunk!.data as Buffer);
      if (data.length > 0) data[rng.int(data.length)]! ^= 1 << rng.int(8);
      m[i] = { chunk: { ...m[i]!.chunk, data } };
      break;
    }
    case "truncate":
      return { messages: m.slice(0, at()), end: rng.chance(0.5) };
    case "cancel":
      return { messages: m, cancelAt: at(), end: false };
    case "sizes": {
      const entries = m.flatMap((x, i) => (x.entry ? [i] : []));
      if (entries.length === 0) break;
      const i = rng.pick(entries);
      const huge = rng.pick(LONGS);
      m[i] = rng.chance(0.5)
        ? { entry: { key: "t", tensor: { dtype: "DTYPE_FLOAT32", shape: [huge as number, rng.pick(INTS)] } } }
        : { entry: { key: "o", object: { sizeBytes: huge as number, format: "pickle" } } };
      break;
    }
    case "header": {
      const h = { ...m[0]!.header! };
      const field = rng.pick(["job", "checkpointId", "item", "rank", "worldSize", "step"] as const);
      if (field === "job" || field === "checkpointId" || field === "item") (h as Record<string, unknown>)[field] = STRINGS(rng);
      else (h as Record<string, unknown>)[field] = rng.pick(LONGS);
      m[0] = { header: h };
      break;
    }
  }
  return { messages: m, end: true };
}
