/**
 * What a client may send, bounded at the edge. Every request message of every RPC is
 * walked once before its handler runs (rpc/handler.ts does it for every method), and every
 * message of a client stream as it arrives, so no string, repeated field or map a client
 * controls can make the daemon copy, log, store or echo an unbounded amount, whatever
 * the handler does with it later.
 * Field-specific rules (names, ranks, sizes) are checked where the field is used; these
 * are the ceilings under all of them. The README's "Limits" table lists them.
 */
import { invalidArgument } from "./errors.js";
import { checkName } from "./names.js";

export const LIMITS = {
  /** Any string field not named below (names have their own, smaller limit of 128). */
  stringChars: 1024,
  /** Free text and paths: an abort reason, a report's message, a shared-memory path, an entry key. */
  longStringChars: 4096,
  /** Any repeated field: items of a vote, devices, evaluators, shape dimensions, ... */
  repeatedCount: 4096,
  /** The boxes of one resharded Load (each box's own lists have the limit above). */
  boxes: 1 << 16,
  /** Any map: map_location, a report's metrics. */
  mapEntries: 1024,
  /** How much of a client's string an error message repeats. */
  echoChars: 80,
} as const;

/** Fields allowed LIMITS.longStringChars (camelCase, as the wire types name them). */
const LONG_STRING_FIELDS = new Set(["reason", "message", "sharedMemoryPath", "key", "format"]);

/**
 * Throws INVALID_ARGUMENT naming the first field over its limit. Bytes fields are bounded
 * by the message size limit and not walked; nested messages are, to any depth.
 */
export function checkBounds(value: unknown, field = "request"): void {
  walk(value, lastName(field), () => field);
}

/**
 * checkBounds of one value: `name` is its field's wire name (for the string limits), and
 * `where` spells its path, called only for an error message: a batch of a thousand entry
 * headers is walked on every Save, and building each path up front cost more than the check.
 */
function walk(value: unknown, name: string, where: () => string): void {
  if (typeof value === "string") {
    const max = LONG_STRING_FIELDS.has(name) ? LIMITS.longStringChars : LIMITS.stringChars;
    if (value.length > max) throw invalidArgument(`${where()} is ${value.length} characters long; at most ${max} are allowed`);
    return;
  }
  if (typeof value !== "object" || value === null || Buffer.isBuffer(value) || value instanceof Uint8Array) return;
  if (Array.isArray(value)) {
    const max = name === "boxes" ? LIMITS.boxes : LIMITS.repeatedCount;
    if (value.length > max) throw invalidArgument(`${where()} has ${value.length} values; at most ${max} are allowed`);
    for (let i = 0; i < value.length; i++) walk(value[i], name, () => `${where()}[${i}]`);
    return;
  }
  // Messages have a handful of fields; only a map can have more keys than the map limit.
  const keys = Object.keys(value);
  if (keys.length > LIMITS.mapEntries)
    throw invalidArgument(`${where()} has ${keys.length} entries; at most ${LIMITS.mapEntries} are allowed`);
  for (const k of keys) {
    if (k.length > LIMITS.stringChars)
      throw invalidArgument(`a key of ${where()} is ${k.length} characters long; at most ${LIMITS.stringChars} are allowed`);
    walk((value as Record<string, unknown>)[k], k, () => `${where()}.${snake(k)}`);
  }
}

/** A client's string as an error message may quote it: JSON-quoted, cut to LIMITS.echoChars. */
export function quote(value: string): string {
  if (value.length <= LIMITS.echoChars) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, LIMITS.echoChars))}… (${value.length} characters)`;
}

function lastName(field: string): string {
  const dot = field.lastIndexOf(".");
  const name = dot < 0 ? field : field.slice(dot + 1);
  return name.replace(/\[\d+\]$/, "").replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function snake(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The default of --max-world-size. */
export const DEFAULT_MAX_WORLD_SIZE = 65_536;

/** The identity fields of a Save header or a vote, checked before anything is opened or allocated for them. */
export function checkRef(
  ref: { job: string; checkpointId: string; step: number; rank: number; worldSize: number },
  maxWorldSize: number,
): void {
  checkName("job", ref.job);
  checkName("checkpoint_id", ref.checkpointId);
  if (ref.checkpointId === "latest") throw invalidArgument(`checkpoint_id 'latest' is reserved; name the checkpoint after its step`);
  if (!Number.isSafeInteger(ref.worldSize) || ref.worldSize < 1 || ref.worldSize > maxWorldSize)
    throw invalidArgument(
      `world_size ${ref.worldSize} is out of range for rank ${ref.rank}: it must be between 1 and ${maxWorldSize} (--max-world-size)`,
    );
  if (!Number.isSafeInteger(ref.rank) || ref.rank < 0 || ref.rank >= ref.worldSize)
    throw invalidArgument(`rank ${ref.rank} is out of range for world_size ${ref.worldSize}`);
  if (!Number.isSafeInteger(ref.step) || ref.step < 0) throw invalidArgument(`step ${ref.step} must be a non-negative integer`);
}

/**
 * The ranks in [0, worldSize) not in `present`, as ranges ("0-3, 7, 9-4095"), at most
 * `maxRanges` of them, computed from the ranks present: never one value per rank of a
 * world that did not show up.
 */
export function missingRanks(worldSize: number, present: Iterable<number>, maxRanges = 8): string {
  const sorted = [...present].filter((r) => r >= 0 && r < worldSize).sort((a, b) => a - b);
  const ranges: string[] = [];
  let missing = 0;
  let next = 0;
  for (const r of [...sorted, worldSize]) {
    if (r > next) {
      missing += r - next;
      if (ranges.length < maxRanges) ranges.push(r - 1 === next ? `${next}` : `${next}-${r - 1}`);
    }
    next = Math.max(next, r + 1);
  }
  const more = ranges.length === maxRanges && missing > 0 ? ", …" : "";
  return `${ranges.join(", ")}${more} (${missing} of ${worldSize})`;
}
