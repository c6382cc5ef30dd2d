import { type DiffCase, isWlcg } from "./generate-cases.js";

// A model of how scitokens-cpp 0.7.3's enforcer matches a token's scope against a request
// (Enforcer::scope_validator and normalize_absolute_path in src/scitokens_internal.cpp),
// for the classifiers: it lets a classifier ask "would scitokens-cpp have decided like the
// service if it matched whole path components / decoded the paths / ignored this entry?"
// It covers only the scope match; token verification is read from the harness result.

/** `undefined` where 0.7.3 pops an empty vector (a `..` above the root): undefined behaviour. */
export function cppNormalize(path: string): string | undefined {
  if (path === "//" || path === "/" || path === "") return "/";
  const components: string[] = [];
  let i = 0;
  while (i < path.length) {
    while (path[i] === "/") i++;
    let next = path.indexOf("/", i);
    if (next === -1) next = path.length;
    components.push(path.slice(i, next));
    i = next;
  }
  const kept: string[] = [];
  for (const component of components) {
    if (component === "..") {
      if (kept.length === 0) return undefined;
      kept.pop();
    } else if (component !== "" && component !== ".") {
      kept.push(component);
    }
  }
  return kept.length === 0 ? "/" : `/${kept.join("/")}`;
}

/**
 * Where SEMANTICS departs from 0.7.3's scope matching, as switches on the model:
 * - `component-match`: whole path components (§7), not 0.7.3's string prefix;
 * - `decode`: request and scope paths percent-decoded once first (§6, §7);
 * - `storage-everywhere`: storage.* scopes honoured in every profile, not only WLCG (§6);
 * - `bare-storage-ignored`: storage.* without a path (or with an empty one) ignored (§6).
 */
export const FIXES = ["component-match", "decode", "storage-everywhere", "bare-storage-ignored"] as const;
export type Fix = (typeof FIXES)[number];

/** Scope entries of the case's `scope` claim as 0.7.3 splits them (it never reads `scp`). */
export function cppScopeEntries(c: DiffCase): string[] {
  return c.scopeClaim === "scope" ? c.scopes : [];
}

export type ModelDecision = "allow" | "deny" | "undefined-behaviour";

function decodeOnce(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

function covers(scopePath: string, requested: string, componentMatch: boolean): boolean {
  if (!componentMatch) return requested.startsWith(scopePath);
  return scopePath === "/" || requested === scopePath || requested.startsWith(`${scopePath}/`);
}

/**
 * Whether 0.7.3's enforcer would grant `c.authz` on `c.path`, once the token is accepted,
 * with the given {@link FIXES} applied. As in the library, the request path is normalized
 * first and the scope entries are tried in order; reaching a `..` above the root is
 * undefined behaviour (it crashes or not).
 */
export function cppScopeDecision(c: DiffCase, fixes: ReadonlySet<Fix> = new Set()): ModelDecision {
  const prepare = (path: string): string => (fixes.has("decode") ? decodeOnce(path) : path);
  const requested = cppNormalize(prepare(c.path));
  if (requested === undefined) return "undefined-behaviour";
  for (const entry of cppScopeEntries(c)) {
    if (fixes.has("bare-storage-ignored") && /^storage\.[^:]*:?$/.test(entry)) continue;
    const colon = entry.indexOf(":");
    let authz = colon === -1 ? entry : entry.slice(0, colon);
    const path = cppNormalize(colon === -1 ? "/" : prepare(entry.slice(colon + 1)));
    if (path === undefined) return "undefined-behaviour";
    let alternative: string | undefined;
    if (isWlcg(c) || fixes.has("storage-everywhere")) {
      if (authz === "storage.read") authz = "read";
      else if (authz === "storage.create") [authz, alternative] = ["write", "create"];
      else if (authz === "storage.modify") [authz, alternative] = ["write", "modify"];
    }
    if ((authz === c.authz || alternative === c.authz) && covers(path, requested, fixes.has("component-match"))) return "allow";
  }
  return "deny";
}
