/**
 * gRPC handlers of PeerService: the coordinator's side of the multi-node commit.
 * On a node that is not the coordinator every call is refused, naming the coordinator.
 */
import type { PeerServiceHandlers } from "../clients/ts/src/gen/ckptd/v1/PeerService.js";
import type { Authorizer } from "./auth.js";
import type { CommitCoordinator, Decision } from "./coordinator.js";
import { failedPrecondition, invalidArgument, toServiceError } from "./errors.js";
import type { ItemRecord } from "./manifest.js";

export interface PeerDeps {
  /** The coordinator, or undefined on a participant. */
  coordinator: CommitCoordinator | undefined;
  coordinatorId: string;
  nodeId: string;
  auth: Authorizer;
}

type Callback<T> = (err: ReturnType<typeof toServiceError> | null, res?: T) => void;

function outcome(d: Decision | undefined) {
  if (!d) return { outcome: "COMMIT_OUTCOME_UNSPECIFIED" as const, reason: "" };
  return {
    outcome: d.outcome === "COMMITTED" ? ("COMMIT_OUTCOME_COMMITTED" as const) : ("COMMIT_OUTCOME_ABORTED" as const),
    reason: d.reason,
  };
}

export function peerServiceHandlers(deps: PeerDeps): PeerServiceHandlers {
  /** Runs `fn` on the coordinator after the admin-token check; refuses on participants. */
  function serve<T>(
    call: { metadata: import("@grpc/grpc-js").Metadata },
    callback: Callback<T>,
    fn: (c: CommitCoordinator) => Promise<T>,
  ): void {
    Promise.resolve()
      .then(() => {
        deps.auth.check(call.metadata, { admin: true });
        if (!deps.coordinator)
          throw failedPrecondition(
            `node '${deps.nodeId}' does not coordinate; node '${deps.coordinatorId}' does (check --peers on every node)`,
          );
        return fn(deps.coordinator);
      })
      .then(
        (res) => callback(null, res),
        (err: unknown) => callback(toServiceError(err)),
      );
  }

  return {
    OpenAttempt(call, callback) {
      const r = call.request;
      serve(call, callback, async (c) => ({
        attempt: await c.openForPeer({ job: r.job, checkpointId: r.checkpointId, step: r.step, rank: r.rank, worldSize: r.worldSize }),
      }));
    },
    Heartbeat(call, callback) {
      const r = call.request;
      serve(call, callback, async (c) => outcome(await c.heartbeat(r.job, r.checkpointId, r.attempt, true)));
    },
    Vote(call, callback) {
      const r = call.request;
      serve(call, callback, async (c) => {
        let records: ItemRecord[];
        try {
          records = JSON.parse(r.itemsJson.toString("utf8")) as ItemRecord[];
          if (!Array.isArray(records)) throw new Error("not a list");
        } catch (err) {
          throw invalidArgument(`items_json from node '${r.nodeId}' is not a list of item records: ${(err as Error).message}`);
        }
        const d = await c.peerVote(
          { job: r.job, checkpointId: r.checkpointId, step: r.step, rank: r.rank, worldSize: r.worldSize },
          r.attempt,
          records,
        );
        return { ...outcome(d), attempt: d.attempt };
      });
    },
    AbortAttempt(call, callback) {
      const r = call.request;
      serve(call, callback, async (c) =>
        outcome(await c.peerAbort(r.job, r.checkpointId, r.attempt, r.reason || `node '${r.nodeId}' aborted`)),
      );
    },
    GetDecision(call, callback) {
      const r = call.request;
      serve(call, callback, async (c) => outcome(await c.decisionOf(r.job, r.checkpointId, r.attempt)));
    },
  };
}
