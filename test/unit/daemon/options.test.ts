import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseOptions } from "../../../src/daemon/options.js";

afterEach(() => {
  vi.unstubAllEnvs();
});

/** Runs parseOptions; returns what it printed to stderr when it exits instead. */
function refusal(argv: string[]): string {
  let err = "";
  const write = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    err += String(chunk);
    return true;
  });
  const exit = vi.spyOn(process, "exit").mockImplementation((() => {
    throw new Error("exit");
  }) as never);
  try {
    expect(() => parseOptions(argv)).toThrow("exit");
  } finally {
    write.mockRestore();
    exit.mockRestore();
  }
  return err;
}

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

  it("options - sizes come out in bytes, --direct-io as a boolean, a single node with no peers or token", () => {
    const o = parseOptions(["--memory-budget-mib", "3", "--load-budget-mib", "5", "--direct-io", "off"]);
    expect(o.memoryBudgetBytes).toBe(3 * 1024 * 1024);
    expect(o.loadBudgetBytes).toBe(5 * 1024 * 1024);
    expect(o.directIo).toBe(false);
    expect(o.peers).toEqual([]);
    expect(o.peerToken).toBeUndefined();
    const d = parseOptions([]);
    expect(d.memoryBudgetBytes).toBe(256 * 1024 * 1024);
    expect(d.loadBudgetBytes).toBe(96 * 1024 * 1024);
    expect(d.directIo).toBe(true);
    // Only the normalised forms reach the daemon: nothing left in MiB or as "on"/"off" text.
    expect(d).not.toHaveProperty("memoryBudgetMib");
    expect(d).not.toHaveProperty("loadBudgetMib");
    expect(d).not.toHaveProperty("peerTokenFile");
  });

  it("options - the TLS files are read once into buffers; without --tls-cert the daemon serves plaintext", () => {
    expect(parseOptions([]).tls).toBeUndefined();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-opt-"));
    for (const f of ["cert.pem", "key.pem", "ca.pem"]) fs.writeFileSync(path.join(dir, f), `-----${f}-----\n`);
    const files = ["--tls-cert", path.join(dir, "cert.pem"), "--tls-key", path.join(dir, "key.pem")];
    const tls = parseOptions(files).tls!;
    expect([tls.cert.toString(), tls.key.toString(), tls.ca]).toEqual(["-----cert.pem-----\n", "-----key.pem-----\n", undefined]);
    expect(parseOptions([...files, "--tls-ca", path.join(dir, "ca.pem")]).tls!.ca!.toString()).toBe("-----ca.pem-----\n");
  });

  describe("multi-node peer credential", () => {
    function tokenFile(token: string): string {
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-opt-")), "peer");
      fs.writeFileSync(file, `${token}\n`);
      return file;
    }

    const multi = ["--node-id", "n1", "--peers", "n1,n2"];

    it("options - --peers is parsed once: ids with optional addresses; a repeated or invalid id is refused naming --peers", () => {
      const o = parseOptions(["--node-id", "n1", "--peers", " n1=10.0.0.1:7070, n2 ,n3=host-3:7071", "--insecure-peers"]);
      expect(o.peers).toEqual([{ id: "n1", address: "10.0.0.1:7070" }, { id: "n2" }, { id: "n3", address: "host-3:7071" }]);
      expect(refusal(["--node-id", "n1", "--peers", "n1,n2,n1", "--insecure-peers"]).split("\n")[0]).toMatch(
        /^ckptd: --peers 'n1,n2,n1': --peers names a node twice/,
      );
      expect(refusal(["--node-id", "n1", "--peers", "n1,bad id", "--insecure-peers"]).split("\n")[0]).toMatch(
        /^ckptd: --peers 'n1,bad id': .*peer node id "bad id" is not a valid name/,
      );
    });

    it("options - a multi-node daemon without --peer-token-file or --insecure-peers is refused, naming both", () => {
      expect(refusal(multi).split("\n")[0]).toMatch(/needs --peer-token-file .* --insecure-peers/);
    });

    it("options - a peer token file with a short token is refused; a good one is accepted", () => {
      expect(refusal([...multi, "--peer-token-file", tokenFile("short")])).toMatch(/at least 16 characters/);
      const file = tokenFile("a-peer-token-of-32-characters-xx");
      expect(parseOptions([...multi, "--peer-token-file", file]).peerToken).toBe("a-peer-token-of-32-characters-xx");
      expect(refusal([...multi, "--peer-token-file", path.join(path.dirname(file), "absent")]).split("\n")[0]).toMatch(
        /^ckptd: --peer-token-file: peer token file .*absent cannot be read/,
      );
    });

    it("options - --auth-tokens is read once into an authorizer; a bad file is one line naming it, without the usage text", () => {
      expect(parseOptions([]).auth.enabled).toBe(false);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-opt-"));
      const good = path.join(dir, "tokens.json");
      fs.writeFileSync(good, JSON.stringify({ admin: "an-admin-token", jobs: { j: "a-job-token" } }));
      const auth = parseOptions(["--auth-tokens", good]).auth;
      expect(auth.enabled).toBe(true);
      expect(auth.owner("an-admin-token")).toBe("the admin token");
      expect(auth.owner("a-job-token")).toMatch(/'j'/);
      expect(auth.owner("nobody")).toBeUndefined();
      const bad = path.join(dir, "bad.json");
      fs.writeFileSync(bad, '{"admin": "x"}');
      const err = refusal(["--auth-tokens", bad]);
      expect(err).toMatch(/^ckptd: auth token file .*bad\.json: "admin" must be a string of at least 8 characters\n$/);
      expect(err).not.toMatch(/Usage:/);
      expect(refusal([...multi, "--peer-token-file", tokenFile("short")])).not.toMatch(/Usage:/);
    });

    it("options - a usage mistake still shows the usage text", () => {
      expect(refusal(["--keep-last", "-1"])).toMatch(/Usage: ckptd/);
    });

    it("options - --insecure-peers: only for multi-node, CKPTD_INSECURE_PEERS must be 1 or true, a config file needs a boolean", () => {
      expect(parseOptions([...multi, "--insecure-peers"]).insecurePeers).toBe(true);
      expect(refusal(["--insecure-peers"])).toMatch(/for multi-node daemons/);
      vi.stubEnv("CKPTD_INSECURE_PEERS", "0");
      expect(refusal(multi)).toMatch(/CKPTD_INSECURE_PEERS must be '1' or 'true'/);
      vi.stubEnv("CKPTD_INSECURE_PEERS", "1");
      expect(parseOptions(multi).insecurePeers).toBe(true);
      vi.unstubAllEnvs();
      const config = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-opt-")), "c.json");
      fs.writeFileSync(config, JSON.stringify({ insecurePeers: "false" }));
      expect(refusal([...multi, "--config", config])).toMatch(/'insecurePeers' must be true or false/);
    });
  });
});

