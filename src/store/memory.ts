/**
 * MemoryStorage: a Storage in memory, for unit tests only. It keeps what was made
 * durable apart from what was merely written, so `crash()` can show what a restart
 * would find, and it injects faults (`failPut`: the Nth durable write, a put or an append,
 * fails with ENOSPC and writes nothing).
 *
 * Durability model: put, append, createPrefix and publish are durable when they resolve;
 * move, delete and deletePrefix become durable with syncList of the parent they changed;
 * `write` (a staged data file, as the item writer leaves it) is durable only after
 * `sync`. The lock is per `name`: two MemoryStorages with the same name refuse each other.
 */
import { isRankDirName, joinKey, layout, MANIFEST_NAME, parentKey } from "./layout.js";
import { lockedBy, sliceRange, type ObjectStat, type ObjectWriter, type PublishRequest, type Storage } from "./storage.js";

interface State {
  objects: Map<string, Buffer>;
  prefixes: Set<string>;
}

function copy(s: State): State {
  return { objects: new Map(s.objects), prefixes: new Set(s.prefixes) };
}

function under(key: string, prefix: string): boolean {
  return prefix === "" || key === prefix || key.startsWith(`${prefix}/`);
}

function errno(code: string, message: string): Error {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

const held = new Set<string>();

export class MemoryStorage implements Storage {
  private live: State = { objects: new Map(), prefixes: new Set() };
  private durable: State = { objects: new Map(), prefixes: new Set() };
  /** Names changed by move/delete since the last syncList of their parent. */
  private unsynced = new Set<string>();
  private puts = 0;
  private failing: { at: number; code: string } | undefined;
  private locked = false;
  /** Keys a create is writing. */
  private readonly creating = new Set<string>();
  /** Every operation, in order ("put jobs/j/…"): tests assert what happened before what. */
  readonly journal: string[] = [];

  /**
   * @param publishInPlace publish as an object store does: the manifest is written to
   *   checkpoints/<id>/ and the data stays in the attempt's staging (dataPrefix), nothing moved.
   */
  constructor(
    readonly name = "memory",
    readonly publishInPlace = false,
  ) {}

  /** The `nth` durable write (put or append) from now (1 = the next) fails with `code` (ENOSPC by default). */
  failPut(nth: number, code = "ENOSPC"): void {
    this.failing = { at: this.puts + nth, code };
  }

  /** What a restart finds after a crash now: a new storage with only what was durable (unlocked). */
  crash(): MemoryStorage {
    const after = new MemoryStorage(this.name, this.publishInPlace);
    after.live = copy(this.durable);
    after.durable = copy(this.durable);
    if (this.locked) held.delete(this.name);
    this.locked = false;
    return after;
  }

  /** Writes a staged data file (not durable until `sync`), as the item writer does through its file handles. */
  write(key: string, data: Buffer): void {
    this.journal.push(`write ${key}`);
    this.live.objects.set(key, Buffer.from(data));
    this.unsynced.add(key);
  }

  /** Makes written data files under `prefix` durable. */
  sync(prefix: string): void {
    for (const [k, v] of this.live.objects) if (under(k, prefix)) this.durable.objects.set(k, v);
    for (const p of this.live.prefixes) if (under(p, prefix)) this.durable.prefixes.add(p);
  }

  where(key: string): string {
    return `memory:${this.name}/${key}`;
  }

  lock(): void {
    if (this.locked) return;
    if (held.has(this.name)) throw lockedBy(this.where(""), undefined);
    held.add(this.name);
    this.locked = true;
  }

  unlock(): void {
    if (this.locked) held.delete(this.name);
    this.locked = false;
  }

  async put(key: string, data: string | Buffer): Promise<void> {
    await Promise.resolve();
    this.journal.push(`put ${key}`);
    this.puts++;
    if (this.failing && this.puts >= this.failing.at) {
      const { code } = this.failing;
      if (this.puts === this.failing.at) this.failing = undefined;
      throw errno(code, `put ${key}`);
    }
    const bytes = Buffer.from(data);
    this.live.objects.set(key, bytes);
    this.durable.objects.set(key, bytes);
    this.addParents(key, true);
  }

  async create(key: string, data: string | Buffer): Promise<boolean> {
    await Promise.resolve();
    if (this.live.objects.has(key) || this.creating.has(key)) {
      this.journal.push(`create ${key} (exists)`);
      return false;
    }
    // Taken from the check on, so a racing create loses even before this put lands.
    this.creating.add(key);
    try {
      await this.put(key, data);
    } finally {
      this.creating.delete(key);
    }
    return true;
  }

  async get(key: string): Promise<Buffer | undefined> {
    await Promise.resolve();
    const b = this.live.objects.get(key);
    return b && Buffer.from(b);
  }

  async getRange(key: string, offset: number, length: number, into?: Buffer): Promise<Buffer | undefined> {
    return sliceRange(await this.get(key), offset, length, into);
  }

  /** Gathers the object's bytes; `finish` writes it and makes it durable (as a data file's fsync does). */
  createObjectWriter(key: string, _options?: { sizeHint?: number }): ObjectWriter {
    const parts: Buffer[] = [];
    return {
      write: async (data) => {
        await Promise.resolve();
        parts.push(Buffer.from(data));
      },
      finish: async () => {
        await Promise.resolve();
        this.write(key, Buffer.concat(parts));
        this.addParents(key, false);
        this.sync(key);
      },
      abort: async () => {
        parts.length = 0;
        await this.delete(key);
      },
    };
  }

  dataPrefix(job: string, checkpointId: string, attempt: number): string {
    return this.publishInPlace ? layout.staging(job, checkpointId, attempt) : layout.checkpoint(job, checkpointId);
  }

  async stat(key: string): Promise<ObjectStat | undefined> {
    await Promise.resolve();
    const b = this.live.objects.get(key);
    if (b) return { kind: "object", size: b.length };
    if (this.live.prefixes.has(key)) return { kind: "prefix", size: 0 };
    for (const k of this.live.objects.keys()) if (k.startsWith(`${key}/`)) return { kind: "prefix", size: 0 };
    return undefined;
  }

  async list(prefix: string, options?: { prefixesOnly?: boolean }): Promise<string[]> {
    await Promise.resolve();
    const names = new Set<string>();
    const start = prefix === "" ? "" : `${prefix}/`;
    for (const k of this.live.objects.keys()) {
      if (!k.startsWith(start)) continue;
      const rest = k.slice(start.length);
      const slash = rest.indexOf("/");
      if (slash >= 0) names.add(rest.slice(0, slash));
      else if (!options?.prefixesOnly) names.add(rest);
    }
    for (const p of this.live.prefixes) {
      if (!p.startsWith(start)) continue;
      const rest = p.slice(start.length);
      names.add(rest.split("/")[0]!);
    }
    return [...names].sort();
  }

  async delete(key: string): Promise<void> {
    await Promise.resolve();
    this.journal.push(`delete ${key}`);
    this.live.objects.delete(key);
    this.unsynced.add(key);
  }

  async deletePrefix(prefix: string): Promise<void> {
    await Promise.resolve();
    this.journal.push(`deletePrefix ${prefix}`);
    for (const k of [...this.live.objects.keys()]) if (under(k, prefix)) this.live.objects.delete(k);
    for (const p of [...this.live.prefixes]) if (under(p, prefix)) this.live.prefixes.delete(p);
    this.unsynced.add(prefix);
  }

  async createPrefix(prefix: string): Promise<void> {
    await Promise.resolve();
    this.journal.push(`createPrefix ${prefix}`);
    this.live.prefixes.add(prefix);
    this.durable.prefixes.add(prefix);
    this.addParents(prefix, true);
  }

  async move(from: string, to: string): Promise<void> {
    await Promise.resolve();
    this.journal.push(`move ${from} ${to}`);
    if (!(await this.stat(from))) throw errno("ENOENT", `move ${from}`);
    for (const [k, v] of [...this.live.objects]) {
      if (!under(k, from)) continue;
      this.live.objects.delete(k);
      this.live.objects.set(to + k.slice(from.length), v);
    }
    for (const p of [...this.live.prefixes]) {
      if (!under(p, from)) continue;
      this.live.prefixes.delete(p);
      this.live.prefixes.add(to + p.slice(from.length));
    }
    this.addParents(to, false);
    this.unsynced.add(from).add(to);
  }

  async syncList(prefix: string): Promise<void> {
    await Promise.resolve();
    this.journal.push(`syncList ${prefix}`);
    for (const name of [...this.unsynced]) {
      if (parentKey(name) !== prefix) continue;
      this.unsynced.delete(name);
      for (const k of [...this.durable.objects.keys()]) if (under(k, name)) this.durable.objects.delete(k);
      for (const p of [...this.durable.prefixes]) if (under(p, name)) this.durable.prefixes.delete(p);
      for (const [k, v] of this.live.objects) if (under(k, name)) this.durable.objects.set(k, v);
      for (const p of this.live.prefixes) if (under(p, name)) this.durable.prefixes.add(p);
    }
  }

  async publish({ job, checkpointId: id, attempt, manifest, keep }: PublishRequest): Promise<void> {
    await Promise.resolve();
    this.journal.push(`publish ${layout.staging(job, id, attempt)}`);
    const staging = layout.staging(job, id, attempt);
    const target = layout.checkpoint(job, id);
    if (this.live.objects.has(joinKey(target, MANIFEST_NAME))) return;
    for (const rankDir of await this.list(staging)) {
      if (!isRankDirName(rankDir)) {
        if (rankDir !== MANIFEST_NAME) await this.deletePrefix(joinKey(staging, rankDir));
        continue;
      }
      for (const item of await this.list(joinKey(staging, rankDir)))
        if (!keep.has(joinKey(rankDir, item))) await this.deletePrefix(joinKey(staging, rankDir, item));
    }
    if (this.publishInPlace) return this.put(layout.manifest(job, id), manifest);
    await this.put(joinKey(staging, MANIFEST_NAME), manifest);
    // The rename and both directories' fsyncs, as one durable step.
    await this.move(staging, target);
    await this.syncList(layout.checkpoints(job));
    await this.syncList(layout.stagingRoot(job));
  }

  async append(key: string, bytes: Buffer, at: number, beforeWrite?: () => void): Promise<number> {
    await Promise.resolve();
    this.journal.push(`append ${key}`);
    const old = this.live.objects.get(key) ?? Buffer.alloc(0);
    beforeWrite?.();
    this.puts++;
    if (this.failing && this.puts >= this.failing.at) {
      const { code } = this.failing;
      if (this.puts === this.failing.at) this.failing = undefined;
      throw errno(code, `append ${key}`);
    }
    const next = Buffer.concat([old.subarray(0, at), bytes]);
    this.live.objects.set(key, next);
    this.durable.objects.set(key, next);
    this.addParents(key, true);
    return at + bytes.length;
  }

  async truncate(key: string, size: number): Promise<void> {
    await Promise.resolve();
    const old = this.live.objects.get(key);
    if (!old) throw errno("ENOENT", `truncate ${key}`);
    const next = old.subarray(0, size);
    this.live.objects.set(key, next);
    this.durable.objects.set(key, next);
  }

  private addParents(key: string, durable: boolean): void {
    for (let p = parentKey(key); p !== ""; p = parentKey(p)) {
      this.live.prefixes.add(p);
      if (durable) this.durable.prefixes.add(p);
    }
  }
}
