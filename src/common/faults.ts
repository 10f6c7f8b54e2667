/**
 * Test-only fault points: make one step of a commit or a deletion fail with ENOSPC, as
 * a filesystem that needs a block for that step does when it is full. tmpfs (what the
 * disk-full tests mount) never refuses a rename or an append into an allocated page, so
 * those steps need this to be tested at all; the other steps are tested on a really full
 * filesystem.
 *
 *   CKPTD_FAULT_ENOSPC=publish,event   the steps that fail
 *   CKPTD_FAULT_SWITCH=<file>          ... only while this file exists (the test's "disk
 *                                      is full"; removing it is "space was freed")
 *
 * Unset in production: every call is one Set lookup.
 */
import * as fs from "node:fs";

export const FAULT_STEPS = ["decision", "manifest", "publish", "event"] as const;
export type FaultStep = (typeof FAULT_STEPS)[number];

function parseSteps(text: string | undefined): Set<FaultStep> {
  const steps = new Set<FaultStep>();
  for (const s of (text ?? "").split(",").map((x) => x.trim())) {
    if (!s) continue;
    if (!(FAULT_STEPS as readonly string[]).includes(s))
      throw new Error(`CKPTD_FAULT_ENOSPC: unknown step '${s}' (known: ${FAULT_STEPS.join(", ")})`);
    steps.add(s as FaultStep);
  }
  return steps;
}

const steps = parseSteps(process.env["CKPTD_FAULT_ENOSPC"]);
const switchFile = process.env["CKPTD_FAULT_SWITCH"] ?? "";

/** Throws ENOSPC at `step` while the fault is armed for it. */
export function injectFault(step: FaultStep): void {
  if (steps.size === 0 || !steps.has(step)) return;
  if (switchFile && !fs.existsSync(switchFile)) return;
  throw Object.assign(new Error(`ENOSPC: no space left on device (fault injected at ${step})`), { code: "ENOSPC", syscall: step });
}
