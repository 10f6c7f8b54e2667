/**
 * The layout of a LoadShared destination file: where each output of a load plan lands.
 */
import type { LoadPlan } from "./loader.js";

/** Alignment of each entry's start in a LoadShared destination file (a cache line; any dtype's element). */
export const DESTINATION_ALIGN = 64;

/**
 * Where each entry of a plan lands in a LoadShared destination file: consecutive, each start
 * rounded up to DESTINATION_ALIGN (see LoadDestination in the proto).
 */
export function destinationLayout(plan: LoadPlan): { offsets: number[]; sizes: number[]; bytes: number } {
  const offsets: number[] = [];
  const sizes: number[] = [];
  let at = 0;
  for (const o of plan.outputs) {
    const size = o.kind === "box" ? o.entry.rawBytes : o.copy.entry.rawBytes;
    offsets.push(at);
    sizes.push(size);
    at += Math.ceil(size / DESTINATION_ALIGN) * DESTINATION_ALIGN;
  }
  return { offsets, sizes, bytes: at };
}
