import { EventEmitter } from "node:events";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  Metadata,
  Server,
  ServerCredentials,
  credentials,
  makeGenericClientConstructor,
  status,
  type ClientDuplexStream,
  type ServiceError,
} from "@grpc/grpc-js";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { dataLoss, invalidArgument, notFound } from "../../../src/common/errors.js";
import { Metrics } from "../../../src/common/metrics.js";
import { loadTokens } from "../../../src/rpc/auth.js";
import { rpcMethods } from "../../../src/rpc/handler.js";

interface LogLine {
  level: number;
  msg: string;
  rpc?: string;
  code?: string;
  job?: string;
  checkpoint?: string;
  peer?: string;
  err?: { stack?: string };
}

const WARN = 40;
const ERROR = 50;
const DEBUG = 20;
const PEER = "ipv4:10.0.0.7:51234";

function env() {
  const lines: LogLine[] = [];
  const log = pino({ level: "debug" }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  const metrics = new Metrics();
  return { env: { log, metrics }, lines, metrics };
}

async function count(metrics: Metrics, method: string, code: string): Promise<number> {
  const m = await metrics.rpcRejections.get();
  return m.values.find((v) => v.labels.method === method && v.labels.code === code)?.value ?? 0;
}

function unaryCall<Req>(request: Req, metadata = new Metadata()) {
  return { request, metadata, cancelled: false, getPeer: () => PEER } as never;
}

/** Calls a unary handler and resolves with what it answered. */
function callUnary<Res>(
  handler: (call: never, cb: (err: Partial<ServiceError> | null, res?: Res) => void) => void,
  call: never,
): Promise<{ err: Partial<ServiceError> | null; res?: Res }> {
  return new Promise((resolve) => handler(call, (err, res) => resolve({ err, res })));
}

/** A server-streaming or bidi call: records what was written, the error emitted and whether it ended. */
class FakeStream<Req> extends EventEmitter {
  readonly metadata = new Metadata();
  cancelled = false;
  readonly written: unknown[] = [];
  ended = false;
  error: Partial<ServiceError> | undefined;
  readonly done: Promise<void>;
  constructor(readonly request?: Req) {
    super();
    this.done = new Promise((resolve) => {
      this.on("error", (e: Partial<ServiceError>) => {
        this.error = e;
        resolve();
      });
      this.on("ended", () => resolve());
    });
  }
  getPeer() {
    return PEER;
  }
  write(m: unknown) {
    this.written.push(m);
    return true;
  }
  end() {
    this.ended = true;
    this.emit("ended");
  }
}

describe("rpc handler wrapper", () => {
  it("handler - a rejected unary call gets the mapped status, is logged once at warn with method, code, job, checkpoint and peer, and counted", async () => {
    const { env: e, lines, metrics } = env();
    const rpc = rpcMethods(e, "CheckpointService");
    const h = rpc.unary<{ job: string; checkpointId: string }, object>("GetCheckpoint", async (call) => {
      throw notFound(`checkpoint '${call.request.checkpointId}' of job '${call.request.job}' does not exist`);
    });
    const { err } = await callUnary(h, unaryCall({ job: "j1", checkpointId: "step-9" }));
    expect(err?.code).toBe(status.NOT_FOUND);
    expect(err?.details).toBe("checkpoint 'step-9' of job 'j1' does not exist");
    const logged = lines.filter((l) => l.rpc === "GetCheckpoint");
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: WARN, code: "NOT_FOUND", job: "j1", checkpoint: "step-9", peer: PEER });
    expect(logged[0]!.msg).toBe("checkpoint 'step-9' of job 'j1' does not exist");
    expect(await count(metrics, "CheckpointService/GetCheckpoint", "NOT_FOUND")).toBe(1);
  });

  it("handler - a served unary call answers its result and logs and counts nothing", async () => {
    const { env: e, lines, metrics } = env();
    const h = rpcMethods(e, "AdminService").unary<object, { n: number }>("ListJobs", async () => ({ n: 3 }));
    const { err, res } = await callUnary(h, unaryCall({}));
    expect(err).toBeNull();
    expect(res).toEqual({ n: 3 });
    expect(lines).toHaveLength(0);
    expect((await metrics.rpcRejections.get()).values).toHaveLength(0);
  });

  it("handler - a rejected server stream emits the mapped status once, is logged once with the context the method named, and counted", async () => {
    const { env: e, lines, metrics } = env();
    const h = rpcMethods(e, "CheckpointService").serverStream<{ job: string }, unknown>("Load", async (call, ctx) => {
      ctx.rank = 3;
      call.write({ plan: {} });
      throw invalidArgument("rank 3 is out of range for world_size 2");
    });
    const call = new FakeStream({ job: "j2" });
    h(call as never);
    await call.done;
    expect(call.error?.code).toBe(status.INVALID_ARGUMENT);
    expect(call.error?.details).toBe("rank 3 is out of range for world_size 2");
    expect(call.ended, "a rejected stream ends with its status, not end()").toBe(false);
    const logged = lines.filter((l) => l.rpc === "Load");
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: WARN, code: "INVALID_ARGUMENT", job: "j2", rank: 3, peer: PEER });
    expect(await count(metrics, "CheckpointService/Load", "INVALID_ARGUMENT")).toBe(1);
  });

  it("handler - a bidi stream is ended once its method returns; a client stream answers its method's result", async () => {
    const { env: e, lines } = env();
    const rpc = rpcMethods(e, "CheckpointService");
    const bidi = rpc.bidi<unknown, unknown>("SaveShared", async (call) => {
      call.write({ result: { entryCount: 1 } });
    });
    const call = new FakeStream();
    bidi(call as never);
    await call.done;
    expect(call.ended).toBe(true);
    expect(call.written).toEqual([{ result: { entryCount: 1 } }]);

    const save = rpc.clientStream<unknown, { entryCount: number }>("Save", async () => ({ entryCount: 2 }));
    const { err, res } = await callUnary(save as never, new FakeStream() as never);
    expect(err).toBeNull();
    expect(res).toEqual({ entryCount: 2 });
    expect(lines).toHaveLength(0);
  });

  it("handler - a rejected client stream is logged and counted once with its status", async () => {
    const { env: e, lines, metrics } = env();
    const save = rpcMethods(e, "CheckpointService").clientStream<unknown, object>("Save", async (_call, ctx) => {
      Object.assign(ctx, { job: "j3", checkpoint: "c", item: "model" });
      throw invalidArgument("the stream ended without a trailer; the item is discarded");
    });
    const { err } = await callUnary(save as never, new FakeStream() as never);
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect(lines.filter((l) => l.rpc === "Save")).toEqual([
      expect.objectContaining({ level: WARN, code: "INVALID_ARGUMENT", job: "j3", checkpoint: "c", item: "model" }),
    ]);
    expect(await count(metrics, "CheckpointService/Save", "INVALID_ARGUMENT")).toBe(1);
  });

  it("handler - an unexpected error is INTERNAL without a stack for the client, logged at error with the error", async () => {
    const { env: e, lines, metrics } = env();
    const h = rpcMethods(e, "EvaluationService").unary<object, object>("ReportEvaluation", async () => {
      throw new TypeError("cannot read properties of undefined (reading 'x')");
    });
    const { err } = await callUnary(h, unaryCall({}));
    expect(err?.code).toBe(status.INTERNAL);
    expect(err?.details).toBe("internal error: cannot read properties of undefined (reading 'x')");
    expect(err?.details).not.toMatch(/\n\s+at /);
    expect(err?.message).not.toMatch(/\n\s+at /);
    const logged = lines.filter((l) => l.rpc === "ReportEvaluation");
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: ERROR, code: "INTERNAL" });
    expect(logged[0]!.err?.stack, "the daemon's log keeps the stack").toMatch(/TypeError/);
    expect(await count(metrics, "EvaluationService/ReportEvaluation", "INTERNAL")).toBe(1);
  });

  it("handler - DATA_LOSS is logged at error; a call its client cancelled at debug; both counted", async () => {
    const { env: e, lines, metrics } = env();
    const rpc = rpcMethods(e, "AdminService");
    const h = rpc.unary<object, object>("VerifyCheckpoint", async () => {
      throw dataLoss("chunk 3 of entry 'w' fails its checksum");
    });
    expect((await callUnary(h, unaryCall({}))).err?.code).toBe(status.DATA_LOSS);
    const gone = rpc.unary<object, object>("GetStatus", async (call) => {
      (call as { cancelled: boolean }).cancelled = true;
      throw invalidArgument("too late");
    });
    await callUnary(gone, unaryCall({}));
    expect(lines.map((l) => [l.rpc, l.level])).toEqual([
      ["VerifyCheckpoint", ERROR],
      ["GetStatus", DEBUG],
    ]);
    expect(await count(metrics, "AdminService/VerifyCheckpoint", "DATA_LOSS")).toBe(1);
    expect(await count(metrics, "AdminService/GetStatus", "INVALID_ARGUMENT")).toBe(1);
  });

  it("handler - a request over the edge bounds is INVALID_ARGUMENT before the method runs", async () => {
    const { env: e, metrics } = env();
    let ran = false;
    const h = rpcMethods(e, "RetentionService").unary<{ job: string }, object>("GetRetentionPolicy", async () => {
      ran = true;
      return {};
    });
    const { err } = await callUnary(h, unaryCall({ job: "x".repeat(5000) }));
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect(err?.details).toMatch(/request\.job is 5000 characters long; at most 1024 are allowed/);
    expect(ran).toBe(false);
    expect(await count(metrics, "RetentionService/GetRetentionPolicy", "INVALID_ARGUMENT")).toBe(1);
  });

  it("handler - the auth step refuses a missing or unknown token with UNAUTHENTICATED and another job's token with PERMISSION_DENIED", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-handler-"));
    const file = path.join(dir, "tokens.json");
    fs.writeFileSync(file, JSON.stringify({ admin: "admin-secret-1", jobs: { a: "token-of-a-1", b: "token-of-b-1" } }));
    const auth = loadTokens(file);
    const { env: e, lines, metrics } = env();
    let ran = 0;
    const h = rpcMethods(e, "AdminService").unary<object, object>(
      "GetStatus",
      async () => {
        ran++;
        return {};
      },
      { auth: (call) => auth.check(call.metadata, { admin: true }) },
    );
    const md = (token?: string) => {
      const m = new Metadata();
      if (token) m.set("authorization", `Bearer ${token}`);
      return m;
    };
    const none = await callUnary(h, unaryCall({}, md()));
    expect(none.err?.code).toBe(status.UNAUTHENTICATED);
    expect(none.err?.details).toMatch(/this daemon requires a token/);
    const unknown = await callUnary(h, unaryCall({}, md("not-a-token-at-all")));
    expect(unknown.err?.code).toBe(status.UNAUTHENTICATED);
    const job = await callUnary(h, unaryCall({}, md("token-of-a-1")));
    expect(job.err?.code).toBe(status.PERMISSION_DENIED);
    expect(job.err?.details).toBe("this call needs the admin token; the token given belongs to job 'a'");
    const admin = await callUnary(h, unaryCall({}, md("admin-secret-1")));
    expect(admin.err).toBeNull();
    expect(ran).toBe(1);
    expect(lines.map((l) => l.code)).toEqual(["UNAUTHENTICATED", "UNAUTHENTICATED", "PERMISSION_DENIED"]);
    expect(await count(metrics, "AdminService/GetStatus", "UNAUTHENTICATED")).toBe(2);
    expect(await count(metrics, "AdminService/GetStatus", "PERMISSION_DENIED")).toBe(1);
    fs.rmSync(dir, { recursive: true });
  });
});

