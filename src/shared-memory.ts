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
 * (another user, another /dev/shm in another container) gets FAILED_PRECONDITION with
 * SHARED_MEMORY_UNAVAILABLE in the message and sends its bytes on the stream instead.
 */
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import * as path from "node:path";
import { failedPrecondition, invalidArgument } from "./errors.js";

/** Marker in the message of a refused shared-memory file; clients fall back on it. */
export const SHARED_MEMORY_UNAVAILABLE = "shared memory unavailable";

/** Where the daemon accepts shared-memory files; undefined when the path is off. */
export interface SharedMemoryConfig {
  /** Absolute, symlink-free path of the directory, or undefined. */
  readonly dir: string | undefined;
}

export const SHARED_MEMORY_OFF: SharedMemoryConfig = { dir: undefined };

/** Resolves --shared-memory-dir at start ("" turns the path off; a missing directory too, with a reason). */
export function openSharedMemoryConfig(dir: string): { config: SharedMemoryConfig; offReason: string } {
  if (dir === "") return { config: SHARED_MEMORY_OFF, offReason: "--shared-memory-dir is empty" };
  try {
    const real = fs.realpathSync(dir);
    if (!fs.statSync(real).isDirectory()) return { config: SHARED_MEMORY_OFF, offReason: `${dir} is not a directory` };
    return { config: { dir: real }, offReason: "" };
  } catch (err) {
    return { config: SHARED_MEMORY_OFF, offReason: `${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
  }
}

/** An open shared-memory file of one save (read) or load (write) stream. */
export class SharedSegment {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    /** The file's size when opened. */
    readonly size: number,
  ) {}

  /** Opens and checks a client's file; FAILED_PRECONDITION (with the marker) when refused. */
  static async open(config: SharedMemoryConfig, file: string, mode: "read" | "write" = "read"): Promise<SharedSegment> {
    const refuse = (why: string) => failedPrecondition(`${SHARED_MEMORY_UNAVAILABLE}: ${why}; send the bytes in Chunk messages`);
    if (config.dir === undefined) throw refuse("this daemon has its shared-memory path off (--shared-memory-dir)");
    if (!path.isAbsolute(file) || path.dirname(path.resolve(file)) !== config.dir || path.basename(file).startsWith("."))
      throw refuse(`${JSON.stringify(file)} is not a file directly in ${config.dir}`);
    let fh: FileHandle;
    try {
      const access = mode === "read" ? fs.constants.O_RDONLY : fs.constants.O_RDWR;
      fh = await fsp.open(file, access | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    } catch (err) {
      throw refuse(`cannot open ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    let size: number;
    try {
      const st = await fh.stat();
      size = st.size;
      if (!st.isFile()) throw refuse(`${file} is not a regular file`);
      const uid = process.getuid?.();
      if (uid !== undefined && st.uid !== uid) throw refuse(`${file} belongs to uid ${st.uid}, the daemon runs as uid ${uid}`);
    } catch (err) {
      await fh.close();
      throw err;
    }
    return new SharedSegment(file, fh, size);
  }

  /** Copies [offset, offset + length) of the file into `into` and returns that view of it. */
  async read(offset: number, length: number, into: Buffer): Promise<Buffer> {
    if (length > into.length) throw invalidArgument(`a shared chunk of ${length} bytes exceeds the 4 MiB chunk limit`);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.fh.read(into, got, length - got, offset + got);
      if (bytesRead === 0) throw this.beyondEnd(offset, length, got);
      got += bytesRead;
    }
    return into.subarray(0, length);
  }

  /** Synchronous read of [offset, offset + length) into `into` at `at`: for small samples, where a pool round trip costs more than the copy. */
  readSync(offset: number, length: number, into: Buffer, at: number): void {
    let got = 0;
    while (got < length) {
      const n = fs.readSync(this.fh.fd, into, at + got, length - got, offset + got);
      if (n === 0) throw this.beyondEnd(offset, length, got);
      got += n;
    }
  }

  private beyondEnd(offset: number, length: number, got: number): Error {
    return invalidArgument(
      `shared chunk [${offset}, ${offset + length}) lies beyond the end of ${this.path} (it ends at byte ${offset + got})`,
    );
  }

  /** Writes `data` at `offset` (within the size the file had when opened). */
  async write(data: Buffer, offset: number): Promise<void> {
    if (offset + data.length > this.size)
      throw new RangeError(`a write of [${offset}, ${offset + data.length}) past the end of ${this.path} (${this.size} bytes)`);
    let done = 0;
    while (done < data.length) done += (await this.fh.write(data, done, data.length - done, offset + done)).bytesWritten;
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}
