/**
 * Multi-node jobs on a shared filesystem: three daemons on loopback share one data directory.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { tempDataDir } from "./harness.js";
import { multinodeCases } from "./multinode-cases.js";

const names = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir) : []);

multinodeCases({
  name: "one shared data directory",
  place() {
    const dataDir = tempDataDir();
    return {
      node: () => ({ dataDir, args: [] }),
      staged: async (job) => names(path.join(dataDir, "jobs", job, "staging")),
      markers: async (node) => names(path.join(dataDir, "nodes", node, "attempts")),
    };
  },
});
