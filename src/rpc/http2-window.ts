/**
 * Raises the HTTP/2 flow-control windows of the grpc-js server. grpc-js servers keep
 * Node's 64 KiB default whatever the options say (grpc-node #3058), which caps a
 * trainer's upload at one window per round trip (~0.45 GB/s from grpcio here).
 * This reaches into grpc-js internals, so every step is guarded: if they change,
 * the daemon still works, just with the default windows, and says so.
 */
import type * as grpc from "@grpc/grpc-js";
import type * as http2 from "node:http2";
import type { Logger } from "pino";

interface ServerInternals {
  commonServerOptions?: { settings?: http2.Settings };
  http2Servers?: Map<http2.Http2Server, unknown>;
}

/** Call before bindAsync: new sessions advertise `streamWindow` per stream. */
export function raiseStreamWindow(server: grpc.Server, streamWindow: number, log: Logger): void {
  const internals = server as unknown as ServerInternals;
  if (!internals.commonServerOptions) {
    log.warn("grpc-js internals changed: the HTTP/2 stream window stays at 64 KiB (uploads will be slower)");
    return;
  }
  internals.commonServerOptions.settings = { ...internals.commonServerOptions.settings, initialWindowSize: streamWindow };
}

/** Call after bindAsync: every new session gets a connection window of `connectionWindow`. */
export function raiseConnectionWindow(server: grpc.Server, connectionWindow: number, log: Logger): void {
  const servers = (server as unknown as ServerInternals).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) {
    log.warn("grpc-js internals changed: the HTTP/2 connection window stays at 64 KiB (uploads will be slower)");
    return;
  }
  for (const h2 of servers.keys())
    h2.on("session", (session: http2.ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(connectionWindow);
      } catch (err) {
        log.debug({ err }, "could not raise an HTTP/2 connection window");
      }
    });
}
