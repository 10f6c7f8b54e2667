/**
 * Server reflection from the descriptors buf compiled out of proto/ at build time
 * (scripts/build-descriptors.mjs → dist/descriptors.binpb), not from proto-loader's
 * reconstruction of them: those lost the files' dependencies (google.protobuf.Timestamp
 * was unresolvable), renamed map entries and dropped comments, and grpcurl refused them.
 * The files go out as compiled; only the list of services is filtered to what is served.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";

/** Where the build puts the descriptor set, relative to this module in dist/src/rpc. */
export const DESCRIPTORS_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..", "descriptors.binpb");

/** Splits a serialized FileDescriptorSet into its serialized FileDescriptorProtos (field 1, length-delimited). */
export function splitDescriptorSet(set: Buffer): Buffer[] {
  const files: Buffer[] = [];
  let at = 0;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      if (at >= set.length) throw new Error("descriptor set ends inside a varint");
      const b = set[at++]!;
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
  };
  while (at < set.length) {
    const tag = varint();
    if (tag !== 0x0a) throw new Error(`descriptor set has an unexpected field (tag ${tag})`);
    const length = varint();
    if (at + length > set.length) throw new Error("descriptor set ends inside a file");
    files.push(set.subarray(at, at + length));
    at += length;
  }
  return files;
}

/**
 * Adds reflection (v1 and v1alpha) describing `services` (fully qualified names) to the
 * server, leaving out the files named in `exclude` (what this daemon does not serve).
 */
export function addReflection(server: grpc.Server, services: string[], exclude: string[] = [], file = DESCRIPTORS_PATH): void {
  let set: Buffer;
  try {
    set = fs.readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read the compiled descriptors ${file} (${(err as NodeJS.ErrnoException).code}); run \`npm run build\``);
  }
  // @grpc/reflection indexes whatever FileDescriptorProtos a package definition carries.
  const files = splitDescriptorSet(set).filter((f) => !exclude.includes(fileName(f)));
  const definition = { "ckptd.descriptors": { format: "Protocol Buffer 3 FileDescriptorProto", fileDescriptorProtos: files } };
  new ReflectionService(definition as never, { services }).addToServer(server);
}

/** The name of a serialized FileDescriptorProto (field 1, its first field as protoc and buf write it). */
function fileName(file: Buffer): string {
  if (file[0] !== 0x0a) return "";
  let length = 0;
  let at = 1;
  for (let shift = 0; at < file.length; shift += 7) {
    const b = file[at++]!;
    length += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) break;
  }
  return file.subarray(at, at + length).toString("utf8");
}
