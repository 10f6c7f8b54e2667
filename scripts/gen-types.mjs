#!/usr/bin/env node
// Regenerates the TypeScript types of proto/ckptd/v1 into wire/gen (or the
// directory given as the first argument; the freshness test uses a temporary one).
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const outDir = resolve(process.argv[2] ?? join(root, "wire/gen"));
const protos = readdirSync(join(root, "proto/ckptd/v1"))
  .filter((f) => f.endsWith(".proto"))
  .sort()
  .map((f) => `ckptd/v1/${f}`);
execFileSync(
  join(root, "node_modules/.bin/proto-loader-gen-types"),
  [
    "--longs=Number",
    "--enums=String",
    "--defaults",
    "--oneofs",
    "--bytes=Buffer",
    "--includeComments",
    "--grpcLib=@grpc/grpc-js",
    "--importFileExtension=.js",
    "--inputTemplate=%sIn",
    "--outputTemplate=%s",
    "-I",
    "proto",
    "-O",
    outDir,
    ...protos,
  ],
  { cwd: root, stdio: "inherit" },
);
