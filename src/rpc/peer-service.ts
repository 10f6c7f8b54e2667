/**
 * gRPC handlers of PeerService: the coordinator's side of the multi-node commit.
 * Served only by multi-node daemons. Every call needs the peer token (not an admin or a
 * job token), and every field is validated like a public RPC's before the commit
 * protocol sees it: a peer's message is a client's message. On a node that is not the
 * coordinator every call is refused, naming the coordinator.
 */
import type { Metadata } from "@grpc/grpc-js";
import type { PeerServiceHandlers } from "../../wire/gen/ckptd/v1/PeerService.js";
import type { PeerAuthorizer } from "./auth.js";
import { outcomeToWire, type Decision } from "../commit/decisions.js";
import type { CheckpointRef, PeerCoordinator } from "../commit/protocol.js";
import { failedPrecondition, invalidArgument } from "../common/errors.js";
import { rpcMethods, type RpcEnv } from "./handler.js";
import { MAX_ITEMS_PER_RANK } from "../catalog/manifest.js";
import { itemRecordOf } from "../commit/peer-messages.js";
import { checkInt, checkName, MAX_WORLD_SIZE } from "../common/names.js";

export interface PeerDeps {
  /** The coordinator, or undefined on a participant. */
  coordinator: PeerCoordinator | undefined;
  coordinatorId: string;
  nodeId: string;
  /** Every node id of the job (--peers and this node). */
  peerIds: readonly string[];
  auth: PeerAuthorizer;
  /** Largest world size accepted. */
  maxWorldSize?: number;
}

/** Longest abort reason a participant may send (it is logged and recorded). */
const MAX_REASON_LENGTH = 1024;
/** Largest attempt number: attempts are counted per checkpoint id, so this is never reached honestly. */
const MAX_ATTEMPT = 0xffffffff;

function outcome(d: Decision | undefined) {
  if (!d) return { outcome: "COMMIT_OUTCOME_UNSPECIFIED" as const, reason: "" };
  return {
    outcome: outcomeToWire(d.outcome),
    reason: d.reason,
  };
}

export function peerServiceHandlers(deps: PeerDeps, env: RpcEnv): PeerServiceHandlers {
  const rpc = rpcMethods(env, "PeerService");
  const maxWorldSize = deps.maxWorldSize ?? MAX_WORLD_SIZE;
  const peers = new Set(deps.peerIds);

  /** The checkpoint a message names: the same bounds as CheckpointService applies to its callers. */
  function ref(r: {
    job: string;
    checkpointId: string;
    step: number;
    rank: number;
    worldSize: number;
    incarnation: number;
  }): CheckpointRef {
    checkName("job", r.job);
    checkName("checkpoint_id", r.checkpointId);
    const worldSize = checkInt("world_size", r.worldSize, 1, maxWorldSize);
    return {
      job: r.job,
      checkpointId: r.checkpointId,
      step: checkInt("step", r.step, 0),
      rank: checkInt("rank", r.rank, 0, worldSize - 1),
      worldSize,
      incarnation: r.incarnation,
    };
  }

  function attempt(n: number): number {
    return checkInt("attempt", n, 1, MAX_ATTEMPT);
  }

  /** The sender must be one of the job's other nodes: a typo in --peers is caught here, not in a manifest. */
  function node(id: string): string {
    checkName("node_id", id);
    if (!peers.has(id) || id === deps.nodeId)
      throw invalidArgument(
        `node_id '${id}' is not one of this job's other nodes (${[...peers].filter((p) => p !== deps.nodeId).join(", ")})`,
      );
    return id;
  }

  /**
   * One PeerService method: the peer credential is checked first, then `fn` validates and
   * runs on the coordinator; participants refuse every call.
   */
  function serve<Req, Res>(method: string, fn: (r: Req, c: PeerCoordinator) => Promise<Res>) {
    return rpc.unary<Req, Res>(
      method,
      (call) => {
        if (!deps.coordinator)
          throw failedPrecondition(
            `node '${deps.nodeId}' does not coordinate; node '${deps.coordinatorId}' does (check --peers on every node)`,
          );
        return fn(call.request, deps.coordinator);
      },
      { auth: (call: { metadata: Metadata }) => deps.auth.checkPeer(call.metadata) },
    );
  }

  return {
    OpenAttempt: serve("OpenAttempt", async (r, c) => {
      const checkpoint = ref(r);
      node(r.nodeId);
      return { attempt: await c.openForPeer(checkpoint) };
    }),
    Heartbeat: serve("Heartbeat", async (r, c) => {
      checkName("job", r.job);
      checkName("checkpoint_id", r.checkpointId);
      node(r.nodeId);
      return outcome(await c.heartbeat(r.job, r.checkpointId, attempt(r.attempt), true));
    }),
    Vote: serve("Vote", async (r, c) => {
      const checkpoint = ref(r);
      const n = attempt(r.attempt);
      const from = node(r.nodeId);
      if (r.itemsJson.length > 0)
        throw invalidArgument(
          `node '${from}' sent items_json (VoteRequest field 7), which is no longer read: item records travel as StagedItem messages in items (field 9); run the same ckptd version on every node`,
        );
      if (r.items.length > MAX_ITEMS_PER_RANK)
        throw invalidArgument(`node '${from}' relayed ${r.items.length} items for rank ${checkpoint.rank}; at most ${MAX_ITEMS_PER_RANK}`);
      const records = r.items.map((item, i) => itemRecordOf(item, `items[${i}] from node '${from}'`));
      const d = await c.peerVote(checkpoint, n, records);
      return { ...outcome(d), attempt: d.attempt };
    }),
    AbortAttempt: serve("AbortAttempt", async (r, c) => {
      checkName("job", r.job);
      checkName("checkpoint_id", r.checkpointId);
      const from = node(r.nodeId);
      if (r.reason.length > MAX_REASON_LENGTH)
        throw invalidArgument(`reason is ${r.reason.length} characters long; at most ${MAX_REASON_LENGTH} are allowed`);
      return outcome(
        await c.peerAbort(r.job, r.checkpointId, attempt(r.attempt), r.reason || `node '${from}' aborted`, r.rank, r.incarnation),
      );
    }),
    GetDecision: serve("GetDecision", async (r, c) => {
      checkName("job", r.job);
      checkName("checkpoint_id", r.checkpointId);
      return outcome(await c.decisionOf(r.job, r.checkpointId, attempt(r.attempt)));
    }),
  };
}
