/**
 * Round trips through a real daemon with the TypeScript client: concurrent multi-rank
 * saves, the two-phase commit, loads with device-mapping hints, listing, deletion, and
 * the CheckpointEngine facade.
 */
import { randomFillSync } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  CheckpointAbortedError,
  CheckpointEngine,
  CkptdClient,
  isNotFound,
  tensor,
  type LoadedEntry,
  type LoadedItems,
  type SaveEntry,
  type StateDict,
  type Tensor,
} from "../../clients/ts/src/index.js";
import { startDaemon, type Daemon } from "./harness.js";

let daemon: Daemon;
let client: CkptdClient;

beforeAll(async () => {
  daemon = await startDaemon();
  client = new CkptdClient(daemon.address);
});

afterAll(async () => {
  client?.close();
  await daemon?.stop();
});

const GPUS = Array.from({ length: 8 }, (_, i) => `cuda:${i}`);

function randomBytes(n: number): Uint8Array {
  // randomFillSync caps one call at 2^31-1 bytes; every test tensor is far below that.
  return randomFillSync(new Uint8Array(n));
}

function bf16Bits(n: number): Uint16Array {
  const bytes = randomBytes(n * 2);
  return new Uint16Array(bytes.buffer, bytes.byteOffset, n);
}

/** A job name that no other test (or rerun against the same data dir) uses. */
function jobName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
}

/** The two items every rank of the 8-rank checkpoint saves. */
function rankItems(rank: number): Record<string, SaveEntry[]> {
  const device = `cuda:${rank}`;
  const model: SaveEntry[] = [
    { key: "layers.0.weight", tensor: tensor(new Float32Array(randomBytes(256 * 512 * 4).buffer), { shape: [256, 512], device }) },
    // An odd element count, so the last chunk is short and not 4-byte aligned.
    { key: "layers.0.attn.bf16", tensor: tensor(bf16Bits(1001 * 3), { dtype: "bfloat16", shape: [1001, 3], device }) },
    {
      key: "position_ids",
      tensor: tensor(
        BigInt64Array.from({ length: 5000 }, (_, i) => BigInt(i) - 2500n),
        { shape: [5000], device: "cpu" },
      ),
    },
    { key: "scale", tensor: tensor(new Float32Array([Math.PI * (rank + 1)]), { shape: [], device }) },
    { key: "empty", tensor: tensor(new Float32Array(0), { shape: [0, 16], device }) },
    {
      key: "shard",
      tensor: tensor(
        new Int32Array(64 * 32).map((_, i) => i * (rank + 1)),
        {
          shape: [64, 32],
          device,
          globalShape: [64 * 8, 32],
          globalOffsets: [64 * rank, 0],
        },
      ),
    },
  ];
  if (rank === 0) {
    // Larger than 64 MiB: many chunks, and more than any single buffer in the daemon's budget should hold.
    const n = 17 * 1024 * 1024;
    model.push({ key: "big", tensor: tensor(new Float32Array(randomBytes(n * 4).buffer), { shape: [17, 1024, 1024], device }) });
  }
  const extra: SaveEntry[] = [
    { key: "meta", object: { data: Buffer.from(JSON.stringify({ rank, note: "ünïcödé" })), format: "json" } },
    // Just over 5 MiB: an object that spans two chunks.
    { key: "blob", object: { data: randomBytes((5 << 20) + 1), format: "pickle" } },
    { key: "nothing", object: { data: new Uint8Array(0), format: "bytes" } },
    { key: "counts", tensor: tensor(new Int32Array([1, 2, 3, rank]), { device: "cpu" }) },
  ];
  return { model, extra };
}

function bytesOf(entries: readonly SaveEntry[]): number {
  return entries.reduce((n, e) => n + ("tensor" in e ? e.tensor.data.byteLength : e.object.data.byteLength), 0);
}

function expectSameTensor(actual: Tensor, expected: Tensor, where: string): void {
  expect(actual.dtype, where).toBe(expected.dtype);
  expect([...actual.shape], where).toEqual([...expected.shape]);
  expect(actual.data.byteLength, where).toBe(expected.data.byteLength);
  // Buffer.compare rather than toEqual: a diff of a 68 MiB buffer is useless and slow.
  expect(Buffer.compare(actual.data, expected.data), `${where}: bytes differ`).toBe(0);
  expect([...(actual.globalShape ?? [])], where).toEqual([...(expected.globalShape ?? [])]);
  expect([...(actual.globalOffsets ?? [])], where).toEqual([...(expected.globalOffsets ?? [])]);
}

/**
 * Checks a loaded rank bit for bit against what it saved, and every tensor's target
 * device against `target(savedDevice)`.
 */
