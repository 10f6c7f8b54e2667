/**
 * State dicts of hundreds of small tensors: small entries share the item's pack file
 * (offsets in the manifest, one fsync) and may travel whole in EntryBatch messages; both
 * keep every invariant of entries stored on their own (checksums verified on load,
 * DATA_LOSS naming the entry, lz4 -dc readable, bad input rejected).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { crc32c } from "@node-rs/crc32";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SaveRequestIn } from "../../wire/gen/ckptd/v1/SaveRequest.js";
import { type Daemon, startDaemon } from "./harness.js";
import { CkptdClient } from "../../clients/ts/src/index.js";
import {
  MiB,
  compressibleBytes,
  entryFile,
  expectLoadsBitExact,
  expectStatus,
  f32Entry,
  incompressibleBytes,
  manifestEntry,
  readManifest,
  saveAndCommit,
  type TestEntry,
  tensorEntry,
  uniqueName,
  testClient,
} from "./wire-helpers.js";
import { commitRaw, entryMsg, expectOutcome, headerMsg, loadAll, saveRaw, trailerFor } from "./raw-wire.js";

const JOB = "small-entries";
const LZ4 = "/usr/bin/lz4";

let daemon: Daemon;
let client: CkptdClient;

beforeAll(async () => {
  daemon = await startDaemon();
  client = testClient(daemon.address);
});

afterAll(async () => {
  client?.close();
  await daemon?.stop();
});

/** A transformer-like item: per layer layer-norm weights and biases, a step, and one large weight. */
function stateDict(layers: number): TestEntry[] {
  const out: TestEntry[] = [];
  for (let i = 0; i < layers; i++) {
    out.push(f32Entry(`h.${i}.ln.weight`, compressibleBytes(768 * 4, i + 1)));
    out.push(f32Entry(`h.${i}.ln.bias`, incompressibleBytes(768 * 4)));
    out.push(tensorEntry(`h.${i}.step`, "DTYPE_FLOAT32", [], Buffer.from(new Float32Array([1000 + i]).buffer)));
  }
  out.push(f32Entry("wte.weight", incompressibleBytes(2 * MiB)));
  out.push(f32Entry("empty", Buffer.alloc(0)));
  return out;
}

/** A Save stream that sends `entries` as EntryBatch messages of `perBatch` entries each. */
function batchedStream(checkpointId: string, entries: TestEntry[], perBatch: number, withCrc: boolean): SaveRequestIn[] {
  const msgs: SaveRequestIn[] = [headerMsg({ job: JOB, checkpointId, step: 1, rank: 0, worldSize: 1, item: "model" })];
  for (let i = 0; i < entries.length; i += perBatch)
    msgs.push({
      entryBatch: {
        entries: entries.slice(i, i + perBatch).map((e) => ({
          header: entryMsg(e).entry!,
          data: e.data,
          ...(withCrc ? { crc32c: crc32c(e.data) } : {}),
        })),
      },
    });
  msgs.push(trailerFor(entries));
  return msgs;
}

async function commit(checkpointId: string): Promise<void> {
  expectOutcome(await commitRaw(client, { job: JOB, checkpointId, step: 1, rank: 0, worldSize: 1, items: ["model"] }), "COMMITTED");
}

