/**
 * The shared-memory data path (SaveShared, SharedChunk): a local client puts chunk bytes
 * in a file of the daemon's --shared-memory-dir and sends only where they are. The daemon
 * must store exactly what Save would, release slots as it copies them out, and refuse any
 * file it must not read, with a status the client can fall back on.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { crc32c } from "@node-rs/crc32";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SaveRequestIn } from "../../wire/gen/ckptd/v1/SaveRequest.js";
import { type Daemon, metricsAddress, scrape, startDaemon } from "./harness.js";
import { CkptdClient } from "../../clients/ts/src/index.js";
import {
  MiB,
  compressibleBytes,
  entryFile,
  expectLoadsBitExact,
  expectStatus,
  f32Entry,
  incompressibleBytes,
  type TestEntry,
  testClient,
} from "./wire-helpers.js";
import { chunkMsg, commitRaw, entryMsg, expectOutcome, headerMsg, saveRaw, split, trailerFor, saveShared } from "./raw-wire.js";

const JOB = "shm-job";
let shmDir: string;
let daemon: Daemon;
let client: CkptdClient;

beforeAll(async () => {
  shmDir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-shm-"));
  daemon = await startDaemon({
    args: ["--shared-memory-dir", shmDir, "--prepare-timeout-ms", "600000", "--metrics-listen", "127.0.0.1:0"],
  });
  client = testClient(daemon.address);
});

afterAll(async () => {
  client?.close();
  await daemon?.stop();
  fs.rmSync(shmDir, { recursive: true, force: true });
});

/**
 * A ring file holding `entries` back to back (chunk-sized slices), and the messages that
 * send every chunk as a SharedChunk, except where `inline(i)` says to send chunk i on the
 * stream.
 */
function sharedStream(
  name: string,
  header: { checkpointId: string; step: number; rank: number; worldSize: number; item: string },
  entries: TestEntry[],
  inline: (i: number) => boolean = () => false,
  options: { sharedCrc?: boolean } = {},
): { file: string; messages: SaveRequestIn[]; sharedBytes: number; inlineTrailer: SaveRequestIn } {
  const file = path.join(shmDir, name);
  const fd = fs.openSync(file, "w", 0o600);
  const messages: SaveRequestIn[] = [headerMsg({ job: JOB, ...header, sharedMemoryPath: file })];
  let offset = 0;
  let i = 0;
  let sharedBytes = 0;
  let inlineCrc = 0;
  for (const e of entries) {
    messages.push(entryMsg(e));
    for (const c of split(e.data, 1 * MiB)) {
      if (inline(i++)) {
        messages.push(chunkMsg(c));
        inlineCrc = crc32c(c, inlineCrc);
      } else {
        fs.writeSync(fd, c, 0, c.length, offset);
        const crc = options.sharedCrc === false ? {} : { crc32c: crc32c(c) };
        messages.push({ sharedChunk: { offset, length: c.length, ...crc } });
        offset += c.length;
        sharedBytes += c.length;
      }
    }
  }
  fs.closeSync(fd);
  const trailer = trailerFor(entries);
  messages.push(trailer);
  // The trailer of a client that leaves its shared chunks unchecked: the inline bytes' CRC.
  const inlineTrailer: SaveRequestIn = { trailer: { ...trailer.trailer!, crc32c: inlineCrc } };
  return { file, messages, sharedBytes, inlineTrailer };
}

