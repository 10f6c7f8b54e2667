import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { Catalog } from "../../../src/catalog/catalog.js";
import { CommitCoordinator } from "../../../src/commit/coordinator.js";
import { CkptdError } from "../../../src/common/errors.js";
import { PosixStorage } from "../../../src/store/posix.js";

describe("coordinator incarnation memory", () => {
  it("coordinator - incarnations are remembered up to a bound, the least recently fenced checkpoint's forgotten first", async () => {
    const dataDir = new PosixStorage(fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-fencing-")));
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

describe("coordinator aborts before any save", () => {
  it("coordinator - every rank of a fresh job aborting the same new checkpoint at once gets its ABORTED decision", async () => {
    const dataDir = new PosixStorage(fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-abort-race-")));
    const c = new CommitCoordinator(dataDir, new Catalog(dataDir), { prepareTimeoutMs: 60_000 }, pino({ level: "silent" }));
    // As a restarted job's ranks do before their first save: each aborts the tag its
    // predecessors may have left open, while the first rank's ABORT record is being written.
    // The second rank's Abort comes 0, 1, 2, … turns of the event loop after the first one,
    // so that some round lands while the first one's record is being written.
    const tick = () => new Promise((resolve) => setImmediate(resolve));
    for (let delay = 0; delay < 40; delay++) {
      const checkpointId = `global_step${delay}`;
      const abort = (rank: number) => c.abort({ job: "j", checkpointId, rank, incarnation: 1000 + delay }, "a new process", 0);
      const first = abort(0);
      for (let i = 0; i < delay; i++) await tick();
      const decisions = await Promise.all([first, abort(1)]);
      for (const d of decisions) expect(d.outcome, `delay ${delay}`).toBe("ABORTED");
    }
  });
});

describe("coordinator aborts while a save opens the attempt", () => {
  it("coordinator - an Abort that arrives while another rank's save opens the first attempt aborts that attempt", async () => {
    const dataDir = new PosixStorage(fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-abort-open-")));
    const c = new CommitCoordinator(dataDir, new Catalog(dataDir), { prepareTimeoutMs: 60_000 }, pino({ level: "silent" }));
    const tick = () => new Promise((resolve) => setImmediate(resolve));
    for (let delay = 0; delay < 40; delay++) {
      const checkpointId = `global_step${delay}`;
      const saving = c.beginSave({ job: "j", checkpointId, step: delay, rank: 0, worldSize: 2 }, "model");
      for (let i = 0; i < delay; i++) await tick();
      const d = await c.abort({ job: "j", checkpointId, rank: 1 }, "rank 1 failed", 0);
      expect(d.outcome, `delay ${delay}`).toBe("ABORTED");
      await saving.catch(() => undefined);
    }
  });
});

describe("coordinator votes while a save opens the attempt", () => {
  it("coordinator - a vote naming items that arrives while another rank's save opens the first attempt is decided, not refused", async () => {
    const dataDir = new PosixStorage(fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-vote-open-")));
    const c = new CommitCoordinator(dataDir, new Catalog(dataDir), { prepareTimeoutMs: 60_000 }, pino({ level: "silent" }));
    const tick = () => new Promise((resolve) => setImmediate(resolve));
    for (let delay = 0; delay < 40; delay++) {
      const checkpointId = `global_step${delay}`;
      const ref = (rank: number) => ({ job: "j", checkpointId, step: delay, rank, worldSize: 2 });
      const saving = c.beginSave(ref(0), "model");
      for (let i = 0; i < delay; i++) await tick();
      // Rank 1 staged nothing in this attempt: its vote for "model" aborts it, whenever it lands.
      const d = await c.vote(ref(1), ["model"], 0);
      expect(d.outcome, `delay ${delay}`).toBe("ABORTED");
      await saving.catch(() => undefined);
    }
  });
});
