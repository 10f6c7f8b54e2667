/**
 * Shared-memory rings named by a handle (SharedMemoryHandle: pid, fd, token) instead of a
 * path: the daemon reopens /proc/<pid>/fd/<fd> and uses it only when it is the unnamed
 * ring "ckptd-ring-<token>" of the daemon's user, of a size within bounds. Everything else
 * is refused with the FAILED_PRECONDITION "shared memory unavailable" answer clients fall
 * back on, before anything is staged, and the daemon keeps no descriptor of a ring once
 * its stream is over.
 *
 * Node cannot create a memfd, so a small python3 process holds the memfds these tests
 * name; the test reads and writes them through /proc/<pid>/fd/<fd> like the daemon.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { crc32c } from "@node-rs/crc32";
import type * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LoadSharedResponse } from "../../wire/gen/ckptd/v1/LoadSharedResponse.js";
import type { SaveRequestIn } from "../../wire/gen/ckptd/v1/SaveRequest.js";
import type { SaveSharedResponse } from "../../wire/gen/ckptd/v1/SaveSharedResponse.js";
import type { SharedMemoryHandleIn } from "../../wire/gen/ckptd/v1/SharedMemoryHandle.js";
import { type Daemon, REPO_ROOT, startDaemon } from "./harness.js";
import { CkptdClient } from "../../clients/ts/src/index.js";
import {
  MiB,
  expectLoadsBitExact,
  expectStatus,
  f32Entry,
  incompressibleBytes,
  type TestEntry,
  waitUntil,
  testClient,
} from "./wire-helpers.js";
import { commitRaw, entryMsg, expectOutcome, headerMsg, split, trailerFor, saveShared, type SharedOutcome, rawClient } from "./raw-wire.js";

const JOB = "shm-handle-job";
const PYTHON = "/usr/bin/python3";
let shmDir: string;
let daemon: Daemon;
let client: CkptdClient;
const holders: ChildProcessWithoutNullStreams[] = [];

beforeAll(async () => {
  shmDir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-shm-handle-"));
  daemon = await startDaemon({ args: ["--shared-memory-dir", shmDir, "--prepare-timeout-ms", "600000"] });
  client = testClient(daemon.address);
});

afterAll(async () => {
  for (const h of holders) h.kill("SIGKILL");
  client?.close();
  await daemon?.stop();
  fs.rmSync(shmDir, { recursive: true, force: true });
});

const token = () => randomBytes(16).toString("hex");

/** Holds memfds `name` of `size` bytes (as user `uid` when given) until the test ends. */
async function holdMemfds(specs: { name: string; size: number }[], uid?: number): Promise<{ pid: number; fds: number[] }> {
  const script = [
    "import json, os, sys",
    "fds = []",
    "for s in json.loads(sys.argv[1]):",
    "    fd = os.memfd_create(s['name'], os.MFD_CLOEXEC)",
    "    os.ftruncate(fd, s['size'])",
    "    fds.append(fd)",
    "print(json.dumps({'pid': os.getpid(), 'fds': fds}), flush=True)",
    "sys.stdin.read()",
  ].join("\n");
  const argv = [PYTHON, "-c", script, JSON.stringify(specs)];
  const cmd = uid === undefined ? argv : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", ...argv];
  const proc = spawn(cmd[0]!, cmd.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
  holders.push(proc);
  let out = "";
  let err = "";
  proc.stderr.on("data", (b: Buffer) => (err += b.toString()));
  return new Promise((resolve, reject) => {
    proc.stdout.on("data", (b: Buffer) => {
      out += b.toString();
      if (out.includes("\n")) resolve(JSON.parse(out) as { pid: number; fds: number[] });
    });
    proc.on("exit", (code) => reject(new Error(`the memfd holder exited (${code}): ${err}`)));
  });
}

/** The names of the ring descriptors the daemon holds. */
function daemonRings(): string[] {
  const dir = `/proc/${daemon.proc.pid}/fd`;
  const names: string[] = [];
  for (const fd of fs.readdirSync(dir)) {
    try {
      const name = fs.readlinkSync(path.join(dir, fd));
      if (name.includes("ckptd-ring-")) names.push(name);
    } catch {
      // closed meanwhile
    }
  }
  return names;
}

function stagedAttempts(checkpointId: string): string[] {
  const staging = path.join(daemon.dataDir, "jobs", JOB, "staging");
  return fs.existsSync(staging) ? fs.readdirSync(staging).filter((d) => d.startsWith(`${checkpointId}@`)) : [];
}

/** Writes `entries` back to back into the file at `ring` and returns the messages of a SaveShared stream naming `handle`. */
function sharedStream(ring: string, handle: SharedMemoryHandleIn, checkpointId: string, entries: TestEntry[]): SaveRequestIn[] {
  const fd = fs.openSync(ring, "r+");
  const messages: SaveRequestIn[] = [
    headerMsg({ job: JOB, checkpointId, step: 1, rank: 0, worldSize: 1, item: "model", sharedMemoryHandle: handle }),
  ];
  let offset = 0;
  try {
    for (const e of entries) {
      messages.push(entryMsg(e));
      for (const c of split(e.data, MiB)) {
        fs.writeSync(fd, c, 0, c.length, offset);
        messages.push({ sharedChunk: { offset, length: c.length, crc32c: crc32c(c) } });
        offset += c.length;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  messages.push(trailerFor(entries));
  return messages;
}

/** A LoadShared call naming `handle`: each shared chunk is read out of the file at `ring` and released. */
function loadShared(
  handle: SharedMemoryHandleIn,
  ring: string | undefined,
  checkpointId: string,
): Promise<{ error?: grpc.ServiceError; entries: Map<string, Buffer>; responses: number }> {
  return new Promise((resolve) => {
    const fd = ring === undefined ? undefined : fs.openSync(ring, "r");
    const parts = new Map<string, Buffer[]>();
    let key = "";
    let released = 0;
    let responses = 0;
    const call = client.raw.LoadShared();
    const finish = (error?: grpc.ServiceError) => {
      if (fd !== undefined) fs.closeSync(fd);
      resolve({ error, entries: new Map([...parts].map(([k, v]) => [k, Buffer.concat(v)])), responses });
    };
    call.on("data", (m: LoadSharedResponse) => {
      responses++;
      const r = m.response!;
      if (r.msg === "entry") {
        key = r.entry!.key;
        parts.set(key, []);
      } else if (r.msg === "sharedChunk") {
        const c = r.sharedChunk!;
        const buf = Buffer.alloc(c.length);
        fs.readSync(fd!, buf, 0, c.length, Number(c.offset));
        expect(crc32c(buf)).toBe(c.crc32c);
        parts.get(key)!.push(buf);
        released += c.length;
        call.write({ progress: { sharedBytesReleased: released } });
      }
    });
    call.on("error", (error: grpc.ServiceError) => finish(error));
    call.on("end", () => {
      call.end();
      finish();
    });
    call.write({ start: { request: { job: JOB, checkpointId, rank: 0 }, sharedMemoryHandle: handle } });
  });
}

describe("SharedMemoryHandle", () => {
  it("saves and loads bit-exact through a memfd, says it opened the handle, and keeps no descriptor of it afterwards", async () => {
    const t = token();
    const { pid, fds } = await holdMemfds([{ name: `ckptd-ring-${t}`, size: 8 * MiB }]);
    const ring = `/proc/${pid}/fd/${fds[0]}`;
    const handle = { pid, fd: fds[0]!, token: t };
    const entries = [f32Entry("w", incompressibleBytes(5 * MiB + 12)), f32Entry("b", incompressibleBytes(1024))];
    const out = await saveShared(client, sharedStream(ring, handle, "memfd", entries));
    expect(out.error).toBeUndefined();
    const first = out.responses[0]!;
    expect(first.msg).toBe("progress");
    expect(first.progress!.sharedMemoryHandleOpen).toBe(true);
    expect(Number(first.progress!.sharedBytesReleased)).toBe(0);
    expect(out.responses.at(-1)!.msg).toBe("result");
    expect(daemonRings()).toEqual([]); // closed before the result was sent
    expectOutcome(
      await commitRaw(client, { job: JOB, checkpointId: "memfd", step: 1, rank: 0, worldSize: 1, items: ["model"] }),
      "COMMITTED",
    );
    await expectLoadsBitExact(client, JOB, "memfd", 0, { model: entries });

    fs.writeFileSync(ring, Buffer.alloc(8 * MiB, 0xee)); // what the load overwrites
    const loaded = await loadShared(handle, ring, "memfd");
    expect(loaded.error).toBeUndefined();
    for (const e of entries) expect(loaded.entries.get(e.key)?.equals(e.data), e.key).toBe(true);
    expect(daemonRings()).toEqual([]); // closed before the stream ended
  });

  it("takes an unnamed file of its directory (a ring file removed right after it was opened)", async () => {
    const t = token();
    const file = path.join(fs.realpathSync(shmDir), `ckptd-ring-${t}`);
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    try {
      const handle = { pid: process.pid, fd, token: t };
      const entries = [f32Entry("w", incompressibleBytes(2 * MiB + 4))];
      // Still named: refused, nothing staged.
      fs.ftruncateSync(fd, 4 * MiB);
      const named = await saveShared(client, sharedStream(`/proc/self/fd/${fd}`, handle, "unnamed", entries).slice(0, 1));
      expectStatus(named.error, "FAILED_PRECONDITION", /shared memory unavailable: .*is not the ring of this token/);
      expect(stagedAttempts("unnamed")).toEqual([]);
      fs.unlinkSync(file);
      const out = await saveShared(client, sharedStream(`/proc/self/fd/${fd}`, handle, "unnamed", entries));
      expect(out.error).toBeUndefined();
      expect(out.responses[0]!.progress!.sharedMemoryHandleOpen).toBe(true);
      expectOutcome(
        await commitRaw(client, { job: JOB, checkpointId: "unnamed", step: 1, rank: 0, worldSize: 1, items: ["model"] }),
        "COMMITTED",
      );
      await expectLoadsBitExact(client, JOB, "unnamed", 0, { model: entries });
      expect(fs.readdirSync(shmDir)).toEqual([]);
    } finally {
      fs.closeSync(fd);
    }
  });

  it("refuses every handle that is not the client's unnamed ring of its token and bounds, before staging anything", async () => {
    const good = token();
    const other = token();
    const { pid, fds } = await holdMemfds([
      { name: `ckptd-ring-${good}`, size: 8 * MiB }, // fds[0]: the ring
      { name: `ckptd-ring-${other}`, size: 0 }, // fds[1]: empty
      { name: `ckptd-ring-${other}x`, size: MiB }, // fds[2]: the token with more after it
      { name: `not-ckptd-${good}`, size: 8 * MiB }, // fds[3]: another name
      { name: `ckptd-ring-${other}`, size: MiB }, // fds[4]: smaller than a load's slot
      { name: `ckptd-ring-${other}`, size: 2048 * MiB }, // fds[5]: over 1 GiB (sparse)
    ]);
    const foreign = await holdMemfds([{ name: `ckptd-ring-${other}`, size: 8 * MiB }], 65534);
    const dead = spawnSync("true").pid!;
    const regular = path.join(shmDir, "plain-file");
    fs.writeFileSync(regular, Buffer.alloc(MiB));
    const regularFd = fs.openSync(regular, "r");
    const zeroFd = fs.openSync("/dev/zero", "r");
    const notRing = /is not the ring of this token/;
    const cases: [string, SharedMemoryHandleIn, RegExp][] = [
      ["a wrong token", { pid, fd: fds[0]!, token: other }, notRing],
      ["a token in upper case", { pid, fd: fds[0]!, token: good.toUpperCase() }, /token must be 32 lowercase hex/],
      ["a token one character short", { pid, fd: fds[0]!, token: good.slice(1) }, /token must be 32 lowercase hex/],
      ["an empty token", { pid, fd: fds[0]!, token: "" }, /token must be 32 lowercase hex/],
      ["a token with a path in it", { pid, fd: fds[0]!, token: `${good.slice(0, 29)}/..` }, /token must be 32 lowercase hex/],
      ["the token's prefix of a longer name", { pid, fd: fds[2]!, token: other }, notRing],
      ["a memfd of another name", { pid, fd: fds[3]!, token: good }, notRing],
      ["the ring's fd in another process (the test's)", { pid: process.pid, fd: fds[0]!, token: good }, /./],
      ["the ring's fd in process 1", { pid: 1, fd: fds[0]!, token: good }, /./],
      ["a process that is gone", { pid: dead, fd: fds[0]!, token: good }, /cannot open descriptor .*ENOENT/],
      ["pid 0", { pid: 0, fd: fds[0]!, token: good }, /pid 0 is not a process id/],
      ["a pid beyond any", { pid: 4294967295, fd: fds[0]!, token: good }, /is not a process id/],
      ["a descriptor the process does not have", { pid, fd: 999_999, token: good }, /cannot open descriptor .*ENOENT/],
      ["a regular file", { pid: process.pid, fd: regularFd, token: good }, notRing],
      ["/dev/zero", { pid: process.pid, fd: zeroFd, token: good }, notRing],
      ["the daemon's own descriptor", { pid: daemon.proc.pid!, fd: 0, token: good }, notRing],
      ["an empty memfd", { pid, fd: fds[1]!, token: other }, /has 0 bytes; it must have 1 to/],
      ["a memfd over 1 GiB", { pid, fd: fds[5]!, token: other }, /has 2147483648 bytes; it must have 1 to 1073741824/],
      [
        "a memfd of another user",
        { pid: foreign.pid, fd: foreign.fds[0]!, token: other },
        /not an unlinked regular file of the daemon's user|cannot open descriptor .*EACCES/,
      ],
    ];
    try {
      for (const [what, handle, why] of cases) {
        const out = await saveShared(client, [
          headerMsg({ job: JOB, checkpointId: "refused", step: 3, rank: 0, worldSize: 1, item: "model", sharedMemoryHandle: handle }),
        ]);
        expectStatus(out.error, "FAILED_PRECONDITION", /shared memory unavailable/);
        expect(out.error!.details, what).toMatch(why);
        expect(out.error!.details, `${what}: the token is not repeated`).not.toContain(good);
        expect(out.error!.details, `${what}: the token is not repeated`).not.toContain(other);
        expect(out.responses, what).toEqual([]);
      }
      // A load's ring must hold one 4 MiB slot; the same refusals otherwise.
      const small = await loadShared({ pid, fd: fds[4]!, token: other }, undefined, "memfd");
      expectStatus(small.error, "FAILED_PRECONDITION", /shared memory unavailable: .*has 1048576 bytes; it must have 4194304 to/);
      expect(small.responses).toBe(0);
      const wrong = await loadShared({ pid, fd: fds[0]!, token: other }, undefined, "memfd");
      expectStatus(wrong.error, "FAILED_PRECONDITION", /shared memory unavailable: .*is not the ring of this token/);
      // Both a path and a handle: the client must pick one.
      const both = await saveShared(client, [
        headerMsg({
          job: JOB,
          checkpointId: "refused",
          step: 3,
          rank: 0,
          worldSize: 1,
          item: "model",
          sharedMemoryPath: regular,
          sharedMemoryHandle: { pid, fd: fds[0]!, token: good },
        }),
      ]);
      expectStatus(both.error, "INVALID_ARGUMENT", /both shared_memory_path and shared_memory_handle/);
    } finally {
      fs.closeSync(regularFd);
      fs.closeSync(zeroFd);
      fs.rmSync(regular);
    }
    expect(stagedAttempts("refused")).toEqual([]);
    expect(daemonRings()).toEqual([]);
    // The ring nobody could use is untouched, and it still works for its owner.
    expect(fs.readFileSync(`/proc/${pid}/fd/${fds[0]}`).equals(Buffer.alloc(8 * MiB))).toBe(true);
  });

  it("a TypeScript trainer killed while its save waits for a paused daemon leaves no ring file and no ring", async () => {
    // The TypeScript client's ring: an unnamed file of the directory, named to the daemon by a handle.
    const index = path.join(REPO_ROOT, "dist", "clients", "ts", "src", "index.js");
    const script = [
      `const { CkptdClient, tensor } = await import(${JSON.stringify(index)});`,
      `const client = new CkptdClient({ address: process.argv[1], sharedMemoryDir: process.argv[2] });`,
      `await client.listCheckpoints("${JOB}");`, // connected before the daemon is paused
      `console.log("connected");`,
      `process.stdin.once("data", () => client.save({ job: "${JOB}", checkpointId: "killed", step: 1, rank: 0, worldSize: 1, item: "model",`,
      `  entries: [{ key: "w", tensor: tensor(new Float32Array(1 << 18)) }] }));`,
    ].join("\n");
    const saver = spawn(process.execPath, ["--input-type=module", "-e", script, daemon.address, shmDir], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    holders.push(saver);
    await new Promise<void>((resolve, reject) => {
      saver.stdout.on("data", (b: Buffer) => b.toString().includes("connected") && resolve());
      saver.on("exit", (code) => reject(new Error(`the saver exited (${code})`)));
    });
    const ringsOf = (pid: number) =>
      fs.readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
        try {
          const name = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
          return name.includes("ckptd-ring-") ? [name] : [];
        } catch {
          return [];
        }
      });
    daemon.proc.kill("SIGSTOP");
    let held: string[] = [];
    try {
      saver.stdin.write("save\n");
      expect(await waitUntil(() => (held = ringsOf(saver.pid!)).length > 0, 10_000), "the saver made its ring").toBe(true);
      expect(held[0]).toMatch(/ckptd-ring-[0-9a-f]{32} \(deleted\)$/);
      expect(fs.readdirSync(shmDir)).toEqual([]); // no name while the save waits
      await new Promise((r) => setTimeout(r, 300)); // the header goes out
      const exited = new Promise((r) => saver.once("exit", r));
      saver.kill("SIGKILL");
      await exited;
    } finally {
      daemon.proc.kill("SIGCONT");
    }
    // The daemon, back, finds the connection gone, or reads the header and no process behind
    // the handle (which of the two is a race; "a process that is gone" above covers the
    // second): either way nothing is staged and it holds nothing of the ring.
    expect(await waitUntil(() => stagedAttempts("killed").length === 0 && daemonRings().length === 0)).toBe(true);
    await expect(loadShared({ pid: 1, fd: 0, token: "" }, undefined, "memfd")).resolves.toMatchObject({ responses: 0 }); // it serves again
    expect(stagedAttempts("killed")).toEqual([]);
    expect(daemonRings()).toEqual([]);
    expect(fs.readdirSync(shmDir)).toEqual([]);
  });

  it("is refused by a daemon with the shared-memory path off", async () => {
    const off = await startDaemon({ args: ["--shared-memory-dir", ""] });
    const offClient = rawClient(off.address);
    try {
      const t = token();
      const { pid, fds } = await holdMemfds([{ name: `ckptd-ring-${t}`, size: 8 * MiB }]);
      const out = await new Promise<SharedOutcome>((resolve) => {
        const responses: SaveSharedResponse[] = [];
        const call = offClient.SaveShared();
        call.on("data", (r: SaveSharedResponse) => responses.push(r));
        call.on("error", (error: grpc.ServiceError) => resolve({ responses, error }));
        call.on("end", () => resolve({ responses }));
        call.write({
          request: headerMsg({
            job: JOB,
            checkpointId: "off",
            step: 1,
            rank: 0,
            worldSize: 1,
            item: "model",
            sharedMemoryHandle: { pid, fd: fds[0]!, token: t },
          }),
        });
      });
      expectStatus(out.error, "FAILED_PRECONDITION", /shared memory unavailable: this daemon has its shared-memory path off/);
    } finally {
      offClient.close();
      await off.stop();
    }
  });
});
