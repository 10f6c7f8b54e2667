/**
 * Crash soak: kill -9 at random instants while trainers save, commit and delete (and
 * retention deletes behind them), restart, and check the invariants after every recovery.
 *
 *   npm run soak:crash [-- --iterations 50 --seed 1 --multi-node-every 3]
 *
 * One data directory for the single-node daemon and one for a two-node job (n1
 * coordinates, n2 participates, one rank each) live across all iterations, so recovery
 * runs on whatever every earlier crash left. Each iteration starts the daemon(s) (that is
 * the recovery), checks, runs the workload (world size 2; one checkpoint after another,
 * sometimes a DeleteCheckpoint; --keep-last 3 makes retention delete behind it) and kills
 * them at a seeded random instant: after a random delay, or just after a Commit was sent
 * (the decision, publish and event append are then in flight). In a two-node job a random
 * node dies first and the other a moment later. After the last iteration it restarts once
 * more and checks. Checked after every recovery:
 *
 *   - every listed checkpoint loads bit-exact (every rank; bytes regenerated from the id)
 *   - every acknowledged commit is listed, or the log says it was deleted
 *   - no staging, trash, participant marker or *.tmp-* file remains, no probe file
 *   - the event log: sequences 1..n, never renumbered since the last check, each
 *     checkpoint COMMITTED once, commits in step order, DELETED only after COMMITTED
 *
 * Prints one line per violation and, last, a JSON summary {iterations, violations, ...}.
 * Exits 1 when there was a violation.
 */
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { CkptdClient } from "../clients/ts/src/index.js";
import { parseLog } from "../src/catalog/events.js";
import { startDaemon } from "./daemon-process.js";
import { prng } from "./prng.js";

const JOB = "soak";
const WORLD = 2;
const ITEMS = ["model", "optim"] as const;

const { values: args } = parseArgs({
  options: {
    iterations: { type: "string", default: "50" },
    seed: { type: "string", default: "1" },
    "multi-node-every": { type: "string", default: "3" },
    "keep-dir": { type: "boolean", default: false },
  },
});
const ITERATIONS = Number(args.iterations);
const MULTI_EVERY = Number(args["multi-node-every"]);

const rand = prng(Number(args.seed));
const between = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));

/** The bytes rank `rank` saves as `item` of checkpoint `id`: regenerated to verify loads. */
function payload(id: string, rank: number, item: string): Buffer {
  const seed = createHash("sha256").update(`${id}/${rank}/${item}`).digest();
  const size = item === "model" ? (256 << 10) + (seed.readUInt32LE(0) % (768 << 10)) : 4096 + (seed.readUInt32LE(4) % 16384);
  const out = Buffer.alloc(size & ~3); // whole 32-bit words
  let x = seed.readUInt32LE(8) | 1;
  for (let i = 0; i < out.length; i += 4) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    // Zero runs between noise: both the LZ4 and the raw chunk paths get exercised.
    out.writeUInt32LE(i % 4096 < 1024 ? 0 : x, i);
  }
  return out;
}

interface Node {
  id: string;
  proc: ChildProcess;
  address: string;
  client: CkptdClient;
  exited: Promise<unknown>;
}

async function startNode(dataDir: string, id: string, extra: string[]): Promise<Node> {
  const d = await startDaemon(dataDir, ["--keep-last", "3", "--gc-interval-ms", "300", "--prepare-timeout-ms", "3000", ...extra], {
    name: id,
  });
  return { id, proc: d.proc, address: d.address, client: new CkptdClient(d.address), exited: d.exited };
}

async function kill9(n: Node): Promise<void> {
  n.client.close();
  if (n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill("SIGKILL");
  await n.exited;
}

/** One data directory and what the soak knows about it across iterations. */
interface Setup {
  name: "single" | "multi";
  dataDir: string;
  /** Acknowledged commits (a Commit returned COMMITTED to every rank), by id. */
  acknowledged: Map<string, number>;
  /** Events seen at earlier checks, "seq" → "TYPE id": a renumbered record shows up here. */
  seen: Map<number, string>;
  nextStep: number;
  start(): Promise<Node[]>;
  /** Which node serves rank r. */
  nodeOf(nodes: Node[], rank: number): Node;
}

const violations: string[] = [];
function violation(setup: Setup, iteration: number, what: string): void {
  const line = `violation [${setup.name} #${iteration}]: ${what}`;
  violations.push(line);
  console.log(line);
}

const stats = {
  crashes: 0,
  commitsAcknowledged: 0,
  commitsAborted: 0,
  workloadErrors: 0,
  deletesAcknowledged: 0,
  loadsChecked: 0,
  multiNodeIterations: 0,
};

/** Files that must not outlive a recovery. */
function leftovers(dataDir: string): string[] {
  const bad: string[] = [];
  const walk = (dir: string, rel: string) => {
    for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) walk(path.join(dir, d.name), r);
      else if (
        d.name.includes(".tmp-") ||
        d.name === ".direct-io-probe" ||
        /^jobs\/[^/]+\/(staging|trash)\//.test(r) ||
        /^nodes\/[^/]+\/attempts\//.test(r)
      )
        bad.push(r);
    }
  };
  walk(dataDir, "");
  return bad;
}

