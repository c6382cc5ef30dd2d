import type { DiffCase } from "./generate-cases.js";

// An independent reading of SEMANTICS §6 (scopes) and §7 (request paths) for the cases the
// generator makes, written from the contract rather than from src/. Classifiers use it so
// that a disagreement counts as a deliberate divergence only when the service decided as
// the contract says: a service bug in the same direction as a known divergence is then
// reported instead of being filed under that divergence.

export type SemanticsDecision = "allow" | "deny" | "path_invalid" | "scope_invalid";

/** HTTP access of the case's method by scope kind (SEMANTICS §9 defaults, GET and PUT only). */
const GRANTS: Readonly<Record<string, "read" | "write">> = {
  read: "read",
  "storage.read": "read",
  write: "write",
  "storage.modify": "write",
  "storage.create": "write",
};
const PATH_STYLE = new Set(["read", "write", "storage.read", "storage.create", "storage.modify", "storage.stage"]);

function decodeOnce(raw: string): string | undefined {
  if (/%(?![0-9a-f]{2})/i.test(raw)) return undefined;
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

function segmentsOf(path: string): string[] | undefined {
  const segments = path.split("/").filter((segment) => segment !== "");
  return segments.some((segment) => segment === "." || segment === "..") ? undefined : segments;
}

/** §7: decoded once, `//` collapsed; dot segments, encoded separators, controls refused. */
function requestSegments(raw: string): string[] | undefined {
  // eslint-disable-next-line no-control-regex
  if (!raw.startsWith("/") || raw.includes("\\") || /%(2f|5c)/i.test(raw) || /[\u0000-\u001f\u007f]/.test(raw)) return undefined;
  const decoded = decodeOnce(raw);
  // A decoded `%2e`/`%2f`/`%5c` would become a dot or a separator if decoded again.
  if (decoded === undefined || /%(2e|2f|5c)/i.test(decoded) || decoded.includes("\\")) return undefined;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(decoded)) return undefined;
  return segmentsOf(decoded);
}

/** §6: decoded once, made absolute; dot segments, encoded separators, NUL and controls, a remaining `%` refused. */
function scopeSegments(raw: string): string[] | undefined {
  if (/%(2f|5c)/i.test(raw)) return undefined;
  const decoded = decodeOnce(raw);
  if (decoded === undefined || decoded.includes("%") || decoded.includes("\\")) return undefined;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(decoded)) return undefined;
  return segmentsOf(decoded);
}

/** The scope entries the contract reads: `scope`, or SciTokens 1's `scp`. */
function entriesOf(c: DiffCase): string[] {
  return c.scopes.filter((entry) => entry !== "");
}

/**
 * What SEMANTICS says about the case's scopes and path, for a token otherwise valid for
 * the audience (base path `/`, default verbs): a scope (path-style or named) with an unsafe
 * path makes the token `scope_invalid`; an unsafe request path is `path_invalid` before anything else.
 */
export function semanticsDecision(c: DiffCase): SemanticsDecision {
  const requested = requestSegments(c.path);
  if (requested === undefined) return "path_invalid";
  let granted = false;
  for (const entry of entriesOf(c)) {
    const colon = entry.indexOf(":");
    const authz = colon === -1 ? entry : entry.slice(0, colon);
    const rawPath = colon === -1 ? "" : entry.slice(colon + 1);
    if (!PATH_STYLE.has(authz)) {
      // A named scope grants nothing here (no named_scopes), but an unsafe path in it
      // invalidates the token as in a path-style scope (§6).
      if (rawPath !== "" && scopeSegments(rawPath) === undefined) return "scope_invalid";
      continue;
    }
    let segments: string[];
    if (rawPath === "") {
      if (authz.startsWith("storage.")) continue; // WLCG requires a path: ignored
      segments = [];
    } else {
      const parsed = scopeSegments(rawPath);
      if (parsed === undefined) return "scope_invalid";
      segments = parsed;
    }
    const covers = segments.length <= requested.length && segments.every((segment, i) => requested[i] === segment);
    if (GRANTS[authz] === c.authz && covers) granted = true;
  }
  return granted ? "allow" : "deny";
}
