/**
 * LoadSender: writes one Load stream's messages so that what the daemon holds for a slow
 * or stalled client stays small and counted.
 *
 * grpc-js queues up to 16 messages per server stream before write() returns false, and a
 * queued message holds its bytes: 24 clients that never read took the daemon from 179 MiB
 * to 1.3 GiB. Here a stream hands grpc-js its next message only once
 * the previous one was sent (its write callback), and the bytes of a chunk message are
 * counted in the daemon's load budget until then (so read-ahead makes room for them). grpc-js serialises a message synchronously
 * when nothing is queued, so a chunk is written straight from the loader's buffer: no copy
 * has to outlive the loader's reuse of that buffer.
 *
 * Chunks go out in messages of at most MAX_LOAD_MESSAGE_DATA bytes: a whole 4 MiB chunk
 * plus framing (4194314 bytes) exceeds the 4 MiB limit stock gRPC clients receive.
 *
 * Call order: (sentWithin? send | sendChunk)* → close (always, e.g. in finally).
 */
import type { ByteBudget } from "../common/byte-budget.js";
import { LZ4_MAX_BLOCK } from "../codec/codec.js";
import type { StreamGuard } from "../common/stream-guard.js";

/** Largest chunk data one Load message carries: a 4 MiB message limit, less room for framing. */
export const MAX_LOAD_MESSAGE_DATA = LZ4_MAX_BLOCK - (64 << 10);

/** What LoadSender needs of a grpc-js server stream. */
export interface MessageSink<T> {
  write(msg: T, cb: () => void): boolean;
  readonly writableLength: number;
}

export class LoadSender<T> {
  /** Settles once the message last written was sent (or the stream ended). */
  private inFlight: Promise<void> | undefined;
  /** Budget bytes of the message in flight, given back when it is sent or at close. */
  private held = 0;

  constructor(
    private readonly call: MessageSink<T>,
    private readonly guard: StreamGuard,
    private readonly budget: ByteBudget,
  ) {}

  /**
   * True once the message in flight was sent, waiting at most `ms`; false when the client
   * has not taken it by then (it reads slowly or not at all).
   */
  async sentWithin(ms: number): Promise<boolean> {
    return !this.inFlight || this.guard.within(this.inFlight, ms);
  }

  /** Writes `msg` once the previous message was sent; `bytes` of it are counted in the budget until it is. */
  async send(msg: T, bytes = 0): Promise<void> {
    await this.settle();
    this.write(msg, bytes);
  }

  /**
   * Writes one chunk as one or more messages (`message` wraps each piece), straight from
   * `data`: the caller may reuse `data` once this returns.
   */
  async sendChunk(data: Buffer, message: (piece: Buffer) => T): Promise<void> {
    const pieces = Math.ceil(data.length / MAX_LOAD_MESSAGE_DATA);
    const size = Math.ceil(data.length / pieces);
    for (let off = 0; off < data.length; off += size) {
      const piece = data.subarray(off, Math.min(off + size, data.length));
      await this.settle();
      // Serialised inside write() only when nothing is queued ahead of it; else the message
      // waits in grpc-js's queue and must own its bytes.
      this.write(message(this.call.writableLength === 0 ? piece : Buffer.from(piece)), piece.length);
    }
  }

  /** Waits until the last message was sent: the client's step, so the idle timeout applies. */
  async settle(): Promise<void> {
    if (this.inFlight) await this.guard.wait(this.inFlight);
  }

  /** Gives back whatever is still counted (a message the client never took). */
  close(): void {
    this.budget.give(this.held);
    this.held = 0;
  }

  private write(msg: T, bytes: number): void {
    // Counted, never waited for: one message per stream, and a stream must not wait on
    // memory other streams hold (see ByteBudget).
    this.budget.force(bytes);
    this.held += bytes;
    this.inFlight = new Promise<void>((resolve) =>
      this.call.write(msg, () => {
        // After close the bytes were given back already.
        const give = Math.min(bytes, this.held);
        this.held -= give;
        this.budget.give(give);
        resolve();
      }),
    );
  }
}
