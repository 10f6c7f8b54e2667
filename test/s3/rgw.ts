/**
 * The RGW the object-store tests run against: test/s3/start-rgw.sh starts it (or reuses a running one)
 * and writes its endpoint and credentials to $CKPTD_RGW_DIR/env; these helpers read that file.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { S3Store, type S3StoreOptions } from "../../src/store/s3/client.js";

const here = dirname(fileURLToPath(import.meta.url));
export const rgwDir = () => process.env.CKPTD_RGW_DIR ?? "/tmp/ckptd-rgw";
/** The bucket every test writes to, each test under its own prefix. */
export const TEST_BUCKET = "ckptd-test";

export interface RgwEnv {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export function readRgwEnv(): RgwEnv {
  const vars: Record<string, string> = {};
  for (const line of readFileSync(join(rgwDir(), "env"), "utf8").split("\n")) {
    const m = /^export ([A-Z_0-9]+)=(.*)$/.exec(line.trim());
    if (m) vars[m[1]!] = m[2]!;
  }
  const need = (name: string) => {
    const v = vars[name];
    if (!v) throw new Error(`${join(rgwDir(), "env")} has no ${name}`);
    return v;
  };
  return {
    endpoint: need("CKPTD_S3_ENDPOINT"),
    accessKeyId: need("AWS_ACCESS_KEY_ID"),
    secretAccessKey: need("AWS_SECRET_ACCESS_KEY"),
    region: need("AWS_REGION"),
  };
}

/** Runs start-rgw.sh or stop-rgw.sh; returns what it said on stderr, and throws with it if it failed. */
export function rgwScript(name: "start-rgw.sh" | "stop-rgw.sh", ...args: string[]): string {
  const run = spawnSync("bash", [join(here, name), ...args], { encoding: "utf8", stdio: ["ignore", "ignore", "pipe"], timeout: 180_000 });
  if (run.status !== 0)
    throw new Error(`test/s3/${name} ${args.join(" ")} failed (${run.error?.message ?? `exit ${run.status}`}): ${run.stderr}`);
  return run.stderr;
}

/** A prefix no other test or run uses. */
export const freshPrefix = (name: string) => `t-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}/${name}`;

/** An S3Store on the test bucket under `prefix`, with the RGW's credentials. */
export function testStore(prefix: string, opts: Partial<S3StoreOptions> = {}): S3Store {
  const env = readRgwEnv();
  return new S3Store({
    bucket: TEST_BUCKET,
    prefix,
    endpoint: env.endpoint,
    region: env.region,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    ...opts,
  });
}
