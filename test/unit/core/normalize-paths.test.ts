import { describe, expect, it } from "vitest";
import { type PathResult, normalizeConfiguredPath, normalizeRequestPath, normalizeScopePath } from "../../../src/paths/normalize.js";
import { loadCases } from "./fixtures.js";

interface PathCase {
  name: string;
  input: string;
  /** The normalized path, or "reject". */
  expect: string;
  /** A fragment of the refusal reason. */
  why?: string;
}

function expectResult(result: PathResult, c: PathCase): void {
  if (c.expect === "reject") {
    expect(result.ok, `${JSON.stringify(c.input)} must be refused`).toBe(false);
    if (!result.ok && c.why !== undefined) expect(result.why).toContain(c.why);
    return;
  }
  expect(result).toEqual({ ok: true, path: c.expect, segments: c.expect.split("/").filter((s) => s !== "") });
}

const tables = [
  ["normalizeRequestPath (SEMANTICS §7)", "request-paths.yaml", normalizeRequestPath],
  ["normalizeScopePath (SEMANTICS §6)", "scope-paths.yaml", normalizeScopePath],
  ["normalizeConfiguredPath (SEMANTICS §8)", "configured-paths.yaml", normalizeConfiguredPath],
] as const;

for (const [title, file, normalize] of tables) {
  describe(title, () => {
    const cases = loadCases<PathCase>(file);

    it.each(cases)("$name", (c) => {
      expectResult(normalize(c.input), c);
    });

    it("is idempotent on every path it accepts", () => {
      for (const c of cases) {
        const first = normalize(c.input);
        if (!first.ok) continue;
        // A decoded `%`, `?` or `#` means something else in a raw path: not a fixed point.
        if (/[%?#]/.test(first.path)) continue;
        expect(normalize(first.path), c.name).toEqual(first);
      }
    });
  });
}

describe("fixture coverage", () => {
  it.each(tables.map(([title, file]) => [title, file]))("%s has both accepted and refused cases", (_title, file) => {
    const cases = loadCases<PathCase>(file);
    expect(cases.some((c) => c.expect === "reject")).toBe(true);
    expect(cases.some((c) => c.expect !== "reject")).toBe(true);
    for (const c of cases) expect(c.expect === "reject" || c.expect.startsWith("/"), c.name).toBe(true);
  });
});
