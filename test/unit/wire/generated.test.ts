import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../integration/harness.js";

function listFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)))
    .sort();
}

describe("generated types", () => {
  it("wire/gen matches proto/ (run `npm run gen` after editing a .proto)", () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "ckptd-gen-"));
    execFileSync(process.execPath, [path.join(REPO_ROOT, "scripts/gen-types.mjs"), out], { stdio: "pipe" });
    const committed = path.join(REPO_ROOT, "wire/gen");
    expect(listFiles(out)).toEqual(listFiles(committed));
    for (const f of listFiles(out))
      expect(fs.readFileSync(path.join(out, f), "utf8"), f).toBe(fs.readFileSync(path.join(committed, f), "utf8"));
  });
});
