/**
 * Invariant 5: bad input gets a clear gRPC status, and nothing else is harmed.
 * Every case checks the status code, that the message names the problem, and that
 * a good checkpoint saved at the same time (same job, other ranks) still commits
 * and loads bit-exact.
 */
import { crc32c } from "@node-rs/crc32";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Daemon, startDaemon } from "./harness.js";
import { CkptdClient } from "../../clients/ts/src/index.js";
import {
  MiB,
  compressibleBytes,
  expectLoadsBitExact,
  expectStatus,
  f32Entry,
  type ItemRef,
  objectEntry,
  type RankItems,
  saveAndCommit,
  saveItemOk,
  sleep,
  tensorEntry,
  uniqueName,
  testClient,
  getCheckpoint,
} from "./wire-helpers.js";
import {
  chunkMsg,
  commitRaw,
  entryMessages,
  entryMsg,
  expectOutcome,
  headerMsg,
  itemStream,
  loadAll,
  openSave,
  saveItem,
  saveRaw,
  trailerFor,
  trailerMsg,
  unlimitedClient,
} from "./raw-wire.js";

const JOB = "bad-input-job";

let daemon: Daemon;
let client: CkptdClient;
let seed = 100;

// Rank 0 of this checkpoint is staged before any bad input and rank 1 after all
// of it: the checkpoint must survive everything in between.
const EARLY_ID = "staged-before-bad-input";
const early: RankItems[] = [
  { model: [f32Entry("w", compressibleBytes(512 * 1024, 7))] },
  { model: [f32Entry("w", compressibleBytes(512 * 1024, 8))] },
];

beforeAll(async () => {
  // Undecided checkpoints must not time out while the file runs.
  daemon = await startDaemon({ args: ["--prepare-timeout-ms", "600000"] });
  client = testClient(daemon.address);
  await saveItemOk(client, { job: JOB, checkpointId: EARLY_ID, step: 1, rank: 0, worldSize: 2, item: "model" }, early[0]!.model!);
});

afterAll(async () => {
  client?.close();
  await daemon?.stop();
});

function ref(checkpointId: string, rank = 0, worldSize = 1, item = "model", step = 10): ItemRef {
  return { job: JOB, checkpointId, step, rank, worldSize, item };
}

/**
 * Runs `bad` while a good two-rank checkpoint of the same job is saved and
 * committed, then asserts the good one loads bit-exact: the bad input harmed nothing.
 */
async function alongsideGoodCheckpoint<T>(bad: () => Promise<T>): Promise<T> {
  const id = uniqueName("good");
  const s = seed++;
  const ranks: RankItems[] = [
    {
      model: [f32Entry("layers.0.weight", compressibleBytes(256 * 1024, s))],
      optim: [objectEntry("state", compressibleBytes(4096, s + 1))],
    },
    { model: [f32Entry("layers.0.weight", compressibleBytes(256 * 1024, s + 2))] },
  ];
  const [result] = await Promise.all([bad(), saveAndCommit(client, JOB, id, s, ranks)]);
  for (let r = 0; r < ranks.length; r++) await expectLoadsBitExact(client, JOB, id, r, ranks[r]!);
  expect(daemon.proc.exitCode, "daemon still running").toBeNull();
  return result;
}

const small = () => [f32Entry("w", compressibleBytes(64 * 1024, seed++))];

describe("bad input - names", () => {
  const badNames: Array<[string, string]> = [
    ["'..'", ".."],
    ["'.'", "."],
    ["'a/b'", "a/b"],
    ["'../escape'", "../escape"],
    ["a NUL byte", "x\u0000y"],
    ["an empty name", ""],
    ["a 200-character name", "n".repeat(200)],
  ];
  const fields: Array<["job" | "checkpointId" | "item", RegExp]> = [
    ["job", /job/i],
    ["checkpointId", /checkpoint/i],
    ["item", /item/i],
  ];
  for (const [field, mentions] of fields) {
    for (const [label, value] of badNames) {
      it(`save - ${label} as ${field} is INVALID_ARGUMENT naming the ${field}`, async () => {
        const header = { ...ref(uniqueName("names")), [field]: value };
        const r = await alongsideGoodCheckpoint(() => saveRaw(client, itemStream(header, small())));
        expectStatus(r, "INVALID_ARGUMENT", mentions);
      });
    }
  }

  it("commit - a path-like job is INVALID_ARGUMENT naming the job", async () => {
    const r = await alongsideGoodCheckpoint(() =>
      commitRaw(client, { job: "../escape", checkpointId: "c1", step: 1, rank: 0, worldSize: 1, items: ["model"] }, 10_000),
    );
    expectStatus(r, "INVALID_ARGUMENT", /job/i);
  });

  it("commit - a path-like checkpoint id is INVALID_ARGUMENT naming the checkpoint", async () => {
    const r = await alongsideGoodCheckpoint(() =>
      commitRaw(client, { job: JOB, checkpointId: "a/b", step: 1, rank: 0, worldSize: 1, items: ["model"] }, 10_000),
    );
    expectStatus(r, "INVALID_ARGUMENT", /checkpoint/i);
  });
});

