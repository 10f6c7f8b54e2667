/**
 * Which of the daemon's files one Save and its Commit run through.
 *
 *   npm run build && node dist/scripts/save-path.js [--entries 200] [--json]
 *
 * Starts the daemon in this process (dist/src/cli.js on a temporary data directory and a free
 * loopback port), turns on V8's precise coverage, saves one rank's item of N small tensors
 * plus one 8 MiB tensor over the plain (non shared-memory) stream, and commits it. Coverage is
 * reset just before the Save, read after it and again after the Commit: every daemon file with
 * a function that ran in each window is listed with its line count (S: the Save, C: the Commit). Timers that fire in that window count
 * too, so the list is an upper bound of what a reader must open to follow a Save to disk.
 */
import * as fs from "node:fs";
import * as inspector from "node:inspector/promises";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { CkptdClient, tensor, type SaveEntry } from "../clients/ts/src/index.js";

const HERE = path.dirname(fileURLToPath(import.meta.url)); // dist/scripts
const DIST = path.resolve(HERE, "..");
const REPO = path.resolve(DIST, "..");

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, "127.0.0.1", () => (c.end(), resolve(true)));
      c.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`the daemon did not listen on ${port} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The daemon's source file a compiled module came from (dist/src/x/y.js → src/x/y.ts), or undefined. */
function daemonSource(url: string): string | undefined {
  if (!url.startsWith("file://")) return undefined;
  const rel = path.relative(DIST, fileURLToPath(url));
  if (!/^(src|wire)\//.test(rel) || rel.startsWith("src/ckptctl/") || rel.startsWith("wire/gen/")) return undefined;
  return rel.replace(/\.js$/, ".ts");
}

/** The daemon files (with their line counts) that ran since the last call; resets the counters. */
async function ranFiles(session: inspector.Session): Promise<Map<string, number>> {
  const { result } = (await session.post("Profiler.takePreciseCoverage")) as inspector.Profiler.TakePreciseCoverageReturnType;
  const files = new Map<string, number>();
  for (const script of result) {
    const src = daemonSource(script.url);
    if (!src || !script.functions.some((f) => f.ranges.some((r) => r.count > 0))) continue;
    const file = path.join(REPO, src);
    files.set(src, fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").length : 0);
  }
  return files;
}

async function main(): Promise<void> {
  const entriesN = Number(flag("entries", "200"));
  const json = process.argv.includes("--json");
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-save-path-"));
  // The daemon logs to stdout; keep this script's own output readable.
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = (() => true) as typeof process.stdout.write;
  process.argv = [process.argv[0]!, "ckptd", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir, "--log-level", "warn"];
  await import(path.join(DIST, "src", "cli.js"));
  await waitForPort(port, 10_000);

  const client = new CkptdClient(`127.0.0.1:${port}`);
  const entries: SaveEntry[] = [];
  for (let i = 0; i < entriesN; i++) entries.push({ key: `layer${i}.bias`, tensor: tensor(new Float32Array(256).fill(i)) });
  entries.push({ key: "embedding.weight", tensor: tensor(new Float32Array(2 << 20).map((_, i) => i % 977)) });
  const job = "save-path";
  // One Save and Commit first, so that module loading and first-call set-up are not counted.
  const warm = await client.save({ job, checkpointId: "warm", step: 1, rank: 0, worldSize: 1, item: "model", entries });
  await client.commit({ job, checkpointId: "warm", step: 1, rank: 0, worldSize: 1, items: ["model"], attempt: warm.attempt });

  const session = new inspector.Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.startPreciseCoverage", { callCount: true, detailed: false });
  await session.post("Profiler.takePreciseCoverage"); // resets the counters
  const res = await client.save({ job, checkpointId: "c2", step: 2, rank: 0, worldSize: 1, item: "model", entries });
  const saved = await ranFiles(session);
  const decision = await client.commit({ job, checkpointId: "c2", step: 2, rank: 0, worldSize: 1, items: ["model"], attempt: res.attempt });
  const committed = await ranFiles(session);
  if (decision.outcome !== "COMMITTED") throw new Error(`the checkpoint was not committed: ${decision.reason}`);

  const both = new Map([...saved, ...committed]);
  process.stdout.write = write;
  const summary = (m: Map<string, number>) => ({ files: m.size, lines: [...m.values()].reduce((n, l) => n + l, 0) });
  if (json) {
    const list = (m: Map<string, number>) => ({ ...summary(m), list: Object.fromEntries([...m].sort(([a], [b]) => a.localeCompare(b))) });
    console.log(JSON.stringify({ save: list(saved), commit: list(committed), both: list(both) }));
  } else {
    for (const [f, l] of [...both].sort(([a], [b]) => a.localeCompare(b)))
      console.log(`${String(l).padStart(6)}  ${saved.has(f) ? "S" : " "}${committed.has(f) ? "C" : " "}  ${f}`);
    const line = (what: string, m: Map<string, number>) => `${what}: ${summary(m).files} files, ${summary(m).lines} lines`;
    console.log([line("Save (S)", saved), line("Commit (C)", committed), line("both", both)].join("; "));
  }
  client.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
  process.exit(0);
}

void main();
