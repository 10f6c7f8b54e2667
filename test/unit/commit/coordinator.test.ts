import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { Catalog } from "../../../src/catalog/catalog.js";
import type { ItemRecord } from "../../../src/catalog/manifest.js";
import { CommitCoordinator } from "../../../src/commit/coordinator.js";
import type { CheckpointRef } from "../../../src/commit/protocol.js";
import { layout } from "../../../src/store/layout.js";
import { MemoryStorage } from "../../../src/store/memory.js";

const log = pino({ level: "silent" });
let names = 0;

function coordinator(storage = new MemoryStorage(`coordinator-${names++}`)) {
  const catalog = new Catalog(storage);
  const c = new CommitCoordinator(storage, catalog, { prepareTimeoutMs: 60_000 }, log);
  return { storage, catalog, c };
}

/** What a daemon restarted on what survived a crash finds: its catalog loaded and its recovery run. */
async function restart(storage: MemoryStorage) {
  const after = storage.crash();
  const r = coordinator(after);
  await r.catalog.load({ quarantine: true });
  const recovered = await r.c.recover();
  return { ...r, recovered };
}

const ref = (checkpointId: string, rank: number, worldSize = 2): CheckpointRef => ({ job: "j", checkpointId, step: 7, rank, worldSize });

/** An item with no entries: what an empty state dict stages. */
const record = (name: string): ItemRecord => ({ name, rawBytes: 0, storedBytes: 0, entries: [] });

/** One rank saves `item` as the item writer would: reserve, durable files, then stage. */
async function save(c: CommitCoordinator, storage: MemoryStorage, r: CheckpointRef, item: string) {
  const ticket = await c.beginSave(r, item);
  await storage.createPrefix(layout.item(ticket.stagingKey, r.rank, item));
  ticket.stage(record(item));
  return ticket;
}

