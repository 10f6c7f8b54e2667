/**
 * One connection of ckptctl to a daemon: the channel credentials (plaintext, TLS or
 * mTLS) and the bearer token, given to a {@link CkptdClient} whose channel every call
 * shares (the Health check included).
 */
import * as fs from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { service as healthServiceDefinition } from "grpc-health-check";
import { CkptdClient, bearerInterceptor } from "@ckptd/client";
import { UsageError } from "./failure.js";

/** How to reach the daemon, from the global options. */
export interface ConnectionOptions {
  /** `host:port` (or any grpc-js target, e.g. `unix:/run/ckptd.sock`). */
  address: string;
  /** Sent as `authorization: Bearer <token>` on every call. */
  token?: string;
  /** PEM file of the CA that signed the daemon's certificate; turns TLS on. */
  tlsCa?: string;
  /** PEM client certificate for mTLS (with `tlsKey`). */
  tlsCert?: string;
  /** PEM private key of `tlsCert`. */
  tlsKey?: string;
  /** The name to check the daemon's certificate against, when it differs from the address's host. */
  tlsServerName?: string;
  /** Deadline of each unary call and of export's loads, in seconds; none when undefined. */
  timeoutSeconds?: number;
}

/** The Health service's serving status. */
export type ServingStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

interface HealthClient extends grpc.Client {
  check(
    request: { service: string },
    options: grpc.CallOptions,
    callback: (err: grpc.ServiceError | null, res?: { status: ServingStatus }) => void,
  ): grpc.ClientUnaryCall;
}

/** The daemon's client and its Health service, sharing one channel. */
export class Connection {
  readonly address: string;
  readonly hasToken: boolean;
  readonly client: CkptdClient;
  private readonly health: HealthClient;
  private readonly timeoutSeconds: number | undefined;

  constructor(options: ConnectionOptions) {
    this.address = options.address;
    this.hasToken = Boolean(options.token);
    this.timeoutSeconds = options.timeoutSeconds;
    const credentials = channelCredentials(options);
    const channelOptions: grpc.ChannelOptions = {};
    if (options.tlsServerName) {
      channelOptions["grpc.ssl_target_name_override"] = options.tlsServerName;
      channelOptions["grpc.default_authority"] = options.tlsServerName;
    }
    // Loads stream over gRPC (export writes each chunk to a file as it comes), never through shared memory.
    this.client = new CkptdClient({ address: options.address, credentials, channelOptions, sharedMemory: false, token: options.token });
    // The client sends the token through an interceptor (call credentials only compose with
    // secure channels); the Health check on the same channel sends it the same way.
    const interceptors = options.token ? [bearerInterceptor(options.token)] : [];
    const Health = grpc.makeClientConstructor(healthServiceDefinition as unknown as grpc.ServiceDefinition, "grpc.health.v1.Health");
    this.health = new Health(options.address, credentials, {
      channelOverride: this.client.raw.getChannel(),
      interceptors,
    }) as unknown as HealthClient;
  }

  /** The deadline of `--timeout` for the client's unary calls, if any. */
  unaryOptions(): { timeoutMs?: number } {
    return this.timeoutSeconds === undefined ? {} : { timeoutMs: this.timeoutSeconds * 1000 };
  }

  /** The deadline of `--timeout` for the client's streams (export's loads), if any. */
  streamOptions(): { deadlineMs?: number } {
    return this.timeoutSeconds === undefined ? {} : { deadlineMs: this.timeoutSeconds * 1000 };
  }

  /** Call options with the deadline of `--timeout`, if any. */
  callOptions(): grpc.CallOptions {
    return this.timeoutSeconds === undefined ? {} : { deadline: new Date(Date.now() + this.timeoutSeconds * 1000) };
  }

  /** Runs one unary call and resolves with its response. */
  unary<T>(start: (options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, res?: T) => void) => unknown): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      start(this.callOptions(), (err, res) => {
        if (err) reject(err);
        else if (res === undefined) reject(new Error("the daemon sent an empty response"));
        else resolve(res);
      });
    });
  }

  /** grpc.health.v1.Health/Check of the whole server (service ""). */
  healthCheck(service = ""): Promise<ServingStatus> {
    return this.unary<{ status: ServingStatus }>((o, cb) => this.health.check({ service }, o, cb)).then((r) => r.status);
  }

  /** Closes the channel; calls in flight fail with CANCELLED. */
  close(): void {
    this.client.close();
  }
}

function channelCredentials(o: ConnectionOptions): grpc.ChannelCredentials {
  if (!o.tlsCa) {
    if (o.tlsCert || o.tlsKey) throw new UsageError("--tls-cert and --tls-key need --tls-ca (the CA that signed the daemon's certificate)");
    return grpc.credentials.createInsecure();
  }
  if (Boolean(o.tlsCert) !== Boolean(o.tlsKey)) throw new UsageError("mTLS needs both --tls-cert and --tls-key");
  return grpc.credentials.createSsl(
    readPem(o.tlsCa, "--tls-ca"),
    o.tlsKey ? readPem(o.tlsKey, "--tls-key") : null,
    o.tlsCert ? readPem(o.tlsCert, "--tls-cert") : null,
  );
}

function readPem(file: string, flag: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new UsageError(`cannot read ${flag} ${file}: ${(err as Error).message}`);
  }
}
