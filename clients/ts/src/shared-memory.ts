/**
 * Shared-memory data path of saves and loads to the daemon on this node (the SaveShared and LoadShared RPCs).
 *
 * Instead of sending a chunk's bytes on the gRPC stream, the client copies them into a
 * slot of a ring file in the daemon's shared-memory directory (tmpfs, `/dev/shm`) and
 * sends a SharedChunk naming the slot. The daemon copies the slot out and reports the
 * bytes it released, and the slot is reused. That skips gRPC's framing, HTTP/2 flow
 * control and the copies on both sides.
 *
 * Loads go the other way (the LoadShared RPC): the daemon writes each chunk into a slot
 * of the client's ring file, sends a SharedChunk naming it, and the client reads the bytes
 * straight into the entry's buffer and reports them released.
 *
 * Each save or load creates its own ring (slots × slot bytes, 32 MiB by default). Node
 * cannot make a memfd without a native addon, so by default the ring is an unnamed file:
 * the client creates `ckptd-ring-<token>` in the directory (the token: 128 random bits)
 * and removes the name in the very next system call, before anything else, then sizes
 * it and names it to the daemon by a handle, (pid, descriptor, token): the daemon reopens
 * /proc/<pid>/fd/<fd> and checks it is that unnamed file. Only a kill between those two
 * calls can leave the name behind; from then on the memory goes back to the system once
 * both processes closed the file or died, whatever happens to either of them.
 *
 * A daemon that refuses handles (another PID namespace, say) or predates them gets a
 * named ring file instead, `ckptd-<purpose>-<pid>-<random>`, whose name the client
 * removes once the daemon has opened it.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { promisify } from "node:util";
import { MAX_CHUNK_BYTES } from "../../../wire/index.js";

const pwrite = promisify(fs.write) as (
  fd: number,
  buffer: Uint8Array,
  offset: number,
  length: number,
  position: number,
) => Promise<{ bytesWritten: number }>;
const pread = promisify(fs.read) as (
  fd: number,
  buffer: Uint8Array,
  offset: number,
  length: number,
  position: number,
) => Promise<{ bytesRead: number }>;
const close = promisify(fs.close);

/** Marker in the daemon's FAILED_PRECONDITION message when it cannot use a client's file. */
export const SHARED_MEMORY_UNAVAILABLE = "shared memory unavailable";
/** Where saves to a local daemon put their bytes (the daemon's `--shared-memory-dir` default). */
export const DEFAULT_SHARED_MEMORY_DIR = "/dev/shm";
/** Slots of one ring, in chunks. */
export const RING_SLOTS = 8;

/** True for a loopback TCP address or a Unix socket: a daemon on this node. */
export function isLocalAddress(address: string): boolean {
  if (address.startsWith("unix:") || address.startsWith("unix-abstract:")) return true;
  let host = address;
  for (const scheme of ["dns:///", "ipv4:", "ipv6:"]) {
    if (host.startsWith(scheme)) {
      host = host.slice(scheme.length);
      break;
    }
  }
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    host = end < 0 ? host : host.slice(1, end);
  } else if (host.split(":").length === 2) {
    host = host.slice(0, host.lastIndexOf(":"));
  }
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

