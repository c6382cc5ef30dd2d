import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PACKAGE_ROOT } from "../../../src/config/service-config.js";
import { markdownSection } from "./markdown-section.js";

// Drift tests for docs/security.md: every threat names tests that exist, every attack
// suite is named there, and every setting of its limits table is a real setting (one of
// the README's service configuration example, which config.test.ts parses).

const page = readFileSync(join(PACKAGE_ROOT, "docs", "security.md"), "utf8");
const readme = readFileSync(join(PACKAGE_ROOT, "README.md"), "utf8");

function section(heading: RegExp): string {
  return markdownSection(page, heading);
}

/** Rows of the markdown tables in `text`, as cells. */
function rows(text: string): string[][] {
  return text
    .split("\n")
    .filter((line) => line.startsWith("|") && !/^\|[-| ]+\|$/.test(line))
    .map((line) =>
      line
        .slice(1, -1)
        .split("|")
        .map((cell) => cell.trim()),
    )
    .slice(0);
}

describe("docs/security.md drift", () => {
  it("names only repository paths that exist", () => {
    const paths = [...page.matchAll(/`((?:test|src|policies|envoy|docs|scripts)\/[^`*\s]*)`/g)].map((m) => m[1]!.replace(/ \(.*$/, ""));
    expect(paths.length).toBeGreaterThan(20);
    expect(paths.filter((path) => !existsSync(join(PACKAGE_ROOT, path)))).toEqual([]);
  });

  it("gives every threat a test, or says it is not mitigated", () => {
    const threats = rows(section(/^## Threats$/m)).filter((cells) => cells[0] !== "threat");
    expect(threats.length).toBeGreaterThan(25);
    for (const [threat, , tests] of threats) {
      const named = /`test\//.test(tests ?? "");
      const unmitigated = tests === "—";
      expect(named || unmitigated, `threat "${threat}" names no test`).toBe(true);
    }
  });

  it.each(readdirSync(join(PACKAGE_ROOT, "test", "attacks")).filter((f) => f.endsWith(".test.ts")))("names the attack suite %s", (file) => {
    expect(page).toContain(`test/attacks/${file}`);
  });

  it("lists only real settings in its limits table", () => {
    const settings = rows(section(/^## Resource limits$/m))
      .map((cells) => /^`([a-z_]+\.[a-z_]+)`$/.exec(cells[2] ?? "")?.[1])
      .filter((s): s is string => s !== undefined);
    expect(settings.length).toBeGreaterThan(8);
    for (const setting of settings) {
      const [group, key] = setting.split(".") as [string, string];
      // A section that is off by default is shown commented out, as a whole.
      const block = new RegExp(`^(?:${group}:|# ${group}:.*)\\n(?:#?  .*\\n|\\s*\\n)*?#?\\s+#?\\s*${key}:`, "m");
      expect(readme, `${setting} in the README's service configuration`).toMatch(block);
    }
  });

  it("is linked from the README", () => {
    expect(readme).toMatch(/\]\(docs\/security\.md\)/);
  });
});
