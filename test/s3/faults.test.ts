/**
 * S3Store on a real RGW with server failures injected in the client's middleware (before a request is
 * sent, or after it landed with its answer replaced): transient errors are retried within the policy,
 * and create-only puts tell a lost race from a lost answer by reading the key back.
 */
import { createHash, randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import { S3ServiceException } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { CkptdError } from "../../src/common/errors.js";
import { cleanedAfterAll } from "./cleanup.js";
import { freshPrefix, testStore } from "./rgw.js";

const MiB = 1024 * 1024;
const keep = cleanedAfterAll();

const serverError = (httpStatusCode: number, name: string) =>
  new S3ServiceException({ name, $fault: "server", $metadata: { httpStatusCode }, message: `injected ${httpStatusCode} ${name}` });

type Fault = { command: string; when: "before" | "after"; error: S3ServiceException; times: number; nth?: number };

/** A store whose requests can be made to fail; `sent` counts the commands that reached the gateway. */
function faultyStore(name: string) {
  const s = testStore(freshPrefix(name), { retry: { attempts: 4, baseDelayMs: 10, maxDelayMs: 50, totalMs: 5_000 } });
  keep(s);
  const faults: Fault[] = [];
  const sent: string[] = [];
  const seenOf = new Map<string, number>();
  s.client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = context.commandName ?? "?";
      const n = (seenOf.get(command) ?? 0) + 1;
      seenOf.set(command, n);
      const fault = faults.find((f) => f.command === command && f.times > 0 && (f.nth === undefined || f.nth === n));
      if (fault) fault.times--;
      if (fault?.when === "before") throw fault.error;
      sent.push(command);
      const out = await next(args);
      if (fault?.when === "after") throw fault.error;
      return out;
    },
    { step: "initialize", name: "injectFaults" },
  );
  return { s, faults, sent };
}

const count = (list: string[], name: string) => list.filter((c) => c === name).length;

describe("S3Store under injected server failures", () => {
  it("transient 503 SlowDown answers are retried until the put goes through", async () => {
    const { s, faults, sent } = faultyStore("retry");
    faults.push({ command: "PutObjectCommand", when: "before", error: serverError(503, "SlowDown"), times: 2 });
    await s.put("k", "value");
    expect(count(sent, "PutObjectCommand")).toBe(1);
    expect(faults[0]!.times).toBe(0);
    expect((await s.get("k"))!.toString()).toBe("value");
  });

  it("retries stop after the policy's attempts with UNAVAILABLE; a 4xx is not retried", async () => {
    const { s, faults } = faultyStore("bounded");
    faults.push({ command: "PutObjectCommand", when: "before", error: serverError(500, "InternalError"), times: 100 });
    const err = await s.put("k", "v").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CkptdError);
    expect((err as CkptdError).kind).toBe("unavailable");
    expect((err as CkptdError).message).toMatch(/kept failing.*InternalError/);
    expect(100 - faults[0]!.times).toBe(4);
    faults.length = 0;
    faults.push({ command: "GetObjectCommand", when: "before", error: serverError(400, "InvalidArgument"), times: 100 });
    const bad = await s.get("k").catch((e: unknown) => e);
    expect((bad as CkptdError).kind).toBe("internal");
    expect(100 - faults[0]!.times).toBe(1);
  });

  it("putIfAbsent whose 500 answer hid a successful create reads the key back and reports it created", async () => {
    const { s, faults, sent } = faultyStore("lost-answer");
    faults.push({ command: "PutObjectCommand", when: "after", error: serverError(500, "InternalError"), times: 1 });
    expect(await s.putIfAbsent("decision", "commit")).toBe(true);
    expect(count(sent, "GetObjectCommand")).toBeGreaterThanOrEqual(1);
    expect(await s.putIfAbsent("decision", "abort")).toBe(false);
    expect((await s.get("decision"))!.toString()).toBe("commit");
  });

  it("putIfAbsent answered 500 while another writer's bytes are there has lost", async () => {
    const { s, faults, sent } = faultyStore("lost-race");
    await s.put("decision", "abort");
    faults.push({ command: "PutObjectCommand", when: "before", error: serverError(500, "InternalError"), times: 1 });
    expect(await s.putIfAbsent("decision", "commit")).toBe(false);
    expect(count(sent, "GetObjectCommand")).toBe(1);
    expect((await s.get("decision"))!.toString()).toBe("abort");
  });

  it("putIfAbsent answered 500 with nothing there tries again and creates the key", async () => {
    const { s, faults } = faultyStore("retry-create");
    faults.push({ command: "PutObjectCommand", when: "before", error: serverError(500, "InternalError"), times: 2 });
    expect(await s.putIfAbsent("decision", "commit")).toBe(true);
    expect((await s.get("decision"))!.toString()).toBe("commit");
  });

  it("a part that fails once is sent again and the object stays bit-exact", async () => {
    const { s, faults, sent } = faultyStore("part-retry");
    faults.push({ command: "UploadPartCommand", when: "before", error: serverError(503, "ServiceUnavailable"), times: 1, nth: 2 });
    const up = s.createUpload("obj", { partBytes: 5 * MiB, budgetBytes: 15 * MiB });
    const data = randomBytes(16 * MiB);
    await up.write(data);
    await up.finish();
    expect(count(sent, "UploadPartCommand")).toBe(4);
    expect(faults[0]!.times).toBe(0);
    const back = await s.get("obj");
    expect(createHash("sha256").update(back!).digest("hex")).toBe(createHash("sha256").update(data).digest("hex"));
  });

  it("a ranged GET whose body is cut off (connection reset) after some bytes is sent again; the range arrives bit-exact", async () => {
    const { s, sent } = faultyStore("get-cut");
    const data = randomBytes(9 * MiB);
    await s.put("obj", data);
    let cuts = 1;
    s.client.middlewareStack.add(
      (next) => async (args) => {
        const out = await next(args);
        const body = (out.output as { Body?: Readable }).Body;
        if (body && cuts-- > 0) body.once("data", () => body.destroy(Object.assign(new Error("aborted"), { code: "ECONNRESET" })));
        return out;
      },
      { step: "initialize", name: "cutBody" },
    );
    const into = Buffer.alloc(8 * MiB);
    const got = await s.getRange("obj", MiB, 8 * MiB, into);
    expect(cuts).toBeLessThan(0);
    expect(count(sent, "GetObjectCommand")).toBe(2);
    expect(got!.buffer).toBe(into.buffer);
    expect(got!.equals(data.subarray(MiB, 9 * MiB))).toBe(true);
  });
});