function expectRankLoaded(loaded: LoadedItems, saved: Record<string, SaveEntry[]>, target: (savedDevice: string) => string): void {
  expect([...loaded.items.keys()].sort()).toEqual(Object.keys(saved).sort());
  for (const [item, entries] of Object.entries(saved)) {
    const got = loaded.items.get(item)!;
    expect([...got.keys()].sort(), item).toEqual(entries.map((e) => e.key).sort());
    for (const e of entries) {
      const where = `${item}/${e.key}`;
      const l: LoadedEntry = got.get(e.key)!;
      if ("tensor" in e) {
        expect(l.kind, where).toBe("tensor");
        if (l.kind !== "tensor") continue;
        expectSameTensor(l.tensor, e.tensor, where);
        expect(l.savedDevice, where).toBe(e.tensor.device);
        expect(l.tensor.device, `${where} target device`).toBe(target(e.tensor.device));
        const placement = loaded.plan.placements.find((p) => p.item === item && p.key === e.key);
        expect(placement?.targetDevice, `${where} placement`).toBe(target(e.tensor.device));
      } else {
        expect(l.kind, where).toBe("object");
        if (l.kind !== "object") continue;
        expect(l.format, where).toBe(e.object.format);
        expect(Buffer.compare(l.data, e.object.data), `${where}: bytes differ`).toBe(0);
      }
    }
  }
}

