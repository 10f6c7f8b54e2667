/**
 * Prometheus metrics (prom-client), served on their own port so scraping never
 * competes with the gRPC listener.
 */
import * as http from "node:http";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** Why an attempt aborted, as a bounded label set: decided where the abort is, never parsed from its text. */
export type AbortReason = "rank_abort" | "missing_item" | "timeout" | "restart" | "error";

export class Metrics {
  readonly registry = new Registry();
  readonly bytesReceived = new Counter({
    name: "ckptd_bytes_received_total",
    help: "Raw tensor/object bytes received by Save",
    registers: [this.registry],
  });
  readonly bytesStoredWritten = new Counter({
    name: "ckptd_bytes_written_total",
    help: "Bytes written to staging after compression",
    registers: [this.registry],
  });
  readonly bytesSent = new Counter({ name: "ckptd_bytes_sent_total", help: "Raw bytes sent by Load", registers: [this.registry] });
  readonly loadStoredBytesRead = new Counter({
    name: "ckptd_load_stored_bytes_read_total",
    help: "Stored (compressed) bytes of the chunks Load and LoadShared read from storage",
    registers: [this.registry],
  });
  readonly sharedMemoryBytes = new Counter({
    name: "ckptd_shared_memory_bytes_total",
    help: "Raw bytes that went through a client's shared-memory ring instead of the gRPC stream (part of bytes received / sent)",
    labelNames: ["direction"],
    registers: [this.registry],
  });
  /** Reads the daemon's current state at scrape time (set by the daemon). */
  source: (() => { rawBytes: number; storedBytes: number; inFlight: number; subscribers: number }) | undefined;
  /** Gauges read from `source` at scrape time. */
  readonly stateGauges = [
    new Gauge({
      name: "ckptd_stored_bytes",
      help: "Bytes stored by committed checkpoints",
      registers: [this.registry],
      collect: this.collector((s, g) => g.set(s.storedBytes)),
    }),
    new Gauge({
      name: "ckptd_raw_bytes",
      help: "Raw bytes of committed checkpoints",
      registers: [this.registry],
      collect: this.collector((s, g) => g.set(s.rawBytes)),
    }),
    new Gauge({
      name: "ckptd_compression_ratio",
      help: "Raw bytes / stored bytes over all committed checkpoints",
      registers: [this.registry],
      collect: this.collector((s, g) => g.set(s.storedBytes > 0 ? s.rawBytes / s.storedBytes : 1)),
    }),
    new Gauge({
      name: "ckptd_checkpoints_in_flight",
      help: "Checkpoints with an undecided attempt",
      registers: [this.registry],
      collect: this.collector((s, g) => g.set(s.inFlight)),
    }),
    new Gauge({
      name: "ckptd_subscribers",
      help: "Live WatchCheckpoints subscribers",
      registers: [this.registry],
      collect: this.collector((s, g) => g.set(s.subscribers)),
    }),
  ];
  readonly saveSeconds = new Histogram({
    name: "ckptd_save_duration_seconds",
    help: "Duration of Save streams (one item)",
    buckets: LATENCY_BUCKETS,
    labelNames: ["outcome"],
    registers: [this.registry],
  });
  readonly commitSeconds = new Histogram({
    name: "ckptd_commit_duration_seconds",
    help: "Duration of Commit calls (a vote until the decision)",
    buckets: LATENCY_BUCKETS,
    labelNames: ["outcome"],
    registers: [this.registry],
  });
  readonly loadSeconds = new Histogram({
    name: "ckptd_load_duration_seconds",
    help: "Duration of Load streams",
    buckets: LATENCY_BUCKETS,
    labelNames: ["outcome"],
    registers: [this.registry],
  });
  readonly commits = new Counter({ name: "ckptd_commits_total", help: "Checkpoints committed", registers: [this.registry] });
  readonly aborts = new Counter({
    name: "ckptd_aborts_total",
    help: "Checkpoint attempts aborted, by reason",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  readonly rpcRejections = new Counter({
    name: "ckptd_rpc_rejections_total",
    help: "RPCs that ended with an error status, by method (Service/Method) and status code",
    labelNames: ["method", "code"],
    registers: [this.registry],
  });
  readonly deletions = new Counter({
    name: "ckptd_deletions_total",
    help: "Committed checkpoints deleted",
    labelNames: ["by"],
    registers: [this.registry],
  });
  readonly quarantined = new Counter({
    name: "ckptd_quarantined_checkpoints_total",
    help: "Checkpoint directories found unusable at start (manifest missing, unparsable or invalid) and moved to quarantine",
    registers: [this.registry],
  });
  private server: http.Server | undefined;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "ckptd_" });
  }

  private collector(set: (s: NonNullable<ReturnType<NonNullable<Metrics["source"]>>>, g: Gauge) => void) {
    const self = this;
    return function (this: Gauge) {
      const s = self.source?.();
      if (s) set(s, this);
    };
  }

  /** Serves GET /metrics; resolves with the bound host:port. */
  listen(hostPort: string): Promise<string> {
    const i = hostPort.lastIndexOf(":");
    const host = hostPort.slice(0, i).replace(/^\[|\]$/g, "");
    const port = Number(hostPort.slice(i + 1));
    this.server = http.createServer((req, res) => {
      if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
        res.writeHead(404, { "content-type": "text/plain" }).end("ckptd serves metrics at /metrics\n");
        return;
      }
      this.registry.metrics().then(
        (body) => res.writeHead(200, { "content-type": this.registry.contentType }).end(body),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
    return new Promise((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(port, host, () => {
        const a = this.server!.address();
        resolve(typeof a === "object" && a ? `${host.includes(":") ? `[${host}]` : host}:${a.port}` : hostPort);
      });
    });
  }

  close(): void {
    this.server?.close();
  }
}
