/**
 * Starts real ckptd daemon processes for integration tests: `node dist/src/cli.js`
 * on 127.0.0.1 port 0 with a temporary data directory (`npm test` builds first).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const DAEMON_ENTRY = path.join(REPO_ROOT, "dist", "src", "cli.js");

export interface DaemonOptions {
  /** Data directory; a fresh temporary one when omitted. */
  dataDir?: string;
  /** Extra command-line flags, e.g. ["--prepare-timeout-ms", "1500"]. */
  args?: string[];
  /** Extra environment, e.g. { CKPTD_FAULT: "crash-after-decision" }. */
  env?: Record<string, string>;
  /** Extra arguments for node itself, e.g. ["--cpu-prof"] when profiling. */
  nodeArgs?: string[];
}

export interface Daemon {
  readonly address: string;
  readonly dataDir: string;
  readonly proc: ChildProcess;
  /** Everything the daemon printed so far (stdout and stderr). */
  output(): string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | string>;
  /** SIGKILL and wait for exit. */
  kill9(): Promise<number | string>;
}

export function tempDataDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-test-"));
}

/** Starts a daemon and resolves once it logged its bound address. */
export async function startDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  const dataDir = opts.dataDir ?? tempDataDir();
  const proc = spawn(
    process.execPath,
    [...(opts.nodeArgs ?? []), DAEMON_ENTRY, "--listen", "127.0.0.1:0", "--data-dir", dataDir, ...(opts.args ?? [])],
    { env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  const exited = new Promise<number | string>((resolve) => {
    proc.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown"));
  });
  const address = await new Promise<string>((resolve, reject) => {
    const onData = (b: Buffer) => {
      out += b.toString();
      const m = /listening on (\d+\.\d+\.\d+\.\d+:\d+)/.exec(out);
      if (m?.[1]) resolve(m[1]);
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", onData);
    void exited.then((code) => reject(new Error(`ckptd exited (${code}) before it was ready:\n${out}`)));
    setTimeout(() => reject(new Error(`ckptd not ready after 20s:\n${out}`)), 20_000).unref();
  });
  const signalAndWait = (sig: NodeJS.Signals) => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
    return exited;
  };
  return {
    address,
    dataDir,
    proc,
    output: () => out,
    exited,
    stop: () => signalAndWait("SIGTERM"),
    kill9: () => signalAndWait("SIGKILL"),
  };
}

/**
 * Writes a throw-away CA and a server and a client certificate signed by it (for
 * 127.0.0.1 and localhost) into `dir` with openssl: ca.pem, server.pem/.key, client.pem/.key.
 */
export function makeTestCertificates(dir: string, caName = "ckptd test CA"): void {
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", `/CN=${caName}`);
  fs.writeFileSync(path.join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  for (const who of ["server", "client"]) {
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${who}.key`, "-out", `${who}.csr`, "-subj", `/CN=${who}`);
    ssl(
      "x509",
      "-req",
      "-in",
      `${who}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${who}.pem`,
      "-days",
      "2",
      "-extfile",
      "san.ext",
    );
  }
}

/** Scrapes a daemon's Prometheus endpoint: sample name (with labels) → value. */
export async function scrape(address: string): Promise<Map<string, number>> {
  const text = await (await fetch(`http://${address}/metrics`)).text();
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    values.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return values;
}

/** The metrics address a daemon started with `--metrics-listen` logged. */
export function metricsAddress(d: Daemon): string {
  return /metrics on http:\/\/([\d.]+:\d+)\/metrics/.exec(d.output())![1]!;
}

/** The peer token the multi-node tests give every node (the same on each, as in production). */
export const TEST_PEER_TOKEN = "peer-token-of-the-test-cluster-0001";

/** Writes `token` into a fresh temporary file for --peer-token-file; returns its path. */
export function writePeerTokenFile(token = TEST_PEER_TOKEN): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-peer-")), "peer-token");
  fs.writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return file;
}
