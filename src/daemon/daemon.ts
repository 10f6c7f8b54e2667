/**
 * The daemon's lifecycle: starting → recovering → running → draining → stopped.
 * Health reports NOT_SERVING until recovery is done and again while draining.
 */
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import type { Logger } from "pino";
import { loadWire, MAX_MESSAGE_BYTES, MiB } from "../../wire/index.js";
import { adminServiceHandlers } from "../rpc/admin-service.js";
import { peerAuthorizer, type Authorizer, type PeerAuthorizer } from "../rpc/auth.js";
import { ByteBudget } from "../common/byte-budget.js";
import { Catalog } from "../catalog/catalog.js";
import { unavailable } from "../common/errors.js";
import { Cluster } from "../commit/cluster.js";
import { CommitCoordinator } from "../commit/coordinator.js";
import type { CheckpointCoordinator } from "../commit/protocol.js";
import { ParticipantCoordinator } from "../commit/participant.js";
import { peerServiceHandlers } from "../rpc/peer-service.js";
import { fromServiceError } from "../rpc/status.js";
import type { RpcEnv } from "../rpc/handler.js";
import { itemWriterBuffers } from "../save/item-writer.js";
import { sharedReadBuffers } from "../save/save-stream.js";
import { evaluationServiceHandlers, retentionServiceHandlers } from "../rpc/evaluation-service.js";
import { Evaluations } from "../evaluation/evaluations.js";
import { EventLog } from "../catalog/events.js";
import { CheckpointLoader } from "../load/loader.js";
import { raiseConnectionWindow, raiseStreamWindow } from "../rpc/http2-window.js";
import { Metrics } from "../common/metrics.js";
import type { DaemonOptions } from "./options.js";
import { addReflection } from "../rpc/reflection.js";
import { Retention } from "../evaluation/retention.js";
import { checkpointServiceHandlers } from "../rpc/checkpoint-service.js";
import type { StreamGuard } from "../common/stream-guard.js";
import type { DataDir } from "../store/files.js";
import { PosixStorage } from "../store/posix.js";
import { listQuarantine, type Storage } from "../store/storage.js";
import { S3Storage } from "../store/s3/storage.js";
import { openWriteIo, type WriteIo } from "../store/direct-io.js";
import { closeSharedMemoryConfig, openSharedMemoryConfig, SHARED_MEMORY_OFF, type SharedMemoryConfig } from "../store/shared-memory.js";

/** HTTP/2 windows: a few chunks in flight per stream keep a fast client busy without unbounded buffering. */
const STREAM_WINDOW_BYTES = 8 * MiB;
const CONNECTION_WINDOW_BYTES = 32 * MiB;
/** Once a drain has nothing left in flight, how long idle client connections get to close. */
const IDLE_CONNECTION_GRACE_MS = 1_000;

export type DaemonState = "starting" | "recovering" | "running" | "draining" | "stopped";

const SERVICE_NAMES = ["ckptd.v1.CheckpointService", "ckptd.v1.EvaluationService", "ckptd.v1.RetentionService", "ckptd.v1.AdminService"];
/** Served by multi-node daemons only: a single-node daemon has no peers to listen to. */
const PEER_SERVICE = "ckptd.v1.PeerService";
const PEER_PROTO = "ckptd/v1/peer_service.proto";

export class Daemon {
  state: DaemonState = "starting";
  /** Where checkpoints live: the data directory, or the object store of --storage s3://… */
  readonly storage: Storage;
  /** The local data directory: the checkpoints' storage, or with an object store its scratch and local lock. */
  private readonly local: PosixStorage;
  /** Set with --storage s3://… */
  private readonly objectStore: S3Storage | undefined;
  /** The data directory (its root and lock). */
  get dataDir(): DataDir {
    return this.local.dataDir;
  }
  readonly catalog: Catalog;
  /** The commit protocol: the coordinator's, or a participant's relay in a multi-node job. */
  readonly coordinator: CheckpointCoordinator;
  /** Set on the coordinating (or only) node. */
  private readonly commitCoordinator: CommitCoordinator | undefined;
  readonly cluster: Cluster | undefined;
  readonly events: EventLog;
  readonly evaluations: Evaluations;
  readonly retention: Retention;
  readonly metrics = new Metrics();
  private readonly auth: Authorizer;
  /** Who may call PeerService (multi-node only). */
  private readonly peerAuth: PeerAuthorizer | undefined;
  /** The services this daemon serves (health reports each). */
  private readonly serviceNames: string[];
  private readonly server: grpc.Server;
  private readonly health: HealthImplementation;
  private readonly shutdown = new AbortController();
  private readonly activeSaves = { count: 0 };
  private readonly saveGuards = new Set<StreamGuard>();
  /** Where SaveShared clients may put their bytes (set at start). */
  private sharedMemory: SharedMemoryConfig = SHARED_MEMORY_OFF;
  private boundAddress = "";
  metricsAddress = "";

