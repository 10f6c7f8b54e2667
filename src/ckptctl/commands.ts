/**
 * The actions of ckptctl's commands: one function per command, each making its RPCs
 * and printing a table (people) or one JSON document (scripts, `--json`).
 */
import * as path from "node:path";
import * as readline from "node:readline/promises";
import { Code, CkptdError, type Checkpoint, type CheckpointEvent, type ResolvedRetentionPolicy, type RetentionPolicy } from "@ckptd/client";
import type { Connection } from "./connection.js";
import { exportCheckpoint, type ExportRequest } from "./export.js";
import { EXIT_DAMAGED, UsageError } from "./failure.js";
import { bytes, checkpointJson, dtypeName, isoTime, keyValueTable, print, printJson, ratio, shape, table } from "./output.js";

/** What every command gets: the connection and whether to print JSON. */
export interface Context {
  conn: Connection;
  json: boolean;
}

/** `status`: GetStatus and the Health check; fails when the daemon is not SERVING. */
export async function status({ conn, json }: Context): Promise<void> {
  const [s, health] = await Promise.all([conn.client.getStatus(conn.unaryOptions()), conn.healthCheck("")]);
  if (json) {
    printJson({
      address: conn.address,
      health,
      version: s.version,
      state: s.state,
      dataDir: s.dataDir,
      startTime: isoTime(s.startTime),
      listenAddress: s.listenAddress,
      jobCount: s.jobCount,
      checkpointCount: s.checkpointCount,
      checkpointsInFlight: s.checkpointsInFlight,
      subscribers: s.subscribers,
      storedBytes: s.storedBytes,
      quarantinedCount: s.quarantinedCount,
    });
  } else {
    print(
      keyValueTable([
        ["address", conn.address],
        ["health", health],
        ["state", s.state],
        ["version", s.version],
        ["listening on", s.listenAddress],
        ["data dir", s.dataDir],
        ["started", isoTime(s.startTime)],
        ["jobs", s.jobCount],
        ["checkpoints", s.checkpointCount],
        ["in flight", s.checkpointsInFlight],
        ["watchers", s.subscribers],
        ["stored", bytes(s.storedBytes)],
        ["quarantined", s.quarantinedCount > 0 ? `${s.quarantinedCount} (see: ckptctl quarantine)` : 0],
      ]),
    );
  }
  if (health !== "SERVING") throw new UsageError(`the daemon at ${conn.address} is ${health} (state: ${s.state || "unknown"})`);
}

/** `quarantine`: the checkpoint directories the daemon set aside at start (from GetStatus). */
export async function quarantine({ conn, json }: Context): Promise<void> {
  const s = await conn.client.getStatus(conn.unaryOptions());
  const rows = s.quarantined.map((q) => ({
    job: q.job,
    checkpointId: q.checkpointId,
    quarantinedAt: isoTime(q.quarantinedAt),
    reason: q.reason,
    path: q.path,
  }));
  if (json) return printJson({ quarantined: rows, quarantinedCount: s.quarantinedCount });
  if (rows.length === 0) return print("no quarantined checkpoints");
  print(
    table(
      ["job", "checkpoint", "quarantined at", "reason", "path"],
      rows.map((r) => [r.job, r.checkpointId, r.quarantinedAt, r.reason, r.path]),
    ),
  );
  if (s.quarantinedCount > rows.length) print(`(${rows.length} of ${s.quarantinedCount} shown)`);
}

/** `jobs`: ListJobs. */
export async function jobs({ conn, json }: Context): Promise<void> {
  const res = await conn.client.listJobs(conn.unaryOptions());
  if (json) return printJson({ jobs: res.jobs });
  if (res.jobs.length === 0) return print("no jobs with committed checkpoints");
  print(
    table(
      ["job", "checkpoints", "latest", "latest step", "stored"],
      res.jobs.map((j) => [j.job, j.checkpointCount, j.latestCheckpointId, j.latestStep, bytes(j.storedBytes)]),
      [1, 3, 4],
    ),
  );
}

/** `list JOB`: every page of ListCheckpoints, newest step first, up to `limit`. */
export async function list({ conn, json }: Context, job: string, limit: number | undefined): Promise<void> {
  const checkpoints: Checkpoint[] = [];
  let pageToken = "";
  do {
    const pageSize = limit === undefined ? 1000 : Math.min(1000, limit - checkpoints.length);
    const page = await conn.client.listCheckpoints(job, { pageSize, pageToken, ...conn.unaryOptions() });
    checkpoints.push(...page.checkpoints);
    pageToken = page.nextPageToken;
  } while (pageToken && (limit === undefined || checkpoints.length < limit));
  if (limit !== undefined) checkpoints.length = Math.min(checkpoints.length, limit);
  if (json) return printJson({ job, checkpoints: checkpoints.map(checkpointJson) });
  if (checkpoints.length === 0) return print(`job ${job} has no committed checkpoints`);
  print(
    table(
      ["checkpoint", "step", "world size", "committed at", "raw", "stored", "ratio"],
      checkpoints.map((c) => [
        c.checkpointId,
        c.step,
        c.worldSize,
        isoTime(c.commitTime),
        bytes(c.rawBytes),
        bytes(c.storedBytes),
        ratio(c.rawBytes, c.storedBytes),
      ]),
      [1, 2, 4, 5, 6],
    ),
  );
}

