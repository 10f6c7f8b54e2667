import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { layout } from "../../../src/store/layout.js";
import { processStartTime } from "../../../src/store/files.js";
import { PosixStorage } from "../../../src/store/posix.js";
import { ensureJob } from "../../../src/store/storage.js";
import { storageContract } from "./storage-contract.js";

storageContract("posix", {
  make: () => new PosixStorage(fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-storage-"))),
  holdElsewhere: (s) => {
    // The lock file of a live daemon: this test runner's parent process, with its start time and boot.
    const file = path.join((s as PosixStorage).root, "ckptd.lock");
    const boot = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    fs.writeFileSync(file, `${process.ppid} ${processStartTime(process.ppid)} ${boot}\n`);
    return () => fs.rmSync(file);
  },
  stage: async (s, key, data) => {
    const file = (s as PosixStorage).localPath(key);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, data);
  },
});

describe("posix storage", () => {
  it("posix - keys are paths under the data directory", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-storage-"));
    const s = new PosixStorage(root);
    await ensureJob(s, "j");
    await s.put(layout.decision("j", "c", 7), "{}");
    expect(fs.readFileSync(path.join(root, "jobs", "j", "decisions", "c@7.json"), "utf8")).toBe("{}");
    expect(s.where(layout.checkpoint("j", "c"))).toBe(path.join(root, "jobs", "j", "checkpoints", "c"));
  });

  it("posix - a failed put leaves no tmp file", async () => {
    const s = new PosixStorage(fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-storage-")));
    await ensureJob(s, "j");
    // The target is a non-empty directory: the rename fails after the tmp file was written.
    fs.mkdirSync(path.join(s.root, "jobs", "j", "retention.json", "x"), { recursive: true });
    await expect(s.put(layout.retention("j"), "{}")).rejects.toThrow();
    expect(fs.readdirSync(path.join(s.root, "jobs", "j")).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });
});
