/**
 * CheckpointEngine: DeepSpeed's CheckpointEngine interface over ckptd.
 *
 * Call order, per rank: `create(tag)` → `save(stateDict, path)` × N → `commit(tag)`;
 * then, in a later run, `load(path)`. Every rank of the job does the same with the same
 * tag; the checkpoint becomes visible once all of them have committed.
 *
 * State dicts are nested plain objects. Nested keys are flattened into entry keys joined
 * with `/` (`{layers: {0: {weight}}}` → `layers/0/weight`) and unflattened on load, so a
 * key must not contain `/`. Leaves are stored as:
 *  - a {@link Tensor} → a tensor entry (dtype, shape, device);
 *  - a `Uint8Array`/`Buffer` → an object entry of format `bytes` (loaded as a `Buffer`);
 *  - anything else JSON can represent (numbers, strings, booleans, null, arrays and
 *    objects without tensors or bytes inside, an empty object) → an object entry of
 *    format `json` (loaded with `JSON.parse`). `undefined` values are skipped, as JSON does.
 * Arrays are JSON leaves, so an array must not contain tensors or bytes (use an object
 * keyed by index instead, as PyTorch optimizers do for their state).
 */
import * as path from "node:path";
import { CkptdClient, type SaveEntry } from "./client.js";
import { CheckpointAbortedError, Code, CkptdError } from "./errors.js";
import type { Checkpoint } from "../../../wire/gen/ckptd/v1/Checkpoint.js";
import { isTensor, type Tensor } from "./tensor.js";

/** A JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A leaf or nested dict of a state dict. */
export type StateValue = Tensor | Uint8Array | JsonValue | StateDict | undefined;

/** A nested state dict, as `model.state_dict()` or `optimizer.state_dict()` would be. */
export interface StateDict {
  [key: string]: StateValue;
}

/** Options of {@link CheckpointEngine}. */
export interface CheckpointEngineOptions {
  /** A client to use (shared, not closed by the engine); give this or `address`. */
  client?: CkptdClient;
  /** The daemon's address; the engine then owns its client and {@link CheckpointEngine.close} closes it. */
  address?: string;
  /** The job, the namespace of its checkpoints. */
  job: string;
  /** This process's rank, in [0, worldSize). */
  rank: number;
  /** Number of ranks of the job. */
  worldSize: number;
  /** This process's index on its node, used to pick its device on load. @default 0 */
  localRank?: number;
  /** This process's devices, e.g. `cuda:0` … `cuda:7`; empty for CPU only. @default [] */
  devices?: readonly string[];
  /** Deadline of each item's save, in ms. @default none */
  saveDeadlineMs?: number;
  /** How long a commit waits for the decision, in ms. @default none (the daemon's prepare timeout bounds it) */
  commitTimeoutMs?: number;
  /** Deadline of each load, in ms. @default none */
  loadDeadlineMs?: number;
}

/** A checkpoint this rank has begun and not yet committed. */
interface PendingCheckpoint {
  step: number;
  items: Set<string>;
  /** The attempt the daemon staged the items into (from the last SaveResponse). */
  attempt: number;
}

/**
 * A rank's checkpoint engine. One instance per rank; the methods of one tag are called
 * in order (saves of different items may run concurrently).
 */
export class CheckpointEngine {
  /** The client the engine calls. */
  readonly client: CkptdClient;
  readonly job: string;
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly devices: readonly string[];
  /** The summary of the last checkpoint this engine committed. */
  lastCommitted: Checkpoint | undefined;

  private readonly ownsClient: boolean;
  private readonly pending = new Map<string, PendingCheckpoint>();
  private currentTag: string | undefined;
  private readonly options: CheckpointEngineOptions;

  constructor(options: CheckpointEngineOptions) {
    if (options.client && options.address !== undefined) throw new TypeError("give either client or address, not both");
    if (options.client) {
      this.client = options.client;
      this.ownsClient = false;
    } else if (options.address !== undefined) {
      this.client = new CkptdClient(options.address);
      this.ownsClient = true;
    } else {
      throw new TypeError("give a client or an address");
    }
    this.options = options;
    this.job = options.job;
    this.rank = options.rank;
    this.worldSize = options.worldSize;
    this.localRank = options.localRank ?? 0;
    this.devices = [...(options.devices ?? [])];
    this.lastCommitted = undefined;
  }

