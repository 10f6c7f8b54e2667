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
  it("no file of the daemon or of wire/ names the client's directory, not even in a comment", () => {
    const offending = [...tsFiles("src"), ...tsFiles("wire")].filter((f) =>
      /clients\//.test(fs.readFileSync(path.join(REPO_ROOT, f), "utf8")),
    );
    expect(offending).toEqual([]);
  });

  it("ckptctl is a client: it imports @ckptd/client by package name, its own folder, and the package version", () => {
    const offending = tsFiles("src/ckptctl")
      .flatMap((f) => importedPaths(f).map((p) => `${f} -> ${p}`))
      .filter((edge) => {
        const target = edge.split(" -> ")[1]!;
        return !target.startsWith("src/ckptctl/") && target !== "src/common/version.js";
      });
    expect(offending).toEqual([]);
    const daemonImports = tsFiles("src")
      .filter((f) => !f.startsWith("src/ckptctl/"))
      .flatMap((f) => importedPaths(f).map((p) => `${f} -> ${p}`))
      .filter((edge) => edge.split(" -> ")[1]!.startsWith("src/ckptctl/"));
    expect(daemonImports).toEqual([]);
  });

  it("the daemon's layers import downwards only: daemon > rpc > save, load, evaluation > commit > catalog > store, codec > common > wire", () => {
    const rank: Record<string, number> = {
      wire: 0,
      common: 1,
      store: 2,
      codec: 2,
      catalog: 3,
      commit: 4,
      save: 5,
      load: 5,
      evaluation: 5,
      rpc: 6,
      daemon: 7,
      cli: 8,
    };
    const layer = (p: string): string => {
      if (p.startsWith("wire/")) return "wire";
      const m = /^src\/([^/]+)\//.exec(p);
      if (m) return m[1]!;
      if (p === "src/cli.ts" || p === "src/cli.js") return "cli";
      return "?";
    };
    const files = tsFiles("src").filter((f) => !f.startsWith("src/ckptctl/"));
    for (const f of files) expect(rank[layer(f)], `${f} is in no known layer`).toBeDefined();
    const upward = files
      .flatMap((f) => importedPaths(f).map((p) => [f, p] as const))
      .filter(([f, p]) => layer(f) !== layer(p) && !(rank[layer(p)]! < rank[layer(f)]!))
      .map(([f, p]) => `${f} -> ${p}`);
    expect(upward).toEqual([]);
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