describe("bad input - ranks, world size and step", () => {
  it("save - rank equal to world size is INVALID_ARGUMENT naming the rank", async () => {
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, itemStream(ref(uniqueName("rank"), 2, 2), small())));
    expectStatus(r, "INVALID_ARGUMENT", /rank/i);
  });

  it("save - rank above world size is INVALID_ARGUMENT naming the rank", async () => {
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, itemStream(ref(uniqueName("rank"), 7, 2), small())));
    expectStatus(r, "INVALID_ARGUMENT", /rank/i);
  });

  it("save - world size 0 is INVALID_ARGUMENT naming the rank", async () => {
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, itemStream(ref(uniqueName("rank"), 0, 0), small())));
    expectStatus(r, "INVALID_ARGUMENT", /rank/i);
  });

  it("commit - rank equal to world size is INVALID_ARGUMENT naming the rank", async () => {
    const r = await alongsideGoodCheckpoint(() =>
      commitRaw(client, { job: JOB, checkpointId: uniqueName("rank"), step: 1, rank: 2, worldSize: 2, items: ["model"] }, 10_000),
    );
    expectStatus(r, "INVALID_ARGUMENT", /rank/i);
  });

  it("save - a world size disagreeing with another rank's is FAILED_PRECONDITION and the checkpoint still commits", async () => {
    const id = uniqueName("world");
    const r0 = small();
    const r1 = small();
    await saveItemOk(client, ref(id, 0, 2), r0);
    const bad = await alongsideGoodCheckpoint(() => saveItem(client, ref(id, 1, 3), r1));
    expectStatus(bad, "FAILED_PRECONDITION", /world.?size/i);
    // The rejected stream staged nothing: rank 1 can still save with the right world size.
    await saveItemOk(client, ref(id, 1, 2), r1);
    const votes = await Promise.all(
      [0, 1].map((rank) => commitRaw(client, { job: JOB, checkpointId: id, step: 10, rank, worldSize: 2, items: ["model"] })),
    );
    votes.forEach((v, rank) => expectOutcome(v, "COMMITTED", `rank ${rank}`));
    await expectLoadsBitExact(client, JOB, id, 0, { model: r0 });
    await expectLoadsBitExact(client, JOB, id, 1, { model: r1 });
  });

  it("save - a step disagreeing with another rank's is FAILED_PRECONDITION and the checkpoint still commits", async () => {
    const id = uniqueName("step");
    const r0 = small();
    const r1 = small();
    await saveItemOk(client, ref(id, 0, 2, "model", 500), r0);
    const bad = await alongsideGoodCheckpoint(() => saveItem(client, ref(id, 1, 2, "model", 501), r1));
    expectStatus(bad, "FAILED_PRECONDITION", /step/i);
    await saveItemOk(client, ref(id, 1, 2, "model", 500), r1);
    const votes = await Promise.all(
      [0, 1].map((rank) => commitRaw(client, { job: JOB, checkpointId: id, step: 500, rank, worldSize: 2, items: ["model"] })),
    );
    votes.forEach((v, rank) => expectOutcome(v, "COMMITTED", `rank ${rank}`));
    await expectLoadsBitExact(client, JOB, id, 1, { model: r1 });
  });
});

