import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration tests start real daemon processes and move real bytes.
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Two cores: one test file at a time keeps daemons from starving each other.
    fileParallelism: false,
  },
});
