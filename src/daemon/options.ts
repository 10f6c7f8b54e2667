/**
 * Daemon options: every tunable in one place, with its default, its flag, its
 * CKPTD_* environment variable and its key in the optional JSON config file,
 * compiled once into a validated, normalised object.
 *
 * Precedence: flag > environment > config file > default.
 */
import * as fs from "node:fs";
import { Command, InvalidArgumentError, Option } from "commander";
import { loadPeerToken, loadTokens, OPEN, type Authorizer } from "../rpc/auth.js";
import { MiB } from "../../wire/index.js";
import type { PeerSpec } from "../commit/cluster.js";
import { checkName, MAX_WORLD_SIZE } from "../common/names.js";
import { DEFAULT_MAX_WORLD_SIZE } from "../common/limits.js";
import { VERSION } from "../common/version.js";

/** What the flags, the environment and the config file give, as commander parses them. */
export interface DaemonFlags {
  /** host:port to listen on; port 0 picks a free port. @default "127.0.0.1:7070" */
  listen: string;
  /** The data directory (staging, decisions, committed checkpoints). @default "./ckptd-data" */
  dataDir: string;
  /** Where checkpoints live instead of --data-dir: "s3://BUCKET/PREFIX" (an S3-compatible object store); "" is --data-dir. @default "" */
  storage: string;
  /** The object store's endpoint URL (e.g. http://127.0.0.1:7480); "" is AWS's endpoint for the region. @default "" */
  s3Endpoint: string;
  /** The object store's region; "" takes AWS_REGION / AWS_DEFAULT_REGION. @default "" */
  s3Region: string;
  /** Address the bucket in the URL path, not as a host name (always so with --s3-endpoint). @default false */
  s3PathStyle: boolean;
  /** An undecided checkpoint with no activity for this long is aborted. @default 300000 */
  prepareTimeoutMs: number;
  /** How long SIGTERM waits for in-flight saves and commits before stopping. @default 30000 */
  shutdownGraceMs: number;
  /** An evaluator sent a checkpoint keeps it from retention this long unless it reports. @default 600000 */
  leaseTtlMs: number;
  /** Retention runs on this timer (and after each commit and report). @default 30000 */
  gcIntervalMs: number;
  /** Default retention: keep the last N checkpoints of each job; 0 keeps all. @default 0 */
  keepLast: number;
  /** Default retention: also keep every checkpoint whose step is a multiple of K; 0 is off. @default 0 */
  keepEverySteps: number;
  /** MiB of buffers the save path may hold across every stream; beyond it, streams wait. @default 256 */
  memoryBudgetMib: number;
  /** Pooled write buffers one Save stream may hold at once (enough to keep the disk busy). @default 4 */
  streamWriteBuffers: number;
  /** Percentage of the save path's buffers one job's streams may hold at once. @default 50 */
  jobMemorySharePercent: number;
  /** A Save or Load stream whose client makes no step (sends, reads) for this long is ended. @default 60000 */
  streamIdleTimeoutMs: number;
  /** MiB of read buffers and queued messages all Load streams may hold (read-ahead shrinks beyond it). @default 96 */
  loadBudgetMib: number;
  /** Load and LoadShared streams one job may have open at once; more get RESOURCE_EXHAUSTED. @default 16 */
  maxLoadsPerJob: number;
  /** Write large entry files with O_DIRECT ("on"), or through the page cache ("off"). @default "on" */
  directIo: "on" | "off";
  /** Directory where local clients may hand over bytes in shared memory (SaveShared); "" turns it off. @default "/dev/shm" */
  sharedMemoryDir: string;
  /** Largest world_size a Save or Commit may name (bounds what one request makes the daemon track). @default 65536 */
  maxWorldSize: number;
  /** host:port of the Prometheus /metrics endpoint; "" disables it. @default "" */
  metricsListen: string;
  /** PEM server certificate; with tlsKey, serves TLS. */
  tlsCert: string;
  /** PEM private key of tlsCert. */
  tlsKey: string;
  /** PEM CA bundle; when set, clients must present a certificate it signed (mTLS). */
  tlsCa: string;
  /** JSON file {"admin": "...", "jobs": {"job": "token"}}; when set, every call needs a bearer token. */
  authTokens: string;
  /** This daemon's node id in a multi-node job; "" runs a single-node daemon. @default "" */
  nodeId: string;
  /** The job's daemons, "id[=host:port],…" (same list on every node; the lowest id coordinates). @default "" */
  peers: string;
  /** File holding the token the daemons of a multi-node job present to each other's PeerService. @default "" */
  peerTokenFile: string;
  /** Multi-node without a peer token: anyone who reaches the port may call PeerService (trusted test setups only). @default false */
  insecurePeers: boolean;
  /** Log level. @default "info" */
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace";
  /** "json" for machines, "pretty" for a terminal. @default "json" */
  logFormat: "json" | "pretty";
}

