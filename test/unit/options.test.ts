import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseOptions } from "../../src/options.js";

afterEach(() => {
  vi.unstubAllEnvs();
});

describe("options", () => {
  it("defaults: loopback, ./ckptd-data, single node, no TLS or tokens", () => {
    const o = parseOptions([]);
    expect(o).toMatchObject({
      listen: "127.0.0.1:7070",
      dataDir: "./ckptd-data",
      nodeId: "",
      tlsCert: "",
      authTokens: "",
      metricsListen: "",
    });
    expect(o.prepareTimeoutMs).toBe(300_000);
  });

  it("precedence: flag > environment > config file > default", () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-opt-")), "c.json");
    fs.writeFileSync(file, JSON.stringify({ keepLast: 3, keepEverySteps: 10, gcIntervalMs: 500 }));
    vi.stubEnv("CKPTD_KEEP_EVERY_STEPS", "20");
    const o = parseOptions(["--config", file, "--gc-interval-ms", "700"]);
    expect(o.keepLast).toBe(3);
    expect(o.keepEverySteps).toBe(20);
    expect(o.gcIntervalMs).toBe(700);
  });
});
