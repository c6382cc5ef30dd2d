import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { authzDataSchema } from "../../../src/config/authz-data.js";
import { PACKAGE_ROOT, serviceConfigSchema } from "../../../src/config/service-config.js";
import { markdownSection } from "./markdown-section.js";
import { type SchemaKey, schemaKeys } from "./schema-keys.js";

// Issue 8, a configuration reference in one place: docs/configuration.md lists every key
// of the service configuration and of the authorization data, and no other, each with
// the default its schema has.

const page = readFileSync(join(PACKAGE_ROOT, "docs", "configuration.md"), "utf8");

/** Rows of the section's table: key → default cell. */
function documented(heading: RegExp): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of markdownSection(page, heading).split("\n")) {
    const m = /^\| `([^`]+)` \| ([^|]*) \|/.exec(line);
    if (m) rows.set(m[1]!, m[2]!.trim());
  }
  return rows;
}

/** The keys that hold a value (not only other keys). */
function leaves(keys: readonly SchemaKey[]): SchemaKey[] {
  return keys.filter((key) => !keys.some((other) => other.path.startsWith(`${key.path}.`) || other.path.startsWith(`${key.path}[]`)));
}

describe.each([
  ["the service configuration", /^## Service configuration$/m, serviceConfigSchema],
  ["the authorization data", /^## Authorization data$/m, authzDataSchema],
] as const)("docs/configuration.md: %s", (_name, heading, schema) => {
  const keys = leaves(schemaKeys(schema));
  const rows = documented(heading);

  it("lists every key", () => {
    expect(keys.length).toBeGreaterThan(20);
    expect(keys.map((k) => k.path).filter((path) => !rows.has(path))).toEqual([]);
  });

  it("lists no key the schema does not have", () => {
    const known = new Set(keys.map((k) => k.path));
    expect([...rows.keys()].filter((path) => !known.has(path))).toEqual([]);
  });

  it("gives each default as the schema has it", () => {
    const wrong = keys
      .filter((k) => k.default !== undefined && (typeof k.default !== "object" || k.default === null))
      .filter((k) => !rows.get(k.path)?.includes(`\`${JSON.stringify(k.default)}\``))
      .map((k) => `${k.path}: expected \`${JSON.stringify(k.default)}\`, found ${rows.get(k.path)}`);
    expect(wrong).toEqual([]);
  });
});

it("is linked from the README", () => {
  expect(readFileSync(join(PACKAGE_ROOT, "README.md"), "utf8")).toMatch(/\]\(docs\/configuration\.md\)/);
});
