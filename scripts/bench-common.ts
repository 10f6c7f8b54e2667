/**
 * What the benchmarks share: child processes, the generated state (scripts/bench_ranks.py gen
 * writes each rank's raw tensor bytes and their layout), line-by-line replies of rank processes,
 * the `lz4 -1` CLI yardstick and a process's CPU time.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { DtypeName } from "../clients/ts/src/index.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The repository (the scripts run from dist/scripts). */
export const REPO = path.resolve(HERE, "..", "..");
export const RANKS_PY = path.join(REPO, "scripts", "bench_ranks.py");
export const PYTHON = process.env["CKPTD_BENCH_PYTHON"] || "/usr/bin/python3";
export const KINDS = ["dense", "bf16", "sparse", "transformer"] as const;
export type Kind = (typeof KINDS)[number];
export const GB = 1e9;

/** Runs a command to its end; its stdout, or an error with the tail of what it said. */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...opts.env } });
    let out = "";
    let err = "";
    p.stdout.on("data", (b: Buffer) => (out += b.toString()));
    p.stderr.on("data", (b: Buffer) => (err += b.toString()));
    p.on("error", reject);
    p.on("exit", (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${path.basename(cmd)} ${args.slice(0, 2).join(" ")} exited ${code}: ${(err || out).trim().slice(-2000)}`));
    });
  });
}

export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

export async function parallel(n: number, fn: (rank: number) => Promise<unknown>): Promise<void> {
  await Promise.all(Array.from({ length: n }, (_, r) => fn(r)));
}

// -- the generated state ---------------------------------------------------------------

/** One tensor of a rank's state: where its bytes lie in the rank's file. */
export interface LayoutEntry {
  name: string;
  dtype: DtypeName;
  shape: number[];
  offset: number;
  nbytes: number;
}

/** Writes DIR/<kind>/rank-NNNNN.bin and DIR/<kind>/layout.json for each kind (scripts/bench_ranks.py gen). */
export async function generateState(dir: string, ranks: number, mib: number, kinds: readonly Kind[]): Promise<void> {
  await run(PYTHON, [RANKS_PY, "gen", "--dir", dir, "--ranks", String(ranks), "--mib", String(mib), "--kinds", kinds.join(",")]);
}

export function rankFile(dir: string, kind: Kind, r: number): string {
  return path.join(dir, kind, `rank-${String(r).padStart(5, "0")}.bin`);
}

export function readLayout(dir: string, kind: Kind): LayoutEntry[] {
  return JSON.parse(fs.readFileSync(path.join(dir, kind, "layout.json"), "utf8")) as LayoutEntry[];
}

export function dirBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) n += fs.statSync(path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).size;
  return n;
}

/** `lz4 -1` of each file, in parallel, into a temporary directory under `work`: the output's bytes and the time it took. */
export async function lz4Cli(files: readonly string[], work: string): Promise<{ bytes: number; seconds: number }> {
  const out = fs.mkdtempSync(path.join(work, "lz4-"));
  try {
    const seconds = await timed(() =>
      parallel(files.length, (r) => run("lz4", ["-1", "-q", "-f", files[r]!, path.join(out, `r${r}.lz4`)])),
    );
    return { bytes: dirBytes(out), seconds };
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

// -- processes -------------------------------------------------------------------------

/** Lines of a child's stdout, one per call; rejects when the child exits first. */
export function lineReader(c: ChildProcess): () => Promise<string> {
  let buf = "";
  const lines: string[] = [];
  const waiting: Array<{ resolve: (l: string) => void; reject: (e: Error) => void }> = [];
  let exited = false;
  c.stdout!.on("data", (b: Buffer) => {
    buf += b.toString();
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    while (lines.length > 0 && waiting.length > 0) waiting.shift()!.resolve(lines.shift()!);
  });
  c.on("exit", (code) => {
    exited = true;
    for (const w of waiting.splice(0)) w.reject(new Error(`a rank process exited ${code}`));
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      if (lines.length > 0) resolve(lines.shift()!);
      else if (exited) reject(new Error("a rank process exited"));
      else waiting.push({ resolve, reject });
    });
}

/** CPU seconds (user + system) a process used so far; Linux clock ticks are 1/100 s. */
export function cpuSeconds(pid: number): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}
