import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { Catalog } from "../../../src/catalog/catalog.js";
import { EventLog } from "../../../src/catalog/events.js";
import { summarize } from "../../../src/catalog/manifest.js";
import { testManifest } from "../catalog/manifest-fixture.js";
import { Evaluations } from "../../../src/evaluation/evaluations.js";
import { KEEP_EVERYTHING, Retention } from "../../../src/evaluation/retention.js";
import { layout } from "../../../src/store/layout.js";
import { MemoryStorage } from "../../../src/store/memory.js";
import { ensureJob } from "../../../src/store/storage.js";

const log = pino({ level: "silent" });

async function setup(name: string) {
  const storage = new MemoryStorage(name);
  await ensureJob(storage, "j");
  const catalog = new Catalog(storage);
  for (const [id, step] of [
    ["a", 1],
    ["b", 2],
  ] as const) {
    const m = testManifest(id, step, "j", 5);
    await storage.put(layout.manifest("j", id), JSON.stringify(m));
    await storage.put(
      layout.decision("j", id, 1),
      JSON.stringify({ outcome: "COMMITTED", reason: "", attempt: 1, decidedAt: "", manifest: m }),
    );
    catalog.add(summarize(m));
  }
  const events = new EventLog(storage, log);
  await events.load(catalog);
  const evaluations = new Evaluations(storage, catalog, 60_000, log);
  const retention = new Retention(storage, catalog, events, evaluations, KEEP_EVERYTHING, log);
  await retention.load();
  return { storage, catalog, events, retention };
}

describe("retention on memory storage", () => {
  it("retention - a deletion unlists the checkpoint, frees its bytes, logs DELETED and shrinks its decision to a tombstone", async () => {
    const { storage, catalog, events, retention } = await setup("retention-delete");
    expect(await retention.delete("j", "a", "by hand")).toBe(5);
    expect(catalog.has("j", "a")).toBe(false);
    expect(await storage.list(layout.checkpoints("j"))).toEqual(["b"]);
    expect(await storage.list(layout.trash("j")), "the bytes are freed").toEqual([]);
    expect(events.isLogged("j", "a", "DELETED")).toBe(true);
    const tombstone = JSON.parse((await storage.get(layout.decision("j", "a", 1)))!.toString()) as Record<string, unknown>;
    expect(tombstone).toMatchObject({ outcome: "COMMITTED", deleted: true });
    expect(tombstone["manifest"]).toBeUndefined();
  });

  it("retention - a pin is durable: a restart on what survived a crash still has it", async () => {
    const { storage, retention } = await setup("retention-pin");
    await retention.pin("j", "a", true);
    const after = storage.crash();
    const reloaded = new Retention(
      after,
      new Catalog(after),
      new EventLog(after, log),
      new Evaluations(after, new Catalog(after), 60_000, log),
      KEEP_EVERYTHING,
      log,
    );
    await reloaded.load();
    expect(reloaded.pinned("j")).toEqual(["a"]);
  });
});
