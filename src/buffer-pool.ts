/**
 * AlignedBufferPool: the write buffers of the save path, allocated once, reused forever,
 * and bounded by the daemon's memory budget.
 *
 * Reuse matters on these machines: the first touch of fresh memory costs more than the
 * copy into it, so a save that allocated a buffer per chunk would spend its time in page
 * faults. Bounding matters for the invariant "daemon memory stays bounded": a stream that
 * finds the pool empty waits (and with it the trainer, through HTTP/2 flow control) until
 * a write completes and returns a buffer.
 *
 * Buffers are aligned for O_DIRECT (address, and a length that is a multiple of
 * DIRECT_ALIGN). JavaScript cannot see an address, but an ArrayBuffer's backing store
 * never moves: each buffer is allocated DIRECT_ALIGN bytes larger than needed and its
 * aligned sub-view found once, by probing O_DIRECT writes (EINVAL means misaligned).
 *
 * Call order: acquire → (fill, write) → release, any number of times, from any stream.
 */
import * as fs from "node:fs";

/** Alignment O_DIRECT needs of addresses, lengths and file offsets (4096 suits every common device). */
export const DIRECT_ALIGN = 4096;

export interface BufferPoolOptions {
  /** Size of each buffer; a multiple of DIRECT_ALIGN. */
  bufferBytes: number;
  /** Total bytes the pool may hold; at least one buffer. */
  budgetBytes: number;
  /** A file opened with O_DIRECT to probe alignment with; without one, buffers are not aligned. */
  probeFd?: number;
}

export class AlignedBufferPool {
  readonly bufferBytes: number;
  readonly maxBuffers: number;
  private readonly free: Buffer[] = [];
  private readonly waiters: Array<(b: Buffer) => void> = [];
  private allocated = 0;
  /** Offset that aligned the last buffer: the next allocation is usually aligned the same way. */
  private lastShift = 0;
  /** Buffers lent out right now, and the most ever lent at once (for metrics and the bench). */
  inUse = 0;
  peakInUse = 0;

  constructor(private readonly options: BufferPoolOptions) {
    if (options.bufferBytes <= 0 || options.bufferBytes % DIRECT_ALIGN !== 0)
      throw new RangeError(`buffer size ${options.bufferBytes} is not a positive multiple of ${DIRECT_ALIGN}`);
    this.bufferBytes = options.bufferBytes;
    this.maxBuffers = Math.max(1, Math.floor(options.budgetBytes / options.bufferBytes));
  }

  /** A buffer of `bufferBytes`, now or as soon as one is released. */
  acquire(): Promise<Buffer> {
    const b = this.free.pop() ?? (this.allocated < this.maxBuffers ? this.allocate() : undefined);
    if (b) {
      this.lend();
      return Promise.resolve(b);
    }
    return new Promise((resolve) =>
      this.waiters.push((buf) => {
        this.lend();
        resolve(buf);
      }),
    );
  }

  /** Returns a buffer (its contents are garbage from now on). */
  release(b: Buffer): void {
    this.inUse--;
    const waiter = this.waiters.shift();
    if (waiter) waiter(b);
    else this.free.push(b);
  }

  private lend(): void {
    this.inUse++;
    if (this.inUse > this.peakInUse) this.peakInUse = this.inUse;
  }

  private allocate(): Buffer {
    this.allocated++;
    const size = this.bufferBytes;
    const fd = this.options.probeFd;
    if (fd === undefined) return Buffer.allocUnsafeSlow(size);
    const found = allocateAligned(size, this.lastShift, (buf, at) => fs.writeSync(fd, buf, at, DIRECT_ALIGN, 0));
    if (found) {
      this.lastShift = found.shift;
      return found.buf;
    }
    throw new Error(`no ${DIRECT_ALIGN}-byte aligned view found in a buffer of ${size + DIRECT_ALIGN} bytes`);
  }
}

/**
 * A fresh buffer of `size` bytes whose address suits O_DIRECT, or undefined when none of the
 * candidate offsets does. JavaScript cannot see addresses: a backing store DIRECT_ALIGN
 * bytes larger is allocated and `probe(buf, at)` (one O_DIRECT read or write of
 * DIRECT_ALIGN bytes from buf[at]) tried at each offset, `lastShift` first (allocations tend
 * to repeat it); EINVAL means misaligned.
 */
export function allocateAligned(
  size: number,
  lastShift: number,
  probe: (buf: Buffer, at: number) => void,
): { buf: Buffer; shift: number } | undefined {
  // allocUnsafeSlow: a backing store of its own (never a slice of Node's shared pool).
  const backing = Buffer.allocUnsafeSlow(size + DIRECT_ALIGN);
  const shifts = [lastShift];
  for (let k = 0; k < DIRECT_ALIGN; k += 16) if (k !== lastShift) shifts.push(k);
  for (const k of shifts) {
    try {
      probe(backing, k);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EINVAL") continue;
      throw err;
    }
    return { buf: backing.subarray(k, k + size), shift: k };
  }
  return undefined;
}
