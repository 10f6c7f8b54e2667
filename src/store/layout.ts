/**
 * The data directory's layout: every key (path) and name in it, and the one parser of
 * an attempt's name `<id>@<attempt>`. Keys are storage-relative, "/"-separated, with no
 * leading slash: the POSIX storage resolves them under the data directory, an object
 * store would put them under a prefix.
 *
 *   ckptd.lock                                     "<pid> <start time> <boot id>" of the daemon that owns it
 *                                                  (ckptd.<node>.lock per node of a multi-node job)
 *   tmp/<lock name>/                               this daemon's scratch (the O_DIRECT probe, unlinked
 *                                                  once open); emptied at every start
 *   jobs/<job>/staging/<id>@<attempt>/             an attempt being prepared
 *   jobs/<job>/decisions/<id>@<attempt>.json       durable COMMIT/ABORT records
 *   jobs/<job>/checkpoints/<id>/                   a committed checkpoint:
 *       manifest.json (written last), rank-NNNNN/<item>/NNNNNN.lz4 and rank-NNNNN/<item>/pack.lz4
 *       (on an object store only manifest.json: the data stays in staging/<id>@<attempt>/, the
 *       manifest's attempt; Storage.dataPrefix says where a checkpoint's data is)
 *   jobs/<job>/trash/<id>.<time>/                  deleted checkpoints being removed
 *   jobs/<job>/quarantine/<id>-<time>/             a checkpoint (or staged attempt) whose manifest was
 *       missing, unparsable or invalid at start, moved aside whole with quarantine.json (why, when,
 *       from where) so one bad directory never keeps the daemon from starting; an operator inspects
 *       it (`ckptctl status` lists them) and deletes it by hand
 *   jobs/<job>/events.log                          the job's event log (catalog/events.ts)
 *   jobs/<job>/retention.json                      retention policy and pins
 *   jobs/<job>/evaluations.log                     evaluation reports
 *   nodes/<node>.json                              a daemon's address (multi-node, commit/cluster.ts)
 *   nodes/<node>/attempts/<job>@<id>@<n>.json      a participant's markers (multi-node, participant.ts)
 *   <key>.tmp-<pid>                                a durable put in progress; removed on failure and by
 *                                                  recovery after a crash
 *
 * Bounded over time: staging (but for published attempts' data on an object store, which
 * goes with its checkpoint's deletion) and trash are emptied by recovery; an aborted attempt's
 * decision record goes once a later attempt's is written (only the highest number is
 * kept, so numbers are never reused); a deleted checkpoint's COMMIT record shrinks to a
 * tombstone without its manifest (so the id is never reused). What grows is one small
 * tombstone per checkpoint id ever committed and the event log.
 */

export const MANIFEST_NAME = "manifest.json";
/**
 * The file an item's small entries share (see ItemWriter): their chunks' LZ4 frames back
 * to back in entry order, so `lz4 -dc pack.lz4` gives the concatenation of their raw bytes.
 */
export const PACK_FILE_NAME = "pack.lz4";
export const QUARANTINE_RECORD_NAME = "quarantine.json";
export const DEFAULT_LOCK_NAME = "ckptd.lock";

/** Joins key parts with "/". */
export function joinKey(...parts: string[]): string {
  return parts.filter((p) => p !== "").join("/");
}

/** The last part of a key. */
export function baseName(key: string): string {
  return key.slice(key.lastIndexOf("/") + 1);
}

/** The key without its last part ("" at the top). */
export function parentKey(key: string): string {
  const at = key.lastIndexOf("/");
  return at < 0 ? "" : key.slice(0, at);
}

/** `<id>@<attempt>`: the name of an attempt (its staging, and with ".json" its decision). */
export function attemptName(checkpointId: string, attempt: number): string {
  return `${checkpointId}@${attempt}`;
}

/** The one parser of `<id>@<attempt>`; undefined for any other name. */
export function parseAttemptName(name: string): { checkpointId: string; attempt: number } | undefined {
  const m = /^(.+)@(\d+)$/.exec(name);
  if (!m?.[1] || !m[2]) return undefined;
  return { checkpointId: m[1], attempt: Number(m[2]) };
}

