import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The object-store tests need Ceph: `npm run test:s3` (test/s3/vitest.config.ts).
    exclude: [...configDefaults.exclude, "test/s3/**"],
    // Integration tests start real daemon processes and move real bytes.
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Two cores: one test file at a time keeps daemons from starving each other.
    fileParallelism: false,
  },
});
