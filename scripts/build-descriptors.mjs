#!/usr/bin/env node
// Compiles proto/ (and the gRPC health proto the daemon serves) with buf into one
// FileDescriptorSet, dist/descriptors.binpb, with imports and source info: what the
// daemon serves over reflection, so grpcurl sees the files exactly as compiled, comments,
// map entries, snake_case names and google/protobuf dependencies included.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = resolve(process.argv[2] ?? join(root, "dist/descriptors.binpb"));
const healthProto = dirname(dirname(dirname(createRequire(import.meta.url).resolve("grpc-health-check/proto/health/v1/health.proto"))));
const buf = join(root, "node_modules/.bin/buf");
const tmp = mkdtempSync(join(tmpdir(), "ckptd-descriptors-"));
try {
  // An Image is a FileDescriptorSet on the wire; two concatenated sets are one set.
  execFileSync(buf, ["build", root, "-o", join(tmp, "ckptd.binpb")], { stdio: "inherit" });
  execFileSync(buf, ["build", healthProto, "-o", join(tmp, "health.binpb")], { stdio: "inherit" });
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, Buffer.concat([readFileSync(join(tmp, "ckptd.binpb")), readFileSync(join(tmp, "health.binpb"))]));
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
