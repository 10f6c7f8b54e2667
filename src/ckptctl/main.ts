/**
 * `ckptctl`: the operator's command line of ckptd. Parses the command line (commander),
 * runs one command against the daemon, and turns any failure into one line on stderr
 * and an exit code: 0 done, 1 failed, 2 `verify` found damage.
 */
import { Command, InvalidArgumentError, Option } from "commander";
import * as commands from "./commands.js";
import { Connection, type ConnectionOptions } from "./connection.js";
import { describeFailure, EXIT_FAILURE, type FailureContext } from "./failure.js";
import { VERSION } from "../common/version.js";

interface GlobalOptions {
  address: string;
  json?: boolean;
  token?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsServerName?: string;
  timeout?: number;
}

function count(name: string, min = 0): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`${name} must be ${min === 0 ? "a non-negative" : "a positive"} integer.`);
    }
    return n;
  };
}

function positiveSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("the timeout must be a positive number of seconds.");
  return n;
}

/** What one invocation learns as it runs: its exit code, and the connection a failure happened on (for its hint). */
export interface Invocation {
  exitCode: number;
  failureContext: FailureContext;
}

/** Runs one command with a connection built from the global options; sets the invocation's exit code. */
async function withConnection(invocation: Invocation, cmd: Command, run: (ctx: commands.Context) => Promise<number | void>): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const options: ConnectionOptions = { address: g.address };
  if (g.token) options.token = g.token;
  if (g.tlsCa) options.tlsCa = g.tlsCa;
  if (g.tlsCert) options.tlsCert = g.tlsCert;
  if (g.tlsKey) options.tlsKey = g.tlsKey;
  if (g.tlsServerName) options.tlsServerName = g.tlsServerName;
  if (g.timeout !== undefined) options.timeoutSeconds = g.timeout;
  invocation.failureContext = { address: g.address, hasToken: Boolean(g.token) };
  const conn = new Connection(options);
  try {
    invocation.exitCode = (await run({ conn, json: Boolean(g.json) })) ?? 0;
  } finally {
    conn.close();
  }
}

