import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// 3.1175.0 runs on Node 20; its notice that later releases will need Node 22 is known (see src/store/s3/client.ts).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

// The object-store tests need Ceph (test/s3/start-rgw.sh), so they run only with `npm run test:s3`.
export default defineConfig({
  root: fileURLToPath(new URL("../..", import.meta.url)),
  test: {
    include: ["test/s3/**/*.test.ts"],
    globalSetup: ["test/s3/global-setup.ts"],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // One cluster: one file at a time (the restart test stops the gateway).
    fileParallelism: false,
  },
});
