/**
 * The real grpcurl (v1.9.1, protobuf-go's strict descriptor checks) against a real daemon:
 * every grpcurl command in README.md and docs/operations.md, extracted from the docs and
 * run verbatim (only the address is the test daemon's), so docs and daemon cannot drift;
 * a Save (header, entry, chunk, trailer via `-d @`) and its Commit typed by hand; the TLS
 * and token variants; and protoc linking the descriptors the daemon serves.
 *
 * grpcurl is looked up at ../shared/tools/grpcurl beside the clone, then on PATH; where
 * neither exists the tests are skipped with that reason printed.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { crc32c } from "@node-rs/crc32";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Daemon, makeTestCertificates, REPO_ROOT, startDaemon } from "./harness.js";
import { compressibleBytes, expectLoadsBitExact, f32Entry, saveAndCommit, sleep, testClient } from "./wire-helpers.js";

function findTool(name: string): string | undefined {
  const beside = path.resolve(REPO_ROOT, "..", "shared", "tools", name);
  if (fs.existsSync(beside)) return beside;
  const r = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

const GRPCURL = findTool("grpcurl");
const PROTOC = findTool("protoc");
if (!GRPCURL) console.warn("grpcurl tests skipped: no grpcurl at ../shared/tools/grpcurl or on PATH");
if (!PROTOC) console.warn("descriptor link check skipped: no protoc on PATH (Debian: protobuf-compiler)");

const DOC_ADDRESS = "127.0.0.1:7070";

/** Every grpcurl command in a markdown file's sh blocks, with backslash continuations joined. */
function docCommands(file: string): string[] {
  const text = fs.readFileSync(path.join(REPO_ROOT, file), "utf8");
  const out: string[] = [];
  for (const block of text.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const joined = block[1]!.replace(/\\\n\s*/g, "");
    for (const line of joined.split("\n")) if (line.trim().startsWith("grpcurl ")) out.push(line.trim());
  }
  return out;
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a documented command line through sh, with our grpcurl first on PATH. */
function sh(command: string, input?: string): Run {
  const r = spawnSync("sh", ["-c", command], {
    encoding: "utf8",
    input,
    timeout: 20_000,
    env: { ...process.env, PATH: `${path.dirname(GRPCURL!)}:${process.env["PATH"]}` },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const JOB = "pretrain";
let daemon: Daemon;

beforeAll(async () => {
  if (!GRPCURL) return;
  daemon = await startDaemon();
  const c = testClient(daemon.address);
  try {
    for (const step of [500, 1000])
      await saveAndCommit(c, JOB, `global_step${step}`, step, [
        { model: [f32Entry("w", compressibleBytes(64 * 1024, step))] },
        { model: [f32Entry("w", compressibleBytes(64 * 1024, step + 1))] },
      ]);
  } finally {
    c.close();
  }
});

afterAll(async () => {
  await daemon?.stop();
});

/** What each documented command must print, beyond exit code 0. */
function expectation(cmd: string): RegExp {
  if (cmd.endsWith(" list")) return /ckptd\.v1\.CheckpointService\n[\s\S]*grpc\.health\.v1\.Health/;
  if (cmd.includes("list ckptd.v1.CheckpointService")) return /ckptd\.v1\.CheckpointService\.Save\b/;
  if (cmd.includes("describe ckptd.v1.CheckpointService")) return /rpc Load \( \.ckptd\.v1\.LoadRequest \)/;
  if (cmd.includes("describe ckptd.v1.ListCheckpointsRequest")) return /string page_token = 3;/;
  if (cmd.includes("/ListCheckpoints")) return /"checkpointId": "global_step1000"[\s\S]*"checkpointId": "global_step500"/;
  if (cmd.includes("/GetCheckpoint")) return /"checkpointId": "global_step1000"[\s\S]*"dtype": "DTYPE_FLOAT32"/;
  if (cmd.includes("Health/Check")) return /"status": "SERVING"/;
  if (cmd.includes("/GetStatus")) return /"state": "running"/;
  if (cmd.includes("/ListJobs")) return /"job": "pretrain"/;
  if (cmd.includes("/VerifyCheckpoint")) return /"checkpointId": "global_step1000"/;
  if (cmd.includes("/GetRetentionPolicy")) return /"policy"/;
  if (cmd.includes("/Load")) return /"resharded": true[\s\S]*"globalOffsets": \[\s*"2"\s*\][\s\S]*"data": "\S+"/;
  return /[\s\S]*/;
}

describe.skipIf(!GRPCURL)("grpcurl, as the docs say", () => {
  const commands = [...new Set([...docCommands("README.md"), ...docCommands("docs/operations.md")])];

  it("the docs have grpcurl commands to run", () => {
    expect(commands.length).toBeGreaterThanOrEqual(12);
  });

  for (const cmd of commands.filter((c) => !c.includes("/WatchCheckpoints")))
    it(`runs: ${cmd}`, () => {
      const r = sh(cmd.replaceAll(DOC_ADDRESS, daemon.address));
      expect(r.status, `exit code; stderr: ${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(expectation(cmd));
    });

  for (const cmd of commands.filter((c) => c.includes("/WatchCheckpoints")))
    it(`runs: ${cmd} (and prints the next commit)`, async () => {
      const child = spawn("sh", ["-c", cmd.replaceAll(DOC_ADDRESS, daemon.address)], {
        env: { ...process.env, PATH: `${path.dirname(GRPCURL!)}:${process.env["PATH"]}` },
      });
      let out = "";
      child.stdout.on("data", (b: Buffer) => (out += b.toString()));
      child.stderr.on("data", (b: Buffer) => (out += b.toString()));
      try {
        // The subscription is live once grpcurl has connected; give it a moment, then commit.
        await sleep(1000);
        const c = testClient(daemon.address);
        try {
          await saveAndCommit(c, JOB, "global_step1500", 1500, [{ model: [f32Entry("w", compressibleBytes(1024, 15))] }]);
        } finally {
          c.close();
        }
        for (let i = 0; i < 50 && !/global_step1500/.test(out); i++) await sleep(100);
        expect(out).toMatch(/"type": "CHECKPOINT_EVENT_TYPE_COMMITTED"[\s\S]*"checkpointId": "global_step1500"/);
      } finally {
        child.kill("SIGINT");
      }
    });

  it("saves an item by hand (-d @: header, entry, chunk, trailer) and commits it; the daemon loads it back bit-exact", () => {
    const data = compressibleBytes(4000, 42);
    const messages = [
      { header: { job: "by-hand", checkpoint_id: "step1", step: 1, rank: 0, world_size: 1, item: "model" } },
      { entry: { key: "w", tensor: { dtype: "DTYPE_FLOAT32", shape: [1000] } } },
      { chunk: { data: data.toString("base64") } },
      { trailer: { entry_count: 1, byte_count: data.length, crc32c: crc32c(data) } },
    ];
    const save = sh(
      `grpcurl -plaintext -d @ ${daemon.address} ckptd.v1.CheckpointService/Save`,
      messages.map((m) => JSON.stringify(m)).join("\n"),
    );
    expect(save.status, save.stderr).toBe(0);
    expect(save.stdout).toMatch(/"bytesReceived": "4000"/);
    const commit = sh(
      `grpcurl -plaintext -d '{"job":"by-hand","checkpoint_id":"step1","step":1,"rank":0,"world_size":1,"items":["model"]}' ${daemon.address} ckptd.v1.CheckpointService/Commit`,
    );
    expect(commit.status, commit.stderr).toBe(0);
    expect(commit.stdout).toMatch(/"outcome": "COMMIT_OUTCOME_COMMITTED"/);
    const c = testClient(daemon.address);
    return expectLoadsBitExact(c, "by-hand", "step1", 0, { model: [f32Entry("w", data)] }).finally(() => c.close());
  });

  it("a bad request shows the daemon's status and message, and exits non-zero", () => {
    const r = sh(
      `grpcurl -plaintext -d '{"job":"../etc","checkpoint_id":"latest"}' ${daemon.address} ckptd.v1.CheckpointService/GetCheckpoint`,
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/Code: InvalidArgument[\s\S]*job "..\/etc" is not a valid name/);
  });
});

describe.skipIf(!GRPCURL)("grpcurl with TLS and a token", () => {
  let tlsDaemon: Daemon;
  let dir: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-grpcurl-tls-"));
    makeTestCertificates(dir);
    fs.writeFileSync(path.join(dir, "tokens.json"), JSON.stringify({ admin: "admin-secret-1", jobs: { pretrain: "pretrain-secret" } }));
    tlsDaemon = await startDaemon({
      args: [
        ...["--tls-cert", path.join(dir, "server.pem"), "--tls-key", path.join(dir, "server.key")],
        ...["--auth-tokens", path.join(dir, "tokens.json")],
      ],
    });
  });
  afterAll(async () => {
    await tlsDaemon?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const tls = () => `grpcurl -cacert ${path.join(dir, "ca.pem")}`;
  it("lists and describes without a token (reflection stays open)", () => {
    const r = sh(`${tls()} ${tlsDaemon.address} describe ckptd.v1.CommitRequest`);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/string checkpoint_id = 2;/);
  });
  it("calls with the job's token, and is refused without it", () => {
    const call = (token: string) =>
      sh(`${tls()} ${token} -d '{"job":"pretrain"}' ${tlsDaemon.address} ckptd.v1.CheckpointService/ListCheckpoints`);
    const ok = call(`-H "authorization: Bearer pretrain-secret"`);
    expect(ok.status, ok.stderr).toBe(0);
    const refused = call("");
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/Code: Unauthenticated/);
  });
  it("the plaintext form fails against a TLS daemon, as the docs warn", () => {
    const r = sh(`grpcurl -plaintext -max-time 5 ${tlsDaemon.address} list`);
    expect(r.status).not.toBe(0);
  });
});

describe.skipIf(!GRPCURL || !PROTOC)("the served descriptors, checked by protoc", () => {
  it("every file grpcurl fetches links with protoc --descriptor_set_in", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-protoset-"));
    try {
      // grpcurl writes the descriptors it fetched over reflection, dependencies included.
      const sets = ["CheckpointService", "EvaluationService", "RetentionService", "AdminService"].map((svc) => {
        const set = path.join(dir, `${svc}.protoset`);
        const r = sh(`grpcurl -plaintext -protoset-out ${set} ${daemon.address} describe ckptd.v1.${svc}`);
        expect(r.status, r.stderr).toBe(0);
        return set;
      });
      const files = execFileSync(
        PROTOC!,
        [
          `--descriptor_set_in=${sets.join(":")}`,
          `--descriptor_set_out=${path.join(dir, "out")}`,
          "ckptd/v1/checkpoint_service.proto",
          "ckptd/v1/evaluation_service.proto",
          "ckptd/v1/retention_service.proto",
          "ckptd/v1/admin_service.proto",
        ],
        { encoding: "utf8", stdio: "pipe" },
      );
      expect(files).toBe("");
      expect(fs.statSync(path.join(dir, "out")).size).toBeGreaterThan(1000);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
