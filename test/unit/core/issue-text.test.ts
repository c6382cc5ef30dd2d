import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError } from "../../../src/config/config-error.js";
import { closest, describeValue } from "../../../src/config/issue-text.js";
import { validate } from "../../../src/config/read-yaml.js";

// Issue 8, errors an operator can act on: a schema problem says what was expected and
// what was found, in the operator's words, never the validator's ("Invalid input: …"),
// and an unknown key offers the close known one.

const schema = z.strictObject({
  name: z.string(),
  port: z.number().int().optional(),
  mode: z.enum(["deny", "passthrough"]).optional(),
  tags: z.array(z.string()).min(1).optional(),
  nested: z.strictObject({ leeway_seconds: z.number() }).optional(),
  limit: z.number({ error: "expected a limit in bytes" }).positive("expected a limit in bytes, above 0").optional(),
});

function problems(value: unknown): readonly string[] {
  try {
    validate("/etc/x.yaml", schema, value);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  return [];
}

describe("schema problems in operators' words", () => {
  it.each<[string, unknown, string]>([
    ["a missing key", {}, "name: required: expected a string"],
    ["a wrong type", { name: 3 }, "name: expected a string, found 3"],
    ["a fraction for a whole number", { name: "a", port: 1.5 }, "port: expected a whole number, found 1.5"],
    ["a value outside an enum", { name: "a", mode: "allow" }, 'mode: expected one of "deny", "passthrough", found "allow"'],
    ["an empty list", { name: "a", tags: [] }, "tags: expected a non-empty list, found a list (0 entries)"],
    ["a schema's own message keeps its words and gains the value", { name: "a", limit: -1 }, "limit: expected a limit in bytes, above 0, found -1"],
    ["a mapping where a list belongs", { name: "a", tags: { a: 1 } }, "tags: expected a list, found a mapping"],
    ["a typo of a top-level key", { name: "a", prot: 1 }, 'prot: unknown key; did you mean "port"? (expected one of: name, port, mode, tags, nested, limit)'],
    ["a typo in a nested mapping", { name: "a", nested: { leeway: 1, leeway_seconds: 2 } }, "nested.leeway: unknown key (expected one of: leeway_seconds)"],
    [
      "a key with the wrong separator",
      { name: "a", nested: { "leeway-seconds": 1, leeway_seconds: 1 } },
      'nested.leeway-seconds: unknown key; did you mean "leeway_seconds"? (expected one of: leeway_seconds)',
    ],
  ])("%s", (_name, value, expected) => {
    const found = problems(value);
    expect(found).toContain(expected);
    expect(found.join("\n")).not.toMatch(/Invalid input|Unrecognized key|Invalid option|Too small/);
  });
});

describe("closest", () => {
  it.each<[string, string | null]>([
    ["audience", "audiences"],
    ["jwks_url", "jwks_uri"],
    ["BASE_PATH", "base_path"],
    ["realms", "realm"],
    ["completely_else", null],
  ])("%s → %s", (key, expected) => {
    expect(closest(key, ["audiences", "issuers", "jwks_uri", "base_path", "realm"])).toBe(expected);
  });
});

describe("describeValue", () => {
  it.each<[unknown, string]>([
    [undefined, "nothing"],
    [null, "null (an empty value)"],
    [[1, 2], "a list (2 entries)"],
    [{ a: 1 }, "a mapping"],
    ["x".repeat(100), `"${"x".repeat(76)}…`],
  ])("%j", (value, expected) => {
    expect(describeValue(value)).toBe(expected);
  });
});