describe("bad input - stream shape", () => {
  it("save - an entry before the header is INVALID_ARGUMENT naming the header", async () => {
    const e = small();
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, [...entryMessages(e), trailerFor(e)]));
    expectStatus(r, "INVALID_ARGUMENT", /header/i);
  });

  it("save - a chunk before the header is INVALID_ARGUMENT naming the header", async () => {
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, [chunkMsg(Buffer.alloc(16, 1))]));
    expectStatus(r, "INVALID_ARGUMENT", /header/i);
  });

  it("save - a trailer before the header is INVALID_ARGUMENT naming the header", async () => {
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, [trailerMsg(0, 0, 0)]));
    expectStatus(r, "INVALID_ARGUMENT", /header/i);
  });

  it("save - a second header is INVALID_ARGUMENT naming the header", async () => {
    const h = ref(uniqueName("twoheaders"));
    const e = small();
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, [headerMsg(h), headerMsg(h), ...entryMessages(e), trailerFor(e)]));
    expectStatus(r, "INVALID_ARGUMENT", /header/i);
  });

  it("save - a second header after an entry is INVALID_ARGUMENT naming the header", async () => {
    const h = ref(uniqueName("twoheaders"));
    const e = small();
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, [headerMsg(h), ...entryMessages(e), headerMsg(h), trailerFor(e)]));
    expectStatus(r, "INVALID_ARGUMENT", /header/i);
  });

  it("save - a chunk before any entry header is INVALID_ARGUMENT naming the entry", async () => {
    const h = ref(uniqueName("noentry"));
    const e = small();
    const r = await alongsideGoodCheckpoint(() =>
      saveRaw(client, [headerMsg(h), chunkMsg(e[0]!.data), ...entryMessages(e), trailerFor(e)]),
    );
    expectStatus(r, "INVALID_ARGUMENT", /entry/i);
  });

  it("save - a stream that half-closes without a trailer is INVALID_ARGUMENT naming the trailer", async () => {
    const h = ref(uniqueName("notrailer"));
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, [headerMsg(h), ...entryMessages(small())]));
    expectStatus(r, "INVALID_ARGUMENT", /trailer/i);
  });

  it("save - a stream of only a header is INVALID_ARGUMENT naming the trailer", async () => {
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, [headerMsg(ref(uniqueName("notrailer")))]));
    expectStatus(r, "INVALID_ARGUMENT", /trailer/i);
  });

  it("save - a duplicate entry key within an item is INVALID_ARGUMENT naming the key", async () => {
    const h = ref(uniqueName("dupkey"));
    const a = f32Entry("layers.0.weight", compressibleBytes(4096, 1));
    const b = f32Entry("layers.0.weight", compressibleBytes(4096, 2));
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, itemStream(h, [a, b])));
    expectStatus(r, "INVALID_ARGUMENT", /duplicate|key/i);
  });
});

