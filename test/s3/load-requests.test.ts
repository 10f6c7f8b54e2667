/**
 * Loads from an object store, request by request: a checkpoint saved by a real daemon with --storage
 * s3:// is loaded by a CheckpointLoader in this process on an S3Storage whose client counts every
 * request it sends. A load asks for no HeadObject, reads an entry object of several chunks with fewer
 * ranged GETs than it has chunks, and reads the item's pack object with one; bit-exact. Through the
 * daemon, a data object deleted after the commit is DATA_LOSS naming its item and key, and one byte
 * flipped in the second chunk of a run read with one GET is DATA_LOSS naming that chunk.
 */
import { randomFillSync } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CkptdClient, CkptdError, type SaveEntry } from "../../clients/ts/src/index.js";
import { Catalog } from "../../src/catalog/catalog.js";
import { CheckpointLoader } from "../../src/load/loader.js";
import { itemDirName, PACK_FILE_NAME } from "../../src/store/layout.js";
import { S3Storage } from "../../src/store/s3/storage.js";
import { loadAll } from "../unit/load/load-helpers.js";
import { onFreshPrefix } from "./daemon-helpers.js";
import { readRgwEnv, TEST_BUCKET } from "./rgw.js";

const MiB = 1024 * 1024;
const JOB = "reqs";
const random = (n: number) => randomFillSync(Buffer.alloc(n));
const { node, store } = onFreshPrefix("load-requests");

/** One rank's state: an entry of 9 MiB (three chunks in an object of its own) and small ones packed together. */
const data = new Map<string, Buffer>([
  ["big", random(9 * MiB)],
  ...Array.from({ length: 12 }, (_, i) => [`small.${i}`, random(8 << 10)] as const),
]);
const entries: SaveEntry[] = [...data].map(([key, bytes]) => ({ key, object: { data: bytes } }));

/** A request the in-process loader's client sent: its command, key (relative to the bucket) and range. */
interface Sent {
  command: string;
  key: string;
  range: string | undefined;
}

let storage: S3Storage;
const sent: Sent[] = [];

beforeAll(async () => {
  const client = await node.start();
  for (const id of ["counted", "deleted", "flipped"]) {
    const { attempt } = await client.save({ job: JOB, checkpointId: id, step: 1, rank: 0, worldSize: 1, item: "model", entries });
    const vote = await client.commit({ job: JOB, checkpointId: id, step: 1, rank: 0, worldSize: 1, items: ["model"], attempt });
    expect(vote.outcome, vote.reason).toBe("COMMITTED");
  }
  const env = readRgwEnv();
  storage = new S3Storage({
    bucket: TEST_BUCKET,
    prefix: node.prefix,
    endpoint: env.endpoint,
    region: env.region,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
  });
  storage.store.client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { Key?: string; Range?: string };
      sent.push({ command: context.commandName ?? "?", key: input.Key ?? "", range: input.Range });
      return next(args);
    },
    { step: "initialize", name: "countRequests" },
  );
}, 120_000);

afterAll(() => storage?.store.close());

/** The manifest's record of the saved item, and the key of each of its data objects. */
async function savedItem(catalog: Catalog, id: string) {
  const manifest = await catalog.readManifest(catalog.get(JOB, id));
  const item = manifest.ranks[0]!.items.find((i) => i.name === "model")!;
  const object = (file: string) => `${storage.dataPrefix(JOB, id, manifest.attempt)}/${itemDirName(0, "model")}/${file}`;
  return { manifest, item, object };
}

/** Loads rank 0's whole state of `id` through the daemon (on the Load stream, or through shared memory); the error it fails with, or undefined. */
async function loadError(id: string, sharedMemory = false): Promise<CkptdError | undefined> {
  const c = new CkptdClient({ address: node.daemon!.address, sharedMemory });
  return c
    .loadItems({ job: JOB, checkpointId: id, rank: 0, localRank: 0, devices: [] })
    .then(
      () => undefined,
      (e: unknown) => {
        expect(e).toBeInstanceOf(CkptdError);
        return e as CkptdError;
      },
    )
    .finally(() => c.close());
}

