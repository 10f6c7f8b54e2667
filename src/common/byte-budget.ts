/**
 * ByteBudget: a count of bytes many streams hold at once, e.g. the read buffers and queued
 * messages of every Load stream. Memory a stream cannot do without is counted even past the
 * limit (`force`, after at most a short wait the caller bounds): a stream never waits long
 * on memory other streams hold, so no set of streams can wait on each other for good.
 * Memory a stream could do without (read-ahead, spare buffers) is taken only while there is
 * room (`tryTake`).
 *
 * Call order: (tryTake | force) → give (the same byte count), any number of times.
 */
export class ByteBudget {
  private used = 0;

  constructor(readonly limit: number) {}

  /** Bytes counted now (may exceed the limit by what was forced). */
  get inUse(): number {
    return this.used;
  }

  /** True when `bytes` more would stay within the limit. */
  fits(bytes: number): boolean {
    return this.used + bytes <= this.limit;
  }

  /** Counts `bytes` if they fit; false (nothing counted) otherwise. */
  tryTake(bytes: number): boolean {
    if (!this.fits(bytes)) return false;
    this.used += bytes;
    return true;
  }

  /** Counts `bytes` whether they fit or not. */
  force(bytes: number): void {
    this.used += bytes;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }
}