async function check(setup: Setup, nodes: Node[], iteration: number): Promise<void> {
  // A participant's markers go once it has heard the coordinator's answer: give it a moment.
  let left = leftovers(setup.dataDir);
  for (let i = 0; i < 50 && left.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    left = leftovers(setup.dataDir);
  }
  for (const f of left) violation(setup, iteration, `left behind after recovery: ${f}`);

  const client = nodes[0]!.client;
  const listed = new Map((await client.listCheckpoints(JOB, { pageSize: 1000 })).checkpoints.map((c) => [c.checkpointId, c]));
  for (const [id, c] of listed) {
    for (let rank = 0; rank < WORLD; rank++) {
      try {
        const node = setup.nodeOf(nodes, (rank + iteration) % WORLD); // loads from either node
        const loaded = await node.client.loadItems({ job: JOB, checkpointId: id, rank });
        for (const item of ITEMS) {
          const e = loaded.items.get(item)?.get("w");
          const want = payload(id, rank, item);
          if (e?.kind !== "tensor" || !Buffer.from(e.tensor.data.buffer, e.tensor.data.byteOffset, e.tensor.data.byteLength).equals(want))
            violation(setup, iteration, `${id} rank ${rank} ${item} does not load bit-exact`);
        }
        stats.loadsChecked++;
      } catch (err) {
        violation(setup, iteration, `${id} (step ${c.step}) is listed but rank ${rank} does not load: ${(err as Error).message}`);
      }
    }
  }

  const file = path.join(setup.dataDir, "jobs", JOB, "events.log");
  const events = fs.existsSync(file) ? parseLog(fs.readFileSync(file)).records : [];
  events.forEach((e, i) => {
    if (e.seq !== i + 1) violation(setup, iteration, `event ${i + 1} has seq ${e.seq}`);
    const what = `${e.type} ${e.checkpointId}`;
    const before = setup.seen.get(e.seq);
    if (before !== undefined && before !== what) violation(setup, iteration, `seq ${e.seq} was '${before}', is now '${what}'`);
    setup.seen.set(e.seq, what);
  });
  if (setup.seen.size > events.length)
    violation(setup, iteration, `the event log lost records: ${setup.seen.size} seen, ${events.length} now`);
  const state = new Map<string, "COMMITTED" | "DELETED">();
  let lastCommittedStep = -1;
  for (const e of events) {
    if (e.type === "COMMITTED") {
      if (state.has(e.checkpointId)) violation(setup, iteration, `${e.checkpointId} logged COMMITTED twice`);
      if (e.step <= lastCommittedStep)
        violation(setup, iteration, `${e.checkpointId} (step ${e.step}) logged after step ${lastCommittedStep}`);
      lastCommittedStep = e.step;
      state.set(e.checkpointId, "COMMITTED");
    } else {
      if (state.get(e.checkpointId) !== "COMMITTED")
        violation(setup, iteration, `${e.checkpointId} logged DELETED without being committed`);
      state.set(e.checkpointId, "DELETED");
    }
  }
  for (const id of listed.keys())
    if (state.get(id) !== "COMMITTED") violation(setup, iteration, `${id} is listed but the log says ${state.get(id) ?? "nothing"}`);
  for (const [id] of setup.acknowledged) {
    if (!listed.has(id) && state.get(id) !== "DELETED")
      violation(setup, iteration, `acknowledged commit ${id} is gone without a DELETED event`);
  }
}

/** Saves and commits checkpoints one after another until the daemons die; sometimes deletes one. */
async function workload(setup: Setup, nodes: Node[], onCommitSent: () => void): Promise<void> {
  for (;;) {
    const step = setup.nextStep++;
    const id = `s${step}`;
    const saved = await Promise.all(
      Array.from({ length: WORLD }, async (_, rank) => {
        let attempt = 0;
        for (const item of ITEMS) {
          const data = payload(id, rank, item);
          const res = await setup.nodeOf(nodes, rank).client.save({
            job: JOB,
            checkpointId: id,
            step,
            rank,
            worldSize: WORLD,
            item,
            entries: [
              {
                key: "w",
                tensor: {
                  dtype: "uint8",
                  shape: [data.length],
                  device: "cpu",
                  data: new Uint8Array(data.buffer, data.byteOffset, data.length),
                },
              },
            ],
          });
          attempt = res.attempt;
        }
        return attempt;
      }),
    );
    const votes = Promise.all(
      saved.map((attempt, rank) =>
        setup
          .nodeOf(nodes, rank)
          .client.commit({ job: JOB, checkpointId: id, step, rank, worldSize: WORLD, items: [...ITEMS], attempt }, { timeoutMs: 20_000 }),
      ),
    );
    onCommitSent();
    const results = await votes;
    if (results.every((r) => r.outcome === "COMMITTED")) {
      setup.acknowledged.set(id, step);
      stats.commitsAcknowledged++;
    } else stats.commitsAborted++;
    if (rand() < 0.2 && setup.acknowledged.size > 2) {
      const ids = [...setup.acknowledged.keys()];
      const victim = ids[between(0, ids.length - 1)]!;
      try {
        await nodes[0]!.client.deleteCheckpoint(JOB, victim);
        stats.deletesAcknowledged++;
      } catch {
        // Already deleted by retention, or the daemon died: the checks say which.
      }
    }
  }
}

