/**
 * The one way an RPC is served. Every method of every service goes through `rpcMethods`:
 * the request is bounds-checked (checkBounds, the edge limits), the method's own auth step
 * runs, then the method; a rejection becomes its status (rpc/status.ts), is logged once
 * (warn for a client's fault, error for INTERNAL and DATA_LOSS) and counted by method and code.
 *
 * A method is an async function: it returns the response (unary, client-streaming) or, for
 * a server-streaming or bidi call, writes its messages and returns when it is done (the
 * wrapper ends the call). A method fills `ctx` with what it knows of the call (job,
 * checkpoint, ...) so the log line of a rejection names it.
 */
import type * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import { checkBounds } from "../common/limits.js";
import type { Metrics } from "../common/metrics.js";
import { status, statusName, toServiceError } from "./status.js";

/** What every RPC needs from the daemon. */
export interface RpcEnv {
  log: Logger;
  metrics: Pick<Metrics, "rpcRejections">;
}

/** What the log line of a rejected call names: filled by the method as it learns it. */
export type CallContext = Record<string, string | number | undefined>;

/** Statuses that mean the daemon failed, not the client. */
const DAEMON_FAULTS = new Set<status>([status.INTERNAL, status.DATA_LOSS]);

interface AnyCall {
  metadata: grpc.Metadata;
  request?: unknown;
  cancelled?: boolean;
  getPeer(): string;
}

/** What a streaming call's Writable side says of itself. */
interface StreamState {
  readonly writableLength: number;
  readonly destroyed: boolean;
}

/** How long a failed stream's status may wait for the messages written before it. */
const STATUS_AFTER_WRITES_MS = 10_000;

/**
 * Resolves once the messages written to `call` have gone out (or it is destroyed or cancelled,
 * or after STATUS_AFTER_WRITES_MS). grpc-js sends an error status only after the pending writes, from
 * the stream's final step; a bidi method reading its requests through an async iterator
 * destroys the stream as soon as the 'error' event reaches the iterator, and a destroyed
 * stream never takes that step: the client would wait for a status that never comes. So the
 * error is emitted once nothing is pending.
 */
async function afterWrites(call: StreamState & { cancelled?: boolean }): Promise<void> {
  const until = Date.now() + STATUS_AFTER_WRITES_MS;
  while (call.writableLength > 0 && !call.destroyed && !call.cancelled && Date.now() < until) await new Promise((r) => setTimeout(r, 1));
}

/** A method's steps before it runs: its auth check (throws UNAUTHENTICATED or PERMISSION_DENIED). */
export interface MethodOptions<C> {
  auth?: (call: C) => void;
}

/**
 * The methods of one service. Each wraps one handler shape:
 * `unary` and `clientStream` answer with the value their method returns; `serverStream`
 * and `bidi` end the call when their method returns.
 */
export function rpcMethods(env: RpcEnv, service: string) {
  /** Runs a call's steps; resolves with its result, or rejects with the error already reported. */
  function run<C extends AnyCall, T>(
    method: string,
    call: C,
    fn: (call: C, ctx: CallContext) => Promise<T>,
    options: MethodOptions<C> | undefined,
  ): Promise<T> {
    const ctx: CallContext = {};
    return Promise.resolve()
      .then(() => {
        if (call.request !== undefined) checkBounds(call.request);
        options?.auth?.(call);
        return fn(call, ctx);
      })
      .catch((err: unknown) => {
        throw reject(method, call, ctx, err);
      });
  }

  /** Logs and counts a rejected call once; returns the status the client gets. */
  function reject(method: string, call: AnyCall, ctx: CallContext, err: unknown) {
    const s = toServiceError(err);
    const code = statusName(s.code);
    env.metrics.rpcRejections.inc({ method: `${service}/${method}`, code });
    const fields: Record<string, unknown> = { rpc: method, code, peer: peerOf(call) };
    const request = call.request as { job?: unknown; checkpointId?: unknown } | undefined;
    if (typeof request?.job === "string" && request.job) fields.job = request.job;
    if (typeof request?.checkpointId === "string" && request.checkpointId) fields.checkpoint = request.checkpointId;
    for (const [k, v] of Object.entries(ctx)) if (v !== undefined) fields[k] = v;
    // A call its client cancelled is no rejection anyone waits to hear of.
    if (call.cancelled) env.log.debug(fields, s.details);
    else if (DAEMON_FAULTS.has(s.code)) env.log.error({ ...fields, err }, s.details);
    else env.log.warn(fields, s.details);
    return s;
  }

  /** A handler that answers with the method's result (unary, client-streaming). */
  function answering<C extends AnyCall, Res>(
    method: string,
    fn: (call: C, ctx: CallContext) => Promise<Res>,
    options: MethodOptions<C> | undefined,
  ) {
    return (call: C, callback: grpc.sendUnaryData<Res>) => {
      run(method, call, fn, options).then(
        (res) => callback(null, res),
        (s: grpc.ServiceError) => callback(s),
      );
    };
  }

  /** A handler whose call ends when the method returns (server-streaming, bidi). */
  function ending<C extends AnyCall & StreamState & { end(): void; emit(event: "error", err: unknown): boolean }>(
    method: string,
    fn: (call: C, ctx: CallContext) => Promise<void>,
    options: MethodOptions<C> | undefined,
  ) {
    return (call: C) => {
      run(method, call, fn, options).then(
        () => {
          // A call its client cancelled has nobody left to end it for.
          if (!call.cancelled) call.end();
        },
        (s: grpc.ServiceError) => void afterWrites(call).then(() => call.emit("error", s)),
      );
    };
  }

  type Method<C, R> = (call: C, ctx: CallContext) => Promise<R>;
  return {
    unary<Req, Res>(
      method: string,
      fn: Method<grpc.ServerUnaryCall<Req, Res>, Res>,
      options?: MethodOptions<grpc.ServerUnaryCall<Req, Res>>,
    ): grpc.handleUnaryCall<Req, Res> {
      return answering(method, fn, options);
    },
    clientStream<Req, Res>(
      method: string,
      fn: Method<grpc.ServerReadableStream<Req, Res>, Res>,
      options?: MethodOptions<grpc.ServerReadableStream<Req, Res>>,
    ): grpc.handleClientStreamingCall<Req, Res> {
      return answering(method, fn, options);
    },
    serverStream<Req, Res>(
      method: string,
      fn: Method<grpc.ServerWritableStream<Req, Res>, void>,
      options?: MethodOptions<grpc.ServerWritableStream<Req, Res>>,
    ): grpc.handleServerStreamingCall<Req, Res> {
      return ending(method, fn, options);
    },
    bidi<Req, Res>(
      method: string,
      fn: Method<grpc.ServerDuplexStream<Req, Res>, void>,
      options?: MethodOptions<grpc.ServerDuplexStream<Req, Res>>,
    ): grpc.handleBidiStreamingCall<Req, Res> {
      return ending(method, fn, options);
    },
  };
}

function peerOf(call: AnyCall): string | undefined {
  try {
    return call.getPeer();
  } catch {
    return undefined;
  }
}

/** Resolves when a stream the daemon writes to can take more (or has closed). */
export function drained(call: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off("drain", done);
      call.off("close", done);
      resolve();
    };
    call.on("drain", done);
    call.on("close", done);
  });
}
