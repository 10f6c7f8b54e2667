import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { Catalog } from "../../../src/catalog/catalog.js";
import { EventLog, parseLog, type WriteAt } from "../../../src/catalog/events.js";
import type { CheckpointSummary } from "../../../src/catalog/manifest.js";
import { layout } from "../../../src/store/layout.js";
import { MemoryStorage } from "../../../src/store/memory.js";
import { PosixStorage } from "../../../src/store/posix.js";

const log = pino({ level: "silent" });

function summary(id: string, step: number): CheckpointSummary {
  return {
    job: "j",
    checkpointId: id,
    step,
    worldSize: 1,
    attempt: 1,
    commitTime: "2026-11-30T00:00:00.000Z",
    rawBytes: 1,
    storedBytes: 1,
    ranks: [],
  };
}

function setup() {
  const dataDir = new PosixStorage(fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-events-")));
  fs.mkdirSync(path.join(dataDir.root, "jobs", "j"), { recursive: true });
  return { dataDir, file: path.join(dataDir.root, "jobs", "j", "events.log") };
}

/** What a restarted daemon sees: a fresh EventLog loaded against the catalog the log describes. */
async function reload(dataDir: PosixStorage) {
  const events = new EventLog(dataDir, log);
  // With the committed set the log names, load() appends nothing: the log is compared as written.
  const catalog = new Catalog(dataDir);
  for (const r of parseLog(fs.readFileSync(path.join(dataDir.root, "jobs", "j", "events.log"))).records)
    if (r.type === "COMMITTED") catalog.add(r.checkpoint);
  await events.load(catalog);
  return events.after("j", 0, 1000).map((r) => `${r.seq}:${r.checkpointId}`);
}

describe("event log", () => {
  it("events - a short write is completed, not acknowledged as a fragment", async () => {
    const { dataDir } = setup();
    // The kernel may write fewer bytes than asked (a filesystem near full does): at most 50 per call here.
    const short: WriteAt = (fh, buf, off, len, pos) => fh.write(buf, off, Math.min(len, 50), pos);
    const events = new EventLog(new PosixStorage(dataDir.root, undefined, short), log, false);
    for (let i = 1; i <= 5; i++) await events.append("j", "COMMITTED", summary(`c${i}`, i), "");
    const follower = new EventLog(dataDir, log, true);
    await follower.refresh("j");
    expect(follower.after("j", 0).map((r) => `${r.seq}:${r.checkpointId}`)).toEqual(["1:c1", "2:c2", "3:c3", "4:c4", "5:c5"]);
  });

  it("events - a failed write fails the append and leaves no fragment for the next one to follow", async () => {
    const { dataDir, file } = setup();
    let failNext = false;
    // Writes part of the record, then ENOSPC: what a full disk does mid-record.
    const flaky: WriteAt = async (fh, buf, off, len, pos) => {
      if (!failNext) return fh.write(buf, off, len, pos);
      failNext = false;
      await fh.write(buf, off, Math.min(len, 40), pos);
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    };
    const events = new EventLog(new PosixStorage(dataDir.root, undefined, flaky), log, false);
    await events.append("j", "COMMITTED", summary("c1", 1), "");
    const sizeBefore = fs.statSync(file).size;
    failNext = true;
    await expect(events.append("j", "COMMITTED", summary("c2", 2), "")).rejects.toThrow(/ENOSPC/);
    expect(fs.statSync(file).size, "the fragment was cut back").toBe(sizeBefore);
    expect(events.lastSeq("j")).toBe(1);
    await events.append("j", "COMMITTED", summary("c2", 2), "");
    await events.append("j", "COMMITTED", summary("c3", 3), "");
    expect(await reload(dataDir)).toEqual(["1:c1", "2:c2", "3:c3"]);
  });

  it("events - a fragment a failed cut-back left behind is cut by the next append", async () => {
    const { dataDir, file } = setup();
    const events = new EventLog(dataDir, log);
    await events.append("j", "COMMITTED", summary("c1", 1), "");
    fs.appendFileSync(file, '0badc0de {"seq":2,"type":"COMM'); // as if both the write and the truncate failed
    await events.append("j", "COMMITTED", summary("c2", 2), "");
    expect(await reload(dataDir)).toEqual(["1:c1", "2:c2"]);
  });

  it("events - a torn tail is cut at restart and nothing before it is renumbered", async () => {
    const { dataDir, file } = setup();
    const events = new EventLog(dataDir, log);
    for (let i = 1; i <= 4; i++) await events.append("j", "COMMITTED", summary(`c${i}`, i), "");
    const good = fs.statSync(file).size;
    // A crash mid-append: the record's first bytes reached the disk, its newline did not.
    const whole = fs.readFileSync(file);
    const lastLine = whole.subarray(whole.lastIndexOf(0x0a, whole.length - 2) + 1);
    fs.appendFileSync(file, lastLine.subarray(0, 60));
    expect(await reload(dataDir)).toEqual(["1:c1", "2:c2", "3:c3", "4:c4"]);
    expect(fs.statSync(file).size).toBe(good);
  });

  it("events - a damaged record between good ones is skipped, and the records after it keep their sequences", async () => {
    const { dataDir, file } = setup();
    const events = new EventLog(dataDir, log);
    for (let i = 1; i <= 4; i++) await events.append("j", "COMMITTED", summary(`c${i}`, i), "");
    const bytes = fs.readFileSync(file);
    const secondLine = bytes.indexOf(0x0a) + 1;
    bytes[secondLine + 20]! ^= 0x01; // a flipped bit in record 2: its checksum no longer matches
    fs.writeFileSync(file, bytes);
    const size = bytes.length;
    const after = await reload(dataDir);
    expect(after).toEqual(["1:c1", "3:c3", "4:c4"]);
    expect(fs.statSync(file).size, "nothing after the damaged record was truncated").toBe(size);
    // A watcher resuming after seq 1 gets 3 and 4, not a renumbered record.
    const reopened = new EventLog(dataDir, log);
    await reopened.load(new Catalog(dataDir));
    expect(
      reopened
        .after("j", 1)
        .map((r) => r.seq)
        .slice(0, 2),
    ).toEqual([3, 4]);
  });

  it("events - a log in the old unchecked format is read, and new records follow it checksummed", async () => {
    const { dataDir, file } = setup();
    const old = [1, 2].map((i) =>
      JSON.stringify({
        seq: i,
        type: "COMMITTED",
        job: "j",
        checkpointId: `c${i}`,
        step: i,
        commitTime: "",
        time: "",
        checkpoint: summary(`c${i}`, i),
        reason: "",
      }),
    );
    fs.writeFileSync(file, old.join("\n") + "\n");
    const events = new EventLog(dataDir, log);
    const catalog = new Catalog(dataDir);
    for (const i of [1, 2, 3]) catalog.add(summary(`c${i}`, i));
    await events.load(catalog); // c3 is committed but not logged: recovered as seq 3
    expect(events.after("j", 0).map((r) => `${r.seq}:${r.checkpointId}`)).toEqual(["1:c1", "2:c2", "3:c3"]);
    expect(fs.readFileSync(file, "utf8").split("\n")[2]).toMatch(/^[0-9a-f]{8} \{/);
  });
});

describe("event log on memory storage", () => {
  it("events - load appends what a crash left out: COMMITTED for a listed checkpoint, DELETED for one gone", async () => {
    const storage = new MemoryStorage("events-load");
    const first = new EventLog(storage, log);
    await first.load(new Catalog(storage));
    await first.append("j", "COMMITTED", summary("gone", 1), "");
    // A restart: "gone" was deleted and "new" committed before their events were appended.
    const after = storage.crash();
    const catalog = new Catalog(after);
    catalog.add(summary("new", 2));
    const events = new EventLog(after, log);
    await events.load(catalog);
    expect(events.after("j", 0).map((r) => `${r.seq}:${r.type}:${r.checkpointId}`)).toEqual([
      "1:COMMITTED:gone",
      "2:COMMITTED:new",
      "3:DELETED:gone",
    ]);
    expect(events.isLogged("j", "gone", "DELETED")).toBe(true);
  });

  it("events - a follower reads only what was appended since its last look", async () => {
    const storage = new MemoryStorage("events-follow");
    const writer = new EventLog(storage, log);
    const follower = new EventLog(storage, log, true);
    await writer.append("j", "COMMITTED", summary("a", 1), "");
    await follower.refresh("j");
    await writer.append("j", "COMMITTED", summary("b", 2), "");
    await follower.refresh("j");
    await follower.refresh("j");
    expect(follower.after("j", 0).map((r) => `${r.seq}:${r.checkpointId}`)).toEqual(["1:a", "2:b"]);
  });

  it("events - a failed append (ENOSPC) is not logged and the next append takes its sequence", async () => {
    const storage = new MemoryStorage("events-enospc");
    const events = new EventLog(storage, log);
    await events.load(new Catalog(storage));
    storage.failPut(1);
    await expect(events.append("j", "COMMITTED", summary("a", 1), "")).rejects.toMatchObject({ code: "ENOSPC" });
    await events.append("j", "COMMITTED", summary("a", 1), "");
    expect(events.after("j", 0).map((r) => `${r.seq}:${r.checkpointId}`)).toEqual(["1:a"]);
    expect(parseLog((await storage.get(layout.events("j")))!).records).toHaveLength(1);
  });
});
