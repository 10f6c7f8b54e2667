import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { Cluster } from "../../../src/commit/cluster.js";
import { ParticipantCoordinator } from "../../../src/commit/participant.js";
import { PosixStorage } from "../../../src/store/posix.js";

describe("participant recovery", () => {
  it("participant - a marker tmp file left by a crash before its rename is removed, not taken for an attempt", async () => {
    const dataDir = new PosixStorage(fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-participant-")));
    const markers = path.join(dataDir.root, "nodes", "n2", "attempts");
    fs.mkdirSync(markers, { recursive: true });
    const marker = JSON.stringify({ job: "j", checkpointId: "c", attempt: 1 });
    // Written whole and fsynced, then killed before the rename: valid JSON under the tmp name.
    fs.writeFileSync(path.join(markers, "j@c@1.json.tmp-4242"), marker);
    fs.writeFileSync(path.join(markers, "j@c@2.json"), JSON.stringify({ job: "j", checkpointId: "c", attempt: 2 }));
    // recover() only reads this node's markers: the cluster is needed for its id alone.
    const cluster = { nodeId: "n2" } as Cluster;
    const p = new ParticipantCoordinator(dataDir, cluster, { prepareTimeoutMs: 1000 }, pino({ level: "silent" }));
    await p.recover();
    expect(fs.readdirSync(markers)).toEqual(["j@c@2.json"]);
    expect(p.inFlight(), "only the renamed marker is an attempt to ask the coordinator about").toBe(1);
  });
});