describe("options - object store", () => {
  it("options - --storage s3://BUCKET/PREFIX with its --s3-* flags (or CKPTD_* env) becomes objectStore; without it there is none", () => {
    expect(parseOptions([]).objectStore).toBeUndefined();
    expect(
      parseOptions(["--storage", "s3://my-bucket/a/b/", "--s3-endpoint", "http://127.0.0.1:7480", "--s3-region", "r1"]).objectStore,
    ).toEqual({
      bucket: "my-bucket",
      prefix: "a/b",
      endpoint: "http://127.0.0.1:7480",
      region: "r1",
      forcePathStyle: undefined,
    });
    vi.stubEnv("CKPTD_STORAGE", "s3://env-bucket");
    vi.stubEnv("CKPTD_S3_PATH_STYLE", "1");
    expect(parseOptions([]).objectStore).toEqual({
      bucket: "env-bucket",
      prefix: "",
      endpoint: undefined,
      region: undefined,
      forcePathStyle: true,
    });
  });

  it("options - a bad --storage URL, a bad endpoint, or --s3-* flags without --storage are refused in one line", () => {
    expect(refusal(["--storage", "gs://b/p"]).split("\n")[0]).toMatch(/--storage 'gs:\/\/b\/p': expected s3:\/\/BUCKET\/PREFIX/);
    expect(refusal(["--storage", "s3://Bad_Bucket/p"]).split("\n")[0]).toMatch(/bucket 'Bad_Bucket' is not a valid bucket name/);
    expect(refusal(["--storage", "s3://bucket/a//b"]).split("\n")[0]).toMatch(/prefix 'a\/\/b' has an empty/);
    expect(refusal(["--storage", "s3://bucket/p", "--s3-endpoint", "127.0.0.1:7480"]).split("\n")[0]).toMatch(/--s3-endpoint .* http:\/\//);
    expect(refusal(["--s3-region", "r1"]).split("\n")[0]).toMatch(/need --storage s3:\/\/BUCKET\/PREFIX/);
  });

  it("options - a multi-node job may keep its checkpoints in one bucket (no shared filesystem)", () => {
    const o = parseOptions(["--storage", "s3://bucket/p", "--node-id", "n2", "--peers", "n1,n2", "--insecure-peers"]);
    expect(o.nodeId).toBe("n2");
    expect(o.objectStore).toMatchObject({ bucket: "bucket", prefix: "p" });
  });
});