/** A decision record's name `<id>@<attempt>.json`, parsed; undefined for any other name. */
export function parseDecisionName(name: string): { checkpointId: string; attempt: number } | undefined {
  return name.endsWith(".json") ? parseAttemptName(name.slice(0, -".json".length)) : undefined;
}

/** Whether a name is a durable put's tmp file left by a crash or a failure. */
export function isTmpName(name: string): boolean {
  return name.includes(".tmp-");
}

/** The tmp name a durable put of `key` writes first. */
export function tmpKey(key: string, pid: number): string {
  return `${key}.tmp-${pid}`;
}

/** rank-NNNNN/<item>: an item's files, relative to its attempt or checkpoint. */
export function itemDirName(rank: number, item: string): string {
  return `${rankDirName(rank)}/${item}`;
}

/** rank-NNNNN: a rank's items, relative to its attempt or checkpoint. */
export function rankDirName(rank: number): string {
  return `rank-${String(rank).padStart(5, "0")}`;
}

export function isRankDirName(name: string): boolean {
  return name.startsWith("rank-");
}

/** NNNNNN.lz4: an entry's own file in its item's directory. */
export function entryFileName(index: number): string {
  return `${String(index).padStart(6, "0")}.lz4`;
}

export const layout = {
  lock: (lockName: string = DEFAULT_LOCK_NAME): string => lockName,
  /** Scratch space of the daemon holding `lockName`, emptied at every start. */
  tmp: (lockName: string = DEFAULT_LOCK_NAME): string => joinKey("tmp", lockName.replace(/\.lock$/, "")),
  jobs: "jobs",
  job: (job: string): string => joinKey("jobs", job),
  stagingRoot: (job: string): string => joinKey("jobs", job, "staging"),
  staging: (job: string, id: string, attempt: number): string => joinKey("jobs", job, "staging", attemptName(id, attempt)),
  decisions: (job: string): string => joinKey("jobs", job, "decisions"),
  decision: (job: string, id: string, attempt: number): string => joinKey("jobs", job, "decisions", `${attemptName(id, attempt)}.json`),
  checkpoints: (job: string): string => joinKey("jobs", job, "checkpoints"),
  checkpoint: (job: string, id: string): string => joinKey("jobs", job, "checkpoints", id),
  manifest: (job: string, id: string): string => joinKey("jobs", job, "checkpoints", id, MANIFEST_NAME),
  trash: (job: string): string => joinKey("jobs", job, "trash"),
  trashEntry: (job: string, id: string, at: number): string => joinKey("jobs", job, "trash", `${id}.${at}`),
  quarantine: (job: string): string => joinKey("jobs", job, "quarantine"),
  events: (job: string): string => joinKey("jobs", job, "events.log"),
  evaluations: (job: string): string => joinKey("jobs", job, "evaluations.log"),
  retention: (job: string): string => joinKey("jobs", job, "retention.json"),
  /** The directories every job has (created by ensureJob). */
  jobDirs: (job: string): string[] => [
    joinKey("jobs", job, "staging"),
    joinKey("jobs", job, "decisions"),
    joinKey("jobs", job, "checkpoints"),
    joinKey("jobs", job, "trash"),
  ],
  nodeRegistry: (node: string): string => joinKey("nodes", `${node}.json`),
  nodeAttempts: (node: string): string => joinKey("nodes", node, "attempts"),
  nodeMarker: (node: string, job: string, id: string, attempt: number): string =>
    joinKey("nodes", node, "attempts", `${job}@${attemptName(id, attempt)}.json`),
  /** An item's files in an attempt's staging or a checkpoint (`base` is either). */
  item: (base: string, rank: number, item: string): string => joinKey(base, itemDirName(rank, item)),
  rank: (base: string, rank: number): string => joinKey(base, rankDirName(rank)),
} as const;
