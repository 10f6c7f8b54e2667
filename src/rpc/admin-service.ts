/**
 * gRPC handlers of AdminService: status, jobs and verification for operators.
 */
import type { Metadata } from "@grpc/grpc-js";
import type { AdminServiceHandlers } from "../../wire/gen/ckptd/v1/AdminService.js";
import type { Authorizer } from "./auth.js";
import type { Catalog } from "../catalog/catalog.js";
import type { CheckpointCoordinator } from "../commit/protocol.js";
import type { EventLog } from "../catalog/events.js";
import type { CheckpointLoader } from "../load/loader.js";
import type { QuarantineRecord } from "../store/files.js";
import { rpcMethods, type RpcEnv } from "./handler.js";
import { timestamp } from "./messages.js";
import { VERSION } from "../common/version.js";

export interface AdminDeps {
  catalog: Catalog;
  coordinator: CheckpointCoordinator;
  events: EventLog;
  loader: CheckpointLoader;
  dataDir: string;
  startTime: Date;
  state: () => string;
  address: () => string;
  auth: Authorizer;
  /** The quarantined checkpoint directories (newest first, at most `limit`) and how many there are. */
  quarantine: (limit: number) => Promise<{ entries: QuarantineRecord[]; total: number; dirs: string[] }>;
}

/** Quarantined checkpoints listed by GetStatus (the count covers all). */
const MAX_QUARANTINE_LISTED = 100;

export function adminServiceHandlers(deps: AdminDeps, env: RpcEnv): AdminServiceHandlers {
  const { catalog } = deps;
  const rpc = rpcMethods(env, "AdminService");
  const admin = { auth: (call: { metadata: Metadata }) => deps.auth.check(call.metadata, { admin: true }) };
  return {
    GetStatus: rpc.unary(
      "GetStatus",
      async () => {
        const jobs = catalog.jobsWithCheckpoints();
        let count = 0;
        let stored = 0;
        for (const j of jobs)
          for (const c of catalog.list(j)) {
            count++;
            stored += c.storedBytes;
          }
        const q = await deps.quarantine(MAX_QUARANTINE_LISTED);
        return {
          version: VERSION,
          state: deps.state(),
          dataDir: deps.dataDir,
          startTime: timestamp(deps.startTime.toISOString()),
          jobCount: jobs.length,
          checkpointCount: count,
          checkpointsInFlight: deps.coordinator.inFlight(),
          subscribers: deps.events.subscribers,
          storedBytes: stored,
          listenAddress: deps.address(),
          quarantined: q.entries.map((e, i) => ({
            job: e.job,
            checkpointId: e.checkpointId,
            reason: e.reason,
            ...(Number.isNaN(Date.parse(e.quarantinedAt)) ? {} : { quarantinedAt: timestamp(e.quarantinedAt) }),
            path: q.dirs[i] ?? "",
          })),
          quarantinedCount: q.total,
        };
      },
      admin,
    ),

    ListJobs: rpc.unary(
      "ListJobs",
      async () => {
        const jobs = catalog
          .jobsWithCheckpoints()
          .sort()
          .map((job) => {
            const list = catalog.list(job);
            return {
              job,
              checkpointCount: list.length,
              latestCheckpointId: list[0]?.checkpointId ?? "",
              latestStep: list[0]?.step ?? 0,
              storedBytes: list.reduce((n, c) => n + c.storedBytes, 0),
            };
          });
        return { jobs };
      },
      admin,
    ),

    VerifyCheckpoint: rpc.unary(
      "VerifyCheckpoint",
      async (call) => {
        const r = await deps.loader.verify(call.request.job, call.request.checkpointId);
        return {
          checkpointId: r.checkpointId,
          ok: r.damaged.length === 0,
          chunksChecked: r.chunks,
          bytesChecked: r.bytes,
          damaged: r.damaged,
        };
      },
      admin,
    ),
  };
}
