import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { parseAuthzData } from "../../../src/config/authz-data.js";
import { PACKAGE_ROOT } from "../../../src/config/service-config.js";
import { REASON_CODES } from "../../../src/reasons/index.js";
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
const divergences = parse(readFileSync(join(PACKAGE_ROOT, "test", "differential", "oracles", "cpp-0.7.3.yaml"), "utf8")) as DivergenceEntry[];
const kinds = [...new Set(divergences.map((d) => d.kind))];

function section(heading: RegExp): string {
  return markdownSection(page, heading);
}

/** Table rows whose first cell is one backticked word: word → the other cells. */
function tableRows(text: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const m = /^\| `([^`|]+)` \|(.*)\|\s*$/.exec(line);
    if (m)
      rows.set(
        m[1]!,
        m[2]!.split("|").map((cell) => cell.trim()),
      );
  }
  return rows;
}

/** "1,923" → 1923 */
const count = (text: string): number => Number(text.replaceAll(",", ""));

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

  it.each(divergences.map((d) => [d.id, d.kind]))("names the divergence class %s", (id) => {
    expect(page).toContain(`\`${id}\``);
  });

  it.each(kinds)("lists exactly the divergence classes of kind %s under its heading", (kind) => {
    const rows = tableRows(section(new RegExp(`^### .*\\(kind \`${kind}\`\\)\\s*$`, "m")));
    const expected = divergences.filter((d) => d.kind === kind).map((d) => d.id);
    expect([...rows.keys()].sort()).toEqual(expected.sort());
  });

  it("has a heading for every kind of divergence, and no other", () => {
    const headed = [...page.matchAll(/^### .*\(kind `([^`]+)`\)\s*$/gm)].map((m) => m[1]!);
    expect(headed.sort()).toEqual([...kinds].sort());
  });

  it("gives differential figures that add up", () => {
    const measured = section(/^## Measured against scitokens-cpp .*$/m);
    const cases = /([\d,]+) cases\./.exec(measured);
    const agreements = /([\d,]+) agreements \([\d.]+ %\)\*\*: both allow ([\d,]+), both deny ([\d,]+)/.exec(measured);
    const disagreements = /([\d,]+) disagreements \([\d.]+ %\), 0 unexplained/.exec(measured);
    expect(cases && agreements && disagreements, "the figures of the default seed").toBeTruthy();
    expect(count(agreements![2]!) + count(agreements![3]!)).toBe(count(agreements![1]!));
    expect(count(agreements![1]!) + count(disagreements![1]!)).toBe(count(cases![1]!));
    let perClass = 0;
    for (const kind of kinds) {
      for (const cells of tableRows(section(new RegExp(`^### .*\\(kind \`${kind}\`\\)\\s*$`, "m"))).values()) {
        perClass += count(cells[0]!);
      }
    }
    expect(perClass).toBe(count(disagreements![1]!));
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
