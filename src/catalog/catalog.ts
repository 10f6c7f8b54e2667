/**
 * Catalog: the committed checkpoints, and nothing else. A checkpoint enters it only
 * after its manifest is durable under checkpoints/, so whatever reads through the
 * catalog (Get, List, Load) can never see a torn checkpoint.
 */
import { CkptdError, dataLoss, notFound } from "../common/errors.js";
import { parseManifest, summarize, type CheckpointSummary, type Manifest } from "./manifest.js";
import { checkName, isLatest } from "../common/names.js";
import { layout } from "../store/layout.js";
import { getText, listJobs, quarantine, type Storage } from "../store/storage.js";

/** A checkpoint directory that Catalog.load found unusable. */
export interface BadCheckpoint {
  job: string;
  checkpointId: string;
  /** Where it was found. */
  dir: string;
  /** Where it was moved (undefined when this daemon may not move it: a multi-node follower). */
  quarantinedTo: string | undefined;
  reason: string;
}

/** A manifest that cannot be read as one: not JSON, or JSON that fails the schema. */
function isBadManifest(err: unknown): boolean {
  return err instanceof SyntaxError || err instanceof CkptdError;
}

export class Catalog {
  private readonly jobs = new Map<string, Map<string, CheckpointSummary>>();

  /**
   * `shared`: other daemons publish into the same data directory (a multi-node job),
   * so reads first re-scan checkpoints/ (refresh); the directory is the truth.
   */
  constructor(
    private readonly storage: Storage,
    private readonly shared = false,
  ) {}

  /** Brings a job's entries in line with checkpoints/ on disk (multi-node only; cheap otherwise). */
  async refresh(job: string): Promise<void> {
    if (!this.shared) return;
    const ids = await this.storage.list(layout.checkpoints(job));
    const present = new Set(ids);
    const known = this.jobs.get(job);
    for (const id of known?.keys() ?? []) if (!present.has(id)) known!.delete(id);
    for (const id of ids) {
      if (known?.has(id)) continue;
      const key = layout.manifest(job, id);
      try {
        const text = await getText(this.storage, key);
        // Undefined: gone again (deleted meanwhile).
        if (text !== undefined) this.add(summarize(parseManifest(text, this.storage.where(key))));
      } catch (err) {
        // Not a valid checkpoint: not visible (the next start of the coordinating daemon
        // quarantines it).
        if (!isBadManifest(err)) throw err;
      }
    }
  }

  /**
   * Reads and validates every committed manifest. A checkpoint directory whose manifest
   * is missing, unparsable or invalid is never served, and never stops the start: with
   * `quarantine` (the daemon that owns the shared state) it is moved to the job's
   * quarantine/ directory; otherwise it is left where it is and skipped. Returns them.
   */
  async load(options: { quarantine: boolean }): Promise<BadCheckpoint[]> {
    const bad: BadCheckpoint[] = [];
    for (const job of await listJobs(this.storage)) {
      for (const id of await this.storage.list(layout.checkpoints(job))) {
        const key = layout.checkpoint(job, id);
        const file = this.storage.where(layout.manifest(job, id));
        let reason: string;
        try {
          const text = await getText(this.storage, layout.manifest(job, id));
          const manifest = text === undefined ? undefined : parseManifest(text, file);
          // A manifest copied under another name would be served under the wrong id.
          if (!manifest) reason = `${file} is missing`;
          else if (manifest.job === job && manifest.checkpointId === id) {
            this.add(summarize(manifest));
            continue;
          } else reason = `${file} describes checkpoint '${manifest.checkpointId}' of job '${manifest.job}', not the directory it is in`;
        } catch (err) {
          if (isBadManifest(err)) reason = `${file} is not a valid manifest: ${(err as Error).message}`;
          else throw err;
        }
        const quarantinedTo = options.quarantine ? this.storage.where(await quarantine(this.storage, job, id, key, reason)) : undefined;
        bad.push({ job, checkpointId: id, dir: this.storage.where(key), quarantinedTo, reason });
      }
    }
    return bad;
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
    const key = layout.manifest(summary.job, summary.checkpointId);
    const text = await getText(this.storage, key);
    if (text === undefined) throw notFound(`checkpoint '${summary.checkpointId}' of job '${summary.job}' was deleted`);
    try {
      return parseManifest(text, this.storage.where(key));
    } catch (err) {
      // It was valid when the catalog read it: it changed on disk since.
      if (isBadManifest(err))
        throw dataLoss(
          `the manifest of checkpoint '${summary.checkpointId}' of job '${summary.job}' is damaged: ${(err as Error).message}`,
        );
      throw err;
    }
  }
}