describe("bad input - sizes", () => {
  it("save - more bytes than dtype x shape is INVALID_ARGUMENT as soon as exceeded", async () => {
    const h = ref(uniqueName("toomany"));
    const entry = tensorEntry("w", "DTYPE_FLOAT32", [16]); // 64 bytes
    // No trailer and no half-close: the daemon must reject on the chunk itself.
    const r = await alongsideGoodCheckpoint(() =>
      saveRaw(client, [headerMsg(h), entryMsg(entry), chunkMsg(Buffer.alloc(100, 3))], { end: false, timeoutMs: 10_000 }),
    );
    expect(r.timedOut, "the daemon waited for more instead of rejecting the excess bytes").toBeUndefined();
    expectStatus(r, "INVALID_ARGUMENT", /bytes/i);
  });

  it("save - more bytes than dtype x shape over two chunks is INVALID_ARGUMENT as soon as exceeded", async () => {
    const h = ref(uniqueName("toomany"));
    const entry = tensorEntry("w", "DTYPE_INT64", [8]); // 64 bytes
    const r = await alongsideGoodCheckpoint(() =>
      saveRaw(client, [headerMsg(h), entryMsg(entry), chunkMsg(Buffer.alloc(40, 1)), chunkMsg(Buffer.alloc(40, 2))], {
        end: false,
        timeoutMs: 10_000,
      }),
    );
    expect(r.timedOut, "the daemon waited for more instead of rejecting the excess bytes").toBeUndefined();
    expectStatus(r, "INVALID_ARGUMENT", /bytes/i);
  });

  it("save - more bytes than an object's size is INVALID_ARGUMENT as soon as exceeded", async () => {
    const h = ref(uniqueName("toomany"));
    const entry = objectEntry("state", Buffer.alloc(10, 1));
    const r = await alongsideGoodCheckpoint(() =>
      saveRaw(client, [headerMsg(h), entryMsg(entry), chunkMsg(Buffer.alloc(20, 1))], { end: false, timeoutMs: 10_000 }),
    );
    expect(r.timedOut, "the daemon waited for more instead of rejecting the excess bytes").toBeUndefined();
    expectStatus(r, "INVALID_ARGUMENT", /bytes/i);
  });

  it("save - fewer bytes than dtype x shape before the next entry is INVALID_ARGUMENT naming the bytes", async () => {
    const h = ref(uniqueName("toofew"));
    const a = tensorEntry("a", "DTYPE_FLOAT32", [16]);
    const b = tensorEntry("b", "DTYPE_FLOAT32", [16]);
    const msgs = [headerMsg(h), entryMsg(a), chunkMsg(a.data.subarray(0, 32)), ...entryMessages([b]), trailerMsg(2, 96, 0)];
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, msgs));
    expectStatus(r, "INVALID_ARGUMENT", /bytes/i);
  });

  it("save - fewer bytes than dtype x shape before the trailer is INVALID_ARGUMENT naming the bytes", async () => {
    const h = ref(uniqueName("toofew"));
    const a = tensorEntry("a", "DTYPE_BFLOAT16", [4, 8]); // 64 bytes
    const partial = a.data.subarray(0, 48);
    const r = await alongsideGoodCheckpoint(() =>
      saveRaw(client, [headerMsg(h), entryMsg(a), chunkMsg(partial), trailerFor([{ ...a, data: partial }])]),
    );
    expectStatus(r, "INVALID_ARGUMENT", /bytes/i);
  });

  it("save - a chunk just over 4 MiB is INVALID_ARGUMENT", async () => {
    const h = ref(uniqueName("bigchunk"));
    const entry = tensorEntry("w", "DTYPE_UINT8", [8 * MiB], Buffer.alloc(0));
    const big = unlimitedClient(daemon.address);
    try {
      const r = await alongsideGoodCheckpoint(() =>
        saveRaw(big, [headerMsg(h), entryMsg(entry), chunkMsg(compressibleBytes(4 * MiB + 1, 3))], { end: false, timeoutMs: 15_000 }),
      );
      expect(r.timedOut, "the daemon accepted an oversized chunk and waited for more").toBeUndefined();
      expectStatus(r, "INVALID_ARGUMENT", /chunk|MiB|4194304|too large/i);
    } finally {
      big.close();
    }
  });

  it("save - a 6 MiB chunk is rejected (INVALID_ARGUMENT or grpc's RESOURCE_EXHAUSTED)", async () => {
    const h = ref(uniqueName("bigchunk"));
    const entry = tensorEntry("w", "DTYPE_UINT8", [8 * MiB], Buffer.alloc(0));
    const big = unlimitedClient(daemon.address);
    try {
      const r = await alongsideGoodCheckpoint(() =>
        saveRaw(big, [headerMsg(h), entryMsg(entry), chunkMsg(compressibleBytes(6 * MiB, 4))], { end: false, timeoutMs: 15_000 }),
      );
      expect(r.timedOut, "the daemon accepted an oversized chunk and waited for more").toBeUndefined();
      expectStatus(r, ["INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"]);
    } finally {
      big.close();
    }
  });

  it("save - an unknown dtype is INVALID_ARGUMENT naming the dtype", async () => {
    const h = ref(uniqueName("dtype"));
    const e = { key: "w", tensor: { dtype: 99 as any, shape: [4], device: "cpu" }, data: Buffer.alloc(16, 1) };
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, itemStream(h, [e])));
    expectStatus(r, "INVALID_ARGUMENT", /dtype/i);
  });

  it("save - DTYPE_UNSPECIFIED is INVALID_ARGUMENT naming the dtype", async () => {
    const h = ref(uniqueName("dtype"));
    const e = { key: "w", tensor: { dtype: "DTYPE_UNSPECIFIED" as const, shape: [4], device: "cpu" }, data: Buffer.alloc(16, 1) };
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, itemStream(h, [e])));
    expectStatus(r, "INVALID_ARGUMENT", /dtype/i);
  });

  it("save - a negative dimension is INVALID_ARGUMENT naming the shape", async () => {
    const h = ref(uniqueName("shape"));
    const e = { key: "w", tensor: { dtype: "DTYPE_FLOAT32" as const, shape: [-4], device: "cpu" }, data: Buffer.alloc(16, 1) };
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, itemStream(h, [e])));
    expectStatus(r, "INVALID_ARGUMENT", /shape|dimension/i);
  });
});

