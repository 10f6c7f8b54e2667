/**
 * S3Storage against a real RGW: the same Storage contract PosixStorage and MemoryStorage meet
 * (test/unit/store/storage-contract.ts), each storage under a fresh prefix, and what is particular to
 * an object store: a manifest published once, the lease lock, a crash before publish, leftover uploads.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { describe, expect, it, vi } from "vitest";
import { layout } from "../../src/store/layout.js";
import { S3Storage, type S3StorageOptions } from "../../src/store/s3/storage.js";
import { ensureJob, type Storage } from "../../src/store/storage.js";
import { storageContract } from "../unit/store/storage-contract.js";
import { cleanedAfterAll } from "./cleanup.js";
import { freshPrefix, readRgwEnv, rgwDir, TEST_BUCKET, testStore } from "./rgw.js";

const keep = cleanedAfterAll();

function options(prefix: string): S3StorageOptions {
  const env = readRgwEnv();
  return {
    bucket: TEST_BUCKET,
    prefix,
    endpoint: env.endpoint,
    region: env.region,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
  };
}

function storage(name: string, prefix = freshPrefix(name), extra: Partial<S3StorageOptions> = {}): S3Storage {
  const s = new S3Storage({ ...options(prefix), ...extra });
  keep(s.store);
  return s;
}

storageContract("s3", {
  make: () => storage("contract"),
  holdElsewhere: (s) => {
    // Another daemon on the same bucket and prefix: its own lease holder.
    const other = storage("other", (s as S3Storage).options.prefix);
    other.lock();
    return () => other.unlock();
  },
  // As the item writer uploads a staged file.
  stage: async (s, key, data) => {
    const w = s.createObjectWriter(key);
    await w.write(data);
    await w.finish();
  },
});

describe("S3Storage on an object store", () => {
  it("s3 - publishing a checkpoint id twice publishes it once, whichever attempt comes second", async () => {
    const s = storage("publish-twice");
    await ensureJob(s, "j");
    for (const attempt of [1, 2]) {
      await s.createPrefix(layout.staging("j", "c", attempt));
      await s.store.put(`${layout.staging("j", "c", attempt)}/rank-00000/m/000000.lz4`, `data of ${attempt}`);
    }
    const keepM = new Set(["rank-00000/m"]);
    await s.publish({ job: "j", checkpointId: "c", attempt: 1, manifest: '{"attempt":1}', keep: keepM });
    await s.publish({ job: "j", checkpointId: "c", attempt: 2, manifest: '{"attempt":2}', keep: keepM });
    expect((await s.get(layout.manifest("j", "c")))?.toString()).toBe('{"attempt":1}');
    expect((await s.get(`${s.dataPrefix("j", "c", 1)}/rank-00000/m/000000.lz4`))?.toString()).toBe("data of 1");
    expect(await s.list(layout.checkpoint("j", "c")), "nothing is copied: the checkpoint prefix holds the manifest").toEqual([
      "manifest.json",
    ]);
    expect(await s.list(layout.stagingRoot("j")), "the published data stays staged; the other staging is left, as on POSIX").toEqual([
      "c@1",
      "c@2",
    ]);
    // The conditional put itself refuses a second manifest, whatever the caller checked before.
    expect(await s.store.putIfAbsent(layout.manifest("j", "c"), '{"attempt":3}')).toBe(false);
    expect((await s.get(layout.manifest("j", "c")))?.toString()).toBe('{"attempt":1}');
  });

  it("s3 - of two daemons taking the lock, one wins; the other is refused naming the holder's pid", () => {
    const prefix = freshPrefix("lock-race");
    const a = storage("a", prefix);
    const b = storage("b", prefix);
    a.lock();
    expect(() => b.lock()).toThrow(new RegExp(`already in use by ckptd \\(pid ${process.pid}\\)`));
    a.unlock();
    b.lock();
    expect(() => a.lock()).toThrow(/already in use by ckptd/);
    b.unlock();
  });

  it("s3 - two processes racing for the lease: exactly one gets it", async () => {
    const prefix = freshPrefix("lock-processes");
    const s = storage("race", prefix);
    const script = `
      const { S3Storage } = await import(${JSON.stringify(new URL("../../dist/src/store/s3/storage.js", import.meta.url).href)});
      const s = new S3Storage(JSON.parse(process.argv[1]));
      try { s.lock(); process.stdout.write("won"); await new Promise((r) => setTimeout(r, 3000)); s.unlock(); }
      catch (e) { process.stdout.write(/already in use/.test(e.message) ? "refused" : "error " + e.message); }
      s.close();`;
    const { spawn } = await import("node:child_process");
    const runs = [0, 1].map(
      () =>
        new Promise<string>((resolve) => {
          const child = spawn(process.execPath, ["--input-type=module", "-e", script, JSON.stringify(options(prefix))], {
            stdio: ["ignore", "pipe", "inherit"],
          });
          let out = "";
          child.stdout.on("data", (d: Buffer) => (out += d.toString()));
          child.on("close", () => resolve(out));
        }),
    );
    expect((await Promise.all(runs)).sort()).toEqual(["refused", "won"]);
    expect(await s.store.get(layout.lock()), "the winner released it").toBeUndefined();
  });

  it("s3 - a dead holder's lease is taken over: expired, or a pid gone on this host", async () => {
    const prefix = freshPrefix("lock-takeover");
    const s = storage("takeover", prefix);
    const env = { host: (await import("node:os")).hostname() };
    await s.store.put(layout.lock(), JSON.stringify({ owner: "gone", host: "elsewhere", boot: "x", pid: 1, expiresAt: Date.now() - 1 }));
    s.lock();
    expect(JSON.parse((await s.store.get(layout.lock()))!.toString())).toMatchObject({ pid: process.pid });
    s.unlock();
    // A live lease of a process that exited on this host since this boot.
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    const boot = (await import("node:fs")).readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    const lease = { owner: "dead", host: env.host, boot, pid: Number(dead.stdout), expiresAt: Date.now() + 60_000 };
    await s.store.put(layout.lock(), JSON.stringify(lease));
    s.lock();
    s.unlock();
    // A live holder elsewhere whose lease has not expired is not taken over.
    await s.store.put(layout.lock(), JSON.stringify({ ...lease, host: "elsewhere", pid: 4242 }));
    expect(() => s.lock()).toThrow(/already in use by ckptd \(pid 4242\)/);
  });

  it("s3 - the lease is renewed while held, and a renewal never overwrites a lease taken over", async () => {
    const prefix = freshPrefix("lock-renew");
    const s = storage("renew", prefix, { leaseMs: 600 });
    s.lock();
    const first = JSON.parse((await s.store.get(layout.lock()))!.toString()) as { expiresAt: number };
    await new Promise((r) => setTimeout(r, 700));
    const later = JSON.parse((await s.store.get(layout.lock()))!.toString()) as { expiresAt: number };
    expect(later.expiresAt).toBeGreaterThan(first.expiresAt);
    // Someone else's lease now (as if this daemon had stalled past expiry and been taken over).
    await s.store.put(layout.lock(), JSON.stringify({ owner: "thief", pid: 7, expiresAt: Date.now() + 60_000 }));
    await new Promise((r) => setTimeout(r, 700));
    expect(s.leaseLost).toBe(true);
    await expect(s.put(layout.retention("j"), "{}"), "a daemon taken over writes nothing").rejects.toThrow(/taken over by another ckptd/);
    await expect(s.publish({ job: "j", checkpointId: "c", attempt: 1, manifest: "{}", keep: new Set() })).rejects.toThrow(/taken over/);
    expect(await s.get(layout.retention("j"))).toBeUndefined();
    expect(JSON.parse((await s.store.get(layout.lock()))!.toString())).toMatchObject({ owner: "thief" });
    s.unlock(); // not its lease any more: left alone
    expect(JSON.parse((await s.store.get(layout.lock()))!.toString())).toMatchObject({ owner: "thief" });
  });

  it("s3 - a crash between staging and publish leaves no visible checkpoint; the retry publishes it whole", async () => {
    const prefix = freshPrefix("crash-publish");
    const s = storage("before", prefix);
    await ensureJob(s, "j");
    const staging = layout.staging("j", "c", 1);
    await s.createPrefix(staging);
    await s.store.put(`${staging}/rank-00000/m/000000.lz4`, "data");
    s.close();
    // The daemon died: a new one on the same prefix finds the staging and no checkpoint.
    const after = storage("after", prefix);
    expect(await after.list(layout.checkpoints("j"))).toEqual([]);
    expect(await after.get(layout.manifest("j", "c"))).toBeUndefined();
    expect(await after.list(layout.stagingRoot("j"))).toEqual(["c@1"]);
    await after.publish({ job: "j", checkpointId: "c", attempt: 1, manifest: "{}", keep: new Set(["rank-00000/m"]) });
    expect((await after.get(layout.manifest("j", "c")))?.toString()).toBe("{}");
    expect((await after.get(`${layout.staging("j", "c", 1)}/rank-00000/m/000000.lz4`))?.toString()).toBe("data");
    expect(after.dataPrefix("j", "c", 1)).toBe(staging);
  });

  it("s3 - recovery aborts the uploads a dead daemon left incomplete", async () => {
    const s = storage("recover");
    await ensureJob(s, "j");
    const key = `${layout.staging("j", "c", 1)}/rank-00000/m/000000.lz4`;
    // With room for one part only, each write waits for the part before it: the upload exists by now.
    const upload = s.store.createUpload(key, { partBytes: 5 * 1024 * 1024, budgetBytes: 5 * 1024 * 1024 });
    await upload.write(Buffer.alloc(11 * 1024 * 1024, 1));
    // The daemon dies here: the part is stored, the upload neither completed nor aborted.
    expect((await s.store.listIncompleteUploads("")).map((u) => u.key)).toEqual([key]);
    expect(await s.stat(key), "an incomplete upload is no object").toBeUndefined();
    expect(await s.recover()).toBe(1);
    expect(await s.store.listIncompleteUploads("")).toEqual([]);
  });

  it("s3 - a log is one object per record, read back in order; list shows the log, not its records", async () => {
    const s = storage("log");
    await ensureJob(s, "j");
    let end = 0;
    for (const line of ["a\n", "bb\n", "ccc\n"]) end = await s.append(layout.events("j"), Buffer.from(line), end);
    expect((await s.store.list(`${layout.events("j")}.records/`)).objects.map((o) => o.key.split("/").pop())).toEqual([
      "0000000000000000",
      "0000000000000002",
      "0000000000000005",
    ]);
    expect(await s.stat(layout.events("j"))).toEqual({ kind: "object", size: 9 });
    expect((await s.getRange(layout.events("j"), 2, 4))?.toString()).toBe("bb\nc");
    expect(await s.list(layout.job("j"))).toContain("events.log");
    expect(await s.list(layout.job("j"))).not.toContain("events.log.records");
    // A cut inside a record rewrites it shorter.
    await s.truncate(layout.events("j"), 3);
    expect((await s.get(layout.events("j")))?.toString()).toBe("a\nb");
    await s.delete(layout.events("j"));
    expect(await s.get(layout.events("j"))).toBeUndefined();
  });

  it("s3 - an append where this storage's last append ended lists nothing; after a failed one it lists again", async () => {
    const s = storage("log-end");
    await ensureJob(s, "j");
    const list = vi.spyOn(s.store, "list");
    let end = await s.append(layout.events("j"), Buffer.from("one\n"), 0);
    expect(list).toHaveBeenCalledTimes(1);
    end = await s.append(layout.events("j"), Buffer.from("two\n"), end);
    expect(list, "the end is known").toHaveBeenCalledTimes(1);
    await expect(
      s.append(layout.events("j"), Buffer.from("three\n"), end, () => {
        throw new Error("injected");
      }),
    ).rejects.toThrow("injected");
    await s.append(layout.events("j"), Buffer.from("four\n"), end);
    expect(list, "after a failure the records are listed again").toHaveBeenCalledTimes(2);
    expect((await s.get(layout.events("j")))?.toString()).toBe("one\ntwo\nfour\n");
  });

  it("s3 - a follower reads a log another daemon appends to: only the new records are listed and fetched; a cut is noticed", async () => {
    const writer = storage("log-follow");
    const reader = storage("log-follow-reader", writer.options.prefix);
    await ensureJob(writer, "j");
    const key = layout.events("j");
    let end = 0;
    for (let i = 0; i < 20; i++) end = await writer.append(key, Buffer.from(`record ${i}\n`), end);
    expect((await reader.get(key))?.toString().split("\n")).toHaveLength(21);
    const list = vi.spyOn(reader.store, "list");
    const get = vi.spyOn(reader.store, "get");
    end = await writer.append(key, Buffer.from("record 20\n"), end);
    // What a follower does on each look: the size, then the bytes past what it has read.
    const before = end - "record 20\n".length;
    expect(await reader.stat(key)).toEqual({ kind: "object", size: end });
    expect((await reader.getRange(key, before, end - before))?.toString()).toBe("record 20\n");
    expect(get, "one GET: the new record (no GET of the log key, of the 20 known records)").toHaveBeenCalledTimes(1);
    for (const call of list.mock.calls) expect(call[1]?.startAfter, "listed after the last known record").toMatch(/\.records\//);
    // Another writer cuts the log back (a failed append's tail) and appends again: the reader notices.
    await writer.truncate(key, before);
    end = await writer.append(key, Buffer.from("other 20\n"), before);
    end = await writer.append(key, Buffer.from("record 21\n"), end);
    expect((await reader.get(key))?.toString()).toBe((await writer.get(key))?.toString());
    expect((await reader.get(key))?.toString().endsWith("other 20\nrecord 21\n")).toBe(true);
  });

  it("s3 - an object larger than a copy part is copied in parts (as above CopyObject's 5 GiB)", async () => {
    const s = storage("copy-parts");
    const body = Buffer.alloc(12 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4) body.writeUInt32LE(i, i);
    await s.store.put("big", body);
    await s.store.copy("big", "copied", { partBytes: 5 * 1024 * 1024 });
    expect((await s.store.get("copied"))?.equals(body)).toBe(true);
    expect((await s.store.head("copied"))?.etag, "a multipart object of 3 parts").toMatch(/-3$/);
    expect(await s.store.listIncompleteUploads("")).toEqual([]);
  });

  it("s3 - a used-up bucket quota is RESOURCE_EXHAUSTED with EDQUOT, as a full disk's quota (not access denied)", async () => {
    const bucket = "ckptd-test-quota";
    const s = storage("quota", freshPrefix("quota"), { bucket });
    await s.store.client.send(new CreateBucketCommand({ Bucket: bucket })).catch((err: Error) => {
      if (!["BucketAlreadyOwnedByYou", "BucketAlreadyExists"].includes(err.name)) throw err;
    });
    await keep(testStore("", { bucket })).deletePrefix(""); // what an earlier run left
    for (const args of [
      ["quota", "set", "--quota-scope=bucket", `--bucket=${bucket}`, "--max-objects=2"],
      ["quota", "enable", "--quota-scope=bucket", `--bucket=${bucket}`],
    ]) {
      const run = spawnSync("radosgw-admin", ["-c", join(rgwDir(), "ceph.conf"), "-n", "client.admin", ...args], {
        encoding: "utf8",
        timeout: 60_000,
      });
      expect(run.status, run.stderr).toBe(0);
    }
    await s.put("a", "1");
    await s.put("b", "2");
    await expect(s.put("c", "3")).rejects.toMatchObject({ kind: "resource_exhausted", code: "EDQUOT", message: /quota/ });
  });

  it("s3 - no local files: a data object larger than a part is a multipart upload; an aborted one leaves no upload", async () => {
    const s = storage("objects");
    expect((s as Storage).localPath, "the item writer and loader take the object path").toBeUndefined();
    const key = `${layout.staging("j", "c", 1)}/rank-00000/m/000000.lz4`;
    const body = Buffer.alloc(11 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4) body.writeUInt32LE(i, i);
    const w = s.createObjectWriter(key, { sizeHint: body.length });
    for (let at = 0; at < body.length; at += 1 << 20) await w.write(body.subarray(at, at + (1 << 20)));
    await w.finish();
    expect((await s.store.head(key))?.etag, "a multipart object of 2 parts").toMatch(/-2$/);
    expect((await s.getRange(key, 9 << 20, 4))?.readUInt32LE(0)).toBe(9 << 20);
    const a = s.createObjectWriter(`${key}.aborted`);
    await a.write(body);
    await a.abort();
    expect(await s.stat(`${key}.aborted`)).toBeUndefined();
    expect(await s.store.listIncompleteUploads("")).toEqual([]);
  });

  it("s3 - move copies then deletes; moving nothing is ENOENT", async () => {
    const s = storage("move");
    await ensureJob(s, "j");
    await s.put(layout.manifest("j", "c"), "{}");
    await s.store.put(`${layout.checkpoint("j", "c")}/rank-00000/m/000000.lz4`, "x");
    await s.move(layout.checkpoint("j", "c"), layout.trashEntry("j", "c", 1));
    expect(await s.list(layout.checkpoints("j"))).toEqual([]);
    expect((await s.list(layout.trashEntry("j", "c", 1))).sort()).toEqual(["manifest.json", "rank-00000"]);
    await expect(s.move(layout.checkpoint("j", "c"), layout.trashEntry("j", "c", 2))).rejects.toMatchObject({ code: "ENOENT" });
    // A single object, and a log (its records), move too; a sibling sharing the name's start does not.
    await s.put(layout.retention("j"), "r");
    await s.put(`${layout.retention("j")}x`, "sibling");
    await s.move(layout.retention("j"), "moved/retention.json");
    expect((await s.get("moved/retention.json"))?.toString()).toBe("r");
    expect((await s.get(`${layout.retention("j")}x`))?.toString()).toBe("sibling");
    expect(await s.get(layout.retention("j"))).toBeUndefined();
    await s.append(layout.events("j"), Buffer.from("e\n"), 0);
    await s.move(layout.events("j"), "moved/events.log");
    expect((await s.get("moved/events.log"))?.toString()).toBe("e\n");
    expect(await s.stat(layout.events("j"))).toBeUndefined();
  });
});