describe("8 ranks, 2 items each", () => {
  const job = jobName("roundtrip8");
  const tag = "global_step1000";
  const saved = new Map<number, Record<string, SaveEntry[]>>();

  beforeAll(async () => {
    for (let rank = 0; rank < 8; rank++) saved.set(rank, rankItems(rank));
    const attempts = await Promise.all(
      [...saved].flatMap(([rank, items]) =>
        Object.entries(items).map(async ([item, entries]) => {
          const res = await client.save({ job, checkpointId: tag, step: 1000, rank, worldSize: 8, item, entries });
          expect(res.bytesReceived, `rank ${rank} ${item}`).toBe(bytesOf(entries));
          expect(res.entryCount, `rank ${rank} ${item}`).toBe(entries.length);
          return res.attempt;
        }),
      ),
    );
    const decisions = await Promise.all(
      [...saved].map(([rank, items]) =>
        client.commit({ job, checkpointId: tag, step: 1000, rank, worldSize: 8, items: Object.keys(items), attempt: attempts[0]! }),
      ),
    );
    for (const d of decisions) expect(d.outcome, d.reason).toBe("COMMITTED");
  }, 120_000);

  test("commit - every rank gets COMMITTED and the checkpoint counts every byte of every rank", async () => {
    const ckpt = await client.getCheckpoint(job, tag);
    expect(ckpt.checkpointId).toBe(tag);
    expect(ckpt.step).toBe(1000);
    expect(ckpt.worldSize).toBe(8);
    expect(ckpt.ranks.map((r) => r.rank).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    for (const r of ckpt.ranks) expect(r.items.map((i) => i.name).sort()).toEqual(["extra", "model"]);
    const raw = [...saved.values()].reduce((n, items) => n + bytesOf(items["model"]!) + bytesOf(items["extra"]!), 0);
    expect(ckpt.rawBytes).toBe(raw);
    expect(ckpt.storedBytes).toBeGreaterThan(0);
  });

  test("load - a GPU loader (cuda:0..7, local rank 3) gets every rank back bit-exact, cuda:k → cuda:3 and cpu → cpu", async () => {
    for (const [rank, items] of saved) {
      const loaded = await client.loadItems({ job, checkpointId: tag, rank, localRank: 3, devices: GPUS });
      expect(loaded.plan.sourceRank).toBe(rank);
      expect(loaded.plan.checkpoint?.checkpointId).toBe(tag);
      expect(loaded.plan.mapLocation[`cuda:${rank}`]).toBe("cuda:3");
      expectRankLoaded(loaded, items, (d) => (d === "cpu" ? "cpu" : "cuda:3"));
    }
  });

  test("load - a CPU-only loader (no devices) gets cuda:k → cpu", async () => {
    for (const [rank, items] of saved) {
      const loaded = await client.loadItems({ job, checkpointId: tag, rank, localRank: 3, devices: [] });
      expect(loaded.plan.mapLocation[`cuda:${rank}`]).toBe("cpu");
      expectRankLoaded(loaded, items, () => "cpu");
    }
  });

  test("load - an explicit mapLocation wins over the hints, and '*' maps every device", async () => {
    const items = saved.get(5)!;
    const mapped = await client.loadItems({
      job,
      checkpointId: tag,
      rank: 5,
      localRank: 3,
      devices: GPUS,
      mapLocation: { "cuda:5": "cuda:1" },
    });
    expect(mapped.plan.mapLocation["cuda:5"]).toBe("cuda:1");
    expectRankLoaded(mapped, items, (d) => (d === "cuda:5" ? "cuda:1" : "cpu"));

    const all = await client.loadItems({ job, checkpointId: tag, rank: 5, localRank: 3, devices: GPUS, mapLocation: { "*": "cuda:7" } });
    expectRankLoaded(all, items, () => "cuda:7");
  });

  test("load - sourceRank and items select another rank's shard and one item", async () => {
    const loaded = await client.loadItems({
      job,
      checkpointId: "latest",
      rank: 2,
      sourceRank: 6,
      items: ["model"],
      devices: GPUS,
      localRank: 2,
    });
    expect(loaded.plan.sourceRank).toBe(6);
    expectRankLoaded(loaded, { model: saved.get(6)!["model"]! }, (d) => (d === "cpu" ? "cpu" : "cuda:2"));
  });

  test("load - leaving the event loop early cancels the stream without breaking the client", async () => {
    let events = 0;
    for await (const ev of client.load({ job, checkpointId: tag, rank: 0 })) {
      events++;
      if (ev.type === "chunk") break;
    }
    expect(events).toBeGreaterThanOrEqual(3);
    const ckpt = await client.getCheckpoint(job, tag);
    expect(ckpt.worldSize).toBe(8);
  });
});

/** Saves and commits a one-rank checkpoint with one small item. */
async function saveSmall(job: string, checkpointId: string, step: number): Promise<void> {
  const entries: SaveEntry[] = [{ key: "w", tensor: tensor(new Float32Array([step, step + 1, step + 2])) }];
  const res = await client.save({ job, checkpointId, step, rank: 0, worldSize: 1, item: "model", entries });
  const decision = await client.commit({ job, checkpointId, step, rank: 0, worldSize: 1, items: ["model"], attempt: res.attempt });
  expect(decision.outcome, decision.reason).toBe("COMMITTED");
  expect(decision.checkpoint?.checkpointId).toBe(checkpointId);
}

describe("catalog", () => {
  test("listCheckpoints - newest step first, and pageSize 1 walks every page", async () => {
    const job = jobName("list");
    // Committed out of step order: the listing orders by step, not by commit time.
    await saveSmall(job, "step10", 10);
    await saveSmall(job, "step30", 30);
    await saveSmall(job, "step20", 20);

    const whole = await client.listCheckpoints(job);
    expect(whole.checkpoints.map((c) => c.step)).toEqual([30, 20, 10]);
    expect(whole.nextPageToken).toBe("");

    const pages: number[][] = [];
    let pageToken = "";
    do {
      const page = await client.listCheckpoints(job, { pageSize: 1, pageToken });
      pages.push(page.checkpoints.map((c) => c.step));
      pageToken = page.nextPageToken;
      expect(pages.length).toBeLessThanOrEqual(4);
    } while (pageToken);
    expect(pages.flat()).toEqual([30, 20, 10]);
    for (const p of pages.slice(0, 3)) expect(p).toHaveLength(1);

    const all = [];
    for await (const c of client.listAllCheckpoints(job, { pageSize: 2 })) all.push(c.checkpointId);
    expect(all).toEqual(["step30", "step20", "step10"]);
  });

  test("getCheckpoint('latest') - returns the newest committed step", async () => {
    const job = jobName("latest");
    await saveSmall(job, "a", 5);
    await saveSmall(job, "c", 7);
    await saveSmall(job, "b", 6);
    const latest = await client.getCheckpoint(job);
    expect(latest.checkpointId).toBe("c");
    expect(latest.step).toBe(7);
    const full = await client.getCheckpoint(job, "latest", { full: true });
    const entries = full.ranks[0]?.items[0]?.entries ?? [];
    expect(entries.map((e) => e.key)).toEqual(["w"]);
    expect(entries[0]?.tensor?.dtype).toBe("DTYPE_FLOAT32");
  });

  test("deleteCheckpoint - the checkpoint is gone: getCheckpoint and load are NOT_FOUND, the listing skips it", async () => {
    const job = jobName("delete");
    await saveSmall(job, "old", 1);
    await saveSmall(job, "new", 2);
    const res = await client.deleteCheckpoint(job, "old");
    expect(res.freedBytes).toBeGreaterThan(0);

    const get = await client.getCheckpoint(job, "old").then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isNotFound(get), String(get)).toBe(true);
    const load = await client.loadItems({ job, checkpointId: "old", rank: 0 }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isNotFound(load), String(load)).toBe(true);
    const page = await client.listCheckpoints(job);
    expect(page.checkpoints.map((c) => c.checkpointId)).toEqual(["new"]);
  });

  test("getCheckpoint - an unknown job is NOT_FOUND", async () => {
    const err = await client.getCheckpoint(jobName("nojob")).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isNotFound(err), String(err)).toBe(true);
  });
});