function singleNode(root: string): Setup {
  const dataDir = path.join(root, "single");
  return {
    name: "single",
    dataDir,
    acknowledged: new Map(),
    seen: new Map(),
    nextStep: 1,
    start: async () => [await startNode(dataDir, "single", [])],
    nodeOf: (nodes) => nodes[0]!,
  };
}

function multiNode(root: string): Setup {
  const dataDir = path.join(root, "multi");
  // Daemons of a job authenticate each other with a peer token.
  const tokenFile = path.join(root, "peer-token");
  fs.writeFileSync(tokenFile, "soak-peer-token-0123456789\n", { mode: 0o600 });
  const peers = ["--peers", "n1,n2", "--peer-token-file", tokenFile];
  return {
    name: "multi",
    dataDir,
    acknowledged: new Map(),
    seen: new Map(),
    nextStep: 1,
    start: async () =>
      Promise.all([startNode(dataDir, "n1", ["--node-id", "n1", ...peers]), startNode(dataDir, "n2", ["--node-id", "n2", ...peers])]),
    nodeOf: (nodes, rank) => nodes[rank % nodes.length]!,
  };
}

async function iterate(setup: Setup, iteration: number): Promise<void> {
  const nodes = await setup.start();
  try {
    await check(setup, nodes, iteration);
  } catch (err) {
    violation(setup, iteration, `check failed: ${(err as Error).message}`);
  }
  // The kill instant: a random delay, or a moment after some Commit was sent.
  const afterCommit = rand() < 0.5;
  const commitsBeforeKill = between(1, 4);
  const delayMs = afterCommit ? between(0, 15) : between(20, 1500);
  let sent = 0;
  let fire!: () => void;
  const fired = new Promise<void>((resolve) => (fire = resolve));
  if (!afterCommit) setTimeout(fire, delayMs);
  const work = workload(setup, nodes, () => {
    if (afterCommit && ++sent === commitsBeforeKill) setTimeout(fire, delayMs);
  }).catch((err: unknown) => {
    // Calls cut by the kill are expected; anything else is worth a look (not a violation by itself).
    if (
      !/UNAVAILABLE|CANCELLED|ECONNRESET|No connection|Connection dropped|DEADLINE|Channel has been shut down/i.test((err as Error).message)
    ) {
      stats.workloadErrors++;
      if (stats.workloadErrors <= 5) console.log(`workload error [${setup.name} #${iteration}]: ${(err as Error).message}`);
    }
  });
  await Promise.race([fired, work]);
  const order = nodes.length > 1 && rand() < 0.5 ? [...nodes].reverse() : nodes;
  for (const [i, n] of order.entries()) {
    if (i > 0) await new Promise((r) => setTimeout(r, between(0, 300)));
    await kill9(n);
  }
  stats.crashes++;
  await work;
}

async function main(): Promise<void> {
  const started = Date.now();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-soak-"));
  const single = singleNode(root);
  const multi = multiNode(root);
  for (let i = 1; i <= ITERATIONS; i++) {
    const setup = MULTI_EVERY > 0 && i % MULTI_EVERY === 0 ? multi : single;
    if (setup === multi) stats.multiNodeIterations++;
    await iterate(setup, i);
  }
  // Recover once more and check what the last crashes left.
  for (const setup of [single, multi]) {
    if (!fs.existsSync(setup.dataDir)) continue;
    const nodes = await setup.start();
    try {
      await check(setup, nodes, ITERATIONS + 1);
    } catch (err) {
      violation(setup, ITERATIONS + 1, `check failed: ${(err as Error).message}`);
    }
    for (const n of nodes) await kill9(n);
  }
  const decisions = (dir: string) => {
    const d = path.join(dir, "jobs", JOB, "decisions");
    return fs.existsSync(d) ? fs.readdirSync(d).length : 0;
  };
  const summary = {
    iterations: ITERATIONS,
    violations: violations.length,
    seed: Number(args.seed),
    ...stats,
    acknowledgedIds: { single: single.acknowledged.size, multi: multi.acknowledged.size },
    decisionRecords: { single: decisions(single.dataDir), multi: decisions(multi.dataDir) },
    eventRecords: { single: single.seen.size, multi: multi.seen.size },
    seconds: Math.round((Date.now() - started) / 1000),
  };
  if (!args["keep-dir"]) fs.rmSync(root, { recursive: true, force: true });
  console.log(JSON.stringify(args["keep-dir"] ? { ...summary, dataDir: root } : summary));
  process.exitCode = violations.length > 0 ? 1 : 0;
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 2;
});