function getCheckpoint(conn: Connection, job: string, checkpointId: string, full: boolean): Promise<Checkpoint> {
  return conn.client.getCheckpoint(job, checkpointId, { full, ...conn.unaryOptions() });
}

/** `show JOB [CHECKPOINT]`: the full manifest, per rank and item. */
export async function show({ conn, json }: Context, job: string, checkpointId: string): Promise<void> {
  const c = await getCheckpoint(conn, job, checkpointId, true);
  if (json) return printJson(checkpointJson(c));
  print(
    keyValueTable([
      ["job", c.job],
      ["checkpoint", c.checkpointId],
      ["step", c.step],
      ["world size", c.worldSize],
      ["committed at", isoTime(c.commitTime)],
      ["attempt", c.attempt],
      ["raw", bytes(c.rawBytes)],
      ["stored", `${bytes(c.storedBytes)} (${ratio(c.rawBytes, c.storedBytes)})`],
    ]),
  );
  for (const r of c.ranks) {
    for (const it of r.items) {
      print();
      print(`rank ${r.rank} · item ${it.name} · ${it.entryCount} entries · raw ${bytes(it.rawBytes)} · stored ${bytes(it.storedBytes)}`);
      const sharded = it.entries.some((e) => (e.tensor?.globalShape.length ?? 0) > 0);
      const head = ["key", "kind", "dtype/format", "shape", "device", "raw", "stored", "chunks"];
      if (sharded) head.push("global shape @ offsets");
      print(
        table(
          head,
          it.entries.map((e) => {
            const row: (string | number)[] = e.tensor
              ? [e.key, "tensor", dtypeName(e.tensor.dtype), shape(e.tensor.shape), e.tensor.device]
              : [e.key, "object", e.object?.format ?? "", "", ""];
            row.push(bytes(e.rawBytes), bytes(e.storedBytes), e.chunkCount);
            if (sharded)
              row.push(
                e.tensor && e.tensor.globalShape.length > 0 ? `${shape(e.tensor.globalShape)} @ ${shape(e.tensor.globalOffsets)}` : "",
              );
            return row;
          }),
          [5, 6, 7],
        ),
      );
    }
  }
}

/** `verify JOB [CHECKPOINT]`: VerifyCheckpoint; exit code 2 when a chunk is damaged. */
export async function verify({ conn, json }: Context, job: string, checkpointId: string): Promise<number> {
  const res = await conn.client.verifyCheckpoint(job, checkpointId, conn.unaryOptions());
  const damaged = !res.ok || res.damaged.length > 0;
  if (json) {
    printJson({
      job,
      checkpointId: res.checkpointId,
      ok: !damaged,
      chunksChecked: res.chunksChecked,
      bytesChecked: res.bytesChecked,
      damaged: res.damaged,
    });
  } else if (!damaged) {
    print(`${job}/${res.checkpointId}: OK, ${res.chunksChecked} chunks, ${bytes(res.bytesChecked)} verified`);
  } else {
    print(`${job}/${res.checkpointId}: DAMAGED, ${res.damaged.length} of ${res.chunksChecked} chunks failed verification`);
    print(
      table(
        ["rank", "item", "key", "chunk", "file", "offset", "problem"],
        res.damaged.map((d) => [d.rank, d.item, d.key, d.chunkIndex, d.file, d.offset, d.problem]),
        [0, 3, 5],
      ),
    );
  }
  return damaged ? EXIT_DAMAGED : 0;
}

/** `export JOB [CHECKPOINT] --out DIR`. */
export async function exportCommand({ conn, json }: Context, req: Omit<ExportRequest, "progress">): Promise<void> {
  const index = await exportCheckpoint(conn, { ...req, progress: !json && Boolean(process.stderr.isTTY) });
  const files = index.entries.length;
  if (json)
    return printJson({
      out: req.out,
      index: path.join(req.out, "index.json"),
      job: index.job,
      checkpointId: index.checkpointId,
      step: index.step,
      ranks: index.ranks,
      entries: files,
      totalBytes: index.totalBytes,
    });
  print(
    `exported ${files} entries (${bytes(index.totalBytes)}) of ${index.job}/${index.checkpointId}, rank${index.ranks.length === 1 ? "" : "s"} ${index.ranks.join(", ")}, to ${req.out} (index.json lists them)`,
  );
}

