/** The daemon's version: the one in package.json, found by walking up from this module. */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

function readVersion(): string {
  // From src/ (tests) and from dist/src/ (compiled) alike.
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    const file = path.join(dir, "package.json");
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "ckptd" && pkg.version) return pkg.version;
    }
    if (path.dirname(dir) === dir) return "unknown";
  }
}

export const VERSION = readVersion();