describe("loads from an object store", () => {
  it("s3 load requests - no HeadObject; an entry object of three chunks in fewer GETs than chunks, the pack in one; bit-exact", async () => {
    const catalog = new Catalog(storage);
    await catalog.load({ quarantine: false });
    const { item, object } = await savedItem(catalog, "counted");
    const big = item.entries.find((e) => e.key === "big")!;
    expect(big.chunks.length, "the big entry is stored in several chunks").toBe(3);
    expect(big.file).not.toBe(PACK_FILE_NAME);
    const loader = new CheckpointLoader(storage, catalog);
    sent.length = 0;
    const loaded = await loadAll(loader, JOB, "counted");
    expect([...loaded.keys()]).toEqual([...data.keys()]);
    for (const [k, bytes] of data) expect(loaded.get(k)!.equals(bytes), k).toBe(true);

    const commands = sent.map((s) => s.command);
    expect(
      commands.filter((c) => c !== "GetObjectCommand"),
      "a load sends nothing but ranged GETs",
    ).toEqual([]);
    const fullKey = (file: string) => storage.store.fullKey(object(file));
    const bigGets = sent.filter((s) => s.key === fullKey(big.file));
    expect(bigGets.length).toBeGreaterThan(0);
    expect(bigGets.length, `GETs of the big entry's object: ${bigGets.map((g) => g.range).join(", ")}`).toBeLessThan(big.chunks.length);
    // The GETs ask for exactly the entry's stored bytes, each once.
    const asked = bigGets.map(
      (g) =>
        /^bytes=(\d+)-(\d+)$/
          .exec(g.range ?? "")!
          .slice(1)
          .map(Number) as [number, number],
    );
    asked.sort((a, b) => a[0] - b[0]);
    const last = big.chunks[big.chunks.length - 1]!;
    expect(asked[0]![0]).toBe(big.chunks[0]!.offset);
    for (let i = 1; i < asked.length; i++) expect(asked[i]![0]).toBe(asked[i - 1]![1] + 1);
    expect(asked[asked.length - 1]![1]).toBe(last.offset + last.storedBytes - 1);
    expect(sent.filter((s) => s.key === fullKey(PACK_FILE_NAME)).length, "the packed entries are read with one GET").toBe(1);
  });

  it("s3 load requests - a data object deleted after the commit is DATA_LOSS naming its item and key", async () => {
    const catalog = new Catalog(storage);
    await catalog.load({ quarantine: false });
    const { item, object } = await savedItem(catalog, "deleted");
    const big = item.entries.find((e) => e.key === "big")!;
    await store.delete(object(big.file));
    const err = await loadError("deleted");
    expect(err?.codeName, String(err)).toBe("DATA_LOSS");
    expect(err?.message).toMatch(new RegExp(`item 'model' key 'big': stored file ${big.file} is missing`));
  });

  it("s3 load requests - a byte flipped in the second chunk of a run read with one GET is DATA_LOSS naming that chunk", async () => {
    const catalog = new Catalog(storage);
    await catalog.load({ quarantine: false });
    const { item, object } = await savedItem(catalog, "flipped");
    const big = item.entries.find((e) => e.key === "big")!;
    const bytes = (await store.get(object(big.file)))!;
    const at = big.chunks[1]!.offset + 1000;
    bytes[at] = bytes[at]! ^ 0xff;
    await store.put(object(big.file), bytes);
    // Through shared memory too, where the corrupt chunk comes right after the chunk before it went
    // out (one GET): the client must get the status, not wait for it forever. Several times, as
    // the timing of the two varies.
    for (const sharedMemory of [false, true, true, true, true]) {
      const err = await Promise.race([
        loadError("flipped", sharedMemory),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the load got no status within 15 s")), 15_000)),
      ]);
      expect(err?.codeName, String(err)).toBe("DATA_LOSS");
      expect(err?.message).toMatch(
        new RegExp(
          `checkpoint 'flipped' rank 0 item 'model' key 'big' chunk 1 \\(file ${big.file}, offset ${big.chunks[1]!.offset}\\) is corrupt`,
        ),
      );
    }
  });
});
