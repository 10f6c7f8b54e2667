/**
 * The daemon's lifecycle: starting → recovering → running → draining → stopped.
 * Health reports NOT_SERVING until recovery is done and again while draining.
 */
import * as fs from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import type { Logger } from "pino";
import { loadWire, MAX_MESSAGE_BYTES } from "../clients/ts/src/wire.js";
import { adminServiceHandlers } from "./admin-server.js";
import { loadTokens, OPEN, type Authorizer } from "./auth.js";
import { Catalog } from "./catalog.js";
import { CommitCoordinator } from "./coordinator.js";
import { evaluationServiceHandlers, retentionServiceHandlers } from "./evaluation-server.js";
import { Evaluations } from "./evaluations.js";
import { EventLog } from "./events.js";
import { CheckpointLoader } from "./loader.js";
import { raiseConnectionWindow, raiseStreamWindow } from "./http2-window.js";
import { Metrics } from "./metrics.js";
import type { DaemonOptions } from "./options.js";
import { Retention } from "./retention.js";
import { checkpointServiceHandlers } from "./server.js";
import { DataDir } from "./storage.js";

/** HTTP/2 windows: a few chunks in flight per stream keep a fast client busy without unbounded buffering. */
const STREAM_WINDOW_BYTES = 8 << 20;
const CONNECTION_WINDOW_BYTES = 32 << 20;

export type DaemonState = "starting" | "recovering" | "running" | "draining" | "stopped";

const SERVICE_NAMES = ["ckptd.v1.CheckpointService", "ckptd.v1.EvaluationService", "ckptd.v1.RetentionService", "ckptd.v1.AdminService"];

export class Daemon {
  state: DaemonState = "starting";
  readonly dataDir: DataDir;
  readonly catalog: Catalog;
  readonly coordinator: CommitCoordinator;
  readonly events: EventLog;
  readonly evaluations: Evaluations;
  readonly retention: Retention;
  readonly metrics = new Metrics();
  private readonly auth: Authorizer;
  private readonly server: grpc.Server;
  private readonly health = new HealthImplementation(Object.fromEntries(["", ...SERVICE_NAMES].map((s) => [s, "NOT_SERVING" as const])));
  private readonly shutdown = new AbortController();
  private readonly activeSaves = { count: 0 };
  private boundAddress = "";
  metricsAddress = "";

  constructor(
    private readonly options: DaemonOptions,
    private readonly log: Logger,
  ) {
    this.auth = options.authTokens ? loadTokens(options.authTokens) : OPEN;
    this.dataDir = new DataDir(options.dataDir);
    this.catalog = new Catalog(this.dataDir);
    this.events = new EventLog(this.dataDir, log);
    this.evaluations = new Evaluations(this.dataDir, this.catalog, options.leaseTtlMs, log);
    this.retention = new Retention(
      this.dataDir,
      this.catalog,
      this.events,
      this.evaluations,
      { keepLast: options.keepLast, keepEverySteps: options.keepEverySteps, keepBest: 0, bestMetric: "", bestMode: "" },
      log,
      this.metrics,
    );
    this.coordinator = new CommitCoordinator(
      this.dataDir,
      this.catalog,
      {
        prepareTimeoutMs: options.prepareTimeoutMs,
        fault: options.fault,
        metrics: this.metrics,
        onCommitted: async (checkpoint) => {
          await this.events.append(checkpoint.job, "COMMITTED", checkpoint, "");
          void this.retention.gc(checkpoint.job);
        },
      },
      log,
    );
    this.metrics.source = () => {
      let rawBytes = 0;
      let storedBytes = 0;
      for (const job of this.catalog.jobsWithCheckpoints())
        for (const c of this.catalog.list(job)) {
          rawBytes += c.rawBytes;
          storedBytes += c.storedBytes;
        }
      return { rawBytes, storedBytes, inFlight: this.coordinator.inFlight(), subscribers: this.events.subscribers };
    };
    this.server = new grpc.Server({
      "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
      "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
      // Detect trainers that vanished without closing their connection.
      "grpc.keepalive_time_ms": 60_000,
      "grpc.keepalive_timeout_ms": 20_000,
    });
    raiseStreamWindow(this.server, STREAM_WINDOW_BYTES, log);
  }

  get address(): string {
    return this.boundAddress;
  }

