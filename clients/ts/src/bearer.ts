/** The bearer token as call metadata, shared by the client and ckptctl. */
import * as grpc from "@grpc/grpc-js";

/** Adds the bearer token to every call's metadata (works on plaintext loopback, unlike call credentials). */
export function bearerInterceptor(token: string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set("authorization", `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}
