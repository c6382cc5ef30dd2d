import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { parseAuthzData } from "../../../src/config/authz-data.js";
import { PACKAGE_ROOT } from "../../../src/config/service-config.js";
import { REASON_CODES } from "../../../src/reasons/index.js";
import { docFigures, tableRows } from "../../differential/doc-figures.js";
import { markdownSection } from "./markdown-section.js";

// Drift tests for docs/semantics.md, the operators' page on what the service decides: it
// must name every reason code and every divergence class of the differential test (and no
// class that no longer exists), cover every section of the contract (SEMANTICS §1–§12),
// keep its figures consistent, give authorization data that parses, and be linked from
// the README.

const PAGE_FILE = join(PACKAGE_ROOT, "docs", "semantics.md");
const page = readFileSync(PAGE_FILE, "utf8");
const readme = readFileSync(join(PACKAGE_ROOT, "README.md"), "utf8");

interface DivergenceEntry {
  id: string;
  kind: string;
}
const ORACLES_DIR = join(PACKAGE_ROOT, "test", "differential", "oracles");
/** Oracle id → its divergence classes (test/differential/oracles/<id>.yaml). */
const oracles = new Map(
  readdirSync(ORACLES_DIR)
    .filter((file) => file.endsWith(".yaml"))
    .map((file) => [file.slice(0, -".yaml".length), parse(readFileSync(join(ORACLES_DIR, file), "utf8")) as DivergenceEntry[]] as const),
);

function section(heading: RegExp): string {
  return markdownSection(page, heading);
}

describe("docs/semantics.md drift", () => {
  it.each([...REASON_CODES])("names the reason code %s", (code) => {
    expect(page).toContain(`\`${code}\``);
  });

  it("lists exactly the reason codes in its §12 table", () => {
    const rows = tableRows(section(/^## §12 .*$/m));
    expect([...rows.keys()].sort()).toEqual([...REASON_CODES].sort());
  });

  it.each(Array.from({ length: 12 }, (_, i) => `§${i + 1}`))("has a section for SEMANTICS %s", (number) => {
    expect(page).toMatch(new RegExp(`^## ${number} \\S`, "m"));
  });

  it("has a divergence file for every reference implementation, scitokens-cpp 0.7.3 among them", () => {
    expect([...oracles.keys()]).toContain("cpp-0.7.3");
  });

  it.each([...oracles.keys()])("names every class of %s under its kind, and figures that add up", (id) => {
    const figures = docFigures(id, page);
    if (typeof figures === "string") throw new Error(figures);
    const classes = oracles.get(id) ?? [];
    expect(Object.fromEntries(figures.kindOf)).toEqual(Object.fromEntries(classes.map((d) => [d.id, d.kind])));
    expect(figures.bothAllow + figures.bothDeny).toBe(figures.agreements);
    expect(figures.agreements + figures.disagreements).toBe(figures.cases);
    expect([...figures.perClass.values()].reduce((sum, n) => sum + n, 0)).toBe(figures.disagreements);
  });

  it("gives only authorization data that parses", () => {
    const blocks = [...page.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks.length).toBeGreaterThan(0);
    for (const block of blocks) expect(() => parseAuthzData(PAGE_FILE, parse(block))).not.toThrow();
  });

  it("names only repository paths that exist", () => {
    const paths = [...page.matchAll(/`((?:test|src|policies|envoy|docs)\/[^`*\s]*)`/g)].map((m) => m[1]!);
    expect(paths.length).toBeGreaterThan(0);
    expect(paths.filter((path) => !existsSync(join(PACKAGE_ROOT, path)))).toEqual([]);
  });

  it("is linked from the README", () => {
    expect(readme).toMatch(/\]\(docs\/semantics\.md\)/);
  });
});