describe("bad input - checksums and trailer counts", () => {
  it("save - a wrong chunk crc32c is INVALID_ARGUMENT naming the checksum, and the item can be saved again", async () => {
    const id = uniqueName("crc");
    const e = small();
    const data = e[0]!.data;
    const msgs = [headerMsg(ref(id)), entryMsg(e[0]!), { chunk: { data, crc32c: (crc32c(data) ^ 1) >>> 0 } }, trailerFor(e)];
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, msgs));
    expectStatus(r, "INVALID_ARGUMENT", /checksum|crc/i);
    // The rejected stream left nothing behind that blocks a correct retry.
    await saveItemOk(client, ref(id), e);
    expectOutcome(await commitRaw(client, { job: JOB, checkpointId: id, step: 10, rank: 0, worldSize: 1, items: ["model"] }), "COMMITTED");
    await expectLoadsBitExact(client, JOB, id, 0, { model: e });
  });

  it("save - a wrong trailer crc32c is INVALID_ARGUMENT naming the checksum", async () => {
    const e = small();
    const t = trailerFor(e).trailer!;
    const msgs = [
      headerMsg(ref(uniqueName("crc"))),
      ...entryMessages(e),
      trailerMsg(t.entryCount!, Number(t.byteCount), (t.crc32c! ^ 0x80) >>> 0),
    ];
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, msgs));
    expectStatus(r, "INVALID_ARGUMENT", /checksum|crc/i);
  });

  it("save - a wrong trailer entry count is INVALID_ARGUMENT naming the entries", async () => {
    const e = small();
    const t = trailerFor(e).trailer!;
    const msgs = [headerMsg(ref(uniqueName("count"))), ...entryMessages(e), trailerMsg(t.entryCount! + 1, Number(t.byteCount), t.crc32c!)];
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, msgs));
    expectStatus(r, "INVALID_ARGUMENT", /entr/i);
  });

  it("save - a wrong trailer byte count is INVALID_ARGUMENT naming the bytes", async () => {
    const e = small();
    const t = trailerFor(e).trailer!;
    const msgs = [headerMsg(ref(uniqueName("count"))), ...entryMessages(e), trailerMsg(t.entryCount!, Number(t.byteCount) + 4, t.crc32c!)];
    const r = await alongsideGoodCheckpoint(() => saveRaw(client, msgs));
    expectStatus(r, "INVALID_ARGUMENT", /byte/i);
  });
});