describe("CheckpointEngine", () => {
  function stateDict(rank: number): StateDict {
    return {
      model: {
        layers: {
          "0": {
            weight: tensor(new Float32Array(randomBytes(64 * 64 * 4).buffer), { shape: [64, 64], device: `cuda:${rank}` }),
            bias: tensor(bf16Bits(64), { dtype: "bfloat16", device: `cuda:${rank}` }),
          },
        },
        step_count: tensor(new BigInt64Array([10n]), { shape: [], device: "cpu" }),
      },
      optimizer: { param_groups: [{ lr: 1e-4, betas: [0.9, 0.999] }], state: {} },
      rng: Buffer.from([1, 2, 3, rank]),
      name: "run-1",
      epoch: 3,
      done: false,
      nothing: null,
    };
  }

  test("engine - create/save/commit/load round trips a nested state dict on every rank, with the device hints", async () => {
    const job = jobName("engine");
    const tag = "global_step10";
    const savePath = `/ckpt/${tag}/mp_rank_00_model_states.pt`;
    const saved = [0, 1].map(stateDict);
    const engines = [0, 1].map(
      (rank) => new CheckpointEngine({ client, job, rank, worldSize: 2, localRank: rank, devices: ["cuda:0", "cuda:1"] }),
    );

    const committed = await Promise.all(
      engines.map(async (engine) => {
        engine.create(tag);
        engine.makedirs(`/ckpt/${tag}`, true);
        await engine.save(saved[engine.rank]!, savePath);
        return engine.commit(tag);
      }),
    );
    expect(committed).toEqual([true, true]);

    const ckpt = await client.getCheckpoint(job, tag);
    expect(ckpt.step).toBe(10);
    expect(ckpt.ranks.flatMap((r) => r.items.map((i) => i.name))).toEqual(["mp_rank_00_model_states.pt", "mp_rank_00_model_states.pt"]);

    for (const engine of engines) {
      const expected = saved[engine.rank]!;
      for (const path of [savePath, `${tag}/mp_rank_00_model_states.pt`, "mp_rank_00_model_states.pt"]) {
        const loaded = await engine.load(path);
        const model = loaded["model"] as StateDict;
        const layer = (model["layers"] as StateDict)["0"] as StateDict;
        const expectedLayer = ((expected["model"] as StateDict)["layers"] as StateDict)["0"] as StateDict;
        expectSameTensor(layer["weight"] as Tensor, expectedLayer["weight"] as Tensor, `${path} weight`);
        expectSameTensor(layer["bias"] as Tensor, expectedLayer["bias"] as Tensor, `${path} bias`);
        expect((layer["weight"] as Tensor).device).toBe(`cuda:${engine.rank}`);
        expect((model["step_count"] as Tensor).device).toBe("cpu");
        expectSameTensor(model["step_count"] as Tensor, (expected["model"] as StateDict)["step_count"] as Tensor, `${path} step_count`);
        expect(loaded["optimizer"]).toEqual({ param_groups: [{ lr: 1e-4, betas: [0.9, 0.999] }], state: {} });
        expect(Buffer.compare(loaded["rng"] as Buffer, expected["rng"] as Buffer)).toBe(0);
        expect(loaded["name"]).toBe("run-1");
        expect(loaded["epoch"]).toBe(3);
        expect(loaded["done"]).toBe(false);
        expect(loaded["nothing"]).toBeNull();
      }
      const onCpu = await engine.load(savePath, "cpu");
      const w = (((onCpu["model"] as StateDict)["layers"] as StateDict)["0"] as StateDict)["weight"] as Tensor;
      expect(w.device).toBe("cpu");
    }
  });

  test("engine - commit throws CheckpointAbortedError when another rank aborted", async () => {
    const job = jobName("engine-abort");
    const tag = "global_step20";
    const engine = new CheckpointEngine({ client, job, rank: 0, worldSize: 2 });
    engine.create(tag);
    await engine.save({ w: tensor(new Float32Array([1, 2])) }, `/ckpt/${tag}/model`);
    const abort = await client.abort({ job, checkpointId: tag, rank: 1, reason: "rank 1 ran out of memory" });
    expect(abort.outcome).toBe("ABORTED");
    const err = await engine.commit(tag).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CheckpointAbortedError);
    expect((err as CheckpointAbortedError).reason).toContain("out of memory");
  });
});