describe("commit coordinator on memory storage", () => {
  it("coordinator - every rank voted: COMMITTED, the checkpoint published and listed, the staging gone", async () => {
    const { storage, catalog, c } = coordinator();
    await save(c, storage, ref("c", 0), "model");
    await save(c, storage, ref("c", 1), "model");
    const first = c.vote(ref("c", 0), ["model"], 0);
    const d = await c.vote(ref("c", 1), ["model"], 0);
    expect(d).toMatchObject({ outcome: "COMMITTED", attempt: 1 });
    expect((await first).outcome).toBe("COMMITTED");
    expect(catalog.has("j", "c")).toBe(true);
    const manifest = JSON.parse((await storage.get(layout.manifest("j", "c")))!.toString()) as { attempt: number; ranks: unknown[] };
    expect(manifest.attempt).toBe(1);
    expect(manifest.ranks).toHaveLength(2);
    expect(await storage.list(layout.stagingRoot("j"))).toEqual([]);
    expect(await storage.list(`${layout.checkpoint("j", "c")}/rank-00001`)).toEqual(["model"]);
  });

  it("coordinator - the decision is durable before it is answered, and before publishing", async () => {
    const { storage, c } = coordinator();
    await save(c, storage, ref("c", 0, 1), "model");
    let durableAtAnswer: Buffer | undefined;
    await c.vote(ref("c", 0, 1), ["model"], 0).then(async () => {
      durableAtAnswer = await storage.crash().get(layout.decision("j", "c", 1));
    });
    expect(JSON.parse(durableAtAnswer!.toString())).toMatchObject({ outcome: "COMMITTED", attempt: 1 });
    const decisionAt = storage.journal.indexOf(`put ${layout.decision("j", "c", 1)}`);
    const publishAt = storage.journal.indexOf(`publish ${layout.staging("j", "c", 1)}`);
    expect(decisionAt).toBeGreaterThanOrEqual(0);
    expect(publishAt, "published only after the decision was put").toBeGreaterThan(decisionAt);
  });

  it("coordinator - a COMMIT record that cannot be written (ENOSPC) aborts the attempt, says why and publishes nothing", async () => {
    const { storage, catalog, c } = coordinator();
    await save(c, storage, ref("c", 0, 1), "model");
    storage.failPut(1);
    const d = await c.vote(ref("c", 0, 1), ["model"], 0);
    expect(d.outcome).toBe("ABORTED");
    expect(d.reason).toMatch(/data directory is full/);
    expect(catalog.has("j", "c")).toBe(false);
    expect(await storage.get(layout.manifest("j", "c"))).toBeUndefined();
    expect(JSON.parse((await storage.get(layout.decision("j", "c", 1)))!.toString())).toMatchObject({ outcome: "ABORTED" });
  });

  it("coordinator - presumed abort: a restart with an undecided attempt records ABORT and frees its staging", async () => {
    const { storage, c } = coordinator();
    await save(c, storage, ref("c", 0), "model");
    storage.sync(layout.staging("j", "c", 1));
    const { storage: after, recovered, c: c2 } = await restart(storage);
    expect(recovered).toEqual({ published: 0, aborted: 1 });
    expect(JSON.parse((await after.get(layout.decision("j", "c", 1)))!.toString())).toMatchObject({
      outcome: "ABORTED",
      reason: expect.stringMatching(/presumed abort/),
    });
    expect(await after.list(layout.stagingRoot("j"))).toEqual([]);
    // A vote for the old attempt learns it was aborted; the next save opens attempt 2.
    expect((await c2.vote(ref("c", 0), ["model"], 1)).outcome).toBe("ABORTED");
    const next = await save(c2, after, ref("c", 0), "model");
    expect(next.attempt).toBe(2);
  });

  it("coordinator - a restart publishes a durable COMMIT whose publish did not happen", async () => {
    const { storage, c } = coordinator();
    await save(c, storage, ref("c", 0, 1), "model");
    // The manifest put inside publish fails: decided COMMITTED, not yet visible.
    storage.failPut(2);
    await expect(c.vote(ref("c", 0, 1), ["model"], 0)).rejects.toThrow(/decided COMMITTED but is not yet visible/);
    storage.sync(layout.staging("j", "c", 1));
    const { recovered, catalog, storage: after } = await restart(storage);
    expect(recovered.published).toBe(1);
    expect(catalog.has("j", "c")).toBe(true);
    expect(await after.get(layout.manifest("j", "c"))).toBeDefined();
  });

  it("coordinator - a failed publish is retried by a retried vote and commits once", async () => {
    const { storage, catalog, c } = coordinator();
    await save(c, storage, ref("c", 0, 1), "model");
    storage.failPut(2);
    await expect(c.vote(ref("c", 0, 1), ["model"], 0)).rejects.toThrow(/not yet visible: publishing failed/);
    expect(catalog.has("j", "c")).toBe(false);
    const d = await c.vote(ref("c", 0, 1), ["model"], 1);
    expect(d).toMatchObject({ outcome: "COMMITTED", attempt: 1 });
    expect(catalog.has("j", "c")).toBe(true);
    expect(
      storage.journal.filter((op) => op.startsWith("publish ")),
      "tried twice, published once",
    ).toHaveLength(2);
    expect((await c.vote(ref("c", 0, 1), ["model"], 1)).outcome, "a third vote is answered from memory").toBe("COMMITTED");
    expect(storage.journal.filter((op) => op.startsWith("publish "))).toHaveLength(2);
  });

  it("coordinator - attempt numbers grow after aborts and are never reused, across restarts too", async () => {
    const { storage, c } = coordinator();
    const a1 = await save(c, storage, ref("c", 0), "model");
    expect(a1.attempt).toBe(1);
    expect((await c.abort({ job: "j", checkpointId: "c", rank: 1 }, "rank 1 failed", 1)).outcome).toBe("ABORTED");
    const a2 = await save(c, storage, ref("c", 0), "model");
    expect(a2.attempt).toBe(2);
    expect((await c.abort({ job: "j", checkpointId: "c", rank: 1 }, "rank 1 failed again", 2)).outcome).toBe("ABORTED");
    // Only the highest attempt's record is kept: it is what keeps numbers from being reused.
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await storage.list(layout.decisions("j"))).toEqual(["c@2.json"]);
    const { c: c2, storage: after } = await restart(storage);
    const a3 = await save(c2, after, ref("c", 0), "model");
    expect(a3.attempt).toBe(3);
    expect((await c2.vote(ref("c", 0), ["model"], 1)).reason).toMatch(/attempt 1 was aborted; attempt 3 superseded it/);
  });

  it("coordinator - a decision another coordinator recorded first holds: this one's is not written over it", async () => {
    const { storage, catalog, c } = coordinator();
    await save(c, storage, ref("c", 0), "model");
    await save(c, storage, ref("c", 1), "model");
    const theirs = JSON.stringify({ outcome: "ABORTED", reason: "aborted by the other coordinator", attempt: 1, decidedAt: "x" });
    expect(await storage.create(layout.decision("j", "c", 1), theirs)).toBe(true);
    const first = c.vote(ref("c", 0), ["model"], 0);
    const d = await c.vote(ref("c", 1), ["model"], 0);
    expect(d).toMatchObject({ outcome: "ABORTED", reason: "aborted by the other coordinator", attempt: 1 });
    expect((await first).outcome).toBe("ABORTED");
    expect((await storage.get(layout.decision("j", "c", 1)))?.toString()).toBe(theirs);
    expect(catalog.has("j", "c")).toBe(false);
    expect(await storage.get(layout.manifest("j", "c"))).toBeUndefined();
  });

  it("coordinator - a retried ABORT record that landed earlier is not a conflict", async () => {
    const { storage, c } = coordinator();
    const first = await c.abort(ref("c", 0), "stop", 0);
    expect(first).toMatchObject({ outcome: "ABORTED", attempt: 1 });
    const after = await restart(storage);
    expect(after.recovered.aborted).toBe(0);
    expect(JSON.parse((await after.storage.get(layout.decision("j", "c", 1)))!.toString())).toMatchObject({ outcome: "ABORTED" });
  });

  it("coordinator - a committed id is never reopened", async () => {
    const { storage, c } = coordinator();
    await save(c, storage, ref("c", 0, 1), "model");
    expect((await c.vote(ref("c", 0, 1), ["model"], 0)).outcome).toBe("COMMITTED");
    await expect(c.beginSave(ref("c", 0, 1), "other")).rejects.toThrow(/already committed/);
  });
});

