import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { Catalog } from "../../../src/catalog/catalog.js";
import { Evaluations } from "../../../src/evaluation/evaluations.js";
import { EventLog } from "../../../src/catalog/events.js";
import type { CheckpointSummary } from "../../../src/catalog/manifest.js";
import { KEEP_EVERYTHING, Retention, type RetentionPolicy } from "../../../src/evaluation/retention.js";
import { PosixStorage } from "../../../src/store/posix.js";

const log = pino({ level: "silent" });

function setup(steps: number[], committedBefore = false) {
  const dataDir = new PosixStorage(fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-retention-")));
  fs.mkdirSync(path.join(dataDir.root, "jobs", "j"), { recursive: true });
  const catalog = new Catalog(dataDir);
  // A restart grace applies only to checkpoints committed before the daemon started.
  const commitTime = new Date(Date.now() + (committedBefore ? -60_000 : 60_000)).toISOString();
  for (const step of steps) {
    const s: CheckpointSummary = {
      job: "j",
      checkpointId: `s${step}`,
      step,
      worldSize: 1,
      attempt: 1,
      commitTime,
      rawBytes: 1,
      storedBytes: 1,
      ranks: [],
    };
    catalog.add(s);
  }
  const evaluations = new Evaluations(dataDir, catalog, 60_000, log);
  const retention = new Retention(dataDir, catalog, new EventLog(dataDir, log), evaluations, KEEP_EVERYTHING, log);
  const doomed = (p: Partial<RetentionPolicy>) =>
    retention
      .plan("j", { ...KEEP_EVERYTHING, ...p })
      .map((c) => c.step)
      .sort((a, b) => a - b);
  return { dataDir, catalog, evaluations, retention, doomed };
}

describe("retention plan", () => {
  it("all rules off keeps everything", () => {
    expect(setup([1, 2, 3]).doomed({})).toEqual([]);
  });

  it("keep_last keeps the N highest steps; keep_every_steps adds the multiples of K", () => {
    const { doomed } = setup([1, 2, 3, 4, 5, 6]);
    expect(doomed({ keepLast: 2 })).toEqual([1, 2, 3, 4]);
    expect(doomed({ keepLast: 2, keepEverySteps: 3 })).toEqual([1, 2, 4]);
  });

  it("the latest is never deleted, whatever the rules", () => {
    const { doomed } = setup([10, 20, 30]);
    expect(doomed({ keepEverySteps: 7 })).toEqual([10, 20]);
  });

  it("keep_best keeps the best by the reported metric, min or max", async () => {
    const { evaluations, doomed } = setup([1, 2, 3, 4]);
    const loss: Record<number, number> = { 1: 0.5, 2: 0.1, 3: 0.9, 4: 0.7 };
    for (const [step, value] of Object.entries(loss))
      await evaluations.report({
        job: "j",
        checkpointId: `s${step}`,
        evaluator: "e",
        metrics: { loss: value },
        failed: false,
        message: "",
      });
    expect(doomed({ keepBest: 1, bestMetric: "loss", bestMode: "MIN" })).toEqual([1, 3]);
    expect(doomed({ keepBest: 1, bestMetric: "loss", bestMode: "MAX" })).toEqual([1, 2]);
  });

  it("a lease keeps a checkpoint until its evaluator reports", async () => {
    const { evaluations, doomed } = setup([1, 2, 3]);
    evaluations.grantLease("j", "s1", "e");
    expect(doomed({ keepLast: 1 })).toEqual([2]);
    await evaluations.report({ job: "j", checkpointId: "s1", evaluator: "e", metrics: {}, failed: false, message: "" });
    expect(doomed({ keepLast: 1 })).toEqual([1, 2]);
  });

  it("after a restart, unreported checkpoints from before it are kept for one lease period", () => {
    expect(setup([1, 2, 3], true).doomed({ keepLast: 1 })).toEqual([]);
  });

  it("a pinned checkpoint is never deleted", async () => {
    const { retention, doomed } = setup([1, 2, 3]);
    await retention.pin("j", "s1", true);
    expect(doomed({ keepLast: 1 })).toEqual([2]);
  });
});
