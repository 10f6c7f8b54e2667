/**
 * Measures a resharded load: one float32 tensor of --mib MiB (noise, so stored raw: the
 * most bytes to read) saved row-sharded by 2 ranks, then loaded as 3 ranks' row boxes
 * (shard_as) and as 2 column boxes (each touching both saved shards), each into a typed
 * array with loadInto, after a plain load of the saved shards as the baseline. Prints per case the seconds, MiB/s, the stored bytes the daemon read
 * per byte asked for (ckptd_load_stored_bytes_read_total) and the daemon's peak RSS while
 * loading (sampled every 20 ms), and checks every box bit-exact.
 *
 *   npm run build && node dist/scripts/reshard-measure.js [--mib 256]
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CkptdClient, tensor } from "../clients/ts/src/index.js";
import { startDaemon } from "./daemon-process.js";

/** dist/scripts/ → the repository. */

async function scrape(address: string, name: string): Promise<number> {
  const text = await (await fetch(`http://${address}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : 0;
}

const MIB = 1 << 20;
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};

async function main(): Promise<void> {
  const mib = arg("mib", 256);
  const cols = 1024;
  const rows = Math.floor((mib * MIB) / (cols * 4));
  const global = new Float32Array(rows * cols);
  const bytes = new Uint8Array(global.buffer);
  for (let off = 0; off < bytes.length; off += 65536)
    bytes.set(crypto.getRandomValues(new Uint8Array(Math.min(65536, bytes.length - off))), off);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-reshard-measure-"));
  const daemon = await startDaemon(dataDir, [], { metrics: true });
  const metrics = daemon.metricsAddress;
  const client = new CkptdClient({ address: daemon.address, sharedMemory: false });
  try {
    const split = Math.ceil(rows / 2);
    const job = "reshard-measure";
    await Promise.all(
      [0, 1].map(async (rank) => {
        const start = rank === 0 ? 0 : split;
        const count = rank === 0 ? split : rows - split;
        const data = global.subarray(start * cols, (start + count) * cols);
        const t = tensor(data, { shape: [count, cols], globalShape: [rows, cols], globalOffsets: [start, 0] });
        await client.save({ job, checkpointId: "c1", step: 1, rank, worldSize: 2, item: "model", entries: [{ key: "w", tensor: t }] });
        await client.commit({ job, checkpointId: "c1", step: 1, rank, worldSize: 2, items: ["model"] });
      }),
    );
    const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${daemon.proc.pid!}/status`, "utf8"))![1]) * 1024;
    const read = () => scrape(metrics, "ckptd_load_stored_bytes_read_total");
    const cases: [string, { offsets: number[]; lengths: number[] }[]][] = [
      [
        "3 row boxes (shard_as-like, world 2 -> 3)",
        [0, 1, 2].map((r) => {
          const step = Math.ceil(rows / 3);
          const start = Math.min(r * step, rows);
          return { offsets: [start, 0], lengths: [Math.min(step, rows - start), cols] };
        }),
      ],
      ["2 column boxes (each across both saved shards)", [0, 1].map((c) => ({ offsets: [0, c * (cols / 2)], lengths: [rows, cols / 2] }))],
    ];
    console.log(`tensor: float32 [${rows}, ${cols}] (${mib} MiB), saved row-sharded by 2 ranks (noise: stored raw)`);
    {
      // The baseline: each saved shard as saved (a plain Load with source_rank), the same bytes in all.
      const before = await read();
      const started = process.hrtime.bigint();
      let asked = 0;
      for (const sourceRank of [0, 1]) {
        const res = await client.loadItems({ job, checkpointId: "c1", sourceRank, items: ["model"] });
        const w = res.items.get("model")!.get("w")!;
        if (w.kind === "tensor") asked += w.tensor.data.byteLength;
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const stored = (await read()) - before;
      console.log(
        `plain load of the 2 saved shards (no resharding): ${seconds.toFixed(2)} s, ${(asked / MIB / seconds).toFixed(0)} MiB/s, ` +
          `stored bytes read / asked ${(stored / asked).toFixed(3)}`,
      );
    }
    for (const [name, boxes] of cases) {
      const before = await read();
      let peak = rss();
      const base = peak;
      const sampler = setInterval(() => (peak = Math.max(peak, rss())), 20);
      const started = process.hrtime.bigint();
      let asked = 0;
      const outs = boxes.map((b) => new Float32Array(b.lengths[0]! * b.lengths[1]!));
      for (const [i, b] of boxes.entries()) {
        await client.loadInto({ job, checkpointId: "c1", targets: [{ item: "model", key: "w", ...b, data: outs[i]! }] });
        asked += outs[i]!.byteLength;
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      clearInterval(sampler);
      for (const [i, b] of boxes.entries()) {
        const out = outs[i]!;
        // Bit-exact against the global tensor.
        for (let r = 0; r < b.lengths[0]!; r++) {
          const want = global.subarray(
            (b.offsets[0]! + r) * cols + b.offsets[1]!,
            (b.offsets[0]! + r) * cols + b.offsets[1]! + b.lengths[1]!,
          );
          const got = out.subarray(r * b.lengths[1]!, (r + 1) * b.lengths[1]!);
          if (
            Buffer.compare(
              Buffer.from(want.buffer, want.byteOffset, want.byteLength),
              Buffer.from(got.buffer, got.byteOffset, got.byteLength),
            ) !== 0
          )
            throw new Error(`${name}: box [${b.offsets}] row ${r} differs`);
        }
      }
      const stored = (await read()) - before;
      console.log(
        `${name}: ${seconds.toFixed(2)} s, ${(asked / MIB / seconds).toFixed(0)} MiB/s, stored bytes read / asked ${(stored / asked).toFixed(3)}, ` +
          `daemon RSS ${(base / MIB).toFixed(0)} MiB before, peak ${(peak / MIB).toFixed(0)} MiB`,
      );
    }
  } finally {
    client.close();
    await daemon.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