describe("small entries", () => {
  it("save - hundreds of small tensors share one pack file, decode with lz4 -dc, and load bit-exact", async () => {
    const id = uniqueName("packed");
    const entries = stateDict(100);
    await saveAndCommit(client, JOB, id, 1, [{ model: entries }]);
    const itemDir = path.dirname(entryFile(daemon.dataDir, JOB, id, 0, "model", 0));
    const files = fs.readdirSync(itemDir).sort();
    // 301 small entries and an empty one in the pack; the 2 MiB weight in a file of its own.
    expect(files).toEqual([`${String(entries.length - 2).padStart(6, "0")}.lz4`, "pack.lz4"]);
    const m = readManifest(daemon.dataDir, JOB, id);
    const small = entries.filter((e) => e.data.length <= MiB);
    let at = 0;
    for (const e of small) {
      const me = manifestEntry(m, 0, "model", e.key);
      expect(me.file, e.key).toBe("pack.lz4");
      expect(me.chunks[0]?.offset ?? at, `${e.key} starts where the previous packed entry ended`).toBe(at);
      at += me.storedBytes;
    }
    expect(fs.statSync(path.join(itemDir, "pack.lz4")).size).toBe(at);
    if (fs.existsSync(LZ4)) {
      const raw = execFileSync(LZ4, ["-dc", path.join(itemDir, "pack.lz4")], { maxBuffer: 64 * MiB });
      expect(raw.equals(Buffer.concat(small.map((e) => e.data))), "lz4 -dc pack.lz4 is the packed entries' bytes in order").toBe(true);
    }
    await expectLoadsBitExact(client, JOB, id, 0, { model: entries });
  });

  it("save - entry_batch messages (with and without per-entry CRCs) stage exactly what entry and chunk messages do", async () => {
    const entries = stateDict(40);
    for (const withCrc of [true, false]) {
      const id = uniqueName(`batched-${withCrc}`);
      const r = await saveRaw(client, batchedStream(id, entries, 7, withCrc));
      expect(r.error?.details).toBeUndefined();
      expect(r.response!.entryCount).toBe(entries.length);
      expect(r.response!.bytesReceived).toBe(entries.reduce((n, e) => n + e.data.length, 0));
      await commit(id);
      await expectLoadsBitExact(client, JOB, id, 0, { model: entries });
    }
  });

  it("save - a bad entry in an entry_batch is INVALID_ARGUMENT naming it, and nothing is staged", async () => {
    const entries = stateDict(3);
    const cases: [string, (msgs: SaveRequestIn[]) => void, RegExp][] = [
      ["no-header", (msgs) => delete msgs[1]!.entryBatch!.entries![2]!.header, /no header/],
      [
        "short",
        (msgs) => Object.assign(msgs[1]!.entryBatch!.entries![0]!, { data: Buffer.alloc(8), crc32c: undefined }),
        /h\.0\.ln\.weight.*ended after 8 bytes/,
      ],
      ["crc", (msgs) => (msgs[1]!.entryBatch!.entries![1]!.crc32c = 12345), /h\.0\.ln\.bias.*checksum/],
      // Without a CRC of its own, a batched entry's bytes are still covered by the trailer's.
      [
        "trailer",
        (msgs) => Object.assign(msgs[1]!.entryBatch!.entries![1]!, { data: incompressibleBytes(768 * 4), crc32c: undefined }),
        /trailer/,
      ],
    ];
    for (const [name, damage, message] of cases) {
      const id = uniqueName(`bad-${name}`);
      const msgs = batchedStream(id, entries, 100, true);
      damage(msgs);
      const r = await saveRaw(client, msgs);
      expectStatus(r, "INVALID_ARGUMENT", message);
      const v = await commitRaw(client, { job: JOB, checkpointId: id, step: 1, rank: 0, worldSize: 1, items: ["model"] });
      expectOutcome(v, "ABORTED", `${name}: a vote for the rejected item`);
    }
  });

  it("load - a flipped byte in a packed entry is DATA_LOSS naming the entry; the entries before it arrive intact", async () => {
    const id = uniqueName("packed-corrupt");
    const entries = stateDict(10);
    await saveAndCommit(client, JOB, id, 1, [{ model: entries }]);
    const m = readManifest(daemon.dataDir, JOB, id);
    const victim = manifestEntry(m, 0, "model", "h.4.ln.bias");
    const c = victim.chunks[0]!;
    const file = path.join(path.dirname(entryFile(daemon.dataDir, JOB, id, 0, "model", 0)), victim.file);
    const fd = fs.openSync(file, "r+");
    const b = Buffer.alloc(1);
    const pos = c.offset + Math.floor(c.storedBytes / 2);
    fs.readSync(fd, b, 0, 1, pos);
    b[0] = b[0]! ^ 0x5a;
    fs.writeSync(fd, b, 0, 1, pos);
    fs.closeSync(fd);

    const r = await loadAll(client, { job: JOB, checkpointId: id, rank: 0 });
    expectStatus(r, "DATA_LOSS", /h\.4\.ln\.bias/);
    expect(r.error!.details).toMatch(/pack\.lz4/);
    const before = r.entries.find((x) => x.entry.key === "h.4.ln.weight");
    expect(before?.data.equals(entries.find((e) => e.key === "h.4.ln.weight")!.data), "the packed entry before it").toBe(true);
  });
});