describe("commit coordinator on a storage that publishes in place (an object store)", () => {
  const inPlace = () => coordinator(new MemoryStorage(`coordinator-in-place-${names++}`, true));

  it("coordinator - the data stays in the published attempt's staging, and a restart keeps it while freeing the others", async () => {
    const { storage, catalog, c } = inPlace();
    await save(c, storage, ref("c", 0, 1), "model");
    expect((await c.vote(ref("c", 0, 1), ["model"], 0)).outcome).toBe("COMMITTED");
    expect(catalog.get("j", "c").attempt).toBe(1);
    expect(await storage.list(layout.checkpoint("j", "c")), "the checkpoint is its manifest").toEqual(["manifest.json"]);
    expect(storage.dataPrefix("j", "c", 1)).toBe(layout.staging("j", "c", 1));
    expect(await storage.list(`${layout.staging("j", "c", 1)}/rank-00000`)).toEqual(["model"]);
    await save(c, storage, ref("d", 0), "model"); // undecided at the crash
    storage.sync(layout.stagingRoot("j"));
    const { recovered, catalog: after, storage: s2 } = await restart(storage);
    expect(recovered).toEqual({ published: 0, aborted: 1 });
    expect(after.has("j", "c")).toBe(true);
    expect(await s2.list(layout.stagingRoot("j")), "only the published data stays staged").toEqual(["c@1"]);
    expect(await s2.list(`${layout.staging("j", "c", 1)}/rank-00000`)).toEqual(["model"]);
  });

  it("coordinator - a crash after a deletion moved the manifest to the trash frees the staged data and publishes nothing", async () => {
    const { storage, c } = inPlace();
    await save(c, storage, ref("c", 0, 1), "model");
    expect((await c.vote(ref("c", 0, 1), ["model"], 0)).outcome).toBe("COMMITTED");
    storage.sync(layout.stagingRoot("j"));
    // Retention's first step: the checkpoint's prefix (its manifest) to the trash; then the daemon dies.
    await storage.move(layout.checkpoint("j", "c"), layout.trashEntry("j", "c", 5));
    await storage.syncList(layout.checkpoints("j"));
    await storage.syncList(layout.trash("j"));
    const { recovered, catalog, storage: after } = await restart(storage);
    expect(recovered.published, "the COMMIT record does not bring a deleted checkpoint back").toBe(0);
    expect(catalog.has("j", "c")).toBe(false);
    expect(await after.list(layout.stagingRoot("j"))).toEqual([]);
    expect(await after.list(layout.trash("j"))).toEqual([]);
  });
});
