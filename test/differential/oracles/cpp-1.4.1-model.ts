import { allScopePaths, hasUnsafeSegment } from "../divergences.js";
import { type DiffCase, isWlcg } from "../generate-cases.js";

// A model of how scitokens-cpp 1.4.1's enforcer matches a token's scope against a request
// (Enforcer::scope_validator, normalize_scope_path_strict, percent_decode_once,
// path_matches_scope and normalize_absolute_path in its src/scitokens_internal.cpp), for
// the classifiers of cpp-1.4.1.ts: it lets a classifier ask "would 1.4.1 have decided like
// the service if it decoded the request path / read the whole scope first / …?". It covers
// the scope match only; token verification is read from the harness's answer.
//
// What 1.4.1 does, as measured (docs/semantics.md has the table):
// - the request path is not decoded; `.`, `..` and empty segments are resolved, `..` stops
//   at the root, and a relative path is made absolute;
// - each scope path is split on `/` and each segment percent-decoded up to four times; a
//   segment that becomes `..`, or still holds `%`, `/`, `\` or NUL, refuses the scope
//   claim; `.` segments are dropped and other control characters kept;
// - the entries are tried in order and the first one that grants decides, so an entry it
//   would refuse is never looked at when an earlier one grants (the order dependence);
// - storage.read/create/modify are translated to read/write (create, modify) in WLCG tokens
//   only; a path-less or empty scope path means `/`;
// - a scope path covers itself and what lies below it, whole segments only.

/** normalize_absolute_path: segments resolved, `..` at the root dropped, made absolute. */
export function cpp141RequestPath(path: string): string {
  const kept: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "..") kept.pop();
    else if (segment !== "" && segment !== ".") kept.push(segment);
  }
  return `/${kept.join("/")}`;
}

/** percent_decode_once, byte-wise: every `%` followed by two hex digits. */
function decodeOnce(text: string): { text: string; changed: boolean } {
  let changed = false;
  const decoded = text.replace(/%([0-9a-fA-F]{2})/g, (_escape, hex: string) => {
    changed = true;
    return String.fromCharCode(Number.parseInt(hex, 16));
  });
  return { text: decoded, changed };
}

const DECODE_PASSES = 4;

/** normalize_scope_path_strict: the canonical scope path, or `undefined` when 1.4.1 refuses it. */
export function cpp141ScopePath(raw: string): string | undefined {
  const kept: string[] = [];
  for (const segment of raw.split("/")) {
    let decoded = segment;
    for (let pass = 0; pass < DECODE_PASSES; pass++) {
      const step = decodeOnce(decoded);
      decoded = step.text;
      if (decoded === "..") return undefined;
      if (!step.changed) break;
    }
    if (/[%/\\\0]/.test(decoded) || decoded === "..") return undefined;
    if (decoded !== "" && decoded !== ".") kept.push(decoded);
  }
  return `/${kept.join("/")}`;
}

/** A scope path 1.4.1 refuses (when it gets to that entry). */
export const refusedBy141 = (path: string): boolean => cpp141ScopePath(path) === undefined;

/** A scope path SEMANTICS §6 refuses and 1.4.1 accepts: a `.` segment (raw or `%2e`), a control character, a `%25`. */
export const refusedOnlyByUs = (path: string): boolean => !refusedBy141(path) && hasUnsafeSegment(path);

function covers(scopePath: string, requested: string): boolean {
  return scopePath === "/" || requested === scopePath || requested.startsWith(`${scopePath}/`);
}

/**
 * Where SEMANTICS departs from 1.4.1's scope matching, as switches on the model:
 * - `decode-request`: the request path percent-decoded once before matching (§7);
 * - `storage-everywhere`: storage.* scopes honoured in every profile, not only WLCG (§6);
 * - `bare-storage-ignored`: storage.* without a path (or with an empty one) ignored (§6);
 * - `whole-scope`: a scope path 1.4.1 itself refuses refuses the token wherever the entry
 *   stands, not only when no earlier entry granted (§6);
 * - `strict-scope-paths`: the scope paths only SEMANTICS refuses (`.` segments, control
 *   characters, `%25`) refuse the token too (§6).
 */
export const FIXES_141 = ["decode-request", "storage-everywhere", "bare-storage-ignored", "whole-scope", "strict-scope-paths"] as const;
export type Fix141 = (typeof FIXES_141)[number];

/** Whether 1.4.1's enforcer would grant `c.authz` on `c.path`, once the token is accepted, with `fixes` applied. */
export function cpp141ScopeDecision(c: DiffCase, fixes: ReadonlySet<Fix141> = new Set()): "allow" | "deny" {
  const entries = c.scopeClaim === "scope" ? c.scopes : [];
  const paths = allScopePaths({ ...c, scopes: entries });
  if (fixes.has("whole-scope") && paths.some(refusedBy141)) return "deny";
  if (fixes.has("strict-scope-paths") && paths.some(refusedOnlyByUs)) return "deny";
  let requestPath = c.path;
  if (fixes.has("decode-request")) {
    try {
      requestPath = decodeURIComponent(requestPath);
    } catch {
      // A bad escape: the service refuses the request path before any scope (path_invalid).
    }
  }
  const requested = cpp141RequestPath(requestPath);
  for (const entry of entries) {
    if (fixes.has("bare-storage-ignored") && /^storage\.[^:]*:?$/.test(entry)) continue;
    const colon = entry.indexOf(":");
    let authz = colon === -1 ? entry : entry.slice(0, colon);
    const path = cpp141ScopePath(colon === -1 ? "/" : entry.slice(colon + 1));
    if (path === undefined) return "deny";
    let alternative: string | undefined;
    if (isWlcg(c) || fixes.has("storage-everywhere")) {
      if (authz === "storage.read") authz = "read";
      else if (authz === "storage.create") [authz, alternative] = ["write", "create"];
      else if (authz === "storage.modify") [authz, alternative] = ["write", "modify"];
    }
    if ((authz === c.authz || alternative === c.authz) && covers(path, requested)) return "allow";
  }
  return "deny";
}
