/**
 * Resharding on an object store: a tensor saved row-sharded by 2 ranks on a daemon with --storage
 * s3:// is loaded by 1, 3 and 4 ranks (shard_as) and as an explicit box, bit-exact, and a thin box
 * reads only the chunks holding it (ranged GETs, ckptd_load_stored_bytes_read_total).
 */
import { randomFillSync } from "node:crypto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { CkptdClient, tensor } from "../../clients/ts/src/index.js";
import { metricsAddress, scrape, startDaemon, type Daemon } from "../integration/harness.js";
import { cleanedAfterAll } from "./cleanup.js";
import { freshPrefix, readRgwEnv, TEST_BUCKET, testStore } from "./rgw.js";

const MiB = 1024 * 1024;
const keep = cleanedAfterAll();
const prefix = freshPrefix("reshard");
const ROWS = 4000;
const COLS = 1024; // float32: 4 KiB a row, 16 MiB in all, 8 MiB (two 4 MiB chunks) per saved rank
let daemon: Daemon;
let client: CkptdClient;

/** The global tensor: random (incompressible) bytes, so a misplaced byte shows and stored bytes read count whole. */
const global = new Float32Array(randomFillSync(Buffer.alloc(ROWS * COLS * 4)).buffer);
const rows = (from: number, count: number) => Buffer.from(global.buffer, from * COLS * 4, count * COLS * 4);

beforeAll(async () => {
  keep(testStore(prefix));
  const env = readRgwEnv();
  daemon = await startDaemon({
    args: [
      "--storage",
      `s3://${TEST_BUCKET}/${prefix}`,
      "--s3-endpoint",
      env.endpoint,
      "--s3-region",
      env.region,
      "--metrics-listen",
      "127.0.0.1:0",
    ],
    env: { AWS_ACCESS_KEY_ID: env.accessKeyId, AWS_SECRET_ACCESS_KEY: env.secretAccessKey, AWS_REGION: env.region },
  });
  client = new CkptdClient(daemon.address);
  const half = ROWS / 2;
  const saved = await Promise.all(
    [0, 1].map((rank) =>
      client.save({
        job: "rs",
        checkpointId: "c",
        step: 1,
        rank,
        worldSize: 2,
        item: "model",
        entries: [
          {
            key: "w",
            tensor: tensor(new Float32Array(global.buffer, rank * half * COLS * 4, half * COLS), {
              shape: [half, COLS],
              globalShape: [ROWS, COLS],
              globalOffsets: [rank * half, 0],
            }),
          },
        ],
      }),
    ),
  );
  const votes = await Promise.all(
    [0, 1].map((rank) =>
      client.commit({ job: "rs", checkpointId: "c", step: 1, rank, worldSize: 2, items: ["model"], attempt: saved[rank]!.attempt }),
    ),
  );
  expect(votes.map((v) => v.outcome)).toEqual(["COMMITTED", "COMMITTED"]);
}, 60_000);

afterAll(async () => {
  client?.close();
  await daemon?.stop();
});

function tensorBytes(v: unknown): Buffer {
  const t = v as { kind: string; tensor: { data: Uint8Array } };
  expect(t.kind).toBe("tensor");
  return Buffer.from(t.tensor.data.buffer, t.tensor.data.byteOffset, t.tensor.data.byteLength);
}

it("s3 reshard - 2 saving ranks load into 1, 3 and 4 ranks bit-exact", async () => {
  for (const world of [1, 3, 4]) {
    const part = Math.ceil(ROWS / world);
    for (let rank = 0; rank < world; rank++) {
      const res = await client.loadItems({ job: "rs", checkpointId: "c", worldSize: world, shardAs: { rank, worldSize: world } });
      const got = tensorBytes(res.items.get("model")!.get("w"));
      const from = rank * part;
      expect(got.equals(rows(from, Math.min(part, ROWS - from))), `rank ${rank} of ${world}`).toBe(true);
    }
  }
});

it("s3 reshard - a thin box reads the chunk or two holding it, not the shards", async () => {
  const metrics = metricsAddress(daemon);
  const read = async () => (await scrape(metrics)).get("ckptd_load_stored_bytes_read_total") ?? 0;
  const before = await read();
  const res = await client.loadItems({
    job: "rs",
    checkpointId: "c",
    boxes: [{ item: "model", key: "w", offsets: [1990, 0], lengths: [20, COLS] }],
  });
  expect(tensorBytes(res.items.get("model")!.get("w")).equals(rows(1990, 20))).toBe(true);
  const bytesRead = (await read()) - before;
  // Rows 1990..2009 straddle the two saved shards (16 MiB stored): one chunk of each at most.
  expect(bytesRead).toBeGreaterThanOrEqual(20 * COLS * 4);
  expect(bytesRead).toBeLessThanOrEqual(2 * (4 * MiB + 64));
});
