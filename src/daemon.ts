/**
 * The daemon's lifecycle: starting → recovering → running → draining → stopped.
 * Health reports NOT_SERVING until recovery is done and again while draining.
 */
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import type { Logger } from "pino";
import { loadWire, MAX_MESSAGE_BYTES } from "../clients/ts/src/wire.js";
import { Catalog } from "./catalog.js";
import { CommitCoordinator } from "./coordinator.js";
import { adminServiceHandlers } from "./admin-server.js";
import { evaluationServiceHandlers, retentionServiceHandlers } from "./evaluation-server.js";
import { Evaluations } from "./evaluations.js";
import { EventLog } from "./events.js";
import { CheckpointLoader } from "./loader.js";
import { Retention } from "./retention.js";
import type { DaemonOptions } from "./options.js";
import { checkpointServiceHandlers } from "./server.js";
import { DataDir } from "./storage.js";

export type DaemonState = "starting" | "recovering" | "running" | "draining" | "stopped";

const SERVICE_NAME = "ckptd.v1.CheckpointService";

export class Daemon {
  state: DaemonState = "starting";
  readonly dataDir: DataDir;
  readonly catalog: Catalog;
  readonly coordinator: CommitCoordinator;
  readonly events: EventLog;
  readonly evaluations: Evaluations;
  readonly retention: Retention;
  private readonly server: grpc.Server;
  private readonly health = new HealthImplementation({ "": "NOT_SERVING", [SERVICE_NAME]: "NOT_SERVING" });
  private boundAddress = "";
  private readonly shutdown = new AbortController();

  constructor(
    private readonly options: DaemonOptions,
    private readonly log: Logger,
  ) {
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
    );
    this.coordinator = new CommitCoordinator(
      this.dataDir,
      this.catalog,
      {
        prepareTimeoutMs: options.prepareTimeoutMs,
        fault: options.fault,
        onCommitted: async (checkpoint) => {
          await this.events.append(checkpoint.job, "COMMITTED", checkpoint, "");
          void this.retention.gc(checkpoint.job);
        },
      },
      log,
    );
    this.server = new grpc.Server({
      "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
      "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
      // Detect trainers that vanished without closing their connection.
      "grpc.keepalive_time_ms": 60_000,
      "grpc.keepalive_timeout_ms": 20_000,
    });
  }

  get address(): string {
    return this.boundAddress;
  }

  /** Locks the data dir, recovers, then serves. Throws (with a clear message) if it cannot. */
  async start(): Promise<string> {
    this.dataDir.lock();
    this.state = "recovering";
    const { definition, grpcObject } = loadWire();
    const loader = new CheckpointLoader(this.dataDir, this.catalog);
    this.server.addService(
      grpcObject.ckptd.v1.CheckpointService.service,
      checkpointServiceHandlers({
        dataDir: this.dataDir,
        catalog: this.catalog,
        coordinator: this.coordinator,
        loader,
        retention: this.retention,
        log: this.log,
        acceptingSaves: () => this.state === "running",
      }),
    );
    const evaluationDeps = {
      catalog: this.catalog,
      events: this.events,
      evaluations: this.evaluations,
      retention: this.retention,
      log: this.log,
      shutdown: this.shutdown.signal,
    };
    this.server.addService(grpcObject.ckptd.v1.EvaluationService.service, evaluationServiceHandlers(evaluationDeps));
    this.server.addService(grpcObject.ckptd.v1.RetentionService.service, retentionServiceHandlers(evaluationDeps));
    this.server.addService(
      grpcObject.ckptd.v1.AdminService.service,
      adminServiceHandlers({
        catalog: this.catalog,
        coordinator: this.coordinator,
        events: this.events,
        loader,
        dataDir: this.dataDir.root,
        startTime: new Date(),
        state: () => this.state,
        address: () => this.boundAddress,
      }),
    );
    this.health.addToServer(this.server);
    new ReflectionService(definition).addToServer(this.server);

    const orphans = await this.catalog.load();
    const recovered = await this.coordinator.recover();
    await this.events.load(this.catalog);
    await this.evaluations.load();
    await this.retention.load();
    for (const dir of orphans) this.log.warn({ dir }, "a checkpoint directory without a manifest was found; it is ignored");
    this.log.info(
      { dataDir: this.dataDir.root, committed: this.catalog.jobsWithCheckpoints().reduce((n, j) => n + this.catalog.list(j).length, 0), ...recovered },
      "recovery done",
    );

    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(this.options.listen, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const host = this.options.listen.slice(0, this.options.listen.lastIndexOf(":"));
    this.boundAddress = `${host}:${port}`;
    this.coordinator.start();
    this.retention.start(this.options.gcIntervalMs);
    this.state = "running";
    this.health.setStatus("", "SERVING");
    this.health.setStatus(SERVICE_NAME, "SERVING");
    return this.boundAddress;
  }

  /** Stops taking new saves, lets in-flight calls finish within the grace period, then stops. */
  async drain(graceMs: number): Promise<void> {
    if (this.state === "draining" || this.state === "stopped") return;
    this.state = "draining";
    this.health.setStatus("", "NOT_SERVING");
    this.health.setStatus(SERVICE_NAME, "NOT_SERVING");
    this.log.info({ graceMs }, "draining: new saves are refused, in-flight calls may finish");
    this.shutdown.abort();
    const graceful = new Promise<boolean>((resolve) => this.server.tryShutdown(() => resolve(true)));
    const timeout = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), graceMs).unref());
    if (!(await Promise.race([graceful, timeout]))) {
      this.log.warn("grace period over: cancelling the calls still in flight");
      this.server.forceShutdown();
    }
    this.stop();
  }

  /** Stops at once; recovery at the next start handles whatever was in flight. */
  stop(): void {
    if (this.state === "stopped") return;
    this.server.forceShutdown();
    this.coordinator.stop();
    this.retention.stop();
    this.dataDir.unlock();
    this.state = "stopped";
  }
}