/** True when `dir` exists and is a directory. */
export function isDirectory(dir: string): boolean {
  try {
    return fs.statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/** How a SaveHeader or LoadSharedStart names an unnamed ring (SharedMemoryHandle). */
export interface RingHandle {
  readonly pid: number;
  readonly fd: number;
  readonly token: string;
}

/** An open ring file: its path while it has a name, its descriptor, and its handle when unnamed. */
interface CreatedRing {
  path: string;
  fd: number;
  handle?: RingHandle;
}

/**
 * Creates a ring file of `size` bytes in `dir` (mode 0600, never an existing file): with
 * `unnamed`, `ckptd-ring-<token>`, whose name is removed right after it is created;
 * else `ckptd-<purpose>-<pid>-<random>`.
 */
async function createRingFile(dir: string, purpose: "save" | "load", size: number, unnamed: boolean): Promise<CreatedRing> {
  // The daemon checks that the file lies directly in its own (resolved) directory.
  const real = await fsp.realpath(dir);
  const token = randomBytes(16).toString("hex");
  const file = path.join(real, unnamed ? `ckptd-ring-${token}` : `ckptd-${purpose}-${process.pid}-${randomBytes(6).toString("hex")}`);
  const { O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  // Synchronous, and the unlink in the same tick: nothing runs between the two calls.
  const fd = fs.openSync(file, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  let linked = true;
  try {
    if (unnamed) {
      fs.unlinkSync(file);
      linked = false;
    }
    // Node has no posix_fallocate: writing zeros allocates the pages now, so a full tmpfs (a
    // container's 64 MiB /dev/shm, say) fails here with ENOSPC and the client falls back to
    // the stream before the call, instead of failing mid-way.
    const zeros = Buffer.alloc(Math.min(size, MAX_CHUNK_BYTES));
    for (let at = 0; at < size;) {
      const { bytesWritten } = await pwrite(fd, zeros, 0, Math.min(zeros.length, size - at), at);
      at += bytesWritten;
    }
  } catch (err) {
    fs.closeSync(fd);
    if (linked) await fsp.unlink(file).catch(() => undefined);
    throw err;
  }
  return unnamed ? { path: file, fd, handle: { pid: process.pid, fd, token } } : { path: file, fd };
}

/** A ring file of one save or load: its name, removed once the daemon has it open (or at once), and its descriptor. */
abstract class RingFile {
  private linked: boolean;
  private closed = false;
  /** Absolute path the file was created at (its name is gone once {@link unlink} ran, or from the start with a handle). */
  readonly path: string;
  protected readonly fd: number;
  /** The ring as a SharedMemoryHandle names it: set when the file never kept its name. */
  readonly handle: RingHandle | undefined;

  protected constructor(
    created: CreatedRing,
    readonly slotBytes: number,
    readonly slots: number,
  ) {
    this.path = created.path;
    this.fd = created.fd;
    this.handle = created.handle;
    this.linked = created.handle === undefined;
  }

  /** The ring, for messages (never the token). */
  get shown(): string {
    return this.handle ? `the unnamed ring file (descriptor ${this.fd})` : this.path;
  }

  /** Removes the file's name (the daemon holds it open). Idempotent. */
  async unlink(): Promise<void> {
    if (!this.linked) return;
    this.linked = false;
    await fsp.unlink(this.path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    });
  }

  /** Removes the name if still there and closes the file. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.unlink().catch(() => undefined);
    await close(this.fd).catch(() => undefined);
  }
}

/**
 * A ring of fixed-size slots in a shared-memory file, written by one save.
 *
 * The save puts its chunks in order with {@link put}, which waits while every slot holds a
 * chunk the daemon has not released; {@link release} (on each progress message) frees
 * slots; {@link fail} ends the waiting once the call is over.
 */
export class SaveRing extends RingFile {
  private next = 0; // chunks put so far
  private readonly pending: number[] = []; // lengths of chunks not yet released, oldest first
  private releasedBytes = 0; // bytes of chunks released so far
  private failed = false;
  private waiters: (() => void)[] = [];

  /** Creates a ring of slots × slotBytes in `dir`: unnamed (see the module), or `ckptd-save-<pid>-<random>`. */
  static async create(dir: string, slotBytes: number, slots: number = RING_SLOTS, unnamed = false): Promise<SaveRing> {
    return new SaveRing(await createRingFile(dir, "save", slotBytes * slots, unnamed), slotBytes, slots);
  }

  /**
   * Copies `data` (at most one slot) into the next slot once it is free and resolves with
   * its offset in the file; resolves with undefined when the ring failed first.
   */
  async put(data: Uint8Array): Promise<number | undefined> {
    const n = data.byteLength;
    if (n > this.slotBytes) throw new RangeError(`a chunk of ${n} bytes does not fit a ${this.slotBytes}-byte slot`);
    while (this.pending.length >= this.slots && !this.failed) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    if (this.failed) return undefined;
    const offset = (this.next % this.slots) * this.slotBytes;
    this.next++;
    this.pending.push(n);
    let written = 0;
    while (written < n) {
      const { bytesWritten } = await pwrite(this.fd, data, written, n - written, offset + written);
      written += bytesWritten;
    }
    return offset;
  }

  /** The daemon has copied out `releasedTotal` bytes of this save's chunks so far (in the order they were put). */
  release(releasedTotal: number): void {
    let freed = false;
    while (this.pending.length > 0 && this.releasedBytes + this.pending[0]! <= releasedTotal) {
      this.releasedBytes += this.pending.shift()!;
      freed = true;
    }
    if (freed) this.wake();
  }

  /** Ends the waiting of {@link put}: it resolves with undefined from now on. */
  fail(): void {
    this.failed = true;
    this.wake();
  }

  /** Fails the ring, removes the name if still there and closes the file. */
  override async close(): Promise<void> {
    this.fail();
    await super.close();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/**
 * The ring file of one load, written by the daemon (with pwrite, so it is only sized: a
 * full tmpfs fails the daemon's write with ENOSPC). The daemon puts chunk i into slot
 * i mod {@link slots} once the client has released the chunk before it there; the client
 * {@link read}s each chunk out where it belongs and then reports it released.
 */
export class LoadRing extends RingFile {
  /** Creates a ring of slots × slotBytes in `dir`: unnamed (see the module), or `ckptd-load-<pid>-<random>`. */
  static async create(dir: string, slotBytes: number, slots: number = RING_SLOTS, unnamed = false): Promise<LoadRing> {
    return new LoadRing(await createRingFile(dir, "load", slotBytes * slots, unnamed), slotBytes, slots);
  }

  /** Size of the file in bytes. */
  get size(): number {
    return this.slotBytes * this.slots;
  }

  /**
   * Reads [offset, offset + into.byteLength) of the file into `into`. Throws a RangeError
   * for a slice outside the file, and an Error when the file ends early.
   */
  async read(offset: number, into: Uint8Array): Promise<void> {
    const length = into.byteLength;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > this.size) {
      throw new RangeError(`a slice [${offset}, ${offset + length}) outside the ${this.size}-byte ring`);
    }
    let got = 0;
    while (got < length) {
      const { bytesRead } = await pread(this.fd, into, got, length - got, offset + got);
      if (bytesRead === 0) throw new Error(`the file ends at byte ${offset + got}, inside the slice [${offset}, ${offset + length})`);
      got += bytesRead;
    }
  }
}
