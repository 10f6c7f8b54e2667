/**
 * Measures cold loads only: generates the state once (scripts/bench_ranks.py gen), saves it
 * through a daemon once per kind, then runs --repeat cold loads of it through ckptd
 * (`load_items(place=False)`, R Python ranks) and through torch.load of the same state, each
 * after fsync + POSIX_FADV_DONTNEED on every file read. Prints every run and the medians.
 *
 *   npm run build && node dist/scripts/load-profile.js [--ranks 4 --mib 256 --kinds transformer,dense --repeat 3]
 *       [--dir DIR]            reuse DIR (generated data and saved checkpoints are kept and reused)
 *       [--cpu-prof DIR]       run the daemon with --cpu-prof, profiles written to DIR
 *       [--check]              compare the loaded tensors with the generated ones
 *
 * A run's time runs from a barrier every rank passed (connection open) to the last rank's end.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startDaemon, type DaemonProcess } from "./daemon-process.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RANKS_PY = path.join(path.resolve(HERE, "..", ".."), "scripts", "bench_ranks.py");
const PYTHON = process.env["CKPTD_BENCH_PYTHON"] || "/usr/bin/python3";

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (b: Buffer) => (out += b.toString()));
    p.stderr.on("data", (b: Buffer) => (err += b.toString()));
    p.on("error", reject);
    p.on("exit", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${args.slice(0, 2).join(" ")} exited ${code}: ${(err || out).trim().slice(-2000)}`)),
    );
  });
}

async function py(mode: string, args: string[]): Promise<{ seconds: number }> {
  const out = await run(PYTHON, [RANKS_PY, mode, ...args]);
  return JSON.parse(out.trim().split("\n").pop() ?? "") as { seconds: number };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ranks: { type: "string", default: "4" },
      mib: { type: "string", default: "256" },
      kinds: { type: "string", default: "transformer,dense" },
      repeat: { type: "string", default: "3" },
      dir: { type: "string" },
      "cpu-prof": { type: "string" },
      check: { type: "boolean", default: false },
    },
  });
  const ranks = Number(values.ranks);
  const repeat = Number(values.repeat);
  const kinds = values.kinds.split(",").filter(Boolean);
  const keep = values.dir !== undefined;
  const work = keep ? path.resolve(values.dir!) : fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-load-profile-"));
  const data = path.join(work, "data");
  const daemonDir = path.join(work, "daemon");
  const marker = path.join(work, `saved-${ranks}x${values.mib}`);
  fs.mkdirSync(work, { recursive: true });
  const missing = kinds.filter((k) => !fs.existsSync(path.join(data, k, "layout.json")));
  if (missing.length > 0) {
    process.stderr.write(`load-profile: generating ${missing.join(", ")}\n`);
    await run(PYTHON, [RANKS_PY, "gen", "--dir", data, "--ranks", String(ranks), "--mib", values.mib, "--kinds", missing.join(",")]);
  }
  const extra: string[] = []; // node flags of the daemon
  if (values["cpu-prof"]) {
    fs.mkdirSync(values["cpu-prof"], { recursive: true });
    extra.push(`--cpu-prof`, `--cpu-prof-dir=${path.resolve(values["cpu-prof"])}`);
  }
  const daemon: DaemonProcess = await startDaemon(daemonDir, [], { nodeFlags: extra });
  const rows: string[] = [];
  try {
    for (const kind of kinds) {
      const base = ["--dir", data, "--kind", kind, "--ranks", String(ranks)];
      const tsOut = path.join(work, `torch-${kind}`);
      const saved = fs.existsSync(`${marker}-${kind}`);
      if (!saved) {
        process.stderr.write(`load-profile: ${kind}: saving through ckptd and torch.save\n`);
        await py("ckptd-save", [...base, "--address", daemon.address, "--ckpt", `${kind}-py`]);
        fs.mkdirSync(tsOut, { recursive: true });
        await py("torch-save", [...base, "--out", tsOut]);
        fs.writeFileSync(`${marker}-${kind}`, "");
      }
      const ckptDir = path.join(daemonDir, "jobs", "bench", "checkpoints", `${kind}-py`);
      const ck: number[] = [];
      const tl: number[] = [];
      const loadArgs = [...base, "--address", daemon.address, "--ckpt", `${kind}-py`];
      if (values.check) loadArgs.push("--check");
      for (let i = 0; i < repeat; i++) {
        await py("evict", [ckptDir]);
        const l = await py("ckptd-load", loadArgs);
        ck.push(l.seconds);
        await py("evict", [tsOut]);
        tl.push((await py("torch-load", [...base, "--out", tsOut])).seconds);
        process.stderr.write(`  ${kind} #${i + 1}: ckptd ${l.seconds.toFixed(3)} s, torch.load ${tl[i]!.toFixed(3)} s\n`);
      }
      const c = median(ck);
      const t = median(tl);
      rows.push(`${kind.padEnd(12)} ckptd ${c.toFixed(3)} s  torch.load ${t.toFixed(3)} s  ratio ${(t / c).toFixed(2)}`);
    }
  } finally {
    await daemon.stop();
    if (!keep) fs.rmSync(work, { recursive: true, force: true });
  }
  console.log(`median of ${repeat} cold loads, ${ranks} ranks × ${values.mib} MiB (ratio = torch.load ÷ ckptd):`);
  for (const r of rows) console.log(r);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
