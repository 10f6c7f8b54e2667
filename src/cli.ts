/**
 * `ckptd` entry point: parse options, start the daemon, handle signals.
 * SIGTERM/SIGINT drain (in-flight saves and commits finish); a second one stops at once.
 */
import "./daemon/threadpool.js";
import { pino, type Logger } from "pino";
import { Daemon } from "./daemon/daemon.js";
import { CkptdError } from "./common/errors.js";
import { parseOptions, type DaemonOptions } from "./daemon/options.js";

function makeLogger(o: DaemonOptions): Logger {
  if (o.logFormat === "pretty")
    return pino({ level: o.logLevel, base: { service: "ckptd" }, transport: { target: "pino-pretty", options: { destination: 1 } } });
  return pino({ level: o.logLevel, base: { service: "ckptd" } }, pino.destination({ dest: 1, sync: true }));
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const log = makeLogger(options);
  let daemon: Daemon;
  try {
    daemon = new Daemon(options, log);
  } catch (err) {
    // A data directory it cannot use: one line that says what to fix, not a stack trace.
    fail(log, err);
  }
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn({ signal: sig }, "second signal: stopping now");
      daemon.stop();
      process.exit(1);
    }
    log.info({ signal: sig }, "shutting down");
    void daemon.drain(options.shutdownGraceMs).then(() => {
      log.info("stopped");
      process.exit(0);
    });
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    const address = await daemon.start();
    log.info({ address, dataDir: daemon.dataDir.root }, `ckptd listening on ${address}`);
  } catch (err) {
    daemon.stop();
    fail(log, err);
  }
}

function fail(log: Logger, err: unknown): never {
  const msg = err instanceof CkptdError || !(err instanceof Error) ? String((err as Error).message ?? err) : err.message;
  log.fatal({ err }, `ckptd could not start: ${msg}`);
  process.stderr.write(`ckptd: ${msg}\n`);
  process.exit(1);
}

void main();
