/**
 * StreamGuard: the time limit and the off switch of one client stream's handler.
 *
 * A handler that awaits a client's next message (or waits for the client to read what it
 * sent) waits for as long as the client likes, holding whatever the stream holds: a
 * reservation, open staging files, buffers. And grpc-js never ends a server stream's
 * request iterator when the client cancels: it only sets `call.cancelled` and emits
 * 'cancelled' (`write(header); write(entry); cancel()` in one tick
 * left handlers waiting forever). The guard ends such a wait when
 *   - the client makes no step for `idleMs` (DEADLINE_EXCEEDED, naming the flag),
 *   - the client cancels the call (CANCELLED),
 *   - the daemon calls the work off, e.g. the attempt was decided (`stop`, e.g. ABORTED).
 * It never interrupts the handler's own work (a disk write, a wait for a pooled buffer):
 * the stream ends at its next wait for the client, so the cleanup that follows never
 * races an operation still in progress.
 *
 * Call order: new → (messages | wait)* → dispose.
 */
import type { EventEmitter } from "node:events";
import { cancelled, deadlineExceeded } from "../common/errors.js";

export class StreamGuard {
  private failure: Error | undefined;
  private reject!: (err: Error) => void;
  /** Rejects with the reason once the guard fired. */
  private readonly fired: Promise<never>;
  private timer: NodeJS.Timeout | undefined;
  private readonly onCancel = () => this.stop(cancelled("the client cancelled the call"));

  /**
   * @param call the gRPC call (its 'cancelled' event and `cancelled` flag are watched)
   * @param idleMs how long one wait for the client may take
   * @param idleMessage the status message when it took longer
   */
  /** The error the idle timeout ends the stream with. */
  private idleError: () => Error;
  private waiting = false;

  constructor(
    private readonly call: EventEmitter & { cancelled?: boolean },
    private idleMs: number,
    idleMessage: string,
  ) {
    this.idleError = () => deadlineExceeded(idleMessage);
    this.fired = new Promise<never>((_, reject) => (this.reject = reject));
    this.fired.catch(() => undefined);
    call.on("cancelled", this.onCancel);
    // The client may have gone before the handler ran: the event is then long past.
    if (call.cancelled) this.onCancel();
  }

  /** Why the guard fired, or undefined while the stream may go on. */
  get stopped(): Error | undefined {
    return this.failure;
  }

  /** Ends the stream at its current or next wait for the client with `err` (the first reason wins). */
  stop(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    clearTimeout(this.timer);
    this.reject(err);
  }

  /** The messages of `source`, each awaited through `wait`. */
  async *messages<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
    const it = source[Symbol.asyncIterator]();
    for (;;) {
      const next = await this.wait(it.next());
      if (next.done) return;
      yield next.value;
    }
  }

  /** Waits for `step`, which only the client can bring about, at most idleMs; throws once the guard fired. */
  async wait<T>(step: Promise<T>): Promise<T> {
    // A step abandoned here may still reject later (e.g. a destroyed stream's read).
    step.catch(() => undefined);
    if (this.failure) throw this.failure;
    this.arm(this.idleMs);
    this.waiting = true;
    try {
      return await Promise.race([step, this.fired]);
    } finally {
      this.waiting = false;
      clearTimeout(this.timer);
    }
  }

  /** Like wait, but gives up after `ms` too: true once `step` came, false when it had not by then. */
  async within(step: Promise<unknown>, ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    try {
      return await this.wait(Promise.race([step.then(() => true as const), late]));
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Shortens the idle timeout to `ms` from now on (the wait in progress included), ending
   * the stream with `err` when it passes: a draining daemon lets streams that are sending
   * finish and does not wait for those that are not.
   */
  hurry(ms: number, err: () => Error): void {
    if (ms >= this.idleMs) return;
    this.idleMs = ms;
    this.idleError = err;
    if (this.waiting) this.arm(ms);
  }

  private arm(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.stop(this.idleError()), ms);
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.call.off("cancelled", this.onCancel);
  }
}