describe("SaveShared", () => {
  it("stages shared chunks (mixed with inline ones) exactly like Save, releasing them as it copies them out", async () => {
    const entries = [f32Entry("dense", incompressibleBytes(5 * MiB + 124)), f32Entry("sparse", compressibleBytes(3 * MiB, 3))];
    const s = sharedStream(
      "ckptd-save-mixed",
      { checkpointId: "mixed", step: 1, rank: 0, worldSize: 1, item: "model" },
      entries,
      (i) => i % 3 === 1,
    );
    const out = await saveShared(client, s.messages);
    expect(out.error).toBeUndefined();
    const progress = out.responses.filter((r) => r.msg === "progress").map((r) => Number(r.progress!.sharedBytesReleased));
    expect(progress[0]).toBe(0); // the file is open
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(progress.at(-1)).toBe(s.sharedBytes);
    const last = out.responses.at(-1)!;
    expect(last.msg).toBe("result");
    expect(Number(last.result!.bytesReceived)).toBe(entries.reduce((n, e) => n + e.data.length, 0));
    expect(Number(last.result!.bytesStored)).toBeLessThan(Number(last.result!.bytesReceived));
    expectOutcome(
      await commitRaw(client, { job: JOB, checkpointId: "mixed", step: 1, rank: 0, worldSize: 1, items: ["model"] }),
      "COMMITTED",
    );
    await expectLoadsBitExact(client, JOB, "mixed", 0, { model: entries });
    // Chunks read from the ring straight into the O_DIRECT buffers are the same standard
    // frames: lz4 -dc of each entry file gives its raw bytes.
    if (fs.existsSync("/usr/bin/lz4"))
      for (const [index, e] of entries.entries()) {
        const raw = execFileSync("/usr/bin/lz4", ["-dc", entryFile(daemon.dataDir, JOB, "mixed", 0, "model", index)], {
          maxBuffer: 64 * MiB,
        });
        expect(raw.equals(e.data), `lz4 -dc of ${e.key}`).toBe(true);
      }
    // Operators see how much went through shared memory: here, the shared chunks only.
    const m = await scrape(metricsAddress(daemon));
    expect(m.get('ckptd_shared_memory_bytes_total{direction="save"}')).toBe(s.sharedBytes);
  });

  it("also takes shared chunks on a plain Save stream (the client keeps the whole file until the reply)", async () => {
    const entries = [f32Entry("w", incompressibleBytes(2 * MiB + 8))];
    const s = sharedStream("ckptd-save-plain", { checkpointId: "plain", step: 2, rank: 0, worldSize: 1, item: "model" }, entries);
    const r = await saveRaw(client, s.messages);
    expect(r.error).toBeUndefined();
    expectOutcome(
      await commitRaw(client, { job: JOB, checkpointId: "plain", step: 2, rank: 0, worldSize: 1, items: ["model"] }),
      "COMMITTED",
    );
    await expectLoadsBitExact(client, JOB, "plain", 0, { model: entries });
  });

  it("refuses a file it must not read with FAILED_PRECONDITION 'shared memory unavailable', before staging anything", async () => {
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-not-shm-"));
    const secret = path.join(outside, "secret");
    fs.writeFileSync(secret, "not yours");
    const link = path.join(shmDir, "ckptd-link");
    fs.symlinkSync(secret, link);
    const sub = path.join(shmDir, "sub");
    fs.mkdirSync(sub);
    const cases: [string, string, RegExp][] = [
      ["a file outside the directory", secret, /is not a file directly in/],
      ["a path that climbs out of it", path.join(shmDir, "..", path.basename(outside), "secret"), /is not a file directly in/],
      ["a relative path", "ckptd-x", /is not a file directly in/],
      ["a symlink in the directory", link, /cannot open .*ELOOP/],
      ["a directory in the directory", sub, /not a regular file/],
      ["a missing file", path.join(shmDir, "ckptd-missing"), /cannot open .*ENOENT/],
    ];
    try {
      for (const [what, file, why] of cases) {
        const out = await saveShared(client, [
          headerMsg({ job: JOB, checkpointId: "refused", step: 3, rank: 0, worldSize: 1, item: "model", sharedMemoryPath: file }),
        ]);
        expectStatus(out.error, "FAILED_PRECONDITION", /shared memory unavailable/);
        expect(out.error!.details, what).toMatch(why);
        expect(out.responses, what).toEqual([]);
      }
    } finally {
      fs.rmSync(outside, { recursive: true, force: true });
      fs.rmSync(link);
      fs.rmSync(sub, { recursive: true });
    }
    const staging = path.join(daemon.dataDir, "jobs", JOB, "staging");
    expect(fs.existsSync(staging) ? fs.readdirSync(staging).filter((d) => d.startsWith("refused@")) : []).toEqual([]);
  });

  it("rejects a slice beyond the file's end, a wrong checksum and a shared chunk without a file, and the rank saves again", async () => {
    const entries = [f32Entry("w", incompressibleBytes(2 * MiB))];
    const ref = { checkpointId: "bad-slices", step: 4, rank: 0, worldSize: 1, item: "model" };
    const beyond = sharedStream("ckptd-save-beyond", ref, entries);
    beyond.messages[3] = { sharedChunk: { offset: 1.5 * MiB, length: MiB } };
    expectStatus((await saveShared(client, beyond.messages)).error, "INVALID_ARGUMENT", /does not lie inside the shared-memory file/);

    const badCrc = sharedStream("ckptd-save-crc", ref, entries);
    const c = badCrc.messages[2]!.sharedChunk!;
    badCrc.messages[2] = { sharedChunk: { ...c, crc32c: ((c.crc32c as number) ^ 1) >>> 0 } };
    expectStatus((await saveShared(client, badCrc.messages)).error, "INVALID_ARGUMENT", /failed its checksum/);

    const noFile = sharedStream("ckptd-save-nofile", ref, entries);
    noFile.messages[0] = headerMsg({ job: JOB, ...ref });
    expectStatus((await saveShared(client, noFile.messages)).error, "INVALID_ARGUMENT", /named no shared_memory_path/);

    const good = sharedStream("ckptd-save-good", ref, entries);
    expect((await saveShared(client, good.messages)).error).toBeUndefined();
    expectOutcome(await commitRaw(client, { job: JOB, ...ref, items: ["model"] }), "COMMITTED");
    await expectLoadsBitExact(client, JOB, "bad-slices", 0, { model: entries });
  });
});

