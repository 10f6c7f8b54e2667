/**
 * The gateway stops in the middle of an upload: the upload fails with a clear UNAVAILABLE error within
 * the retry bound, and once the gateway is back the next upload works. The cluster (monitor, OSD) keeps
 * running, so credentials, bucket and objects survive the restart.
 */
import { createHash, randomBytes } from "node:crypto";
import { afterAll, expect, it } from "vitest";
import { CkptdError } from "../../src/common/errors.js";
import { freshPrefix, readRgwEnv, rgwScript, testStore } from "./rgw.js";

const MiB = 1024 * 1024;
const store = testStore(freshPrefix("restart"), {
  retry: { attempts: 4, baseDelayMs: 50, maxDelayMs: 500, totalMs: 1_500 },
  connectTimeoutMs: 1_000,
  idleTimeoutMs: 10_000,
});
afterAll(async () => {
  rgwScript("start-rgw.sh"); // whatever happened, leave the gateway running
  await store.abortIncompleteUploads("").catch(() => undefined);
  await store.deletePrefix("").catch(() => undefined);
  store.close();
});

it("a gateway stopped mid-upload fails the upload as UNAVAILABLE naming the endpoint; after a restart the next upload works", async () => {
  const { endpoint } = readRgwEnv();
  const up = store.createUpload("interrupted.bin", { partBytes: 5 * MiB, budgetBytes: 10 * MiB });
  const chunk = randomBytes(MiB);
  for (let i = 0; i < 12; i++) await up.write(chunk);
  rgwScript("stop-rgw.sh", "rgw");
  let failure: unknown;
  const t0 = Date.now();
  try {
    for (let i = 0; i < 200; i++) await up.write(chunk);
    await up.finish();
  } catch (err) {
    failure = err;
  } finally {
    rgwScript("start-rgw.sh");
  }
  expect(failure).toBeInstanceOf(CkptdError);
  expect((failure as CkptdError).kind).toBe("unavailable");
  expect((failure as CkptdError).message).toContain(endpoint);
  expect(Date.now() - t0).toBeLessThan(30_000);

  await up.abort();
  await store.abortIncompleteUploads("");
  expect(await store.listIncompleteUploads("")).toEqual([]);

  const next = store.createUpload("after.bin", { partBytes: 5 * MiB, budgetBytes: 10 * MiB });
  const data = randomBytes(12 * MiB);
  await next.write(data);
  expect((await next.finish()).size).toBe(data.length);
  const back = await store.get("after.bin");
  expect(createHash("sha256").update(back!).digest("hex")).toBe(createHash("sha256").update(data).digest("hex"));
});
