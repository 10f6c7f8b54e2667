/**
 * A ckptd daemon as a child process for the scripts (benchmarks, soak, measurements):
 * started on free loopback ports, ready once it logs its addresses, its output drained
 * from then on so a chatty daemon never blocks on a full pipe.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

/** The daemon's entry point, next to the scripts in the build output. */
export const DAEMON_ENTRY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "src", "cli.js");

export interface DaemonProcess {
  /** gRPC `host:port`. */
  address: string;
  /** Metrics `host:port`; empty unless `metrics` was asked for. */
  metricsAddress: string;
  proc: ChildProcess;
  exited: Promise<unknown>;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<unknown>;
}

export interface DaemonStartOptions {
  /** Also serve metrics on a free port and wait for its address. */
  metrics?: boolean;
  /** Names the daemon in errors (several nodes). */
  name?: string;
  /** How long it may take to get ready. @default 30000 */
  readyMs?: number;
  /** Node flags for the daemon's process (e.g. --cpu-prof), before its entry. */
  nodeFlags?: string[];
}

/** Starts `ckptd --listen 127.0.0.1:0 --data-dir DIR ...extra` and waits until it is listening. */
export async function startDaemon(dataDir: string, extra: string[] = [], opts: DaemonStartOptions = {}): Promise<DaemonProcess> {
  const args = [DAEMON_ENTRY, "--listen", "127.0.0.1:0", "--data-dir", dataDir];
  if (opts.metrics) args.push("--metrics-listen", "127.0.0.1:0");
  const proc = spawn(process.execPath, [...(opts.nodeFlags ?? []), ...args, ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise((resolve) => proc.on("exit", resolve));
  const name = opts.name ? `ckptd ${opts.name}` : "ckptd";
  const readyMs = opts.readyMs ?? 30_000;
  let out = "";
  const [address, metricsAddress] = await new Promise<[string, string]>((resolve, reject) => {
    const onData = (b: Buffer) => {
      out += b.toString();
      const a = /ckptd listening on (\S+?)"/.exec(out) ?? /ckptd listening on (\S+)/.exec(out);
      const m = opts.metrics ? /metrics on http:\/\/([^/\s"]+)\/metrics/.exec(out) : undefined;
      if (a?.[1] && (!opts.metrics || m?.[1])) resolve([a[1], m?.[1] ?? ""]);
    };
    proc.stdout.on("data", onData);
    proc.stderr.on("data", onData);
    void exited.then((code) => reject(new Error(`${name} exited (${String(code)}) before it was ready:\n${out.slice(-4000)}`)));
    setTimeout(() => reject(new Error(`${name} not ready after ${readyMs / 1000} s:\n${out.slice(-4000)}`)), readyMs).unref();
  });
  proc.stdout.removeAllListeners("data");
  proc.stderr.removeAllListeners("data");
  proc.stdout.resume();
  proc.stderr.resume();
  const stop = () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
    return exited;
  };
  return { address, metricsAddress, proc, exited, stop };
}