describe("bad input - items and checkpoint state", () => {
  it("save - the same item twice from one rank is ALREADY_EXISTS naming the item, and the first copy is kept", async () => {
    const id = uniqueName("dupitem");
    const first = [f32Entry("w", compressibleBytes(128 * 1024, 11))];
    const second = [f32Entry("w", compressibleBytes(128 * 1024, 12))];
    await saveItemOk(client, ref(id), first);
    const r = await alongsideGoodCheckpoint(() => saveItem(client, ref(id), second));
    expectStatus(r, "ALREADY_EXISTS", /item/i);
    expectOutcome(await commitRaw(client, { job: JOB, checkpointId: id, step: 10, rank: 0, worldSize: 1, items: ["model"] }), "COMMITTED");
    await expectLoadsBitExact(client, JOB, id, 0, { model: first });
  });

  it("save - into an already committed checkpoint is FAILED_PRECONDITION naming the commit, and its data is unchanged", async () => {
    const id = uniqueName("committed");
    const data = small();
    await saveAndCommit(client, JOB, id, 10, [{ model: data }]);
    const again = await alongsideGoodCheckpoint(() => saveItem(client, ref(id), small()));
    expectStatus(again, "FAILED_PRECONDITION", /committed/i);
    const extra = await saveItem(client, ref(id, 0, 1, "extra"), small());
    expectStatus(extra, "FAILED_PRECONDITION", /committed/i);
    await expectLoadsBitExact(client, JOB, id, 0, { model: data });
  });

  it("commit - naming an item the rank never saved aborts every rank with the item in the reason", async () => {
    const id = uniqueName("missingitem");
    await saveItemOk(client, ref(id, 0, 2), small());
    await saveItemOk(client, ref(id, 1, 2), small());
    const votes = await alongsideGoodCheckpoint(() =>
      Promise.all([
        commitRaw(client, { job: JOB, checkpointId: id, step: 10, rank: 0, worldSize: 2, items: ["model", "optim_never_saved"] }),
        commitRaw(client, { job: JOB, checkpointId: id, step: 10, rank: 1, worldSize: 2, items: ["model"] }),
      ]),
    );
    votes.forEach((v, rank) => {
      const res = expectOutcome(v, "ABORTED", `rank ${rank}`);
      expect(res.reason, `rank ${rank} reason`).toMatch(/optim_never_saved/);
    });
    expectStatus(await getCheckpoint(client, JOB, id), "NOT_FOUND");
  });

  it("save - a client that vanishes mid-stream harms nothing and the rank can save the item again", async () => {
    const id = uniqueName("vanish");
    const big = [f32Entry("layers.0.weight", compressibleBytes(8 * MiB, 21))];
    const other = [f32Entry("layers.0.weight", compressibleBytes(2 * MiB, 22))];
    await alongsideGoodCheckpoint(async () => {
      const rank1 = saveItemOk(client, ref(id, 1, 2), other);
      const s = openSave(client);
      const msgs = itemStream(ref(id, 0, 2), big, { chunkBytes: 1 * MiB });
      for (const m of msgs.slice(0, 5)) await s.write(m); // header, entry, 3 of 8 chunks
      await sleep(300);
      s.cancel();
      const r = await s.result;
      expectStatus(r, "CANCELLED");
      await rank1;
    });
    await sleep(200);
    expect(daemon.proc.exitCode, "daemon still running").toBeNull();
    const smallChunks = testClient(daemon.address, { chunkBytes: 1 * MiB });
    await saveItemOk(smallChunks, ref(id, 0, 2), big).finally(() => smallChunks.close());
    const votes = await Promise.all(
      [0, 1].map((rank) => commitRaw(client, { job: JOB, checkpointId: id, step: 10, rank, worldSize: 2, items: ["model"] })),
    );
    votes.forEach((v, rank) => expectOutcome(v, "COMMITTED", `rank ${rank}`));
    await expectLoadsBitExact(client, JOB, id, 0, { model: big });
    await expectLoadsBitExact(client, JOB, id, 1, { model: other });
  });
});

describe("bad input - unknown jobs and checkpoints", () => {
  it("get - an unknown job is NOT_FOUND", async () => {
    expectStatus(await getCheckpoint(client, "no-such-job", "c1"), "NOT_FOUND");
  });

  it("get - latest of an unknown job is NOT_FOUND", async () => {
    expectStatus(await getCheckpoint(client, "no-such-job", "latest"), "NOT_FOUND");
  });

  it("get - an unknown checkpoint of a known job is NOT_FOUND", async () => {
    expectStatus(await alongsideGoodCheckpoint(() => getCheckpoint(client, JOB, "no-such-checkpoint")), "NOT_FOUND");
  });

  it("load - an unknown job is NOT_FOUND", async () => {
    const r = await loadAll(client, { job: "no-such-job", checkpointId: "c1", rank: 0 });
    expectStatus(r, "NOT_FOUND");
    expect(r.entries, "no entries streamed").toEqual([]);
  });

  it("load - an unknown checkpoint of a known job is NOT_FOUND", async () => {
    const r = await alongsideGoodCheckpoint(() => loadAll(client, { job: JOB, checkpointId: "no-such-checkpoint", rank: 0 }));
    expectStatus(r, "NOT_FOUND");
    expect(r.entries, "no entries streamed").toEqual([]);
  });
});

describe("bad input - afterwards", () => {
  it("bad input - a checkpoint staged before all the bad input still commits and loads after it", async () => {
    await saveItemOk(client, { job: JOB, checkpointId: EARLY_ID, step: 1, rank: 1, worldSize: 2, item: "model" }, early[1]!.model!);
    const votes = await Promise.all(
      [0, 1].map((rank) => commitRaw(client, { job: JOB, checkpointId: EARLY_ID, step: 1, rank, worldSize: 2, items: ["model"] })),
    );
    votes.forEach((v, rank) => expectOutcome(v, "COMMITTED", `rank ${rank}`));
    await expectLoadsBitExact(client, JOB, EARLY_ID, 0, early[0]!);
    await expectLoadsBitExact(client, JOB, EARLY_ID, 1, early[1]!);
    expect(daemon.proc.exitCode, "daemon still running").toBeNull();
  });
});
