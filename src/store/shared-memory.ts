/**
 * Shared-memory data path: a client on the daemon's node puts chunk bytes in a file in
 * the shared-memory directory (tmpfs, /dev/shm by default) and sends only where they are
 * (SharedChunk), so the bytes skip gRPC's framing, copies and flow control. The daemon
 * copies each slice out of the file into its own buffer and from there on treats it like
 * a chunk that arrived on the stream.
 *
 * Loads go the other way (LoadShared): the daemon writes each chunk into a slot of the
 * client's file and the client copies it out.
 *
 * The daemon writes only files a client gave it for a load, and never follows a client's
 * path anywhere else:
 * the path must name a regular file directly in the configured directory, owned by the
 * daemon's own user, opened without following symlinks. A client that cannot meet that
 * (another user, another /dev/shm in another container) gets a SharedMemoryUnavailable
 * (FAILED_PRECONDITION, "shared memory unavailable: …") and sends its bytes on the stream instead.
 *
 * A ring may also be named by a handle, (pid, fd, token): an open descriptor of the
 * client's process, of a file that has no name (a memfd "ckptd-ring-<token>", or a file
 * of the directory the client removed right after opening it). The daemon reopens it
 * through /proc/<pid>/fd/<fd>, so nothing is left behind however either process dies
 * (see {@link SharedSegment.openHandle}).
 */
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import * as path from "node:path";
import { invalidArgument, SharedMemoryUnavailable } from "../common/errors.js";

/** Where the daemon accepts shared-memory files; undefined when the path is off. */
export interface SharedMemoryConfig {
  /** Absolute, symlink-free path of the directory, or undefined. */
  readonly dir: string | undefined;
  /** The directory as configured (clients name their files under it), when it differs from `dir`. */
  readonly configured?: string;
  /**
   * An open descriptor of the directory. Client files are opened through
   * /proc/self/fd/<fd>/<name>, which resolves like openat(fd, name): no path a client
   * sends is ever walked from the root, so a symlinked directory (`lnk/../secret`) or a
   * directory renamed after start cannot lead anywhere else.
   */
  readonly dirFd?: number;
  /** The directory's device: a client file must live on it (no hard link from elsewhere). */
  readonly dev?: number;
}

export const SHARED_MEMORY_OFF: SharedMemoryConfig = { dir: undefined };

/** A ring file's name: one path component, as both clients make them. */
const RING_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$/;
/** Longest shared_memory_path accepted (PATH_MAX). */
export const MAX_SHARED_MEMORY_PATH = 4096;
/** A ring handle's token: 128 random bits in lowercase hex. */
const RING_TOKEN_RE = /^[0-9a-f]{32}$/;
/** Largest ring a handle may name (the clients make 32 MiB ones). */
export const MAX_SHARED_MEMORY_HANDLE_BYTES = 1 << 30;
/** Largest process id Linux hands out (PID_MAX_LIMIT on 64-bit). */
const MAX_PID = 1 << 22;
/** Largest descriptor number a process can have (the ceiling of fs.nr_open). */
const MAX_FD = 0x7fffffff;
/**
 * open(2)'s O_PATH (Linux, same value on x86-64 and arm64; node does not export it): a
 * descriptor that locates a file without opening it, so no device or FIFO a client
 * names is ever opened before it is checked.
 */
const O_PATH = 0o10000000;

/** A client's ring named by one of its open descriptors (SharedMemoryHandle). */
export interface SharedMemoryHandle {
  readonly pid: number;
  readonly fd: number;
  readonly token: string;
}