  constructor(
    private readonly options: DaemonOptions,
    private readonly log: Logger,
  ) {
    this.auth = options.auth;
    const multiNode = options.nodeId !== "";
    // options.ts refuses a multi-node daemon with neither a peer token nor --insecure-peers.
    this.peerAuth = multiNode ? peerAuthorizer(options.peerToken, this.auth) : undefined;
    this.serviceNames = multiNode ? [...SERVICE_NAMES, PEER_SERVICE] : SERVICE_NAMES;
    this.health = new HealthImplementation(Object.fromEntries(["", ...this.serviceNames].map((s) => [s, "NOT_SERVING" as const])));
    // One lock per node where several daemons share the storage (a shared directory, one bucket).
    const lockName = multiNode ? `ckptd.${options.nodeId}.lock` : "ckptd.lock";
    this.local = new PosixStorage(options.dataDir, lockName);
    const s3 = options.objectStore;
    this.objectStore = s3
      ? new S3Storage({
          lockName,
          bucket: s3.bucket,
          prefix: s3.prefix,
          endpoint: s3.endpoint,
          region: s3.region,
          forcePathStyle: s3.forcePathStyle,
          // The uploads' part buffers are the save path's memory here (--memory-budget-mib).
          uploadBudget: new ByteBudget(options.memoryBudgetBytes),
        })
      : undefined;
    this.storage = this.objectStore ?? this.local;
    this.cluster = multiNode
      ? new Cluster(options.nodeId, options.peers, this.storage, this.peerCredentials(), this.peerAuth?.token)
      : undefined;
    // Only the coordinating node writes shared state (decisions, manifests, events, deletions).
    const follower = this.cluster !== undefined && !this.cluster.isCoordinator;
    this.catalog = new Catalog(this.storage, multiNode);
    this.events = new EventLog(this.storage, log, follower);
    this.evaluations = new Evaluations(this.storage, this.catalog, options.leaseTtlMs, log);
    this.retention = new Retention(
      this.storage,
      this.catalog,
      this.events,
      this.evaluations,
      { keepLast: options.keepLast, keepEverySteps: options.keepEverySteps, keepBest: 0, bestMetric: "", bestMode: "" },
      log,
      this.metrics,
    );
    if (follower) {
      this.commitCoordinator = undefined;
      this.coordinator = new ParticipantCoordinator(
        this.storage,
        this.cluster!,
        { prepareTimeoutMs: options.prepareTimeoutMs, peerError: fromServiceError },
        log,
      );
    } else {
      this.commitCoordinator = new CommitCoordinator(
        this.storage,
        this.catalog,
        {
          prepareTimeoutMs: options.prepareTimeoutMs,
          maxWorldSize: options.maxWorldSize,
          fault: options.fault,
          metrics: this.metrics,
          onCommitted: async (checkpoint, beforeWake) => {
            await this.events.append(checkpoint.job, "COMMITTED", checkpoint, "", beforeWake);
          },
          onVisible: (checkpoint) => void this.retention.gc(checkpoint.job),
        },
        log,
      );
      this.coordinator = this.commitCoordinator;
    }
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
    this.local.lock();
    const s3 = this.objectStore;
    if (s3) {
      // One line naming the endpoint when the store cannot be reached or used, before anything else.
      await s3.probe();
      s3.lock();
      // A multi-node job's peers upload below the same prefix right now: their uploads are not this
      // daemon's to abort. Its own, left by a crash, go with their attempts (aborted once the
      // coordinator hears this node restarted; freeing an attempt's staging aborts the uploads below it).
      if (!this.cluster) {
        const aborted = await s3.recover();
        if (aborted > 0) this.log.info({ storage: s3.where(""), aborted }, "recovery: aborted incomplete multipart uploads");
      }
    }
    // Data objects of an object store are multipart uploads from their own part buffers: no O_DIRECT pool.
    const io: WriteIo = s3
      ? { pool: undefined, directOffReason: `checkpoints are in the object store ${s3.where("")}`, objects: s3 }
      : openWriteIo(this.local.tmpDir, {
          directIo: this.options.directIo,
          memoryBudgetBytes: this.options.memoryBudgetBytes,
          streamBuffers: this.options.streamWriteBuffers,
          jobSharePercent: this.options.jobMemorySharePercent,
        });
    const shm = openSharedMemoryConfig(this.options.sharedMemoryDir);
    this.sharedMemory = shm.config;
    this.log.info(
      {
        directIo: io.pool !== undefined,
        memoryBudgetBytes: this.options.memoryBudgetBytes,
        ...(io.pool ? {} : { reason: io.directOffReason }),
        sharedMemoryDir: shm.config.dir ?? null,
        ...(shm.config.dir ? {} : { sharedMemoryOff: shm.offReason }),
      },
      "save path I/O",
    );
    this.state = "recovering";
    this.addServices(io);
    const credentials = this.credentials();
    if (this.options.metricsListen) {
      this.metricsAddress = await this.metrics.listen(this.options.metricsListen);
      this.log.info({ address: this.metricsAddress }, `metrics on http://${this.metricsAddress}/metrics`);
    }

    // Only the daemon that writes shared state moves directories; a follower skips them.
    const bad = await this.catalog.load({ quarantine: this.commitCoordinator !== undefined });
    if (this.cluster)
      this.log.info(
        { nodeId: this.cluster.nodeId, peers: this.cluster.peerIds, coordinator: this.cluster.coordinatorId },
        this.cluster.isCoordinator ? "multi-node: this daemon coordinates" : `multi-node: node '${this.cluster.coordinatorId}' coordinates`,
      );
    const recovered = await this.coordinator.recover();
    await this.events.load(this.catalog);
    await this.evaluations.load();
    await this.retention.load();
    for (const b of bad) {
      if (b.quarantinedTo) this.metrics.quarantined.inc();
      this.log.warn(
        { job: b.job, checkpoint: b.checkpointId, dir: b.dir, quarantinedTo: b.quarantinedTo ?? null, reason: b.reason },
        b.quarantinedTo
          ? `checkpoint '${b.checkpointId}' of job '${b.job}' is unusable and was moved to ${b.quarantinedTo}; the daemon serves the others`
          : `checkpoint '${b.checkpointId}' of job '${b.job}' is unusable and is skipped (the coordinating node quarantines it)`,
      );
    }
    const committed = this.catalog.jobsWithCheckpoints().reduce((n, j) => n + this.catalog.list(j).length, 0);
    this.log.info({ dataDir: this.storage.where(""), committed, ...recovered }, "recovery done");

    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(this.options.listen, credentials, (err, p) => (err ? reject(err) : resolve(p))),
    );
    raiseConnectionWindow(this.server, CONNECTION_WINDOW_BYTES, this.log);
    const host = this.options.listen.slice(0, this.options.listen.lastIndexOf(":"));
    this.boundAddress = `${host}:${port}`;
    await this.cluster?.register(this.boundAddress);
    this.coordinator.start();
    if (this.commitCoordinator) this.retention.start(this.options.gcIntervalMs);
    this.state = "running";
    for (const s of ["", ...this.serviceNames]) this.health.setStatus(s, "SERVING");
    return this.boundAddress;
  }

  private addServices(writeIo: WriteIo): void {
    const { grpcObject } = loadWire();
    const v1 = grpcObject.ckptd.v1;
    // One budget for what loads hold: read buffers and messages queued for clients.
    const loadBudget = new ByteBudget(this.options.loadBudgetBytes);
    const loader = new CheckpointLoader(this.storage, this.catalog, (bytes) => this.metrics.loadStoredBytesRead.inc(bytes), loadBudget);
    const rpc: RpcEnv = { log: this.log, metrics: this.metrics };
    this.server.addService(
      v1.CheckpointService.service,
      checkpointServiceHandlers({
        dataDir: this.local.dataDir,
        catalog: this.catalog,
        coordinator: this.coordinator,
        loader,
        retention: this.retention,
        log: this.log,
        auth: this.auth,
        metrics: this.metrics,
        acceptingSaves: () => this.state === "running",
        activeSaves: this.activeSaves,
        saveGuards: this.saveGuards,
        sharedMemory: this.sharedMemory,
        writeIo,
        sharedReadBuffers: sharedReadBuffers(),
        itemWriterBuffers: itemWriterBuffers(),
        maxWorldSize: this.options.maxWorldSize,
        notCoordinator: this.notCoordinator(),
        streamLimits: {
          idleTimeoutMs: this.options.streamIdleTimeoutMs,
          maxLoadsPerJob: this.options.maxLoadsPerJob,
          loadBudget,
        },
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
      notCoordinator: this.notCoordinator(),
    };
    this.server.addService(v1.EvaluationService.service, evaluationServiceHandlers(evaluationDeps, rpc));
    this.server.addService(v1.RetentionService.service, retentionServiceHandlers(evaluationDeps, rpc));
    this.server.addService(
      v1.AdminService.service,
      adminServiceHandlers(
        {
          catalog: this.catalog,
          coordinator: this.coordinator,
          events: this.events,
          loader,
          dataDir: this.storage.where(""),
          startTime: new Date(),
          state: () => this.state,
          address: () => this.boundAddress,
          auth: this.auth,
          quarantine: (limit) => listQuarantine(this.storage, limit),
        },
        rpc,
      ),
    );
    if (this.cluster && this.peerAuth) {
      if (this.options.peerToken === undefined)
        this.log.warn(
          "--insecure-peers: PeerService accepts any caller that reaches this port; use --peer-token-file outside trusted test setups",
        );
      this.server.addService(
        v1.PeerService.service,
        peerServiceHandlers(
          {
            coordinator: this.commitCoordinator,
            coordinatorId: this.cluster.coordinatorId,
            nodeId: this.cluster.nodeId,
            peerIds: this.cluster.peerIds,
            auth: this.peerAuth,
            maxWorldSize: this.options.maxWorldSize,
          },
          rpc,
        ),
      );
    }
    this.health.addToServer(this.server);
    // Reflection describes every service served, Health included, so grpcurl needs no
    // .proto; a single-node daemon's descriptors leave PeerService out, as it is not served.
    addReflection(this.server, [...this.serviceNames, "grpc.health.v1.Health"], this.cluster ? [] : [PEER_PROTO]);
  }

  /** On a participant, the message that sends writers of shared state to the coordinator. */
  private notCoordinator(): string | undefined {
    if (!this.cluster || this.cluster.isCoordinator) return undefined;
    return `this is node '${this.cluster.nodeId}' of a multi-node job: deletions, evaluation reports and retention go to the coordinating node '${this.cluster.coordinatorId}'`;
  }

  /** How this daemon calls its peers: TLS (with its own certificate as client certificate) when it serves TLS. */
  private peerCredentials(): grpc.ChannelCredentials {
    const { tls } = this.options;
    if (!tls) return grpc.credentials.createInsecure();
    return grpc.credentials.createSsl(tls.ca ?? null, tls.key, tls.cert);
  }

  private credentials(): grpc.ServerCredentials {
    const { tls } = this.options;
    if (!tls) return grpc.ServerCredentials.createInsecure();
    return grpc.ServerCredentials.createSsl(tls.ca ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.ca !== undefined);
  }

  /**
   * Drains: health goes NOT_SERVING and new saves get UNAVAILABLE, while saves in
   * flight finish and the checkpoints they belong to are decided (their Commits
   * still get through), within the grace period. Then the server stops.
   */
  async drain(graceMs: number): Promise<void> {
    if (this.state === "draining" || this.state === "stopped") return;
    this.state = "draining";
    for (const s of ["", ...this.serviceNames]) this.health.setStatus(s, "NOT_SERVING");
    this.shutdown.abort();
    this.log.info(
      { graceMs, savesInFlight: this.activeSaves.count, checkpointsInFlight: this.coordinator.inFlight() },
      "draining: new saves are refused, in-flight saves and commits may finish",
    );
    // Streams still sending may finish; one whose client sends nothing (a stall, or a call
    // grpc-js never told us was cancelled) is not waited for beyond a short while.
    const idleMs = Math.min(this.options.streamIdleTimeoutMs, Math.max(1_000, Math.floor(graceMs / 10)));
    for (const g of this.saveGuards)
      g.hurry(idleMs, () =>
        unavailable(`the daemon is shutting down and this stream sent nothing for ${idleMs} ms; save the item again on its successor`),
      );
    const deadline = Date.now() + graceMs;
    // Checkpoints nobody touched for idleMs were left by dead trainers: not waited for.
    while (Date.now() < deadline && (this.activeSaves.count > 0 || this.coordinator.hasUndecidedWork(idleMs)))
      await new Promise((r) => setTimeout(r, 50));
    // Nothing is left to finish: idle connections get a moment to go, not the whole grace period.
    const left = Math.min(Math.max(0, deadline - Date.now()), IDLE_CONNECTION_GRACE_MS);
    const graceful = new Promise<boolean>((resolve) => this.server.tryShutdown(() => resolve(true)));
    const timeout = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), left).unref());
    if (!(await Promise.race([graceful, timeout]))) {
      this.log.warn({ savesInFlight: this.activeSaves.count }, "stopping: cancelling the calls and closing the connections still open");
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
    closeSharedMemoryConfig(this.sharedMemory);
    this.objectStore?.unlock();
    this.objectStore?.close();
    this.local.unlock();
    this.state = "stopped";
  }
}
