import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../integration/harness.js";

function tsFiles(dir: string): string[] {
  return fs
    .readdirSync(path.join(REPO_ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith(".ts"))
    .map((d) => path.relative(REPO_ROOT, path.join(d.parentPath, d.name)));
}

/** Every module specifier a file imports or re-exports. */
function specifiers(file: string): string[] {
  const text = fs.readFileSync(path.join(REPO_ROOT, file), "utf8");
  return [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(?\s*)"([^"]+)"/g)].map((m) => m[1]!);
}

/** The repository paths a file imports relatively. */
function importedPaths(file: string): string[] {
  return specifiers(file)
    .filter((s) => s.startsWith("."))
    .map((s) => path.relative(REPO_ROOT, path.resolve(REPO_ROOT, path.dirname(file), s)));
}

describe("package layout", () => {
  it("the daemon imports the wire contract, never the TypeScript client (src/ckptctl is a client and may)", () => {
    const offending = tsFiles("src")
      .filter((f) => !f.startsWith("src/ckptctl/"))
      .flatMap((f) => importedPaths(f).map((p) => `${f} -> ${p}`))
      .filter((edge) => edge.split(" -> ")[1]!.startsWith("clients/"));
    expect(offending).toEqual([]);
  });

  it("ckptctl reaches the daemon through the client's public index only", () => {
    const offending = tsFiles("src/ckptctl")
      .flatMap((f) => importedPaths(f).map((p) => `${f} -> ${p}`))
      .filter((edge) => {
        const target = edge.split(" -> ")[1]!;
        return (target.startsWith("clients/") && target !== "clients/ts/src/index.js") || target.startsWith("wire/");
      });
    expect(offending).toEqual([]);
  });

  it("wire/ imports neither the daemon nor a client", () => {
    const offending = tsFiles("wire")
      .flatMap((f) => importedPaths(f).map((p) => `${f} -> ${p}`))
      .filter((edge) => !edge.split(" -> ")[1]!.startsWith("wire/"));
    expect(offending).toEqual([]);
  });

  it("the TypeScript client imports only itself and wire/", () => {
    const offending = tsFiles("clients/ts/src")
      .flatMap((f) => importedPaths(f).map((p) => `${f} -> ${p}`))
      .filter((edge) => !/^(clients\/ts\/src|wire)\//.test(edge.split(" -> ")[1]!));
    expect(offending).toEqual([]);
  });

  it("@ckptd/client resolves through its exports to the built client, without PeerService or wire internals (run `npm run build` first)", () => {
    const pkgDir = path.join(REPO_ROOT, "clients/ts");
    const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8")) as {
      name: string;
      exports: { ".": { types: string; default: string } };
    };
    expect(pkg.name).toBe("@ckptd/client");
    for (const target of Object.values(pkg.exports["."])) expect(fs.existsSync(path.join(pkgDir, target)), target).toBe(true);
    // A package may import itself by name: this goes through `exports` exactly as a dependant would.
    const out = execFileSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const m = await import(${JSON.stringify(pkg.name)}); console.log(JSON.stringify(Object.keys(m).sort()));`,
      ],
      { cwd: pkgDir, encoding: "utf8" },
    );
    const names = JSON.parse(out) as string[];
    expect(names).toEqual(expect.arrayContaining(["CheckpointEngine", "CkptdClient", "CkptdError", "tensor", "MAX_CHUNK_BYTES"]));
    expect(names.filter((n) => /peer|wire|^proto_|loader/i.test(n))).toEqual([]);
  });
});