/** Resolves --shared-memory-dir at start ("" turns the path off; a missing directory too, with a reason). */
export function openSharedMemoryConfig(dir: string): { config: SharedMemoryConfig; offReason: string } {
  if (dir === "") return { config: SHARED_MEMORY_OFF, offReason: "--shared-memory-dir is empty" };
  try {
    const real = fs.realpathSync(dir);
    const dirFd = fs.openSync(real, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    const st = fs.fstatSync(dirFd);
    const configured = path.resolve(dir);
    return { config: { dir: real, dirFd, dev: st.dev, ...(configured !== real ? { configured } : {}) }, offReason: "" };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOTDIR") return { config: SHARED_MEMORY_OFF, offReason: `${dir} is not a directory` };
    return { config: SHARED_MEMORY_OFF, offReason: `${dir}: ${code ?? String(err)}` };
  }
}

/** Closes the directory descriptor of a config (at shutdown). */
export function closeSharedMemoryConfig(config: SharedMemoryConfig): void {
  if (config.dirFd !== undefined) fs.closeSync(config.dirFd);
}

/** Writes to a shared-memory file of at most this many bytes are made on the calling thread (see SharedSegment.write). */
const SYNC_WRITE_MAX_BYTES = 256 << 10;

/** An open shared-memory file of one save (read) or load (write) stream. */
export class SharedSegment {
  private constructor(
    /** How errors name the file: its path, or the handle's pid and fd (never the token). */
    readonly path: string,
    private readonly fh: FileHandle,
    /** The file's size when opened. */
    readonly size: number,
    /** Whether the file came from a SharedMemoryHandle. */
    readonly handle = false,
  ) {}

  /**
   * Opens and checks a client's ring named by a handle; FAILED_PRECONDITION (with the
   * marker) when refused, before a byte of it is read or written.
   *
   * /proc/<pid>/fd/<fd> is a magic link: opening it reaches the client's open file
   * whatever its path says, and O_NOFOLLOW would only refuse it, so it gives no
   * protection here. Instead the link is opened with O_PATH (which opens nothing:
   * no device side effect, no FIFO wait) and that descriptor, held by the daemon and
   * no longer by the client, is what is checked: its own /proc/self/fd link must read
   * exactly "/memfd:ckptd-ring-<token> (deleted)" (or "<dir>/ckptd-ring-<token> (deleted)"
   * on the directory's filesystem), and it must be a regular file of the daemon's user
   * without links, of `minSize` to `maxSize` (MAX_SHARED_MEMORY_HANDLE_BYTES for a ring)
   * bytes. A load's destination (`destination`) may also be named "ckptd-dest-<token>",
   * and its size is bounded by the load's plan instead of the ring bound. Only that very
   * file is then reopened for reading or writing, so a client swapping its descriptor
   * between the checks and the open gains nothing. Checking the client's link instead
   * (readlink /proc/<pid>/fd/<fd>, then open) would leave exactly that race.
   *
   * The kernel's ptrace access check on /proc/<pid>/fd keeps another user's processes
   * out (EACCES), and the token, secret to the client (and to its own user), keeps
   * the descriptors of other processes of the daemon's user out.
   */
  static async openHandle(
    config: SharedMemoryConfig,
    handle: SharedMemoryHandle,
    mode: "read" | "write",
    minSize: number,
    { maxSize = MAX_SHARED_MEMORY_HANDLE_BYTES, destination = false }: { maxSize?: number; destination?: boolean } = {},
  ): Promise<SharedSegment> {
    const refuse = (why: string) => new SharedMemoryUnavailable(why);
    if (config.dir === undefined) throw refuse("this daemon has its shared-memory path off (--shared-memory-dir)");
    if (process.platform !== "linux") throw refuse("shared_memory_handle needs Linux's /proc");
    const { pid, fd, token } = handle;
    if (!Number.isSafeInteger(pid) || pid < 1 || pid > MAX_PID)
      throw refuse(`shared_memory_handle.pid ${pid} is not a process id (1 to ${MAX_PID})`);
    if (!Number.isSafeInteger(fd) || fd < 0 || fd > MAX_FD)
      throw refuse(`shared_memory_handle.fd ${fd} is not a descriptor number (0 to ${MAX_FD})`);
    if (typeof token !== "string" || !RING_TOKEN_RE.test(token))
      throw refuse(
        `shared_memory_handle.token must be 32 lowercase hex characters (got ${typeof token === "string" ? token.length : 0} characters)`,
      );
    const shown = `descriptor ${fd} of process ${pid}`;
    const what = destination ? "the destination" : "the ring";
    let located: FileHandle;
    try {
      located = await fsp.open(`/proc/${pid}/fd/${fd}`, O_PATH);
    } catch (err) {
      throw refuse(`cannot open ${shown} (${(err as NodeJS.ErrnoException).code ?? "error"}; same user and PID namespace needed)`);
    }
    try {
      let name: string;
      let st: fs.Stats;
      try {
        name = await fsp.readlink(`/proc/self/fd/${located.fd}`);
        st = await located.stat();
      } catch (err) {
        throw refuse(`cannot inspect ${shown} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
      }
      const names = destination ? [`ckptd-ring-${token}`, `ckptd-dest-${token}`] : [`ckptd-ring-${token}`];
      const named = names.some(
        (ring) =>
          name === `/memfd:${ring} (deleted)` ||
          (name === `${config.dir}/${ring} (deleted)` && (config.dev === undefined || st.dev === config.dev)),
      );
      // Neither the name found nor the token is repeated: the caller may not own the descriptor.
      if (!named)
        throw refuse(
          `${shown} is not the ${destination ? "destination" : "ring"} of this token (a memfd named ${destination ? "ckptd-ring-<token> or ckptd-dest-<token>" : "ckptd-ring-<token>"}, or such a removed file in ${config.dir})`,
        );
      const uid = process.getuid?.();
      if (!st.isFile() || (uid !== undefined && st.uid !== uid) || st.nlink !== 0)
        throw refuse(`${shown} is not an unlinked regular file of the daemon's user`);
      if (st.size < minSize || st.size > maxSize)
        throw refuse(`${what} of ${shown} has ${st.size} bytes; it must have ${minSize} to ${maxSize}`);
      let fh: FileHandle;
      try {
        const access = mode === "read" ? fs.constants.O_RDONLY : fs.constants.O_RDWR;
        fh = await fsp.open(`/proc/self/fd/${located.fd}`, access | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
      } catch (err) {
        throw refuse(`cannot open ${what} of ${shown} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
      }
      try {
        const now = await fh.stat();
        if (now.ino !== st.ino || now.dev !== st.dev) throw refuse(`${what} of ${shown} changed while it was opened`);
      } catch (err) {
        await fh.close();
        throw err;
      }
      return new SharedSegment(`${what} of ${shown}`, fh, st.size, true);
    } finally {
      await located.close().catch(() => undefined);
    }
  }

  /**
   * Opens and checks a client's file; FAILED_PRECONDITION (with the marker) when refused.
   *
   * The name must be one component directly under the directory (textually: no `..`, no
   * sub-directory, no normalisation), it is opened relative to the directory's descriptor
   * without following a symlink, and the open file must be a regular file of the daemon's
   * user on the directory's filesystem with one link. Refusals never say anything about a
   * file the caller may not read (no size, no checksum, no owner).
   */
  static async open(config: SharedMemoryConfig, file: string, mode: "read" | "write" = "read"): Promise<SharedSegment> {
    const refuse = (why: string) => new SharedMemoryUnavailable(why);
    if (config.dir === undefined) throw refuse("this daemon has its shared-memory path off (--shared-memory-dir)");
    if (typeof file !== "string" || file.length > MAX_SHARED_MEMORY_PATH)
      throw invalidArgument(`shared_memory_path is longer than ${MAX_SHARED_MEMORY_PATH} characters`);
    const slash = file.lastIndexOf("/");
    const parent = file.slice(0, slash);
    const name = file.slice(slash + 1);
    const shown = JSON.stringify(file.length > 256 ? `${file.slice(0, 256)}…` : file);
    if (slash < 0 || (parent !== config.dir && parent !== config.configured) || !RING_NAME_RE.test(name))
      throw refuse(`${shown} is not a file directly in ${config.dir} (one name of letters, digits, '.', '_', '-')`);
    let fh: FileHandle;
    try {
      const access = mode === "read" ? fs.constants.O_RDONLY : fs.constants.O_RDWR;
      const where = config.dirFd !== undefined ? `/proc/self/fd/${config.dirFd}/${name}` : path.join(config.dir, name);
      fh = await fsp.open(where, access | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
    } catch (err) {
      throw refuse(`cannot open ${shown} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
    let size: number;
    try {
      const st = await fh.stat();
      size = st.size;
      const uid = process.getuid?.();
      const ok =
        st.isFile() && (uid === undefined || st.uid === uid) && st.nlink === 1 && (config.dev === undefined || st.dev === config.dev);
      if (!ok) throw refuse(`${shown} is not a regular file of the daemon's user with a single link`);
    } catch (err) {
      await fh.close();
      throw err;
    }
    return new SharedSegment(file, fh, size);
  }

  /** Throws INVALID_ARGUMENT unless [offset, offset + length) are exact integers inside the file as opened. */
  checkSlice(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || offset + length > this.size)
      throw invalidArgument(`shared chunk [${offset}, +${length}) does not lie inside the shared-memory file`);
  }

  /** Copies [offset, offset + length) of the file into `into` and returns that view of it. */
  async read(offset: number, length: number, into: Buffer): Promise<Buffer> {
    if (length > into.length) throw invalidArgument(`a shared chunk of ${length} bytes exceeds the 4 MiB chunk limit`);
    this.checkSlice(offset, length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.fh.read(into, got, length - got, offset + got);
      if (bytesRead === 0) throw this.beyondEnd(offset, length);
      got += bytesRead;
    }
    return into.subarray(0, length);
  }

  /** Synchronous read of [offset, offset + length) into `into` at `at`: for small samples, where a pool round trip costs more than the copy. */
  readSync(offset: number, length: number, into: Buffer, at: number): void {
    this.checkSlice(offset, length);
    let got = 0;
    while (got < length) {
      const n = fs.readSync(this.fh.fd, into, at + got, length - got, offset + got);
      if (n === 0) throw this.beyondEnd(offset, length);
      got += n;
    }
  }

  /** The file shrank after it was opened (the size it has now is not the caller's business). */
  private beyondEnd(offset: number, length: number): Error {
    return invalidArgument(`shared chunk [${offset}, +${length}) lies beyond the end of the shared-memory file`);
  }

  /**
   * Writes `data` at `offset` (within the size the file had when opened). Up to
   * SYNC_WRITE_MAX_BYTES are written at once on the calling thread: copying them into
   * memory costs less than a trip through the thread pool.
   */
  async write(data: Buffer, offset: number): Promise<void> {
    if (offset + data.length > this.size)
      throw new RangeError(`a write of [${offset}, ${offset + data.length}) past the end of ${this.path} (${this.size} bytes)`);
    let done = 0;
    if (data.length <= SYNC_WRITE_MAX_BYTES)
      while (done < data.length) done += fs.writeSync(this.fh.fd, data, done, data.length - done, offset + done);
    while (done < data.length) done += (await this.fh.write(data, done, data.length - done, offset + done)).bytesWritten;
  }

  /** Closes the file. Idempotent. */
  async close(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}
