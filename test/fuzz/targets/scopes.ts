/**
 * Fuzz target: `splitScopeString` and `parseScopes` (SEMANTICS §6) on a `scope` claim,
 * split as a string and taken whole as one entry of a list. Only `scope_invalid` may be
 * thrown; every path-style scope comes out with a normal absolute path (invariants.ts)
 * that normalizes to itself, and only from an entry of the input.
 */
import { PATH_AUTHZ } from "../../../src/config/authz-data.js";
import { normalizeScopePath } from "../../../src/paths/normalize.js";
import { DenyError } from "../../../src/reasons/index.js";
import { type ParsedScope, parseScopes, splitScopeString } from "../../../src/token/scopes.js";
import { describe, ensure, ensureNormalPath, show, total } from "../invariants.js";

const PATH_STYLE: ReadonlySet<string> = new Set(PATH_AUTHZ);

function parse(entries: readonly string[], input: string): ParsedScope[] | null {
  try {
    return parseScopes(entries);
  } catch (error) {
    ensure(error instanceof DenyError && error.code === "scope_invalid", `parseScopes threw ${describe(error)}`, input);
    return null;
  }
}

function ensureScope(scope: ParsedScope, entries: readonly string[], input: string): void {
  ensure(entries.includes(scope.raw), `scope ${show(scope.raw)} is not an entry of the claim`, input);
  const colon = scope.raw.indexOf(":");
  ensure(scope.authz === (colon === -1 ? scope.raw : scope.raw.slice(0, colon)), `authz ${show(scope.authz)} of ${show(scope.raw)}`, input);
  if (!PATH_STYLE.has(scope.authz)) return;
  const path = scope.path;
  ensure(path !== null, `path-style scope ${show(scope.raw)} without a path`, input);
  if (colon === -1 || colon === scope.raw.length - 1) {
    ensure(!scope.authz.startsWith("storage.") && path === "/", `${show(scope.raw)} gives ${show(path)}: only read/write without a path mean /`, input);
  }
  const again = normalizeScopePath(path);
  ensure(again.ok && again.path === path, `scope ${show(scope.raw)} has the path ${show(path)}, which is not normalized`, input);
  ensureNormalPath(again, `scope ${show(scope.raw)}`, input, true);
}

export function fuzz(data: Buffer): void {
  const claim = data.toString("utf8");
  const entries = total("splitScopeString", () => splitScopeString(claim), claim);
  ensure(entries.every((e) => e !== "" && !e.includes(" ")) && entries.join("") === claim.replaceAll(" ", ""), `split into ${show(entries)}`, claim);
  for (const list of [entries, [claim]]) {
    const scopes = parse(list, claim);
    for (const scope of scopes ?? []) ensureScope(scope, list, claim);
  }
}
