/** Loads of a whole checkpoint through a CheckpointLoader in this process, for the read-loop tests (unit and object-store). */
import { CheckpointLoader } from "../../../src/load/loader.js";

/** The plan of rank 0's whole state of `checkpointId`, as a Load asking for nothing else gets it. */
export function planAll(loader: CheckpointLoader, job = "j", checkpointId = "c") {
  return loader.plan({
    job,
    checkpointId,
    rank: 0,
    localRank: 0,
    devices: [],
    mapLocation: {},
    items: [],
    sourceRank: undefined,
    worldSize: 0,
    boxes: [],
    shardAs: undefined,
  });
}

/** Every entry of rank 0's state of `checkpointId`, by key, streamed and joined. */
export async function loadAll(loader: CheckpointLoader, job = "j", checkpointId = "c"): Promise<Map<string, Buffer>> {
  const plan = await planAll(loader, job, checkpointId);
  const got = new Map<string, Buffer[]>();
  let key = "";
  for await (const part of loader.stream(plan)) {
    if (part.kind === "entry") got.set((key = part.entry.key), []);
    else got.get(key)!.push(Buffer.from(part.data));
  }
  return new Map([...got].map(([k, parts]) => [k, Buffer.concat(parts)]));
}
