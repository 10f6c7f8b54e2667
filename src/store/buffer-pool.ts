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
 * Fair shares: a buffer may be lent through shares (PoolShare), each a limit on what it
 * holds at once, e.g. one stream's and one job's. A waiter whose shares are full lets the
 * next waiter go first, so one job's streams never take every buffer and a stream that
 * fills its share waits for its own writes, not for everyone's.
 *
 * Call order: acquire → (fill, write) → release (with the same shares), any number of
 * times, from any stream; lease → close around one stream's use.
 */
import * as fs from "node:fs";

/** Alignment O_DIRECT needs of addresses, lengths and file offsets (4096 suits every common device). */
export const DIRECT_ALIGN = 4096;

/** A limit on the buffers lent through it at once: one stream's or one job's share of the pool. */
export class PoolShare {
  lent = 0;
  constructor(readonly limit: number) {}

  get full(): boolean {
    return this.lent >= this.limit;
  }
}

/** One stream's shares of the pool: its own and its job's. */
export interface PoolLease {
  readonly shares: readonly PoolShare[];
  /** Ends the lease once the stream's buffers are back. */
  close(): void;
}

export interface BufferPoolOptions {
  /** Size of each buffer; a multiple of DIRECT_ALIGN. */
  bufferBytes: number;
  /** Total bytes the pool may hold; at least one buffer. */
  budgetBytes: number;
  /** Buffers one stream may hold at once. @default unlimited */
  streamBuffers?: number;
  /** Percentage of the buffers one job's streams may hold at once. @default 100 */
  jobSharePercent?: number;
  /** A file opened with O_DIRECT to probe alignment with; without one, buffers are not aligned. */
  probeFd?: number;
}

export class AlignedBufferPool {
  readonly bufferBytes: number;
  readonly maxBuffers: number;
  private readonly free: Buffer[] = [];
  private readonly waiters: Array<{ shares: readonly PoolShare[]; resolve: (b: Buffer) => void }> = [];
  /** Each job's share, with the number of streams that lease it. */
  private readonly jobs = new Map<string, { share: PoolShare; streams: number }>();
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

  /** Allocates the first buffer now: throws when no aligned buffer can be had here. */
  prime(): void {
    if (this.allocated === 0) this.free.push(this.allocate());
  }

  /** Buffers one job's streams may hold at once. */
  get jobLimit(): number {
    return Math.max(1, Math.floor((this.maxBuffers * (this.options.jobSharePercent ?? 100)) / 100));
  }

  /** The shares of one stream of `job`: its own and the job's (shared by the job's streams). */
  lease(job: string): PoolLease {
    let j = this.jobs.get(job);
    if (!j) this.jobs.set(job, (j = { share: new PoolShare(this.jobLimit), streams: 0 }));
    j.streams++;
    const entry = j;
    let closed = false;
    return {
      shares: [new PoolShare(this.options.streamBuffers ?? this.maxBuffers), entry.share],
      close: () => {
        if (closed) return;
        closed = true;
        if (--entry.streams === 0 && this.jobs.get(job) === entry) this.jobs.delete(job);
      },
    };
  }

  /** A buffer of `bufferBytes`, now or as soon as one is released and `shares` have room. */
  acquire(shares: readonly PoolShare[] = []): Promise<Buffer> {
    return new Promise((resolve) => {
      this.waiters.push({ shares, resolve });
      this.pump();
    });
  }

  /** Returns a buffer lent through `shares` (its contents are garbage from now on). */
  release(b: Buffer, shares: readonly PoolShare[] = []): void {
    this.inUse--;
    for (const s of shares) s.lent--;
    this.free.push(b);
    this.pump();
  }

  /** Lends buffers to the first waiters whose shares have room, in arrival order. */
  private pump(): void {
    for (let i = 0; i < this.waiters.length;) {
      if (this.free.length === 0 && this.allocated >= this.maxBuffers) return;
      const w = this.waiters[i]!;
      if (w.shares.some((s) => s.full)) {
        i++;
        continue;
      }
      this.waiters.splice(i, 1);
      const b = this.free.pop() ?? this.allocate();
      for (const s of w.shares) s.lent++;
      this.lend();
      w.resolve(b);
    }
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

/**
 * Buffers of one size lent for the length of one call and kept for the next one (at most
 * `keep` of them), e.g. a save stream's encode scratch: a stream that waits for its client
 * between chunks holds none, and the busy streams reuse them without fresh page faults.
 */
export class SpareBuffers {
  private readonly free: Buffer[] = [];

  constructor(
    readonly size: number,
    private readonly keep: number,
  ) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  give(b: Buffer): void {
    if (this.free.length < this.keep) this.free.push(b);
  }
}