/**
 * The daemon's options, normalised: sizes in bytes, switches as booleans, the peer list parsed, the token files
 * read. The daemon takes these as they are: it parses nothing and converts no units.
 */
export interface DaemonOptions extends Omit<
  DaemonFlags,
  "memoryBudgetMib" | "loadBudgetMib" | "directIo" | "peers" | "peerTokenFile" | "storage" | "s3Endpoint" | "s3Region" | "s3PathStyle"
> {
  /** --storage s3://… with its --s3-* flags; undefined keeps checkpoints in --data-dir. */
  objectStore: ObjectStoreOptions | undefined;
  /** memoryBudgetMib in bytes. */
  memoryBudgetBytes: number;
  /** loadBudgetMib in bytes. */
  loadBudgetBytes: number;
  /** --direct-io on. */
  directIo: boolean;
  /** --peers, parsed (empty for a single-node daemon). */
  peers: PeerSpec[];
  /** The token of --peer-token-file; undefined without one (single node, or --insecure-peers). */
  peerToken: string | undefined;
  /** Who may call what: the tokens of --auth-tokens, or every call allowed without the flag. */
  auth: Authorizer;
  /** The PEM files of --tls-cert, --tls-key and --tls-ca, read; undefined serves plaintext. */
  tls: TlsFiles | undefined;
  /** Test-only fault point (CKPTD_FAULT). */
  fault: "crash-after-decision" | undefined;
}

/** Where an S3-compatible object store keeps the checkpoints (--storage s3://BUCKET/PREFIX and the --s3-* flags). */
export interface ObjectStoreOptions {
  bucket: string;
  /** The key prefix every object lies under ("" for the bucket's top). */
  prefix: string;
  endpoint: string | undefined;
  region: string | undefined;
  /** Path-style addressing; undefined leaves it to the client (path style with an endpoint). */
  forcePathStyle: boolean | undefined;
}

/** Parses "s3://BUCKET[/PREFIX]"; throws one clear line. */
export function parseStorageUrl(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
  if (!m) throw new Error("expected s3://BUCKET/PREFIX (or nothing, for --data-dir)");
  const bucket = m[1]!;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket))
    throw new Error(`bucket '${bucket}' is not a valid bucket name (3-63 lowercase letters, digits, '.' and '-')`);
  const prefix = (m[2] ?? "").replace(/\/+$/, "");
  if (prefix.split("/").some((p) => p === "" || p === "." || p === "..") && prefix !== "")
    throw new Error(`prefix '${prefix}' has an empty, '.' or '..' part`);
  return { bucket, prefix };
}

/** The TLS material, read once at start: the daemon serves with it and presents it to its peers. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  /** With a CA, clients must present a certificate it signed (mTLS), and peers' certificates are checked against it. */
  ca: Buffer | undefined;
}

/** Parses "n1=host:port,n2,n3" (addresses optional); throws one clear line. */
export function parsePeers(spec: string): PeerSpec[] {
  const peers = spec
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => {
      const [id, address] = p.split("=", 2) as [string, string | undefined];
      checkName("peer node id", id);
      return address ? { id, address } : { id };
    });
  if (new Set(peers.map((p) => p.id)).size !== peers.length) throw new Error(`--peers names a node twice: ${spec}`);
  return peers;
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

function percent(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1 || n > 100)
      throw new InvalidArgumentError(`${name} must be an integer from 1 to 100, got '${v}'`);
    return n;
  };
}