  /**
   * Begins checkpoint `tag` on this rank. Saves that follow go into it.
   * @param step the training step; by default the last number in the tag (`global_step1000` → 1000), else 0
   */
  create(tag: string, step?: number): void {
    this.pending.set(tag, { step: step ?? stepOfTag(tag), items: new Set(), attempt: 0 });
    this.currentTag = tag;
  }

  /**
   * Saves one item of the current checkpoint: the state dict under the item named by
   * `path`'s basename (`/ckpt/global_step10/mp_rank_00_model_states.pt` → item
   * `mp_rank_00_model_states.pt`). The checkpoint is the one named by `path`'s directory
   * when that is a created tag, else the last created one. Tensor bytes are streamed
   * from the caller's memory: do not modify them until the returned promise settles.
   */
  async save(stateDict: StateDict, savePath: string): Promise<void> {
    const item = path.posix.basename(stripTrailingSlashes(savePath));
    if (!item) throw new CkptdError(Code.INVALID_ARGUMENT, `save path ${JSON.stringify(savePath)} names no item`);
    const tag = this.tagOfSavePath(savePath);
    const pending = this.pending.get(tag);
    if (!pending)
      throw new CkptdError(Code.FAILED_PRECONDITION, `checkpoint ${tag} was not created on rank ${this.rank}: call create(tag) first`);
    // Flattening up front surfaces a bad state dict before any byte is sent.
    const entries = flattenStateDict(stateDict);
    const res = await this.client.save(
      { job: this.job, checkpointId: tag, step: pending.step, rank: this.rank, worldSize: this.worldSize, item, entries },
      this.options.saveDeadlineMs === undefined ? {} : { deadlineMs: this.options.saveDeadlineMs },
    );
    pending.items.add(item);
    // Items of an earlier, aborted attempt are gone; voting with the newest attempt makes
    // the daemon abort again (naming the missing item) instead of mixing two attempts.
    pending.attempt = Math.max(pending.attempt, res.attempt);
  }

  /**
   * Votes for checkpoint `tag` with the items saved since `create(tag)`, and waits for
   * the decision. Returns true when committed; throws {@link CheckpointAbortedError} when
   * the decision is ABORTED (the tag may then be created and saved again).
   */
  async commit(tag: string): Promise<boolean> {
    const pending = this.pending.get(tag);
    if (!pending)
      throw new CkptdError(Code.FAILED_PRECONDITION, `checkpoint ${tag} was not created on rank ${this.rank}: call create(tag) first`);
    const res = await this.client.commit(
      {
        job: this.job,
        checkpointId: tag,
        step: pending.step,
        rank: this.rank,
        worldSize: this.worldSize,
        items: [...pending.items],
        attempt: pending.attempt,
      },
      this.options.commitTimeoutMs === undefined ? {} : { timeoutMs: this.options.commitTimeoutMs },
    );
    // Either way the decision is final for this attempt: a retry starts with create(tag).
    this.pending.delete(tag);
    if (this.currentTag === tag) this.currentTag = undefined;
    if (res.outcome === "ABORTED") throw new CheckpointAbortedError(this.job, tag, res.reason, res.attempt);
    this.lastCommitted = res.checkpoint;
    return true;
  }

  /**
   * Loads one item of this rank and returns it as a nested state dict. `path` is
   * `tag/item`, or the full path used for save (the tag is its directory's name), or
   * just `item` for the latest committed checkpoint. Tensors come back with `device` set
   * to the daemon's target device for this rank's devices, unless `mapLocation` (saved
   * device → target, `*` for all, or one device for everything) says otherwise.
   */
  async load(loadPath: string, mapLocation?: string | Readonly<Record<string, string>>): Promise<StateDict> {
    const { tag, item } = parseLoadPath(loadPath);
    const loaded = await this.client.loadItems(
      {
        job: this.job,
        checkpointId: tag,
        rank: this.rank,
        // A job restarted with another world size gets FAILED_PRECONDITION for an item of shards, never another rank's shard.
        worldSize: this.worldSize,
        localRank: this.localRank,
        devices: this.devices,
        mapLocation: typeof mapLocation === "string" ? { "*": mapLocation } : (mapLocation ?? {}),
        items: [item],
      },
      this.options.loadDeadlineMs === undefined ? {} : { deadlineMs: this.options.loadDeadlineMs },
    );
    const entries = loaded.items.get(item);
    if (!entries) {
      const ckpt = loaded.plan.checkpoint?.checkpointId ?? tag;
      throw new CkptdError(Code.NOT_FOUND, `checkpoint ${this.job}/${ckpt} has no item ${item} for rank ${this.rank}`);
    }
    const dict: StateDict = {};
    for (const [key, entry] of entries) {
      let value: StateValue;
      if (entry.kind === "tensor") value = entry.tensor;
      else if (entry.format === "json") value = JSON.parse(entry.data.toString("utf8")) as JsonValue;
      else value = entry.data;
      setPath(dict, key, value);
    }
    return dict;
  }