describe("SaveShared without client checksums", () => {
  // Entries of every path a shared chunk takes: packed (at most 1 MiB: small, sampled whole,
  // sampled in slices) and in a file of its own (straight into the O_DIRECT buffers, or
  // compressed), each raw and compressible.
  const entries = (): TestEntry[] => [
    f32Entry("small", incompressibleBytes(96 << 10)),
    f32Entry("packed-raw", incompressibleBytes(700 << 10)),
    f32Entry("packed-zip", compressibleBytes(600 << 10, 5)),
    f32Entry("large-raw", incompressibleBytes(3 * MiB + 12)),
    f32Entry("large-zip", compressibleBytes(2 * MiB, 7)),
    f32Entry("tail", incompressibleBytes(300 << 10)),
  ];

  it("says clients may leave shared chunks unchecked, checksums them itself and loads them bit-exact", async () => {
    const es = entries();
    const ref = { checkpointId: "no-crc", step: 5, rank: 0, worldSize: 1, item: "model" };
    const s = sharedStream("ckptd-save-nocrc", ref, es, (i) => i === 4, { sharedCrc: false });
    s.messages[s.messages.length - 1] = s.inlineTrailer;
    const out = await saveShared(client, s.messages);
    expect(out.error).toBeUndefined();
    const first = out.responses[0]!;
    expect(first.msg).toBe("progress");
    expect(first.progress!.sharedChunkCrcOptional).toBe(true);
    expectOutcome(await commitRaw(client, { job: JOB, ...ref, items: ["model"] }), "COMMITTED");
    // The load checks every chunk against the CRC the daemon recorded when it stored it.
    await expectLoadsBitExact(client, JOB, "no-crc", 0, { model: es });
  });

  it("also takes the trailer's CRC over every byte (clients that predate the option), and refuses any other", async () => {
    const es = entries();
    const ref = { checkpointId: "no-crc-full", step: 6, rank: 0, worldSize: 1, item: "model" };
    const wrong = sharedStream("ckptd-save-nocrc-wrong", ref, es, (i) => i === 1, { sharedCrc: false });
    const t = wrong.inlineTrailer.trailer!;
    wrong.messages[wrong.messages.length - 1] = { trailer: { ...t, crc32c: ((t.crc32c as number) ^ 1) >>> 0 } };
    expectStatus((await saveShared(client, wrong.messages)).error, "INVALID_ARGUMENT", /failed its checksum/);

    const s = sharedStream("ckptd-save-nocrc-full", ref, es, (i) => i === 1, { sharedCrc: false });
    expect((await saveShared(client, s.messages)).error).toBeUndefined();
    expectOutcome(await commitRaw(client, { job: JOB, ...ref, items: ["model"] }), "COMMITTED");
    await expectLoadsBitExact(client, JOB, "no-crc-full", 0, { model: es });
  });

  it("stores a ring byte changed after the client wrote it and before the daemon read it as read, by design", async () => {
    const es = entries();
    const ref = { checkpointId: "no-crc-changed", step: 7, rank: 0, worldSize: 1, item: "model" };
    const s = sharedStream("ckptd-save-nocrc-changed", ref, es, () => false, { sharedCrc: false });
    s.messages[s.messages.length - 1] = s.inlineTrailer;
    // One byte of each of two entries (a packed one, one of a file of its own) changes in the
    // ring after the stream was built: nothing checks the ring against the client's bytes.
    const fd = fs.openSync(s.file, "r+");
    const changed = es.map((e) => ({ ...e, data: Buffer.from(e.data) }));
    let at = 0;
    for (const [i, e] of changed.entries()) {
      if (i === 1 || i === 3) {
        const pos = Math.floor(e.data.length / 2);
        e.data[pos] = e.data[pos]! ^ 0xff;
        fs.writeSync(fd, e.data, pos, 1, at + pos);
      }
      at += e.data.length;
    }
    fs.closeSync(fd);
    expect((await saveShared(client, s.messages)).error).toBeUndefined();
    expectOutcome(await commitRaw(client, { job: JOB, ...ref, items: ["model"] }), "COMMITTED");
    await expectLoadsBitExact(client, JOB, "no-crc-changed", 0, { model: changed });
  });
});

describe("a daemon with --shared-memory-dir ''", () => {
  it("refuses every shared-memory file and still takes Save streams", async () => {
    const off = await startDaemon({ args: ["--shared-memory-dir", ""] });
    const c = testClient(off.address);
    try {
      expect(off.output()).toMatch(/"sharedMemoryOff":"--shared-memory-dir is empty"/);
      const file = path.join(shmDir, "ckptd-save-off");
      fs.writeFileSync(file, Buffer.alloc(16));
      const r = await saveRaw(c, [
        headerMsg({ job: JOB, checkpointId: "off", step: 1, rank: 0, worldSize: 1, item: "m", sharedMemoryPath: file }),
      ]);
      expectStatus(r.error, "FAILED_PRECONDITION", /shared memory unavailable: this daemon has its shared-memory path off/);
    } finally {
      c.close();
      await off.stop();
    }
  });
});
