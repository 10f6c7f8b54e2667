/**
 * The Storage contract, run against every implementation (posix.test.ts, memory.test.ts).
 */
import { describe, expect, it } from "vitest";
import { layout } from "../../../src/store/layout.js";
import { ensureJob, listJobs, listQuarantine, quarantine, type Storage } from "../../../src/store/storage.js";

export interface ContractTarget {
  /** A fresh, empty storage. */
  make(): Storage;
  /** Makes another live daemon hold the storage's lock; returns how it lets go. */
  holdElsewhere(s: Storage): () => void;
  /** Writes a staged data file as the item writer does (outside the interface). */
  stage(s: Storage, key: string, data: Buffer): Promise<void>;
}

export function storageContract(name: string, t: ContractTarget): void {
  describe(`storage contract: ${name}`, () => {
    it(`${name} - put then get and getRange; an absent key is undefined`, async () => {
      const s = t.make();
      await ensureJob(s, "j");
      await s.put(layout.retention("j"), "0123456789");
      expect((await s.get(layout.retention("j")))?.toString()).toBe("0123456789");
      expect((await s.getRange(layout.retention("j"), 3, 4))?.toString()).toBe("3456");
      expect((await s.getRange(layout.retention("j"), 8, 10))?.toString(), "a range past the end is cut").toBe("89");
      expect(await s.get(layout.decision("j", "x", 1))).toBeUndefined();
      expect(await s.getRange("jobs/j/none", 0, 1)).toBeUndefined();
      expect(await s.stat("jobs/j/none")).toBeUndefined();
      expect(await s.stat(layout.retention("j"))).toEqual({ kind: "object", size: 10 });
      expect((await s.stat(layout.job("j")))?.kind).toBe("prefix");
    });

    it(`${name} - put replaces an object whole`, async () => {
      const s = t.make();
      await ensureJob(s, "j");
      await s.put(layout.decision("j", "c", 1), "a long first version");
      await s.put(layout.decision("j", "c", 1), "short");
      expect((await s.get(layout.decision("j", "c", 1)))?.toString()).toBe("short");
      expect(await s.list(layout.decisions("j")), "no tmp object is left").toEqual(["c@1.json"]);
    });

    it(`${name} - create only creates: of writers racing for one key exactly one wins, the object keeps its bytes`, async () => {
      const s = t.make();
      await ensureJob(s, "j");
      const key = layout.decision("j", "c", 1);
      expect(await s.create(key, "first")).toBe(true);
      expect(await s.create(key, "second")).toBe(false);
      expect((await s.get(key))?.toString()).toBe("first");
      const racers = await Promise.all(["a", "b", "c", "d"].map((w) => s.create(layout.decision("j", "r", 1), w)));
      expect(racers.filter(Boolean)).toHaveLength(1);
      const winner = ["a", "b", "c", "d"][racers.indexOf(true)];
      expect((await s.get(layout.decision("j", "r", 1)))?.toString()).toBe(winner);
      expect((await s.list(layout.decisions("j"))).sort(), "no tmp object is left").toEqual(["c@1.json", "r@1.json"]);
    });

    it(`${name} - list is one level; prefixesOnly lists prefixes; delete and deletePrefix`, async () => {
      const s = t.make();
      await ensureJob(s, "a");
      await ensureJob(s, "b");
      await s.put("jobs/stray.json", "{}");
      expect((await listJobs(s)).sort()).toEqual(["a", "b"]);
      expect((await s.list(layout.job("a"))).sort()).toEqual(["checkpoints", "decisions", "staging", "trash"]);
      expect(await s.list("jobs/none")).toEqual([]);
      await s.put(layout.decision("a", "c", 1), "x");
      await s.delete(layout.decision("a", "c", 1));
      await s.delete(layout.decision("a", "c", 1)); // absent: fine
      expect(await s.list(layout.decisions("a"))).toEqual([]);
      await t.stage(s, `${layout.staging("a", "c", 1)}/rank-00000/m/000000.lz4`, Buffer.from("data"));
      await s.deletePrefix(layout.staging("a", "c", 1));
      await s.deletePrefix(layout.staging("a", "c", 1)); // absent: fine
      expect(await s.list(layout.stagingRoot("a"))).toEqual([]);
    });

    it(`${name} - createPrefix makes an empty prefix listable`, async () => {
      const s = t.make();
      await ensureJob(s, "j");
      await s.createPrefix(layout.staging("j", "c", 3));
      await s.createPrefix(layout.staging("j", "c", 3)); // idempotent
      expect(await s.list(layout.stagingRoot("j"))).toEqual(["c@3"]);
      expect(await s.list(layout.staging("j", "c", 3))).toEqual([]);
    });

    it(`${name} - publish drops unvoted items, writes the manifest and makes the checkpoint appear whole; a retry is a no-op`, async () => {
      const s = t.make();
      await ensureJob(s, "j");
      const staging = layout.staging("j", "c", 2);
      await s.createPrefix(staging);
      await t.stage(s, `${staging}/rank-00000/model/000000.lz4`, Buffer.from("kept"));
      await t.stage(s, `${staging}/rank-00001/extra/000000.lz4`, Buffer.from("dropped"));
      await t.stage(s, `${staging}/stray.tmp-1`, Buffer.from("stray"));
      const request = { job: "j", checkpointId: "c", attempt: 2, manifest: '{"m":1}', keep: new Set(["rank-00000/model"]) };
      expect(await s.get(layout.manifest("j", "c"))).toBeUndefined();
      await s.publish(request);
      expect((await s.get(layout.manifest("j", "c")))?.toString()).toBe('{"m":1}');
      // The data lies where the storage says a published attempt's data lies (POSIX: renamed with the checkpoint).
      const data = s.dataPrefix("j", "c", 2);
      expect((await s.get(`${data}/rank-00000/model/000000.lz4`))?.toString()).toBe("kept");
      expect(await s.stat(`${data}/rank-00001/extra/000000.lz4`)).toBeUndefined();
      expect(await s.stat(`${data}/stray.tmp-1`)).toBeUndefined();
      expect(await s.list(layout.stagingRoot("j")), "nothing but the published data stays staged").toEqual(data === staging ? ["c@2"] : []);
      await s.publish({ ...request, manifest: '{"m":2}' });
      expect((await s.get(layout.manifest("j", "c")))?.toString(), "a published checkpoint is not published again").toBe('{"m":1}');
    });

    it(`${name} - a data object is written through createObjectWriter, read by ranges; an aborted one is gone`, async () => {
      const s = t.make();
      await ensureJob(s, "j");
      const key = `${layout.staging("j", "c", 1)}/rank-00000/m/000000.lz4`;
      const w = s.createObjectWriter(key, { sizeHint: 10 });
      await w.write(Buffer.from("01234"));
      await w.write(Buffer.from("56789"));
      await w.finish();
      expect((await s.get(key))?.toString()).toBe("0123456789");
      expect((await s.getRange(key, 3, 4))?.toString()).toBe("3456");
      const into = Buffer.alloc(8, "-");
      expect((await s.getRange(key, 6, 8, into))?.toString(), "fewer at the end, into the buffer given").toBe("6789");
      expect(into.subarray(0, 4).toString()).toBe("6789");
      expect(await s.getRange(`${key}.absent`, 0, 4)).toBeUndefined();
      const gone = `${layout.staging("j", "c", 1)}/rank-00000/m/000001.lz4`;
      const a = s.createObjectWriter(gone);
      await a.write(Buffer.from("partial"));
      await a.abort();
      expect(await s.stat(gone)).toBeUndefined();
    });

    it(`${name} - append adds whole records at the given end; truncate cuts a tail`, async () => {
      const s = t.make();
      await ensureJob(s, "j");
      let end = await s.append(layout.events("j"), Buffer.from("one\n"), 0);
      end = await s.append(layout.events("j"), Buffer.from("two\n"), end);
      expect(end).toBe(8);
      expect((await s.get(layout.events("j")))?.toString()).toBe("one\ntwo\n");
      // A fragment past the last good end (a failed earlier cut) is overwritten.
      await s.append(layout.events("j"), Buffer.from("thr"), end);
      end = await s.append(layout.events("j"), Buffer.from("three\n"), end);
      expect((await s.get(layout.events("j")))?.toString()).toBe("one\ntwo\nthree\n");
      await s.truncate(layout.events("j"), 4);
      expect((await s.get(layout.events("j")))?.toString()).toBe("one\n");
      let ran = 0;
      await s.append(layout.evaluations("j"), Buffer.from("x\n"), 0, () => void ran++);
      expect(ran, "beforeWrite runs once per append").toBe(1);
    });

    it(`${name} - move and quarantine: the prefix is moved whole with its record`, async () => {
      const s = t.make();
      await ensureJob(s, "j");
      await t.stage(s, `${layout.checkpoint("j", "bad")}/rank-00000/m/000000.lz4`, Buffer.from("x"));
      const to = await quarantine(s, "j", "bad", layout.checkpoint("j", "bad"), "its manifest is missing");
      expect(await s.list(layout.checkpoints("j"))).toEqual([]);
      expect((await s.get(`${to}/rank-00000/m/000000.lz4`))?.toString()).toBe("x");
      const listed = await listQuarantine(s, 10);
      expect(listed.total).toBe(1);
      expect(listed.entries[0]).toMatchObject({
        job: "j",
        checkpointId: "bad",
        from: layout.checkpoint("j", "bad"),
        reason: "its manifest is missing",
      });
      expect(listed.dirs).toEqual([s.where(to)]);
      await s.move(to, layout.trashEntry("j", "bad", 1));
      await s.syncList(layout.trash("j"));
      expect(await s.list(layout.trash("j"))).toEqual(["bad.1"]);
    });

    it(`${name} - the lock is exclusive and released by unlock`, async () => {
      const s = t.make();
      s.lock();
      s.lock(); // the holder may take it again
      s.unlock();
      const release = t.holdElsewhere(s);
      expect(() => s.lock()).toThrow(/already in use by ckptd/);
      release();
      s.lock();
      s.unlock();
    });
  });
}
