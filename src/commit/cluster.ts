/**
 * The daemons of a multi-node job: who they are, how to reach them, and which one
 * coordinates. Every daemon gets the same --peers list; the coordinator of every
 * checkpoint is the peer with the lowest node id (deterministic, no election).
 * Addresses come from --peers (`id=host:port`) or from the registry each daemon
 * writes into the shared data directory at start (`<data>/nodes/<id>.json`), so
 * daemons on port 0 still find each other.
 */
import * as grpc from "@grpc/grpc-js";
import type { PeerServiceClient } from "../../wire/gen/ckptd/v1/PeerService.js";
import { CLIENT_CHANNEL_OPTIONS, loadWire } from "../../wire/index.js";
import { unavailable } from "../common/errors.js";
import { layout, parentKey } from "../store/layout.js";
import type { Storage } from "../store/storage.js";

export interface PeerSpec {
  id: string;
  address?: string;
}

export class Cluster {
  readonly peerIds: string[];
  readonly coordinatorId: string;
  private readonly explicit = new Map<string, string>();
  private readonly located = new Map<string, string>();
  private client: { address: string; client: PeerServiceClient } | undefined;

  constructor(
    readonly nodeId: string,
    peers: PeerSpec[],
    private readonly storage: Storage,
    private readonly credentials: grpc.ChannelCredentials,
    /** The peer token (undefined with --insecure-peers). */
    private readonly peerToken: string | undefined,
  ) {
    for (const p of peers) if (p.address) this.explicit.set(p.id, p.address);
    this.peerIds = [...new Set([nodeId, ...peers.map((p) => p.id)])].sort();
    this.coordinatorId = this.peerIds[0]!;
  }

  get isCoordinator(): boolean {
    return this.nodeId === this.coordinatorId;
  }

  /** Publishes this daemon's address for its peers. */
  async register(address: string): Promise<void> {
    await this.storage.createPrefix(parentKey(layout.nodeRegistry(this.nodeId)));
    await this.storage.put(
      layout.nodeRegistry(this.nodeId),
      JSON.stringify({ id: this.nodeId, address, pid: process.pid, startedAt: new Date().toISOString() }),
    );
  }

  /**
   * Reads a peer's address (from --peers, else from the registry it wrote at start) and
   * keeps it for `coordinator()`: called before each peer call, so a restarted peer's new
   * address is used from the next call on.
   */
  async locate(id: string): Promise<string> {
    const fixed = this.explicit.get(id);
    if (fixed) return fixed;
    const key = layout.nodeRegistry(id);
    let address: string | undefined;
    try {
      const text = await this.storage.get(key);
      address = text && (JSON.parse(text.toString("utf8")) as { address?: string }).address;
    } catch {
      address = undefined;
    }
    if (!address)
      throw unavailable(`peer '${id}' has not registered an address yet (no ${this.storage.where(key)}); is its daemon running?`);
    this.located.set(id, address);
    return address;
  }

  /** The address `locate` last read. */
  addressOf(id: string): string {
    const address = this.explicit.get(id) ?? this.located.get(id);
    if (!address) throw unavailable(`peer '${id}' has not been located yet`);
    return address;
  }

  /**
   * A PeerService client for the coordinator at the address `locate` last read (re-created
   * when it changes, e.g. after a restart).
   */
  coordinator(): PeerServiceClient {
    const address = this.addressOf(this.coordinatorId);
    if (this.client?.address !== address) {
      this.client?.client.close();
      const { grpcObject } = loadWire();
      this.client = { address, client: new grpcObject.ckptd.v1.PeerService(address, this.credentials, CLIENT_CHANNEL_OPTIONS) };
    }
    return this.client.client;
  }

  /** Metadata for peer calls: the peer token. */
  metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.peerToken) md.set("authorization", `Bearer ${this.peerToken}`);
    return md;
  }

  close(): void {
    this.client?.client.close();
  }
}
