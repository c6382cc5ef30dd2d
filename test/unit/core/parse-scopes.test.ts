import { describe, expect, it } from "vitest";
import type { DenyReason } from "../../../src/reasons/index.js";
import { parseScopes, splitScopeString } from "../../../src/token/scopes.js";
import { denyOf, loadCases } from "./fixtures.js";

interface ScopeCase {
  name: string;
  scopes: string[];
  expect?: Array<{ authz: string; path: string | null }>;
  deny?: DenyReason;
}

describe("parseScopes (SEMANTICS §6)", () => {
  it.each(loadCases<ScopeCase>("scopes.yaml"))("$name", (c) => {
    if (c.deny !== undefined) {
      expect(c.expect).toBeUndefined();
      expect(denyOf(() => parseScopes(c.scopes)).code).toBe(c.deny);
      return;
    }
    const parsed = parseScopes(c.scopes);
    expect(parsed.map(({ authz, path }) => ({ authz, path }))).toEqual(c.expect);
  });

  it("keeps each entry as it appeared in the token", () => {
    const entries = ["read:data//x/", "dqsegdb.read", "storage.read:/a%20b"];
    expect(parseScopes(entries).map((s) => s.raw)).toEqual(entries);
  });
});

describe("splitScopeString", () => {
  it.each([
    ["one entry", "read:/a", ["read:/a"]],
    ["ASCII spaces", "read:/a write:/b", ["read:/a", "write:/b"]],
    ["repeated, leading and trailing spaces", "  read:/a   write:/b ", ["read:/a", "write:/b"]],
    ["empty string", "", []],
    ["tab is not a separator", "read:/a\twrite:/b", ["read:/a\twrite:/b"]],
    ["no-break space is not a separator", "read:/a\u00a0write:/b", ["read:/a\u00a0write:/b"]],
  ])("%s", (_name, scope, entries) => {
    expect(splitScopeString(scope)).toEqual(entries);
  });
});