function hostPort(v: string): string {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
  if (!m || Number(m[2]) > 65535) throw new InvalidArgumentError(`expected HOST:PORT (e.g. 127.0.0.1:7070), got '${v}'`);
  return v;
}

function optionalHostPort(v: string): string {
  return v === "" ? v : hostPort(v);
}

function readableFile(v: string): string {
  if (v === "") return v;
  try {
    fs.accessSync(v, fs.constants.R_OK);
  } catch {
    throw new InvalidArgumentError(`cannot read file '${v}'`);
  }
  return v;
}

/** The command-line definition; also the source of `--help`. */
export function daemonCommand(): Command {
  const opt = (flags: string, help: string, env: string) => new Option(flags, help).env(env);
  return new Command("ckptd")
    .description(
      "ckptd: per-node checkpoint daemon for distributed training. Trainer ranks stream " +
        "state-dict shards over gRPC; ckptd compresses them with LZ4, stages them durably and " +
        "commits each checkpoint across all ranks with two-phase commit.",
    )
    .addOption(
      opt(
        "--config <file>",
        'JSON config file; its keys are the long option names in camelCase (e.g. "dataDir")',
        "CKPTD_CONFIG",
      ).argParser(readableFile),
    )
    .addOption(
      opt("--listen <host:port>", "address to listen on (port 0 picks a free port)", "CKPTD_LISTEN")
        .default("127.0.0.1:7070")
        .argParser(hostPort),
    )
    .addOption(opt("--data-dir <dir>", "data directory for staging and committed checkpoints", "CKPTD_DATA_DIR").default("./ckptd-data"))
    .addOption(
      opt(
        "--storage <url>",
        "keep checkpoints in an S3-compatible object store at s3://BUCKET/PREFIX instead of --data-dir (credentials: the standard AWS environment and config)",
        "CKPTD_STORAGE",
      ).default(""),
    )
    .addOption(
      opt("--s3-endpoint <url>", "object store endpoint URL (e.g. http://127.0.0.1:7480); empty: AWS", "CKPTD_S3_ENDPOINT").default(""),
    )
    .addOption(opt("--s3-region <region>", "object store region; empty: AWS_REGION", "CKPTD_S3_REGION").default(""))
    .addOption(
      opt(
        "--s3-path-style",
        "address the bucket in the URL path (always so with --s3-endpoint; CKPTD_S3_PATH_STYLE=1)",
        "CKPTD_S3_PATH_STYLE",
      ).default(false),
    )
    .addOption(
      opt("--prepare-timeout-ms <ms>", "abort an undecided checkpoint after this long without activity", "CKPTD_PREPARE_TIMEOUT_MS")
        .default(300_000)
        .argParser(positiveInt("--prepare-timeout-ms")),
    )
    .addOption(
      opt("--shutdown-grace-ms <ms>", "on SIGTERM, wait this long for in-flight saves and commits", "CKPTD_SHUTDOWN_GRACE_MS")
        .default(30_000)
        .argParser(positiveInt("--shutdown-grace-ms")),
    )
    .addOption(
      opt(
        "--lease-ttl-ms <ms>",
        "how long a checkpoint sent to an evaluator is kept from retention while it has not reported",
        "CKPTD_LEASE_TTL_MS",
      )
        .default(600_000)
        .argParser(positiveInt("--lease-ttl-ms")),
    )
    .addOption(
      opt("--gc-interval-ms <ms>", "run retention on this timer (it also runs after every commit and report)", "CKPTD_GC_INTERVAL_MS")
        .default(30_000)
        .argParser(positiveInt("--gc-interval-ms")),
    )
    .addOption(
      opt(
        "--keep-last <n>",
        "default retention: keep each job's last N checkpoints (0 keeps all); SetRetentionPolicy overrides per job",
        "CKPTD_KEEP_LAST",
      )
        .default(0)
        .argParser(nonNegativeInt("--keep-last")),
    )
    .addOption(
      opt(
        "--keep-every-steps <k>",
        "default retention: also keep checkpoints whose step is a multiple of K (0 is off)",
        "CKPTD_KEEP_EVERY_STEPS",
      )
        .default(0)
        .argParser(nonNegativeInt("--keep-every-steps")),
    )
    .addOption(
      opt(
        "--memory-budget-mib <mib>",
        "buffers the save path may hold across all streams; saves beyond it wait (backpressure)",
        "CKPTD_MEMORY_BUDGET_MIB",
      )
        .default(256)
        .argParser(positiveInt("--memory-budget-mib")),
    )
    .addOption(
      opt(
        "--stream-write-buffers <n>",
        "pooled write buffers (4 MiB) one save stream may hold at once; a stream idle between chunks holds none",
        "CKPTD_STREAM_WRITE_BUFFERS",
      )
        .default(4)
        .argParser(positiveInt("--stream-write-buffers")),
    )
    .addOption(
      opt(
        "--job-memory-share-percent <pct>",
        "share of --memory-budget-mib one job's save streams may hold at once (1-100)",
        "CKPTD_JOB_MEMORY_SHARE_PERCENT",
      )
        .default(50)
        .argParser(percent("--job-memory-share-percent")),
    )
    .addOption(
      opt(
        "--stream-idle-timeout-ms <ms>",
        "end a Save stream that sends nothing, or a Load stream whose client reads nothing, for this long (DEADLINE_EXCEEDED)",
        "CKPTD_STREAM_IDLE_TIMEOUT_MS",
      )
        .default(60_000)
        .argParser(positiveInt("--stream-idle-timeout-ms")),
    )
    .addOption(
      opt(
        "--load-budget-mib <mib>",
        "read buffers and queued messages all load streams may hold; beyond it loads read ahead less",
        "CKPTD_LOAD_BUDGET_MIB",
      )
        .default(96)
        .argParser(positiveInt("--load-budget-mib")),
    )
    .addOption(
      opt(
        "--max-loads-per-job <n>",
        "Load and LoadShared calls one job may have open at once; more get RESOURCE_EXHAUSTED",
        "CKPTD_MAX_LOADS_PER_JOB",
      )
        .default(16)
        .argParser(positiveInt("--max-loads-per-job")),
    )
    .addOption(
      opt("--direct-io <on|off>", "write large entry files with O_DIRECT, bypassing the page cache", "CKPTD_DIRECT_IO")
        .default("on")
        .choices(["on", "off"]),
    )
    .addOption(
      opt(
        "--shared-memory-dir <dir>",
        "local clients may pass their bytes in files of this tmpfs directory instead of the gRPC stream (empty: off)",
        "CKPTD_SHARED_MEMORY_DIR",
      ).default("/dev/shm"),
    )
    .addOption(
      opt("--max-world-size <n>", "largest world_size a Save or Commit may name (at most 16777216)", "CKPTD_MAX_WORLD_SIZE")
        .default(DEFAULT_MAX_WORLD_SIZE)
        .argParser((v) => {
          const n = positiveInt("--max-world-size")(v);
          if (n > MAX_WORLD_SIZE) throw new InvalidArgumentError(`--max-world-size must be at most ${MAX_WORLD_SIZE}, got '${v}'`);
          return n;
        }),
    )
    .addOption(
      opt("--metrics-listen <host:port>", "serve Prometheus metrics at http://HOST:PORT/metrics (empty: off)", "CKPTD_METRICS_LISTEN")
        .default("")
        .argParser(optionalHostPort),
    )
    .addOption(
      opt("--tls-cert <file>", "PEM server certificate (TLS on when given with --tls-key)", "CKPTD_TLS_CERT")
        .default("")
        .argParser(readableFile),
    )
    .addOption(opt("--tls-key <file>", "PEM private key of --tls-cert", "CKPTD_TLS_KEY").default("").argParser(readableFile))
    .addOption(
      opt("--tls-ca <file>", "PEM CA bundle; clients must present a certificate signed by it (mTLS)", "CKPTD_TLS_CA")
        .default("")
        .argParser(readableFile),
    )
    .addOption(
      opt(
        "--auth-tokens <file>",
        'JSON {"admin": TOKEN, "jobs": {JOB: TOKEN}}: every call then needs "authorization: Bearer TOKEN"',
        "CKPTD_AUTH_TOKENS",
      )
        .default("")
        .argParser(readableFile),
    )
    .addOption(
      opt(
        "--node-id <id>",
        "this daemon's id in a multi-node job (all nodes share --data-dir on a shared filesystem)",
        "CKPTD_NODE_ID",
      ).default(""),
    )
    .addOption(
      opt(
        "--peers <list>",
        "the multi-node job's daemons, id[=host:port],... (the same list everywhere; the lowest id coordinates)",
        "CKPTD_PEERS",
      ).default(""),
    )
    .addOption(
      opt(
        "--peer-token-file <file>",
        "multi-node: file holding the token (one line, 16+ characters, the same on every node) that daemons present to each other's PeerService",
        "CKPTD_PEER_TOKEN_FILE",
      ).default(""),
    )
    .addOption(
      opt(
        "--insecure-peers",
        "multi-node without --peer-token-file: PeerService accepts any caller (trusted test setups only; CKPTD_INSECURE_PEERS=1)",
        "CKPTD_INSECURE_PEERS",
      ).default(false),
    )
    .addOption(
      opt("--log-level <level>", "log level", "CKPTD_LOG_LEVEL")
        .default("info")
        .choices(["fatal", "error", "warn", "info", "debug", "trace"]),
    )
    .addOption(
      opt("--log-format <format>", "json (one object per line) or pretty (for a terminal)", "CKPTD_LOG_FORMAT")
        .default("json")
        .choices(["json", "pretty"]),
    )
    .version(VERSION, "-V, --version", "print the version and exit")
    .showHelpAfterError()
    .allowExcessArguments(false);
}

