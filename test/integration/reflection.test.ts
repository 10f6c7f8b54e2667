/**
 * What grpcurl does, with no .proto file of ours: ask the daemon's server reflection for
 * its services and for the file descriptors of a symbol (and their dependencies), build
 * the message types from those descriptors with protobufjs, and call the daemon through a
 * generic grpc-js client. If this works, `grpcurl -plaintext ADDR list|describe|call` does.
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";
// Loading this module adds Root.fromDescriptor to protobufjs.
import descriptor from "protobufjs/ext/descriptor/index.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CkptdClient, tensor } from "../../clients/ts/src/index.js";
import { startDaemon, type Daemon } from "./harness.js";

const JOB = "reflect-job";

/** The reflection protos that ship inside @grpc/reflection (not ours). */
function reflectionProto(version: "v1" | "v1alpha"): string {
  const require = createRequire(import.meta.url);
  let dir = path.dirname(require.resolve("@grpc/reflection"));
  while (!fs.existsSync(path.join(dir, "package.json"))) dir = path.dirname(dir);
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory() && e.name !== "node_modules") walk(path.join(d, e.name));
      else if (e.name === "reflection.proto" && d.endsWith(path.join("grpc", "reflection", version))) found.push(path.join(d, e.name));
    }
  };
  walk(dir);
  if (!found[0]) throw new Error(`no grpc/reflection/${version}/reflection.proto under ${dir}`);
  return found[0];
}

