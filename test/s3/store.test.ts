/**
 * S3Store against a real RGW: single-object operations, listing, deletion, create-only puts, and the
 * errors a misconfigured or unreachable store gives.
 */
import { createHash, randomBytes } from "node:crypto";
import { createServer, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { CkptdError } from "../../src/common/errors.js";
import { cleanedAfterAll } from "./cleanup.js";
import { freshPrefix, readRgwEnv, testStore } from "./rgw.js";

const keep = cleanedAfterAll();
const store = (name: string, opts?: Parameters<typeof testStore>[1]) => keep(testStore(freshPrefix(name), opts));

/** Runs `fn` over `items` with at most `limit` at once. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

async function rejection(p: Promise<unknown>): Promise<CkptdError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CkptdError);
  return err as CkptdError;
}

describe("S3Store objects", () => {
  it("put, get, head and delete round-trip bytes; a missing key is undefined, not an error", async () => {
    const s = store("objects");
    const body = randomBytes(100_000);
    const { etag } = await s.put("a/b.bin", body);
    // A single PUT's ETag is the MD5 of its bytes, returned without quotes (the form If-Match wants on RGW).
    expect(etag).toBe(createHash("md5").update(body).digest("hex"));
    expect((await s.get("a/b.bin"))!.equals(body)).toBe(true);
    expect(await s.head("a/b.bin")).toEqual({ size: body.length, etag });
    expect(await s.get("a/missing")).toBeUndefined();
    expect(await s.head("a/missing")).toBeUndefined();
    await s.put("empty", Buffer.alloc(0));
    expect((await s.get("empty"))!.length).toBe(0);
    await s.delete("a/b.bin");
    expect(await s.get("a/b.bin")).toBeUndefined();
    await s.delete("a/b.bin"); // deleting a missing key is fine
    // Keys are under the store's prefix: another prefix does not see them.
    const other = store("objects-other");
    expect(await other.get("empty")).toBeUndefined();
  });

  it("getRange reads a byte range, into the caller's buffer when given; short at the end, empty past it", async () => {
    const s = store("range");
    const body = randomBytes(3 * 1024 * 1024 + 17);
    await s.put("blob", body);
    const r = await s.getRange("blob", 1_000_003, 2_000_000);
    expect(r!.equals(body.subarray(1_000_003, 3_000_003))).toBe(true);
    const into = Buffer.alloc(4096);
    const view = await s.getRange("blob", 4095, 4096, into);
    expect(view!.buffer).toBe(into.buffer);
    expect(view!.equals(body.subarray(4095, 8191))).toBe(true);
    const tail = await s.getRange("blob", body.length - 10, 100);
    expect(tail!.equals(body.subarray(body.length - 10))).toBe(true);
    expect((await s.getRange("blob", body.length + 5, 10))!.length).toBe(0);
    expect(await s.getRange("nothing", 0, 10)).toBeUndefined();
  });

  it("list pages through a prefix, one level (with a delimiter) or recursively", async () => {
    const s = store("list");
    const files = Array.from({ length: 23 }, (_, i) => `d/f${String(i).padStart(3, "0")}`);
    const nested = ["d/sub1/x", "d/sub1/y/z", "d/sub2/x", "e/outside"];
    await pool([...files, ...nested], 16, (k) => s.put(k, k));
    let pages = 0;
    for await (const page of s.listPages("d/", { delimiter: "/", pageSize: 5 })) {
      pages++;
      expect(page.objects.length + page.prefixes.length).toBeLessThanOrEqual(5);
    }
    expect(pages).toBeGreaterThan(4);
    const level = await s.list("d/", { delimiter: "/", pageSize: 5 });
    expect(level.objects.map((o) => o.key)).toEqual(files);
    expect(level.prefixes).toEqual(["d/sub1/", "d/sub2/"]);
    expect(level.objects[0]!.size).toBe(files[0]!.length);
    const all = await s.list("d/", { pageSize: 7 });
    expect(all.prefixes).toEqual([]);
    expect(all.objects.map((o) => o.key).sort()).toEqual([...files, ...nested.slice(0, 3)].sort());
  });

  it("deletePrefix removes more than 1000 objects (batches of at most 1000) and nothing outside the prefix", async () => {
    const s = store("delete-prefix");
    const keys = Array.from({ length: 1100 }, (_, i) => `many/k${i}`);
    await pool(keys, 32, (k) => s.put(k, "x"));
    await s.put("keep/this", "y");
    const listed = await s.list("many/");
    expect(listed.objects.length).toBe(1100);
    expect(await s.deletePrefix("many/")).toBe(1100);
    expect((await s.list("many/")).objects).toEqual([]);
    expect((await s.get("keep/this"))!.toString()).toBe("y");
  });

  it("putIfAbsent: of 8 concurrent writers of one key exactly one creates it, and its bytes are what is stored", async () => {
    const s = store("if-absent");
    for (let round = 0; round < 5; round++) {
      const key = `decision-${round}`;
      const bodies = Array.from({ length: 8 }, (_, i) => Buffer.from(`writer ${i} of round ${round} ${randomBytes(8).toString("hex")}`));
      const won = await Promise.all(bodies.map((b) => s.putIfAbsent(key, b)));
      expect(won.filter(Boolean).length).toBe(1);
      const winner = bodies[won.indexOf(true)]!;
      expect((await s.get(key))!.equals(winner)).toBe(true);
      // Later writers, even with the winner's bytes, find it taken.
      expect(await s.putIfAbsent(key, Buffer.from("late"))).toBe(false);
    }
  });
});

describe("S3Store errors", () => {
  it("an endpoint that refuses connections is UNAVAILABLE, naming the endpoint and bucket, within the retry bound", async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer();
      srv.listen(0, "127.0.0.1", () => {
        const { port } = srv.address() as { port: number };
        srv.close(() => resolve(port));
      });
    });
    const s = testStore("nowhere", { endpoint: `http://127.0.0.1:${port}`, retry: { attempts: 5, baseDelayMs: 50, totalMs: 2_000 } });
    const t0 = Date.now();
    const err = await rejection(s.put("k", "v"));
    const elapsed = Date.now() - t0;
    expect(err.kind).toBe("unavailable");
    expect(err.message).toContain(`http://127.0.0.1:${port}`);
    expect(err.message).toContain("ckptd-test");
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(elapsed).toBeLessThan(5_000);
    s.close();
  });

  it("an endpoint that accepts connections and never answers is UNAVAILABLE after the idle timeout and retries", async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((sock) => {
      sockets.add(sock);
      sock.on("close", () => sockets.delete(sock));
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as { port: number };
    const s = testStore("silent", {
      endpoint: `http://127.0.0.1:${port}`,
      idleTimeoutMs: 300,
      retry: { attempts: 3, baseDelayMs: 20, totalMs: 5_000 },
    });
    try {
      const t0 = Date.now();
      const err = await rejection(s.get("k"));
      expect(err.kind).toBe("unavailable");
      expect(err.message).toContain(`http://127.0.0.1:${port}`);
      // Three attempts of 300 ms idle each, plus short backoffs.
      expect(Date.now() - t0).toBeGreaterThanOrEqual(850);
      expect(Date.now() - t0).toBeLessThan(5_000);
    } finally {
      s.close();
      for (const sock of sockets) sock.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it("a missing bucket is FAILED_PRECONDITION naming the bucket; wrong credentials are PERMISSION_DENIED", async () => {
    const bucket = `ckptd-missing-${randomBytes(4).toString("hex")}`;
    const missing = testStore("p", { bucket });
    try {
      const err = await rejection(missing.put("k", "v"));
      expect(err.kind).toBe("failed_precondition");
      expect(err.message).toContain(`"${bucket}" does not exist`);
      expect((await rejection(missing.list(""))).kind).toBe("failed_precondition");
    } finally {
      missing.close();
    }
    const env = readRgwEnv();
    const denied = testStore("p", { credentials: { accessKeyId: env.accessKeyId, secretAccessKey: "wrong" + env.secretAccessKey } });
    try {
      const err = await rejection(denied.get("k"));
      expect(err.kind).toBe("permission_denied");
      expect(err.message).toMatch(/access denied to s3:\/\/ckptd-test\/p at http/);
    } finally {
      denied.close();
    }
  });
});
