/**
 * Shared-memory rings of SaveShared and LoadShared clients: opening one (by path or by
 * handle) and, for LoadShared, the flow control of its slots.
 */
import { LZ4_MAX_BLOCK } from "../codec/codec.js";
import { invalidArgument } from "../common/errors.js";
import { SharedSegment, type SharedMemoryConfig, type SharedMemoryHandle } from "../store/shared-memory.js";

/**
 * Opens the ring a SaveHeader or LoadSharedStart names, by path or by handle (at most
 * one). A load's ring must hold one slot of LZ4_MAX_BLOCK; a save's at least a byte.
 */
export async function openRing(
  config: SharedMemoryConfig,
  path: string,
  handle: SharedMemoryHandle | null | undefined,
  mode: "read" | "write",
): Promise<SharedSegment> {
  if (!handle) return SharedSegment.open(config, path, mode);
  if (path) throw invalidArgument("both shared_memory_path and shared_memory_handle are set; set one of them");
  return SharedSegment.openHandle(config, handle, mode, mode === "write" ? LZ4_MAX_BLOCK : 1);
}

/**
 * The slots of a LoadShared client's file: chunk i goes to slot i mod n, once the client
 * has released the chunk that was there (releases are cumulative bytes, in order).
 */
export class SlotRing {
  private next = 0;
  private readonly pending: number[] = [];
  private released = 0;
  private failed: unknown;
  private wake: (() => void) | undefined;

  constructor(private readonly slots: number) {}

  /** Waits for a free slot for a chunk of `length` bytes and returns its index. */
  async acquire(length: number): Promise<number> {
    while (this.pending.length >= this.slots && this.failed === undefined) await new Promise<void>((r) => (this.wake = r));
    if (this.failed !== undefined) throw this.failed;
    this.pending.push(length);
    return this.next++ % this.slots;
  }

  release(total: number): void {
    while (this.pending.length > 0 && this.released + this.pending[0]! <= total) this.released += this.pending.shift()!;
    this.poke();
  }

  fail(err: unknown): void {
    this.failed ??= err;
    this.poke();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}