/** Parses argv, the environment and the config file; exits with a clear message on invalid input. */
export function parseOptions(argv: string[]): DaemonOptions {
  const program = daemonCommand();
  program.parse(argv, { from: "user" });
  const configFile = program.getOptionValue("config") as string | undefined;
  if (configFile) applyConfigFile(program, configFile);
  const o = program.opts<DaemonFlags & { config?: string }>();
  // Token files are read here, so a bad one is one clear line at start (no usage text: the flag was right).
  const badFile = (message: string): never => {
    program.showHelpAfterError(false);
    return program.error(message);
  };
  let peerToken: string | undefined;
  try {
    peerToken = o.peerTokenFile ? loadPeerToken(o.peerTokenFile) : undefined;
  } catch (err) {
    badFile(`ckptd: --peer-token-file: ${(err as Error).message}`);
  }
  let auth: Authorizer = OPEN;
  try {
    if (o.authTokens) auth = loadTokens(o.authTokens);
  } catch (err) {
    badFile(`ckptd: ${(err as Error).message}`);
  }
  let peers: PeerSpec[] = [];
  try {
    peers = parsePeers(o.peers);
  } catch (err) {
    program.error(`ckptd: --peers '${o.peers}': ${(err as Error).message}`);
  }
  if ((o.tlsCert === "") !== (o.tlsKey === "")) program.error("ckptd: --tls-cert and --tls-key must be given together");
  if (o.tlsCa && !o.tlsCert) program.error("ckptd: --tls-ca (mTLS) needs --tls-cert and --tls-key");
  if ((o.nodeId === "") !== (o.peers === ""))
    program.error("ckptd: --node-id and --peers must be given together (or neither, for a single-node daemon)");
  if (o.nodeId && !/^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/.test(o.nodeId))
    program.error(`ckptd: --node-id '${o.nodeId}' must be letters, digits, '.', '_' or '-'`);
  const insecureEnv = process.env["CKPTD_INSECURE_PEERS"];
  if (program.getOptionValueSource("insecurePeers") === "env" && insecureEnv !== "1" && insecureEnv !== "true")
    program.error(`ckptd: CKPTD_INSECURE_PEERS must be '1' or 'true' when set, got '${insecureEnv}'`);
  if (o.nodeId && !o.peerTokenFile && !o.insecurePeers)
    program.error(
      "ckptd: a multi-node daemon (--node-id) needs --peer-token-file (the same token on every node) so only its peers can call PeerService; --insecure-peers turns this off for trusted test setups",
    );
  if (!o.nodeId && (o.peerTokenFile || o.insecurePeers))
    program.error("ckptd: --peer-token-file and --insecure-peers are for multi-node daemons (--node-id and --peers)");
  if (o.peerTokenFile && o.insecurePeers) program.error("ckptd: give --peer-token-file or --insecure-peers, not both");
  let tls: TlsFiles | undefined;
  try {
    if (o.tlsCert)
      tls = { cert: fs.readFileSync(o.tlsCert), key: fs.readFileSync(o.tlsKey), ca: o.tlsCa ? fs.readFileSync(o.tlsCa) : undefined };
  } catch (err) {
    badFile(`ckptd: cannot read a TLS file: ${(err as Error).message}`);
  }
  let objectStore: ObjectStoreOptions | undefined;
  if (o.storage) {
    try {
      objectStore = {
        ...parseStorageUrl(o.storage),
        endpoint: o.s3Endpoint || undefined,
        region: o.s3Region || undefined,
        forcePathStyle: o.s3PathStyle || undefined,
      };
    } catch (err) {
      program.error(`ckptd: --storage '${o.storage}': ${(err as Error).message}`);
    }
    if (o.s3Endpoint && !/^https?:\/\/[^/\s]+\/?$/.test(o.s3Endpoint))
      program.error(`ckptd: --s3-endpoint '${o.s3Endpoint}' must be an http:// or https:// URL with no path`);
  } else if (o.s3Endpoint || o.s3Region || o.s3PathStyle)
    program.error("ckptd: --s3-endpoint, --s3-region and --s3-path-style need --storage s3://BUCKET/PREFIX");
  const pathStyleEnv = process.env["CKPTD_S3_PATH_STYLE"];
  if (program.getOptionValueSource("s3PathStyle") === "env" && pathStyleEnv !== "1" && pathStyleEnv !== "true")
    program.error(`ckptd: CKPTD_S3_PATH_STYLE must be '1' or 'true' when set, got '${pathStyleEnv}'`);
  const fault = process.env["CKPTD_FAULT"];
  if (fault !== undefined && fault !== "" && fault !== "crash-after-decision")
    program.error(`ckptd: CKPTD_FAULT must be 'crash-after-decision' or unset, got '${fault}'`);
  const {
    config: _config,
    memoryBudgetMib,
    loadBudgetMib,
    directIo,
    peers: _peers,
    peerTokenFile: _peerTokenFile,
    storage: _storage,
    s3Endpoint: _s3Endpoint,
    s3Region: _s3Region,
    s3PathStyle: _s3PathStyle,
    ...rest
  } = o;
  return {
    ...rest,
    objectStore,
    memoryBudgetBytes: memoryBudgetMib * MiB,
    loadBudgetBytes: loadBudgetMib * MiB,
    directIo: directIo === "on",
    peers,
    peerToken,
    auth,
    tls,
    fault: fault ? "crash-after-decision" : undefined,
  };
}