interface ReflectionResponse {
  messageResponse: "fileDescriptorResponse" | "listServicesResponse" | "errorResponse" | "allExtensionNumbersResponse";
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  listServicesResponse?: { service: { name: string }[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

/** A reflection session on one bidi stream, one request at a time, as grpcurl runs it. */
class Reflection {
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<object, ReflectionResponse>;
  private readonly pending: ((r: ReflectionResponse | Error) => void)[] = [];

  constructor(address: string, version: "v1" | "v1alpha") {
    const def = protoLoader.loadSync(reflectionProto(version), {
      keepCase: false,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(def) as any;
    const Service = pkg.grpc.reflection[version].ServerReflection as grpc.ServiceClientConstructor;
    this.client = new Service(address, grpc.credentials.createInsecure());
    this.call = (this.client as any).ServerReflectionInfo() as grpc.ClientDuplexStream<object, ReflectionResponse>;
    this.call.on("data", (r: ReflectionResponse) => this.pending.shift()?.(r));
    this.call.on("error", (err: Error) => {
      for (const p of this.pending.splice(0)) p(err);
    });
  }

  request(req: object): Promise<ReflectionResponse> {
    return new Promise((resolve, reject) => {
      this.pending.push((r) => (r instanceof Error ? reject(r) : resolve(r)));
      this.call.write({ host: "", ...req });
    });
  }

  async listServices(): Promise<string[]> {
    const r = await this.request({ listServices: "" });
    expect(r.messageResponse, JSON.stringify(r.errorResponse)).toBe("listServicesResponse");
    return r.listServicesResponse!.service.map((s) => s.name);
  }

  /** The FileDescriptorProtos of the file defining `symbol` and, transitively, of its dependencies. */
  async filesForSymbol(symbol: string): Promise<Map<string, protobuf.Message & { name: string; dependency: string[] }>> {
    const files = new Map<string, protobuf.Message & { name: string; dependency: string[] }>();
    const add = (r: ReflectionResponse, what: string) => {
      expect(r.messageResponse, `${what}: ${JSON.stringify(r.errorResponse)}`).toBe("fileDescriptorResponse");
      for (const bytes of r.fileDescriptorResponse!.fileDescriptorProto) {
        const file = descriptor.FileDescriptorProto.decode(bytes) as protobuf.Message & { name: string; dependency: string[] };
        files.set(file.name, file);
      }
    };
    add(await this.request({ fileContainingSymbol: symbol }), `file_containing_symbol ${symbol}`);
    // The server may send the dependencies along; fetch those it did not, as grpcurl does.
    for (let missing = missingDeps(files); missing.length > 0; missing = missingDeps(files)) {
      for (const name of missing) add(await this.request({ fileByFilename: name }), `file_by_filename ${name}`);
    }
    return files;
  }

  close(): void {
    this.call.end();
    this.client.close();
  }
}

function missingDeps(files: Map<string, { dependency: string[] }>): string[] {
  return [...new Set([...files.values()].flatMap((f) => f.dependency))].filter((d) => !files.has(d));
}

function rootOf(files: Map<string, protobuf.Message>): protobuf.Root {
  const fromDescriptor = (protobuf.Root as unknown as { fromDescriptor(set: { file: protobuf.Message[] }): protobuf.Root }).fromDescriptor;
  const root = fromDescriptor({ file: [...files.values()] });
  root.resolveAll();
  return root;
}

/**
 * A generic grpc-js client of `service`, its (de)serialisers built from the reflected types.
 * protobufjs names fields in lowerCamelCase (the proto3 JSON names), as grpcurl's -d does.
 */
function genericClient(
  root: protobuf.Root,
  service: string,
  address: string,
): { client: grpc.Client; unary: (method: string, req: object) => Promise<Record<string, any>> } {
  const svc = root.lookupService(service);
  const definition: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const m of svc.methodsArray) {
    m.resolve();
    const reqType = m.resolvedRequestType!;
    const resType = m.resolvedResponseType!;
    definition[m.name] = {
      path: `/${service}/${m.name}`,
      requestStream: Boolean(m.requestStream),
      responseStream: Boolean(m.responseStream),
      requestSerialize: (o: object) => Buffer.from(reqType.encode(reqType.fromObject(o)).finish()),
      requestDeserialize: (b: Buffer) => reqType.toObject(reqType.decode(b)),
      responseSerialize: (o: object) => Buffer.from(resType.encode(resType.fromObject(o)).finish()),
      responseDeserialize: (b: Buffer) => resType.toObject(resType.decode(b), { longs: Number, enums: String, defaults: true }),
    };
  }
  const Client = grpc.makeGenericClientConstructor(definition as grpc.ServiceDefinition, service);
  const client = new Client(address, grpc.credentials.createInsecure());
  const unary = (method: string, req: object) =>
    new Promise<Record<string, any>>((resolve, reject) => {
      const d = definition[method];
      if (!d) return reject(new Error(`${service} has no method ${method}`));
      client.makeUnaryRequest(d.path, d.requestSerialize, d.responseDeserialize, req, (err: grpc.ServiceError | null, res?: unknown) =>
        err ? reject(err) : resolve(res as Record<string, any>),
      );
    });
  return { client, unary };
}

let daemon: Daemon;

beforeAll(async () => {
  daemon = await startDaemon();
  const client = new CkptdClient(daemon.address);
  const data = new Float32Array(1000).map((_, i) => i / 7);
  const r = await client.save({
    job: JOB,
    checkpointId: "global_step7",
    step: 7,
    rank: 0,
    worldSize: 1,
    item: "model",
    entries: [{ key: "w", tensor: tensor(data, { shape: [10, 100], device: "cuda:0" }) }],
  });
  expect(
    (await client.commit({ job: JOB, checkpointId: "global_step7", step: 7, rank: 0, worldSize: 1, items: ["model"], attempt: r.attempt }))
      .outcome,
  ).toBe("COMMITTED");
  client.close();
});

afterAll(async () => {
  await daemon?.stop();
});

describe.each(["v1alpha", "v1"] as const)("server reflection %s", (version) => {
  it(`reflection ${version} - lists the ckptd services and the health service`, async () => {
    const r = new Reflection(daemon.address, version);
    try {
      const services = await r.listServices();
      expect(services).toEqual(
        expect.arrayContaining([
          "ckptd.v1.CheckpointService",
          "ckptd.v1.EvaluationService",
          "ckptd.v1.RetentionService",
          "ckptd.v1.AdminService",
        ]),
      );
      // grpcurl's health check resolves grpc.health.v1.Health through reflection too.
      expect(services).toContain("grpc.health.v1.Health");
    } finally {
      r.close();
    }
  });

  it(`reflection ${version} - a single-node daemon neither lists nor describes PeerService (it does not serve it)`, async () => {
    const r = new Reflection(daemon.address, version);
    try {
      expect(await r.listServices()).not.toContain("ckptd.v1.PeerService");
      for (const symbol of ["ckptd.v1.PeerService", "ckptd.v1.VoteRequest"]) {
        const res = await r.request({ fileContainingSymbol: symbol });
        expect(res.messageResponse, symbol).toBe("errorResponse");
      }
    } finally {
      r.close();
    }
  });

  it(`reflection ${version} - ListCheckpoints through types built from the reflected descriptors returns the saved checkpoint`, async () => {
    const r = new Reflection(daemon.address, version);
    try {
      const files = await r.filesForSymbol("ckptd.v1.CheckpointService");
      // Timestamp comes from a dependency, so the dependency walk must have found it.
      const root = rootOf(files);
      expect(root.lookupType("google.protobuf.Timestamp")).toBeDefined();
      const svc = root.lookupService("ckptd.v1.CheckpointService");
      expect(svc.methodsArray.map((m) => m.name).sort()).toEqual([
        "Abort",
        "Commit",
        "DeleteCheckpoint",
        "GetCheckpoint",
        "ListCheckpoints",
        "Load",
        "LoadShared",
        "Save",
        "SaveShared",
      ]);

      const { client, unary } = genericClient(root, "ckptd.v1.CheckpointService", daemon.address);
      try {
        const list = await unary("ListCheckpoints", { job: JOB });
        expect(list.checkpoints).toHaveLength(1);
        // Field names as compiled from proto/ (snake_case), as grpcurl shows them in `describe`.
        expect(list.checkpoints[0]).toMatchObject({ job: JOB, checkpoint_id: "global_step7", step: 7, world_size: 1, raw_bytes: 4000 });
        expect(list.checkpoints[0].commit_time.seconds).toBeGreaterThan(0);
        const got = await unary("GetCheckpoint", { job: JOB, checkpoint_id: "latest", view: "CHECKPOINT_VIEW_FULL" });
        const entry = got.checkpoint.ranks[0].items[0].entries[0];
        expect(entry).toMatchObject({ key: "w", tensor: { dtype: "DTYPE_FLOAT32", shape: [10, 100], device: "cuda:0" } });
      } finally {
        client.close();
      }
    } finally {
      r.close();
    }
  });

  it(`reflection ${version} - Health/Check through types built from the reflected descriptors is SERVING`, async () => {
    const r = new Reflection(daemon.address, version);
    try {
      const root = rootOf(await r.filesForSymbol("grpc.health.v1.Health"));
      const { client, unary } = genericClient(root, "grpc.health.v1.Health", daemon.address);
      try {
        expect(await unary("Check", { service: "" })).toEqual({ status: "SERVING" });
        expect(await unary("Check", { service: "ckptd.v1.CheckpointService" })).toEqual({ status: "SERVING" });
      } finally {
        client.close();
      }
    } finally {
      r.close();
    }
  });
});