describe("handler over a real gRPC server", () => {
  it("handler - a bidi method reading its requests through an iterator that fails right after a write: the client gets the status", async () => {
    const { env: e } = env();
    const rpc = rpcMethods(e, "Test");
    const raw = {
      serialize: (b: Buffer) => b,
      deserialize: (b: Buffer) => b,
    };
    const definition = {
      Chat: {
        path: "/test.Test/Chat",
        requestStream: true,
        responseStream: true,
        requestSerialize: raw.serialize,
        requestDeserialize: raw.deserialize,
        responseSerialize: raw.serialize,
        responseDeserialize: raw.deserialize,
      },
    };
    const server = new Server();
    server.addService(definition, {
      Chat: rpc.bidi<Buffer, Buffer>("Chat", async (call) => {
        const requests = call.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer>;
        await requests.next();
        // The client's later messages are read on the side, as LoadShared reads its progress.
        void (async () => {
          for (;;) if ((await requests.next()).done) return;
        })().catch(() => undefined);
        call.write(Buffer.alloc(64 << 10, 1));
        throw dataLoss("chunk 1 is corrupt");
      }),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const Client = makeGenericClientConstructor(definition, "Test");
    const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as {
      Chat(): ClientDuplexStream<Buffer, Buffer>;
      close(): void;
    };
    try {
      for (let i = 0; i < 10; i++) {
        const call = client.Chat();
        const got = new Promise<{ code?: number; details?: string; messages: number }>((resolve) => {
          let messages = 0;
          call.on("data", () => messages++);
          call.on("error", (err: ServiceError) => resolve({ code: err.code, details: err.details, messages }));
          call.on("end", () => resolve({ messages }));
        });
        call.write(Buffer.from("start"));
        const res = await Promise.race([got, new Promise<undefined>((r) => setTimeout(r, 5_000))]);
        call.cancel();
        expect(res, `call ${i}: a status within 5 s`).toEqual({ code: status.DATA_LOSS, details: "chunk 1 is corrupt", messages: 1 });
      }
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
