import { afterAll } from "vitest";
import type { S3Store } from "../../src/store/s3/client.js";

/**
 * Returns `keep(store)`: after the file's tests, each kept store's incomplete uploads are aborted, its
 * objects deleted and its client closed.
 */
export function cleanedAfterAll(): (store: S3Store) => S3Store {
  const stores: S3Store[] = [];
  afterAll(async () => {
    for (const s of stores) {
      await s.abortIncompleteUploads("").catch(() => undefined);
      await s.deletePrefix("").catch(() => undefined);
      s.close();
    }
  });
  return (store) => {
    stores.push(store);
    return store;
  };
}
