/**
 * Daemon options: every tunable in one place, with its default, its flag and its
 * CKPTD_* environment variable, compiled once into a validated, normalised object.
 */
import { Command, InvalidArgumentError, Option } from "commander";

export interface DaemonOptions {
  /** host:port to listen on; port 0 picks a free port. @default "127.0.0.1:7070" */
  listen: string;
  /** The data directory (staging, decisions, committed checkpoints). @default "./ckptd-data" */
  dataDir: string;
  /** An undecided checkpoint with no activity for this long is aborted. @default 300000 */
  prepareTimeoutMs: number;
  /** How long SIGTERM waits for in-flight calls before stopping. @default 30000 */
  shutdownGraceMs: number;
  /** An evaluator sent a checkpoint keeps it from retention this long unless it reports. @default 600000 */
  leaseTtlMs: number;
  /** Retention runs on this timer (and after each commit and report). @default 30000 */
  gcIntervalMs: number;
  /** Default retention: keep the last N checkpoints of each job; 0 keeps all. @default 0 */
  keepLast: number;
  /** Default retention: also keep every checkpoint whose step is a multiple of K; 0 is off. @default 0 */
  keepEverySteps: number;
  /** Log level. @default "info" */
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace";
  /** "json" for machines, "pretty" for a terminal. @default "json" */
  logFormat: "json" | "pretty";
  /** Test-only fault point. */
  fault: "crash-after-decision" | undefined;
}

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got '${v}'`);
    return n;
  };
}

function nonNegativeInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer, got '${v}'`);
    return n;
  };
}

function hostPort(v: string): string {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
  if (!m || Number(m[2]) > 65535) throw new InvalidArgumentError(`expected HOST:PORT (e.g. 127.0.0.1:7070), got '${v}'`);
  return v;
}

/** Parses argv and the environment; exits with a clear message on invalid input. */
export function parseOptions(argv: string[]): DaemonOptions {
  const program = new Command("ckptd")
    .description(
      "ckptd: per-node checkpoint daemon for distributed training. Trainer ranks stream " +
        "state-dict shards over gRPC; ckptd compresses them with LZ4, stages them durably and " +
        "commits each checkpoint across all ranks with two-phase commit.",
    )
    .addOption(new Option("--listen <host:port>", "address to listen on (port 0 picks a free port)").env("CKPTD_LISTEN").default("127.0.0.1:7070").argParser(hostPort))
    .addOption(new Option("--data-dir <dir>", "data directory for staging and committed checkpoints").env("CKPTD_DATA_DIR").default("./ckptd-data"))
    .addOption(
      new Option("--prepare-timeout-ms <ms>", "abort an undecided checkpoint after this long without activity")
        .env("CKPTD_PREPARE_TIMEOUT_MS")
        .default(300_000)
        .argParser(positiveInt("--prepare-timeout-ms")),
    )
    .addOption(
      new Option("--shutdown-grace-ms <ms>", "on SIGTERM, wait this long for in-flight saves and commits")
        .env("CKPTD_SHUTDOWN_GRACE_MS")
        .default(30_000)
        .argParser(positiveInt("--shutdown-grace-ms")),
    )
    .addOption(
      new Option("--lease-ttl-ms <ms>", "how long a checkpoint sent to an evaluator is kept from retention while it has not reported")
        .env("CKPTD_LEASE_TTL_MS")
        .default(600_000)
        .argParser(positiveInt("--lease-ttl-ms")),
    )
    .addOption(
      new Option("--gc-interval-ms <ms>", "run retention on this timer (it also runs after every commit and report)")
        .env("CKPTD_GC_INTERVAL_MS")
        .default(30_000)
        .argParser(positiveInt("--gc-interval-ms")),
    )
    .addOption(
      new Option("--keep-last <n>", "default retention: keep each job's last N checkpoints (0 keeps all); SetRetentionPolicy overrides per job")
        .env("CKPTD_KEEP_LAST")
        .default(0)
        .argParser(nonNegativeInt("--keep-last")),
    )
    .addOption(
      new Option("--keep-every-steps <k>", "default retention: also keep checkpoints whose step is a multiple of K (0 is off)")
        .env("CKPTD_KEEP_EVERY_STEPS")
        .default(0)
        .argParser(nonNegativeInt("--keep-every-steps")),
    )
    .addOption(new Option("--log-level <level>", "log level").env("CKPTD_LOG_LEVEL").default("info").choices(["fatal", "error", "warn", "info", "debug", "trace"]))
    .addOption(new Option("--log-format <format>", "json (one object per line) or pretty (for a terminal)").env("CKPTD_LOG_FORMAT").default("json").choices(["json", "pretty"]))
    .showHelpAfterError()
    .allowExcessArguments(false);
  program.parse(argv, { from: "user" });
  const o = program.opts<Omit<DaemonOptions, "fault">>();
  const fault = process.env["CKPTD_FAULT"];
  if (fault !== undefined && fault !== "" && fault !== "crash-after-decision")
    program.error(`CKPTD_FAULT must be 'crash-after-decision' or unset, got '${fault}'`);
  return { ...o, fault: fault ? "crash-after-decision" : undefined };
}
