import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { summaryLine } from "../../../src/cli/import.js";
import { PACKAGE_ROOT } from "../../../src/config/service-config.js";
import { NGINX_GLOBAL_KEYS, NGINX_ISSUER_KEYS, XROOTD_GLOBAL_KEYS, XROOTD_ISSUER_KEYS, formatReportLine, importConfig } from "../../../src/migration/index.js";
import { markdownSection } from "./markdown-section.js";

// Issue 9, docs/migration.md: its tables name every setting the import reads, and its
// example is what the command prints for the nginx-scitokens demo configuration.

const page = readFileSync(join(PACKAGE_ROOT, "docs", "migration.md"), "utf8");
// From the example's heading on (its YAML comments would end a markdownSection early).
const example = page.slice(page.search(/^## An example: /m));
const block = (lang: string) => new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``).exec(example)?.[1];

/** The backticked words in the first cell of each table row of a section. */
function settingsCells(heading: RegExp): Set<string> {
  const names = new Set<string>();
  for (const line of markdownSection(page, heading).split("\n")) {
    const first = /^\| ([^|]+) \|/.exec(line)?.[1] ?? "";
    for (const m of first.matchAll(/`([^`]+)`/g)) names.add(m[1]!);
  }
  return names;
}

describe("docs/migration.md drift", () => {
  it.each([
    ["nginx-scitokens", /^## nginx-scitokens .*$/m, [...NGINX_GLOBAL_KEYS, ...NGINX_ISSUER_KEYS]],
    ["XRootD", /^## XRootD .*$/m, [...XROOTD_GLOBAL_KEYS, ...XROOTD_ISSUER_KEYS]],
  ])("the %s table has a row for every setting the import reads", (_name, heading, keys) => {
    const cells = settingsCells(heading);
    expect(keys.filter((key) => !cells.has(key))).toEqual([]);
  });

  it("shows the example configuration as the fixture holds it", () => {
    const fixture = readFileSync(join(PACKAGE_ROOT, "test", "fixtures", "import", "nginx-scitokens", "authorizer.cfg"), "utf8");
    expect(block("ini")).toBe(fixture);
  });

  it("shows the data and the report the import gives for it", () => {
    const bytes = readFileSync(join(PACKAGE_ROOT, "test", "fixtures", "import", "nginx-scitokens", "authorizer.cfg"));
    const result = importConfig("nginx-scitokens", bytes, "authorizer.cfg");
    expect(block("yaml")).toBe(result.yaml);
    const report = [...result.report.map((line) => formatReportLine("authorizer.cfg", line)), summaryLine("nginx-scitokens", undefined, result)];
    expect(block("text")).toBe(`${report.join("\n")}\n`);
  });

  it("names only repository paths that exist", () => {
    const paths = [...page.matchAll(/`((?:test|src|docs)\/[^`*\s]*)`/g)].map((m) => m[1]!);
    expect(paths.length).toBeGreaterThan(0);
    expect(paths.filter((path) => !existsSync(join(PACKAGE_ROOT, path)))).toEqual([]);
  });

  it("is linked from the README", () => {
    expect(readFileSync(join(PACKAGE_ROOT, "README.md"), "utf8")).toMatch(/\]\(docs\/migration\.md\)/);
  });
});
