/**
 * Starts the single-node Ceph + RGW (or reuses the running one) and creates the test bucket. A cluster
 * this run started is stopped at the end unless CKPTD_RGW_KEEP=1; a reused one is left running.
 */
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { rgwScript, TEST_BUCKET, testStore } from "./rgw.js";

export default async function setup(): Promise<() => void> {
  const reused = /already running/.test(rgwScript("start-rgw.sh"));
  const store = testStore("");
  try {
    await store.client.send(new CreateBucketCommand({ Bucket: TEST_BUCKET }));
  } catch (err) {
    if (!["BucketAlreadyOwnedByYou", "BucketAlreadyExists"].includes((err as Error).name)) throw err;
  } finally {
    store.close();
  }
  return () => {
    if (!reused && process.env.CKPTD_RGW_KEEP !== "1") rgwScript("stop-rgw.sh");
  };
}
