import { describe, expect, it } from "vitest";
import { Catalog } from "../../../src/catalog/catalog.js";
import type { Manifest } from "../../../src/catalog/manifest.js";
import { testManifest } from "./manifest-fixture.js";
import { layout } from "../../../src/store/layout.js";
import { MemoryStorage } from "../../../src/store/memory.js";
import { ensureJob, listQuarantine } from "../../../src/store/storage.js";

let names = 0;

const manifest = testManifest;

async function committed(storage: MemoryStorage, m: Manifest, dir = m.checkpointId): Promise<void> {
  await ensureJob(storage, m.job);
  await storage.put(layout.manifest(m.job, dir), JSON.stringify(m));
}

describe("catalog on memory storage", () => {
  it("catalog - load lists every valid checkpoint, newest step first", async () => {
    const storage = new MemoryStorage(`catalog-${names++}`);
    await committed(storage, manifest("a", 1));
    await committed(storage, manifest("b", 3));
    await committed(storage, manifest("x", 2, "other"));
    const catalog = new Catalog(storage);
    expect(await catalog.load({ quarantine: true })).toEqual([]);
    expect(catalog.list("j").map((s) => s.checkpointId)).toEqual(["b", "a"]);
    expect(catalog.get("j", "latest").checkpointId).toBe("b");
    expect(catalog.jobsWithCheckpoints().sort()).toEqual(["j", "other"]);
    expect((await catalog.readManifest(catalog.get("j", "a"))).step).toBe(1);
  });

  it("catalog - a missing, damaged or misplaced manifest is quarantined, never served", async () => {
    const storage = new MemoryStorage(`catalog-${names++}`);
    await committed(storage, manifest("good", 1));
    await storage.createPrefix(`${layout.checkpoint("j", "empty")}/rank-00000`);
    await storage.put(layout.manifest("j", "torn"), '{"format":');
    await committed(storage, manifest("elsewhere", 2), "copy");
    const catalog = new Catalog(storage);
    const bad = await catalog.load({ quarantine: true });
    expect(
      bad.map((b) => [b.checkpointId, b.reason.replace(/^.*(missing|not a valid manifest|describes checkpoint).*$/, "$1")]).sort(),
    ).toEqual([
      ["copy", "describes checkpoint"],
      ["empty", "missing"],
      ["torn", "not a valid manifest"],
    ]);
    expect(catalog.list("j").map((s) => s.checkpointId)).toEqual(["good"]);
    expect(await storage.list(layout.checkpoints("j"))).toEqual(["good"]);
    expect((await listQuarantine(storage, 10)).total).toBe(3);
    for (const b of bad) expect(b.quarantinedTo).toMatch(/quarantine/);
  });

  it("catalog - without quarantine (a follower) a bad checkpoint is skipped and left where it is", async () => {
    const storage = new MemoryStorage(`catalog-${names++}`);
    await storage.put(layout.manifest("j", "torn"), "not json");
    const bad = await new Catalog(storage).load({ quarantine: false });
    expect(bad).toHaveLength(1);
    expect(bad[0]!.quarantinedTo).toBeUndefined();
    expect(await storage.list(layout.checkpoints("j"))).toEqual(["torn"]);
  });

  it("catalog - a shared catalog's refresh follows checkpoints published and deleted by another daemon", async () => {
    const storage = new MemoryStorage(`catalog-${names++}`);
    const catalog = new Catalog(storage, true);
    await committed(storage, manifest("a", 1));
    await catalog.refresh("j");
    expect(catalog.has("j", "a")).toBe(true);
    await storage.deletePrefix(layout.checkpoint("j", "a"));
    await catalog.refresh("j");
    expect(catalog.has("j", "a")).toBe(false);
  });

  it("catalog - reading a manifest deleted since it was listed is NOT_FOUND; a damaged one is DATA_LOSS", async () => {
    const storage = new MemoryStorage(`catalog-${names++}`);
    await committed(storage, manifest("a", 1));
    await committed(storage, manifest("b", 2));
    const catalog = new Catalog(storage);
    await catalog.load({ quarantine: true });
    await storage.delete(layout.manifest("j", "a"));
    await expect(catalog.readManifest(catalog.get("j", "a"))).rejects.toThrow(/was deleted/);
    await storage.put(layout.manifest("j", "b"), "{");
    await expect(catalog.readManifest(catalog.get("j", "b"))).rejects.toThrow(/is damaged/);
  });
});
