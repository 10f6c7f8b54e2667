import { describe, expect, it } from "vitest";
import { layout } from "../../../src/store/layout.js";
import { MemoryStorage } from "../../../src/store/memory.js";
import { ensureJob } from "../../../src/store/storage.js";
import { storageContract } from "./storage-contract.js";

let n = 0;
storageContract("memory", {
  make: () => new MemoryStorage(`contract-${n++}`),
  holdElsewhere: (s) => {
    const other = new MemoryStorage((s as MemoryStorage).name);
    other.lock();
    return () => other.unlock();
  },
  stage: async (s, key, data) => (s as MemoryStorage).write(key, data),
});

// Publishing as an object store does: the manifest written last, the data left in the staging.
storageContract("memory-in-place", {
  make: () => new MemoryStorage(`contract-in-place-${n++}`, true),
  holdElsewhere: (s) => {
    const other = new MemoryStorage((s as MemoryStorage).name, true);
    other.lock();
    return () => other.unlock();
  },
  stage: async (s, key, data) => (s as MemoryStorage).write(key, data),
});

describe("memory storage: crash and faults", () => {
  it("memory - a crash keeps puts, appends and published checkpoints, and drops staged data never synced", async () => {
    const s = new MemoryStorage("crash-1");
    await ensureJob(s, "j");
    await s.put(layout.retention("j"), "{}");
    await s.append(layout.events("j"), Buffer.from("e\n"), 0);
    s.write(`${layout.staging("j", "a", 1)}/rank-00000/m/000000.lz4`, Buffer.from("unsynced"));
    s.write(`${layout.staging("j", "b", 1)}/rank-00000/m/000000.lz4`, Buffer.from("synced"));
    s.sync(layout.staging("j", "b", 1));
    const after = s.crash();
    expect((await after.get(layout.retention("j")))?.toString()).toBe("{}");
    expect((await after.get(layout.events("j")))?.toString()).toBe("e\n");
    expect(await after.stat(`${layout.staging("j", "a", 1)}/rank-00000/m/000000.lz4`)).toBeUndefined();
    expect((await after.get(`${layout.staging("j", "b", 1)}/rank-00000/m/000000.lz4`))?.toString()).toBe("synced");
  });

  it("memory - a move is lost in a crash until its parents' listings are synced", async () => {
    const s = new MemoryStorage("crash-2");
    await ensureJob(s, "j");
    await s.put(layout.manifest("j", "c"), "{}");
    await s.move(layout.checkpoint("j", "c"), layout.trashEntry("j", "c", 1));
    expect((await s.crash().list(layout.checkpoints("j"))).sort(), "not synced: still where it was").toEqual(["c"]);
    await s.syncList(layout.checkpoints("j"));
    await s.syncList(layout.trash("j"));
    const after = s.crash();
    expect(await after.list(layout.checkpoints("j"))).toEqual([]);
    expect(await after.list(layout.trash("j"))).toEqual(["c.1"]);
  });

  it("memory - failPut fails the Nth put with ENOSPC and nothing of it is written", async () => {
    const s = new MemoryStorage("faults");
    await ensureJob(s, "j");
    s.failPut(2);
    await s.put(layout.decision("j", "c", 1), "one");
    await expect(s.put(layout.decision("j", "c", 2), "two")).rejects.toMatchObject({ code: "ENOSPC" });
    expect(await s.get(layout.decision("j", "c", 2))).toBeUndefined();
    await s.put(layout.decision("j", "c", 2), "two");
    expect((await s.get(layout.decision("j", "c", 2)))?.toString()).toBe("two");
  });

  it("memory - a crash before publish shows no checkpoint; after it, the whole checkpoint and no staging", async () => {
    const s = new MemoryStorage("crash-publish");
    await ensureJob(s, "j");
    const staging = layout.staging("j", "c", 1);
    await s.createPrefix(staging);
    s.write(`${staging}/rank-00000/m/000000.lz4`, Buffer.from("data"));
    s.sync(staging);
    const before = s.crash();
    expect(await before.list(layout.checkpoints("j"))).toEqual([]);
    expect(await before.list(layout.stagingRoot("j"))).toEqual(["c@1"]);
    await s.publish({ job: "j", checkpointId: "c", attempt: 1, manifest: "{}", keep: new Set(["rank-00000/m"]) });
    const after = s.crash();
    expect((await after.get(layout.manifest("j", "c")))?.toString()).toBe("{}");
    expect((await after.get(`${layout.checkpoint("j", "c")}/rank-00000/m/000000.lz4`))?.toString()).toBe("data");
    expect(await after.list(layout.stagingRoot("j"))).toEqual([]);
  });
});