/** Fills every option still at its default from the config file, validated like a flag. */
function applyConfigFile(program: Command, file: string): void {
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch (err) {
    program.error(`ckptd: config file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof config !== "object" || config === null || Array.isArray(config))
    program.error(`ckptd: config file ${file} must hold a JSON object`);
  const byKey = new Map(program.options.map((o) => [o.attributeName(), o]));
  for (const [key, value] of Object.entries(config)) {
    const option = byKey.get(key);
    if (!option || key === "config")
      program.error(
        `ckptd: config file ${file}: unknown key '${key}' (known: ${[...byKey.keys()].filter((k) => k !== "config").join(", ")})`,
      );
    if (program.getOptionValueSource(key) !== "default") continue;
    if (option.isBoolean()) {
      if (typeof value !== "boolean") program.error(`ckptd: config file ${file}: '${key}' must be true or false`);
      program.setOptionValueWithSource(key, value, "config");
      continue;
    }
    const text = String(value);
    let parsed: unknown = text;
    try {
      if (option.argChoices && !option.argChoices.includes(text))
        throw new InvalidArgumentError(`allowed: ${option.argChoices.join(", ")}`);
      if (option.parseArg) parsed = option.parseArg(text, undefined);
    } catch (err) {
      program.error(`ckptd: config file ${file}: '${key}': ${(err as Error).message}`);
    }
    program.setOptionValueWithSource(key, parsed, "config");
  }
}