export function buildProgram(invocation: Invocation): Command {
  const program = new Command("ckptctl");
  program
    .description("Inspect and operate a ckptd checkpoint daemon: status, jobs, checkpoints, verification, export, retention.")
    .version(VERSION, "-V, --version")
    .addOption(new Option("--address <host:port>", "the daemon's address").env("CKPTD_ADDRESS").default("127.0.0.1:7070"))
    .option("--json", "machine output: one JSON document (watch: one JSON object per line)")
    .addOption(new Option("--token <token>", "bearer token, sent as 'authorization: Bearer <token>'").env("CKPTD_TOKEN"))
    .option("--tls-ca <file>", "PEM CA certificate of the daemon; turns TLS on")
    .option("--tls-cert <file>", "PEM client certificate for mTLS (with --tls-key)")
    .option("--tls-key <file>", "PEM private key of --tls-cert")
    .option("--tls-server-name <name>", "name to check the daemon's certificate against, when not the address's host")
    .option("--timeout <seconds>", "deadline of each call (not of watch)", positiveSeconds)
    .configureOutput({ outputError: (str, write) => write(`ckptctl: ${str.replace(/^error: /, "")}`) })
    .showHelpAfterError("(add --help for usage)")
    .addHelpText(
      "after",
      `
Exit codes: 0 done, 1 failed (a daemon status is printed as "ckptctl: CODE: details"), 2 verify found damage.

Examples:
  ckptctl status
  ckptctl list pretrain --limit 10
  ckptctl show pretrain latest
  ckptctl verify pretrain global_step1000
  ckptctl export pretrain global_step1000 --out /tmp/step1000 --rank 0 --item model
  ckptctl --json list pretrain | jq -r '.checkpoints[].checkpointId'`,
    );

  program
    .command("status")
    .description("the daemon's state, version, data directory and load, and its gRPC health; fails unless SERVING")
    .action((_opts, cmd: Command) => withConnection(invocation, cmd, (ctx) => commands.status(ctx)));

  program
    .command("quarantine")
    .description("checkpoint directories set aside at start (manifest missing, unparsable or invalid): where, when and why")
    .action((_opts, cmd: Command) => withConnection(invocation, cmd, (ctx) => commands.quarantine(ctx)));

  program
    .command("jobs")
    .description("the jobs with committed checkpoints")
    .action((_opts, cmd: Command) => withConnection(invocation, cmd, (ctx) => commands.jobs(ctx)));

  program
    .command("list")
    .description("a job's committed checkpoints, newest step first")
    .argument("<job>", "the job")
    .option("--limit <n>", "at most this many checkpoints", count("--limit", 1))
    .action((job: string, opts: { limit?: number }, cmd: Command) =>
      withConnection(invocation, cmd, (ctx) => commands.list(ctx, job, opts.limit)),
    );

  program
    .command("show")
    .description("a checkpoint's manifest: per rank its items, and per item its entries (key, dtype, shape, device, sizes, chunks)")
    .argument("<job>", "the job")
    .argument("[checkpoint]", "the checkpoint's id", "latest")
    .action((job: string, checkpoint: string, _opts, cmd: Command) =>
      withConnection(invocation, cmd, (ctx) => commands.show(ctx, job, checkpoint)),
    );

  program
    .command("verify")
    .description("read every stored chunk of a checkpoint and check its checksum; exit code 2 and a report of each damaged chunk if any")
    .argument("<job>", "the job")
    .argument("[checkpoint]", "the checkpoint's id", "latest")
    .action((job: string, checkpoint: string, _opts, cmd: Command) =>
      withConnection(invocation, cmd, (ctx) => commands.verify(ctx, job, checkpoint)),
    );

  program
    .command("export")
    .description(
      "write each entry's raw bytes to DIR/rank-NNNNN/<item>/<key>.bin (tensors) or .obj (objects), and DIR/index.json describing them",
    )
    .argument("<job>", "the job")
    .argument("[checkpoint]", "the checkpoint's id", "latest")
    .requiredOption("--out <dir>", "the directory to write to (created if missing; files in it are overwritten)")
    .option("--rank <r>", "only this rank's shard (default: every rank)", count("--rank"))
    .option("--item <name>", "only this item (default: every item)")
    .action((job: string, checkpoint: string, opts: { out: string; rank?: number; item?: string }, cmd: Command) =>
      withConnection(invocation, cmd, (ctx) => {
        const req: Parameters<typeof commands.exportCommand>[1] = { job, checkpointId: checkpoint, out: opts.out };
        if (opts.rank !== undefined) req.rank = opts.rank;
        if (opts.item !== undefined) req.item = opts.item;
        return commands.exportCommand(ctx, req);
      }),
    );

  program
    .command("delete")
    .description("delete a committed checkpoint (asks first on a terminal)")
    .argument("<job>", "the job")
    .argument("<checkpoint>", "the checkpoint's id")
    .option("-y, --yes", "do not ask; needed when there is no terminal to ask on")
    .action((job: string, checkpoint: string, opts: { yes?: boolean }, cmd: Command) =>
      withConnection(invocation, cmd, (ctx) => commands.deleteCommand(ctx, job, checkpoint, Boolean(opts.yes))),
    );

  program
    .command("watch")
    .description("follow a job's commits and deletions, one line per event (with --json one JSON object per line), until Ctrl-C")
    .argument("<job>", "the job")
    .addOption(
      new Option("--after-sequence <n>", "resume after this event sequence number")
        .argParser(count("--after-sequence"))
        .conflicts(["fromStep", "fromNow"]),
    )
    .addOption(
      new Option("--from-step <s>", "start at the first event about a step >= S").argParser(count("--from-step")).conflicts(["fromNow"]),
    )
    .option("--from-now", "only events from now on (default: replay the job's whole event log first)")
    .action((job: string, opts: { afterSequence?: number; fromStep?: number; fromNow?: boolean }, cmd: Command) =>
      withConnection(invocation, cmd, (ctx) => {
        const start: commands.WatchStart =
          opts.afterSequence !== undefined
            ? { afterSequence: opts.afterSequence }
            : opts.fromStep !== undefined
              ? { fromStep: opts.fromStep }
              : opts.fromNow
                ? { fromNow: true }
                : {};
        return commands.watch(ctx, job, start);
      }),
    );

  program
    .command("retention")
    .description("show a job's retention policy, or change the rules given (the others keep their value; 0 turns a rule off)")
    .argument("<job>", "the job")
    .option("--keep-last <n>", "keep the N checkpoints with the highest steps", count("--keep-last"))
    .option("--keep-every-steps <k>", "keep every checkpoint whose step is a multiple of K", count("--keep-every-steps"))
    .option("--keep-best <m>", "keep the M checkpoints with the best --best-metric", count("--keep-best"))
    .option("--best-metric <name>", "the evaluators' metric --keep-best ranks by, e.g. loss")
    .addOption(new Option("--best-mode <mode>", "whether a smaller or a larger metric is better").choices(["min", "max"]))
    .action((job: string, opts: commands.RetentionFlags, cmd: Command) =>
      withConnection(invocation, cmd, (ctx) => commands.retention(ctx, job, opts)),
    );

  program
    .command("pin")
    .description("pin a checkpoint: retention never deletes it")
    .argument("<job>", "the job")
    .argument("<checkpoint>", "the checkpoint's id")
    .action((job: string, checkpoint: string, _opts, cmd: Command) =>
      withConnection(invocation, cmd, (ctx) => commands.pin(ctx, job, checkpoint, true)),
    );

  program
    .command("unpin")
    .description("unpin a checkpoint: retention may delete it again")
    .argument("<job>", "the job")
    .argument("<checkpoint>", "the checkpoint's id")
    .action((job: string, checkpoint: string, _opts, cmd: Command) =>
      withConnection(invocation, cmd, (ctx) => commands.pin(ctx, job, checkpoint, false)),
    );

  return program;
}

/**
 * grpc-js passes the target host as the TLS server name, and Node warns (DEP0123) when that
 * host is an IP address, as in the default 127.0.0.1:7070. The certificate is still checked
 * against the IP, so the warning is noise on a command's stderr; every other warning stays.
 */
function silenceIpServerNameWarning(): void {
  const defaults = process.listeners("warning");
  process.removeAllListeners("warning");
  process.on("warning", (warning: Error & { code?: string }) => {
    if (warning.code === "DEP0123") return;
    for (const listener of defaults) listener(warning);
  });
}

async function main(): Promise<void> {
  silenceIpServerNameWarning();
  const invocation: Invocation = { exitCode: 0, failureContext: { address: "", hasToken: false } };
  // `ckptctl ... | head` closes stdout early: that is the reader's choice, not a failure.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(invocation.exitCode);
    throw err;
  });
  try {
    await buildProgram(invocation).parseAsync(process.argv);
  } catch (err) {
    const { message, exitCode: code } = describeFailure(err, invocation.failureContext);
    process.stderr.write(`ckptctl: ${message}\n`);
    invocation.exitCode = code || EXIT_FAILURE;
  }
  // Exit explicitly: a channel still connecting must not keep a finished command alive.
  process.stdout.write("", () => process.exit(invocation.exitCode));
}

void main();
