/**
 * The data directory's lock dies with its holder: a pid reused by an unrelated process
 * (after a kill -9, or after a reboot) never blocks the restart, while a live daemon's
 * lock still refuses a second daemon.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DAEMON_ENTRY, startDaemon, tempDataDir, type Daemon } from "./harness.js";
import { compressibleBytes, f32Entry, saveAndCommit, testClient } from "./wire-helpers.js";

const started: Daemon[] = [];
const others: ChildProcess[] = [];

afterEach(async () => {
  for (const d of started.splice(0)) await d.kill9();
  for (const p of others.splice(0)) p.kill("SIGKILL");
});

/** A live process that is not ckptd, standing in for whatever got the dead daemon's pid. */
function unrelatedProcess(): ChildProcess {
  const p = spawn("sleep", ["60"], { stdio: "ignore" });
  others.push(p);
  return p;
}

async function expectServes(d: Daemon): Promise<void> {
  const client = testClient(d.address);
  await saveAndCommit(client, "lock-job", `c-${Date.now()}`, 1, [{ model: [f32Entry("w", compressibleBytes(64 * 1024, 3))] }]);
  client.close();
}

describe("data directory lock", () => {
  it("lock - a lock naming a live unrelated process (pid reused after the holder died) is taken over", async () => {
    const dataDir = tempDataDir();
    const sleeper = unrelatedProcess();
    const bootId = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    // What a kill -9'd daemon left: its pid (now the sleeper's) with the dead daemon's start time.
    fs.writeFileSync(path.join(dataDir, "ckptd.lock"), `${sleeper.pid} 1 ${bootId}\n`);
    const d = await startDaemon({ dataDir });
    started.push(d);
    await expectServes(d);
    expect(fs.readFileSync(path.join(dataDir, "ckptd.lock"), "utf8").split(" ")[0]).toBe(String(d.proc.pid));
  });

  it("lock - a lock written before a reboot (another boot id) is taken over", async () => {
    const dataDir = tempDataDir();
    const sleeper = unrelatedProcess();
    const stat = fs.readFileSync(`/proc/${sleeper.pid}/stat`, "utf8");
    const start = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
    // Even pid and start time matching cannot make a lock from another boot alive.
    fs.writeFileSync(path.join(dataDir, "ckptd.lock"), `${sleeper.pid} ${start} 00000000-0000-0000-0000-000000000000\n`);
    const d = await startDaemon({ dataDir });
    started.push(d);
    await expectServes(d);
  });

  it("lock - an old pid-only lock naming a process that is not ckptd is taken over", async () => {
    const dataDir = tempDataDir();
    const sleeper = unrelatedProcess();
    fs.writeFileSync(path.join(dataDir, "ckptd.lock"), `${sleeper.pid}\n`);
    const d = await startDaemon({ dataDir });
    started.push(d);
    await expectServes(d);
  });

  it("lock - a second daemon on a live daemon's data dir is still refused, and no probe file is left in the data dir", async () => {
    const first = await startDaemon();
    started.push(first);
    const second = spawn(process.execPath, [DAEMON_ENTRY, "--listen", "127.0.0.1:0", "--data-dir", first.dataDir], { stdio: "pipe" });
    let out = "";
    second.stdout.on("data", (b: Buffer) => (out += b.toString()));
    second.stderr.on("data", (b: Buffer) => (out += b.toString()));
    const code = await new Promise<number | null>((resolve) => second.on("exit", resolve));
    expect(code, out).not.toBe(0);
    expect(out).toMatch(new RegExp(`already in use by ckptd \\(pid ${first.proc.pid}\\)`));
    await expectServes(first);
    // The O_DIRECT probe is unlinked once open: nothing outside the documented layout.
    expect(fs.readdirSync(first.dataDir).sort()).toEqual(["ckptd.lock", "jobs", "tmp"]);
    expect(fs.readdirSync(path.join(first.dataDir, "tmp", "ckptd"))).toEqual([]);
  });
});
