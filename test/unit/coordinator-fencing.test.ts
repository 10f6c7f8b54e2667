import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { Catalog } from "../../src/catalog.js";
import { CommitCoordinator } from "../../src/coordinator.js";
import { CkptdError } from "../../src/errors.js";
import { DataDir } from "../../src/storage.js";

describe("coordinator incarnation memory", () => {
  it("coordinator - incarnations are remembered up to a bound, the least recently fenced checkpoint's forgotten first", async () => {
    const dataDir = new DataDir(fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-fencing-")));
    const c = new CommitCoordinator(
      dataDir,
      new Catalog(dataDir),
      { prepareTimeoutMs: 60_000, maxRememberedIncarnations: 3 },
      pino({ level: "silent" }),
    );
    const abort = (checkpointId: string, incarnation: number) => c.abort({ job: "j", checkpointId, rank: 0, incarnation }, "test", 0);
    expect((await abort("a", 5)).outcome).toBe("ABORTED");
    // While remembered, an older incarnation of rank 0 is refused.
    const refused = await abort("a", 4).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(CkptdError);
    expect((refused as CkptdError).message).toMatch(/superseded by a newer incarnation of rank 0 \(5\)/);
    for (const id of ["b", "c", "d"]) await abort(id, 10);
    // Four (checkpoint, rank) pairs over a bound of three: "a" went first; "d" is still known.
    await expect(abort("d", 9)).rejects.toThrow(/superseded/);
    expect((await abort("a", 4)).outcome, "a forgotten: its older incarnation is no longer refused").toBe("ABORTED");
    // Incarnations are validated where they are fenced: below 2^53, integers; 0 means none sent.
    await expect(abort("d", 0.5)).rejects.toThrow(/out of range/);
    await expect(abort("d", 0)).resolves.toMatchObject({ outcome: "ABORTED" });
  });
});
