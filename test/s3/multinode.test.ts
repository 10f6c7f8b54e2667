/**
 * Multi-node jobs with no shared filesystem: three daemons, each with its own local data directory
 * (scratch and lock only), keep one job's checkpoints in one bucket of a real RGW. The same cases as
 * on a shared directory (test/integration/multinode-cases.ts), and after each abort no staged object
 * and no incomplete multipart upload is left; no node's local directory holds any checkpoint data.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, expect } from "vitest";
import { tempDataDir } from "../integration/harness.js";
import { multinodeCases } from "../integration/multinode-cases.js";
import { layout } from "../../src/store/layout.js";
import { S3Storage } from "../../src/store/s3/storage.js";
import { cleanedAfterAll } from "./cleanup.js";
import { freshPrefix, readRgwEnv, TEST_BUCKET } from "./rgw.js";

const keep = cleanedAfterAll();
const localDirs: string[] = [];

afterAll(() => {
  // Nothing of a checkpoint went to a node's own directory: the bucket is the only shared place.
  for (const dir of localDirs) {
    const jobs = path.join(dir, "jobs");
    const held = fs.existsSync(jobs) ? fs.readdirSync(jobs, { recursive: true }) : [];
    expect(held, `${dir}/jobs holds nothing`).toEqual([]);
  }
});

multinodeCases({
  name: "one bucket, a local directory per node",
  place() {
    const env = readRgwEnv();
    const prefix = freshPrefix("multinode");
    // Read-only view of the bucket for the assertions (it never takes the lock).
    const view = new S3Storage({
      bucket: TEST_BUCKET,
      prefix,
      endpoint: env.endpoint,
      region: env.region,
      credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    });
    keep(view.store);
    const dirs = new Map<string, string>();
    return {
      node: (node) => {
        let dataDir = dirs.get(node);
        if (!dataDir) {
          dirs.set(node, (dataDir = tempDataDir()));
          localDirs.push(dataDir);
        }
        return {
          dataDir,
          args: ["--storage", `s3://${TEST_BUCKET}/${prefix}`, "--s3-endpoint", env.endpoint, "--s3-region", env.region],
          env: { AWS_ACCESS_KEY_ID: env.accessKeyId, AWS_SECRET_ACCESS_KEY: env.secretAccessKey, AWS_REGION: env.region },
        };
      },
      staged: async (job) => {
        // A published checkpoint's data stays in its attempt's staging on an object store: only the others count.
        const published = new Set<string>();
        for (const id of await view.list(layout.checkpoints(job))) {
          const manifest = await view.get(layout.manifest(job, id));
          if (manifest) published.add(`${id}@${(JSON.parse(manifest.toString()) as { attempt: number }).attempt}`);
        }
        return (await view.list(layout.stagingRoot(job))).filter((n) => !published.has(n));
      },
      markers: (node) => view.list(layout.nodeAttempts(node)),
      writing: async () => (await view.store.listIncompleteUploads("")).length,
      leftOver: async () => {
        const uploads = await view.store.listIncompleteUploads("");
        return uploads.length === 0 ? "" : `incomplete uploads: ${uploads.map((u) => u.key).join(", ")}`;
      },
    };
  },
});
