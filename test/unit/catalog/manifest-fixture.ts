import { MANIFEST_FORMAT, MANIFEST_VERSION, type Manifest } from "../../../src/catalog/manifest.js";

/** A valid manifest of attempt 1 with one rank holding one empty item "model". */
export function testManifest(checkpointId: string, step: number, job = "j", storedBytes = 0): Manifest {
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    job,
    checkpointId,
    step,
    worldSize: 1,
    attempt: 1,
    commitTime: "2026-11-30T00:00:00.000Z",
    rawBytes: 0,
    storedBytes,
    ranks: [{ rank: 0, items: [{ name: "model", rawBytes: 0, storedBytes: 0, entries: [] }] }],
  };
}
