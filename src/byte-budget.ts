/**
 * ByteBudget: a count of bytes many streams draw from and give back, e.g. the Load
 * messages queued for clients across the daemon. A stream that would exceed it waits
 * (first come, first served) until others gave enough back.
 *
 * Call order: take → give (the same byte count), any number of times, from any stream.
 */
export class ByteBudget {
  private used = 0;
  private readonly waiters: { bytes: number; resolve: () => void }[] = [];

  /** @param limit bytes that may be taken at once; a single take larger than this still proceeds when nothing else is taken. */
  constructor(readonly limit: number) {}

  /** Bytes taken and not yet given back. */
  get inUse(): number {
    return this.used;
  }

  /**
   * Resolves once `bytes` are taken. When `signal` aborts first the wait is withdrawn and
   * the promise rejects with its reason (nothing is taken then).
   */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    if (this.waiters.length === 0 && this.fits(bytes)) {
      this.used += bytes;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        bytes,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i < 0) return;
        this.waiters.splice(i, 1);
        this.pump();
        reject(signal!.reason as Error);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  give(bytes: number): void {
    this.used -= bytes;
    this.pump();
  }

  private fits(bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.limit;
  }

  private pump(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.bytes)) {
      const w = this.waiters.shift()!;
      this.used += w.bytes;
      w.resolve();
    }
  }
}