  /** No-op: ckptd has no directories to make. Kept for DeepSpeed's interface. */
  makedirs(_path?: string, _existOk?: boolean): void {}

  /** Closes the client if the engine created it. */
  close(): void {
    if (this.ownsClient) this.client.close();
  }

  private tagOfSavePath(savePath: string): string {
    const dir = path.posix.basename(path.posix.dirname(stripTrailingSlashes(savePath)));
    if (this.pending.has(dir)) return dir;
    if (this.currentTag === undefined)
      throw new CkptdError(Code.FAILED_PRECONDITION, `no checkpoint was created on rank ${this.rank}: call create(tag) before save`);
    return this.currentTag;
  }
}

/** The last integer in a tag (`global_step1000` → 1000), else 0. */
export function stepOfTag(tag: string): number {
  const m = /(\d+)\D*$/.exec(tag);
  const n = m?.[1] === undefined ? 0 : Number(m[1]);
  return Number.isSafeInteger(n) ? n : 0;
}

/** Splits a load path into checkpoint id and item: `a/b/tag/item`, `tag/item`, or `item` (latest). */
export function parseLoadPath(loadPath: string): { tag: string; item: string } {
  const p = stripTrailingSlashes(loadPath);
  const item = path.posix.basename(p);
  if (!item) throw new CkptdError(Code.INVALID_ARGUMENT, `load path ${JSON.stringify(loadPath)} names no item`);
  const dir = path.posix.dirname(p);
  const tag = dir === "." || dir === "/" ? "latest" : path.posix.basename(dir);
  return { tag, item };
}

function stripTrailingSlashes(p: string): string {
  return p.length > 1 ? p.replace(/\/+$/, "") : p;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * The entries of a state dict, flattened with `/`. A list, not a generator: the whole
 * dict is checked before the save starts, and it only holds references, not bytes.
 */
export function flattenStateDict(dict: StateDict): SaveEntry[] {
  const out: SaveEntry[] = [];
  const walk = (obj: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(obj)) {
      if (k === "" || k.includes("/")) {
        throw new CkptdError(
          Code.INVALID_ARGUMENT,
          `state dict key ${JSON.stringify(prefix + k)}: keys must be non-empty and must not contain "/" (it separates nested keys)`,
        );
      }
      const key = prefix + k;
      if (v === undefined) continue;
      if (isTensor(v)) out.push({ key, tensor: v });
      else if (v instanceof Uint8Array) out.push({ key, object: { data: v, format: "bytes" } });
      else if (isPlainObject(v) && Object.keys(v).length > 0) walk(v, key + "/");
      else out.push({ key, object: { data: jsonBytes(key, v), format: "json" } });
    }
  };
  walk(dict, "");
  return out;
}

function jsonBytes(key: string, v: unknown): Buffer {
  let text: string | undefined;
  try {
    text = JSON.stringify(v, function (this: unknown, k: string, inner: unknown) {
      // `inner` is already the result of toJSON (a Buffer arrives as {type, data}); check the raw value.
      const raw: unknown = (this as Record<string, unknown>)[k];
      if (isTensor(raw) || ArrayBuffer.isView(raw)) throw new Error("it holds a tensor or bytes inside an array or non-plain object");
      return inner;
    });
  } catch (err) {
    throw new CkptdError(
      Code.INVALID_ARGUMENT,
      `state dict value at ${key} is not JSON-serialisable: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  if (text === undefined) throw new CkptdError(Code.INVALID_ARGUMENT, `state dict value at ${key} (${typeof v}) is not JSON-serialisable`);
  return Buffer.from(text, "utf8");
}

function setPath(dict: StateDict, key: string, value: StateValue): void {
  const parts = key.split("/");
  const last = parts.pop()!;
  let node: StateDict = dict;
  for (const part of parts) {
    const next = node[part];
    if (isPlainObject(next) && !isTensor(next)) {
      node = next as StateDict;
    } else {
      const created: StateDict = {};
      node[part] = created;
      node = created;
    }
  }
  node[last] = value;
}
