/**
 * S3Store.deletePrefix frees everything under the prefix, including multipart uploads left
 * incomplete (an upload whose abort failed while the store was unreachable): they hold storage
 * that no listing shows. Uploads outside the prefix are left alone.
 */
import { randomBytes } from "node:crypto";
import { expect, it } from "vitest";
import { cleanedAfterAll } from "./cleanup.js";
import { freshPrefix, testStore } from "./rgw.js";

const keep = cleanedAfterAll();
const MiB = 1024 * 1024;

it("deletePrefix aborts the incomplete multipart uploads under the prefix, and only those", async () => {
  const s = keep(testStore(freshPrefix("delete-prefix-uploads")));
  const opts = { partBytes: 5 * MiB, budgetBytes: 10 * MiB };
  const inside = s.createUpload("staging/a@1/rank-00000/model/000000.lz4", opts);
  const outside = s.createUpload("staging/b@1/rank-00000/model/000000.lz4", opts);
  // One part each is sent (the upload exists), then the writers are dropped: neither completed nor aborted.
  await inside.write(randomBytes(6 * MiB));
  await outside.write(randomBytes(6 * MiB));
  await expect.poll(async () => (await s.listIncompleteUploads("")).length, { timeout: 10_000 }).toBe(2);
  await s.put("staging/a@1/rank-00000/model/pack.lz4", "x");

  expect(await s.deletePrefix("staging/a@1/")).toBe(1);
  expect((await s.listIncompleteUploads("")).map((u) => u.key)).toEqual(["staging/b@1/rank-00000/model/000000.lz4"]);
  expect((await s.list("staging/a@1/")).objects).toEqual([]);
  await Promise.all([inside.abort(), outside.abort()]);
});
