/**
 * Catalog: the committed checkpoints, and nothing else. A checkpoint enters it only
 * after its manifest is durable under checkpoints/, so whatever reads through the
 * catalog (Get, List, Load) can never see a torn checkpoint.
 */
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { notFound } from "./errors.js";
import { parseManifest, summarize, type CheckpointSummary, type Manifest } from "./manifest.js";
import { checkName, isLatest } from "./names.js";
import type { DataDir } from "./storage.js";

export class Catalog {
  private readonly jobs = new Map<string, Map<string, CheckpointSummary>>();

  /**
   * `shared`: other daemons publish into the same data directory (a multi-node job),
   * so reads first re-scan checkpoints/ (refresh); the directory is the truth.
   */
  constructor(
    private readonly dataDir: DataDir,
    private readonly shared = false,
  ) {}

  /** Brings a job's entries in line with checkpoints/ on disk (multi-node only; cheap otherwise). */
  async refresh(job: string): Promise<void> {
    if (!this.shared) return;
    let ids: string[];
    try {
      ids = await fsp.readdir(this.dataDir.checkpointsDir(job));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      ids = [];
    }
    const present = new Set(ids);
    const known = this.jobs.get(job);
    for (const id of known?.keys() ?? []) if (!present.has(id)) known!.delete(id);
    for (const id of ids) {
      if (known?.has(id)) continue;
      const file = path.join(this.dataDir.checkpointDir(job, id), "manifest.json");
      try {
        this.add(summarize(parseManifest(await fsp.readFile(file, "utf8"), file)));
      } catch (err) {
        // Gone again (deleted meanwhile) or not a checkpoint: not visible.
        if ((err as NodeJS.ErrnoException).code !== "ENOENT" && !(err instanceof SyntaxError)) throw err;
      }
    }
  }

  /** Reads every committed manifest; returns the directories under checkpoints/ that have none. */
  async load(): Promise<string[]> {
    const orphans: string[] = [];
    for (const job of await this.dataDir.listJobs()) {
      let ids: string[];
      try {
        ids = await fsp.readdir(this.dataDir.checkpointsDir(job));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw err;
      }
      for (const id of ids) {
        const dir = this.dataDir.checkpointDir(job, id);
        let text: string;
        try {
          text = await fsp.readFile(path.join(dir, "manifest.json"), "utf8");
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
          orphans.push(dir);
          continue;
        }
        this.add(summarize(parseManifest(text, path.join(dir, "manifest.json"))));
      }
    }
    return orphans;
  }

  add(summary: CheckpointSummary): void {
    let job = this.jobs.get(summary.job);
    if (!job) this.jobs.set(summary.job, (job = new Map()));
    job.set(summary.checkpointId, summary);
  }

  remove(job: string, checkpointId: string): CheckpointSummary | undefined {
    const j = this.jobs.get(job);
    const s = j?.get(checkpointId);
    j?.delete(checkpointId);
    return s;
  }

  has(job: string, checkpointId: string): boolean {
    return this.jobs.get(job)?.has(checkpointId) ?? false;
  }

  /** Newest first: highest step; ties by id, descending (the order page tokens rely on). */
  list(job: string): CheckpointSummary[] {
    const all = [...(this.jobs.get(job)?.values() ?? [])];
    return all.sort((a, b) => b.step - a.step || (a.checkpointId < b.checkpointId ? 1 : a.checkpointId > b.checkpointId ? -1 : 0));
  }

  jobsWithCheckpoints(): string[] {
    return [...this.jobs.entries()].filter(([, m]) => m.size > 0).map(([j]) => j);
  }

  /**
   * Resolves an id or "latest"; NOT_FOUND with a message naming what is missing. A name
   * that could never be a checkpoint (`../x`, NUL, too long) is INVALID_ARGUMENT, as on
   * the write path: the caller made a mistake, not a lookup that missed.
   */
  get(job: string, checkpointId: string): CheckpointSummary {
    checkName("job", job);
    if (isLatest(checkpointId)) {
      const latest = this.list(job)[0];
      if (!latest) throw notFound(`job '${job}' has no committed checkpoint`);
      return latest;
    }
    checkName("checkpoint_id", checkpointId);
    const s = this.jobs.get(job)?.get(checkpointId);
    if (!s) throw notFound(`checkpoint '${checkpointId}' of job '${job}' is not committed (or was deleted)`);
    return s;
  }

  async readManifest(summary: CheckpointSummary): Promise<Manifest> {
    const file = path.join(this.dataDir.checkpointDir(summary.job, summary.checkpointId), "manifest.json");
    try {
      return parseManifest(await fsp.readFile(file, "utf8"), file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT")
        throw notFound(`checkpoint '${summary.checkpointId}' of job '${summary.job}' was deleted`);
      throw err;
    }
  }
}