/** `delete JOB CHECKPOINT`: asks first unless `yes`; refuses without a terminal to ask on. */
export async function deleteCommand({ conn, json }: Context, job: string, checkpointId: string, yes: boolean): Promise<void> {
  if (!yes) {
    if (!process.stdin.isTTY)
      throw new UsageError(`not deleting ${job}/${checkpointId}: no terminal to confirm on; pass --yes to delete without asking`);
    const c = await getCheckpoint(conn, job, checkpointId, false);
    const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
    let answer: string;
    try {
      answer = await rl.question(`Delete checkpoint ${job}/${c.checkpointId} (step ${c.step}, ${bytes(c.storedBytes)} stored)? [y/N] `);
    } finally {
      rl.close();
    }
    if (!/^y(es)?$/i.test(answer.trim())) throw new UsageError(`not deleting ${job}/${checkpointId}`);
  }
  const res = await conn.client.deleteCheckpoint(job, checkpointId, conn.unaryOptions());
  if (json) return printJson({ job, checkpointId, deleted: true, freedBytes: res.freedBytes });
  print(`deleted ${job}/${checkpointId}, freed ${bytes(res.freedBytes)}`);
}

/** Where `watch` starts. */
export type WatchStart = { afterSequence: number } | { fromStep: number } | { fromNow: true } | Record<string, never>;

/** `watch JOB`: one line (or JSON object) per event until Ctrl-C. */
export async function watch({ conn, json }: Context, job: string, start: WatchStart): Promise<void> {
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    // The watch ends quietly once the signal aborts it.
    for await (const e of conn.client.watch(job, { ...start, signal: interrupt.signal })) {
      if (json) process.stdout.write(JSON.stringify(eventJson(e)) + "\n");
      else print(eventLine(e));
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  if (!interrupt.signal.aborted) throw new CkptdError(Code.UNAVAILABLE, `the daemon ended the watch of job ${job}`);
}

function eventJson(e: CheckpointEvent): Record<string, unknown> {
  return {
    sequence: e.sequence,
    type: e.type,
    job: e.job,
    checkpointId: e.checkpointId,
    step: e.step,
    commitTime: e.commitTime.toISOString(),
    eventTime: e.eventTime.toISOString(),
    reason: e.reason,
    checkpoint: e.checkpoint ? checkpointJson(e.checkpoint) : null,
  };
}

function eventLine(e: CheckpointEvent): string {
  const head = `${e.eventTime.toISOString()}  #${e.sequence}  ${e.type.padEnd(9)}  ${e.checkpointId}  step ${e.step}`;
  if (e.type === "COMMITTED" && e.checkpoint) {
    return `${head}  world size ${e.checkpoint.worldSize}  raw ${bytes(e.checkpoint.rawBytes)}  stored ${bytes(e.checkpoint.storedBytes)}`;
  }
  return e.reason ? `${head}  (${e.reason})` : head;
}

/** Flags of `retention`; the ones given replace the current values. */
export interface RetentionFlags {
  keepLast?: number;
  keepEverySteps?: number;
  keepBest?: number;
  bestMetric?: string;
  bestMode?: "min" | "max";
}

function policyJson(p: ResolvedRetentionPolicy): Record<string, unknown> {
  return { ...p, bestMode: p.bestMode ?? "" };
}

function policyRows(p: ResolvedRetentionPolicy): [string, string | number][] {
  const off = (n: number) => (n === 0 ? "off" : n);
  return [
    ["keep last", off(p.keepLast)],
    ["keep every steps", off(p.keepEverySteps)],
    ["keep best", p.keepBest ? `${p.keepBest} by ${p.bestMetric || "?"} (${p.bestMode ?? "?"})` : "off"],
  ];
}

/** `retention JOB [flags]`: shows the policy, or merges the flags given into it and sets it. */
export async function retention({ conn, json }: Context, job: string, flags: RetentionFlags): Promise<void> {
  const current = await conn.client.getRetentionPolicy(job, conn.unaryOptions());
  const changes = Object.values(flags).some((v) => v !== undefined);
  if (!changes) {
    if (json) return printJson({ job, policy: policyJson(current.policy), pinnedCheckpointIds: current.pinnedCheckpointIds });
    print(keyValueTable([...policyRows(current.policy), ["pinned", current.pinnedCheckpointIds.join(", ") || "none"]]));
    return;
  }
  const p = current.policy;
  const policy: RetentionPolicy = {
    keepLast: flags.keepLast ?? p.keepLast,
    keepEverySteps: flags.keepEverySteps ?? p.keepEverySteps,
    keepBest: flags.keepBest ?? p.keepBest,
    bestMetric: flags.bestMetric ?? p.bestMetric,
    bestMode: flags.bestMode ?? p.bestMode,
  };
  const res = await conn.client.setRetentionPolicy(job, policy, conn.unaryOptions());
  if (json) return printJson({ job, policy: policyJson(res.policy), deletedCheckpointIds: res.deletedCheckpointIds });
  print(keyValueTable(policyRows(res.policy)));
  print(
    res.deletedCheckpointIds.length > 0
      ? `garbage collection deleted: ${res.deletedCheckpointIds.join(", ")}`
      : "garbage collection deleted nothing",
  );
}

/** `pin` / `unpin JOB CHECKPOINT`. */
export async function pin({ conn, json }: Context, job: string, checkpointId: string, pinned: boolean): Promise<void> {
  const isPinned = await conn.client.pinCheckpoint(job, checkpointId, pinned, conn.unaryOptions());
  if (json) return printJson({ job, checkpointId, pinned: isPinned });
  print(`${job}/${checkpointId} is ${isPinned ? "pinned" : "not pinned"}`);
}
