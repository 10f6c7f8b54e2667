/**
 * S3Storage.deletePrefix frees everything below the prefix, including multipart uploads left
 * incomplete there (a data object's upload whose abort failed while the store was unreachable, or
 * of a rank still saving when its attempt was aborted): they hold storage that no listing shows.
 * Uploads outside the prefix are left alone.
 */
import { randomBytes } from "node:crypto";
import { expect, it } from "vitest";
import { layout } from "../../src/store/layout.js";
import { S3Storage } from "../../src/store/s3/storage.js";
import { cleanedAfterAll } from "./cleanup.js";
import { freshPrefix, readRgwEnv, TEST_BUCKET } from "./rgw.js";

const keep = cleanedAfterAll();

it("s3 - deletePrefix aborts the incomplete multipart uploads below the prefix, and only those", async () => {
  const env = readRgwEnv();
  const s = new S3Storage({
    bucket: TEST_BUCKET,
    prefix: freshPrefix("delete-prefix-uploads"),
    endpoint: env.endpoint,
    region: env.region,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
  });
  keep(s.store);
  const aborted = layout.staging("j", "a", 1);
  const other = layout.staging("j", "b", 1);
  const inside = s.createObjectWriter(`${layout.item(aborted, 0, "model")}/000000.lz4`);
  const outside = s.createObjectWriter(`${layout.item(other, 0, "model")}/000000.lz4`);
  // More than a part each (8 MiB): the uploads exist; then the writers are dropped, neither finished nor aborted.
  await inside.write(randomBytes(9 << 20));
  await outside.write(randomBytes(9 << 20));
  await expect.poll(async () => (await s.store.listIncompleteUploads("")).length, { timeout: 10_000 }).toBe(2);
  await s.put(`${layout.item(aborted, 0, "model")}/pack.lz4`, "x");

  await s.deletePrefix(aborted);
  expect((await s.store.listIncompleteUploads("")).map((u) => u.key)).toEqual([`${layout.item(other, 0, "model")}/000000.lz4`]);
  expect((await s.store.list(`${aborted}/`)).objects).toEqual([]);
  await Promise.all([inside.abort(), outside.abort()]);
});