  /** Locks the data dir, recovers, then serves. Throws (with a clear message) if it cannot. */
  async start(): Promise<string> {
    this.dataDir.lock();
    this.state = "recovering";
    this.addServices();
    const credentials = this.credentials();
    if (this.options.metricsListen) {
      this.metricsAddress = await this.metrics.listen(this.options.metricsListen);
      this.log.info({ address: this.metricsAddress }, `metrics on http://${this.metricsAddress}/metrics`);
    }

    const orphans = await this.catalog.load();
    const recovered = await this.coordinator.recover();
    await this.events.load(this.catalog);
    await this.evaluations.load();
    await this.retention.load();
    for (const dir of orphans) this.log.warn({ dir }, "a checkpoint directory without a manifest was found; it is ignored");
    const committed = this.catalog.jobsWithCheckpoints().reduce((n, j) => n + this.catalog.list(j).length, 0);
    this.log.info({ dataDir: this.dataDir.root, committed, ...recovered }, "recovery done");

    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(this.options.listen, credentials, (err, p) => (err ? reject(err) : resolve(p))),
    );
    raiseConnectionWindow(this.server, CONNECTION_WINDOW_BYTES, this.log);
    const host = this.options.listen.slice(0, this.options.listen.lastIndexOf(":"));
    this.boundAddress = `${host}:${port}`;
    this.coordinator.start();
    this.retention.start(this.options.gcIntervalMs);
    this.state = "running";
    for (const s of ["", ...SERVICE_NAMES]) this.health.setStatus(s, "SERVING");
    return this.boundAddress;
  }

  private addServices(): void {
    const { definition, grpcObject } = loadWire();
    const v1 = grpcObject.ckptd.v1;
    const loader = new CheckpointLoader(this.dataDir, this.catalog);
    this.server.addService(
      v1.CheckpointService.service,
      checkpointServiceHandlers({
        dataDir: this.dataDir,
        catalog: this.catalog,
        coordinator: this.coordinator,
        loader,
        retention: this.retention,
        log: this.log,
        auth: this.auth,
        metrics: this.metrics,
        acceptingSaves: () => this.state === "running",
        activeSaves: this.activeSaves,
      }),
    );
    const evaluationDeps = {
      catalog: this.catalog,
      events: this.events,
      evaluations: this.evaluations,
      retention: this.retention,
      log: this.log,
      auth: this.auth,
      shutdown: this.shutdown.signal,
    };
    this.server.addService(v1.EvaluationService.service, evaluationServiceHandlers(evaluationDeps));
    this.server.addService(v1.RetentionService.service, retentionServiceHandlers(evaluationDeps));
    this.server.addService(
      v1.AdminService.service,
      adminServiceHandlers({
        catalog: this.catalog,
        coordinator: this.coordinator,
        events: this.events,
        loader,
        dataDir: this.dataDir.root,
        startTime: new Date(),
        state: () => this.state,
        address: () => this.boundAddress,
        auth: this.auth,
      }),
    );
    this.health.addToServer(this.server);
    new ReflectionService(definition).addToServer(this.server);
  }

  private credentials(): grpc.ServerCredentials {
    const { tlsCert, tlsKey, tlsCa } = this.options;
    if (!tlsCert) return grpc.ServerCredentials.createInsecure();
    return grpc.ServerCredentials.createSsl(
      tlsCa ? fs.readFileSync(tlsCa) : null,
      [{ cert_chain: fs.readFileSync(tlsCert), private_key: fs.readFileSync(tlsKey) }],
      Boolean(tlsCa),
    );
  }

  /**
   * Drains: health goes NOT_SERVING and new saves get UNAVAILABLE, while saves in
   * flight finish and the checkpoints they belong to are decided (their Commits
   * still get through), within the grace period. Then the server stops.
   */
  async drain(graceMs: number): Promise<void> {
    if (this.state === "draining" || this.state === "stopped") return;
    this.state = "draining";
    for (const s of ["", ...SERVICE_NAMES]) this.health.setStatus(s, "NOT_SERVING");
    this.shutdown.abort();
    this.log.info({ graceMs, savesInFlight: this.activeSaves.count, checkpointsInFlight: this.coordinator.inFlight() }, "draining: new saves are refused, in-flight saves and commits may finish");
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && (this.activeSaves.count > 0 || this.coordinator.hasUndecidedWork()))
      await new Promise((r) => setTimeout(r, 50));
    const left = Math.max(0, deadline - Date.now());
    const graceful = new Promise<boolean>((resolve) => this.server.tryShutdown(() => resolve(true)));
    const timeout = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), left).unref());
    if (!(await Promise.race([graceful, timeout]))) {
      this.log.warn({ savesInFlight: this.activeSaves.count }, "grace period over: cancelling the calls still in flight");
    }
    this.stop();
  }

  /** Stops at once; recovery at the next start handles whatever was in flight. */
  stop(): void {
    if (this.state === "stopped") return;
    this.server.forceShutdown();
    this.coordinator.stop();
    this.retention.stop();
    this.metrics.close();
    this.dataDir.unlock();
    this.state = "stopped";
  }
}
