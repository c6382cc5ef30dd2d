// Transpiles a folder of the project's TypeScript for a script that runs it outside
// dist/ (the fuzz targets, the benchmark): Vite's TypeScript transform (Oxc), no type
// check (npm test's tsc step does that).
import { mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";

function listTypeScript(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return listTypeScript(path);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [path] : [];
  });
}

/**
 * Writes every `.ts` file under `sourceDir` (a folder of the checkout at `root`) to the
 * same relative place under `work` as `.js`, with an inline source map naming the file in
 * the checkout (so stack traces point there), makes `work` an ES module package, and links
 * `work/src` to dist/, so that `../src/x.js`-style imports reach the compiled service code.
 */
export async function transpileTree(root, sourceDir, work) {
  const { transformWithOxc } = await import("vite");
  for (const file of listTypeScript(sourceDir)) {
    const out = join(work, relative(root, file)).replace(/\.ts$/, ".js");
    const { code, map } = await transformWithOxc(readFileSync(file, "utf8"), file, { lang: "ts", target: "es2024", sourcemap: true });
    const mapped = { ...map, sources: [relative(dirname(out), file).split(sep).join("/")], sourceRoot: undefined };
    const inline = `//# sourceMappingURL=data:application/json;base64,${Buffer.from(JSON.stringify(mapped)).toString("base64")}`;
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${code.trimEnd()}\n${inline}\n`);
  }
  writeFileSync(join(work, "package.json"), `${JSON.stringify({ type: "module", private: true })}\n`);
  symlinkSync(join(root, "dist"), join(work, "src"), "dir");
}
