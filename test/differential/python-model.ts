import type { DiffCase } from "./generate-cases.js";

// A model of how the Python scitokens library (1.9.7) matches a token's scopes against a
// request: Enforcer.test → _validate_scope/_validate_scp → _check_scope,
// _normalize_scope_path and _scope_path_matches in scitokens/scitokens.py, and
// normalize_path/unquote in scitokens/urltools.py. It lets a classifier ask "would the
// library have decided like the service if it read storage.* scopes / decoded upper-case
// escapes / …?". Token verification (times, claims, audience) is read from the driver's
// answer, not modelled. A classifier uses the model only where it predicts the library's
// own answer (allowed, or refused in the scope validator for the predicted reason), so a
// release that matches differently leaves disagreements unexplained instead of misfiled.

/**
 * Where SEMANTICS departs from the library's scope matching, as switches on the model:
 * - `storage-everywhere`: storage.read grants reads, storage.create and storage.modify
 *   writes, and a storage.* entry without a path grants nothing (§6); the library compares
 *   the scope's authz with the requested one literally, so storage.* never grants;
 * - `read-write-without-path`: `read`/`write` without a path mean `/` (§6); the library
 *   refuses the token when it reaches such an entry;
 * - `empty-or-relative-path`: an empty scope path (`read:`) means `/` (`storage.*:` is
 *   ignored) and a relative one gets a leading `/` (§6); the library refuses the token when
 *   it reaches such an entry;
 * - `trailing-slash`: a scope path's trailing slash is ignored (§7); in the library
 *   `read:/foo/` does not cover `/foo`;
 * - `decode-upper-case`: upper-case percent-escapes are decoded like lower-case ones
 *   (§6, §7, RFC 3986 §2.1); the library decodes only lower-case ones.
 */
export const PY_FIXES = ["storage-everywhere", "read-write-without-path", "empty-or-relative-path", "trailing-slash", "decode-upper-case"] as const;
export type PyFix = (typeof PY_FIXES)[number];

/** `invalid`: the library reaches an entry it refuses and fails the whole token. */
export type PyScopeDecision = "allow" | "deny" | "invalid";

/** The characters urltools.unquote keeps encoded (the library passes `exceptions='/?+#'`). */
const UNQUOTE_EXCEPTIONS = "/?+#";

/**
 * urltools.unquote: each `%` followed by two hex digits is decoded unless the character is
 * one of the exceptions; the lookup table has lower-case keys only, so `%6F` stays as it is.
 */
export function pyUnquote(text: string, upperCase = false): string {
  if (!text.includes("%")) return text;
  const [first = "", ...rest] = text.split("%");
  let out = first;
  for (const piece of rest) {
    const hex = piece.slice(0, 2);
    const decodable = hex.length === 2 && (upperCase ? /^[0-9a-f]{2}$/i : /^[0-9a-f]{2}$/).test(hex);
    const char = decodable ? String.fromCharCode(Number.parseInt(hex, 16)) : undefined;
    out += char !== undefined && !UNQUOTE_EXCEPTIONS.includes(char) ? char + piece.slice(2) : `%${piece}`;
  }
  return out;
}

/** Python's posixpath.normpath. */
export function posixNormpath(path: string): string {
  if (path === "") return ".";
  const initial = path.startsWith("/") ? (path.startsWith("//") && !path.startsWith("///") ? 2 : 1) : 0;
  const kept: string[] = [];
  for (const component of path.split("/")) {
    if (component === "" || component === ".") continue;
    if (component !== ".." || (initial === 0 && kept.length === 0) || kept.at(-1) === "..") kept.push(component);
    else if (kept.length > 0) kept.pop();
  }
  const joined = "/".repeat(initial) + kept.join("/");
  return joined === "" ? "." : joined;
}

/** urltools.normalize_path: unquote, normpath, keep a trailing slash, one leading slash. */
export function pyNormalizePath(path: string, upperCase = false): string {
  if (path === "//" || path === "/" || path === "") return "/";
  let normalized = posixNormpath(pyUnquote(path, upperCase));
  if (path.endsWith("/") && normalized !== "/") normalized += "/";
  while (normalized.startsWith("//")) normalized = normalized.slice(1);
  return normalized;
}

/** Enforcer._normalize_scope_path: `undefined` where it raises "path traversal in scope". */
export function pyNormalizeScopePath(path: string, upperCase = false): string | undefined {
  // _decode_scope_path_segment lower-cases the escapes first, for this check only.
  const lowered = (segment: string): string => segment.replace(/%([0-9a-f]{2})/gi, (_m, hex: string) => `%${hex.toLowerCase()}`);
  if (path.split("/").some((segment) => pyUnquote(lowered(segment)) === "..")) return undefined;
  const normalized = pyNormalizePath(path, upperCase);
  if (!normalized.startsWith("/") || normalized.split("/").includes("..")) return undefined;
  return normalized;
}

/** Enforcer._scope_path_matches. */
function pyMatches(requested: string, allowed: string): boolean {
  if (allowed === "/" || requested === allowed) return true;
  return allowed.endsWith("/") ? requested.startsWith(allowed) : requested.startsWith(`${allowed}/`);
}

/** The access a scope's authz grants once `storage-everywhere` is on (`undefined`: none of read/write). */
const STORAGE_ACCESS: Readonly<Record<string, "read" | "write">> = {
  "storage.read": "read",
  "storage.create": "write",
  "storage.modify": "write",
};

/**
 * What the library's scope match answers for the case once the token is otherwise
 * accepted, with the given {@link PY_FIXES} applied: the entries are tried in order, the
 * first that grants wins, and an entry the library refuses (no path for read/write, a
 * relative or empty path, a `..`) fails the whole token when it is reached first.
 */
export function pyScopeDecision(c: DiffCase, fixes: ReadonlySet<PyFix> = new Set()): PyScopeDecision {
  const upperCase = fixes.has("decode-upper-case");
  if (c.path === "" || !c.path.startsWith("/")) return "invalid";
  const requested = pyNormalizePath(c.path, upperCase);
  // The entries of `scope` split on spaces, or of the `scp` list: the library reads either.
  for (const entry of c.scopes) {
    const colon = entry.indexOf(":");
    const authz = colon === -1 ? entry : entry.slice(0, colon);
    const isStorage = authz.startsWith("storage.");
    let path = colon === -1 ? undefined : entry.slice(colon + 1);
    if (path === undefined) {
      if (authz === "read" || authz === "write") {
        if (!fixes.has("read-write-without-path")) return "invalid";
        path = "/";
      } else if (isStorage && fixes.has("storage-everywhere")) {
        continue;
      }
    } else if (!path.startsWith("/")) {
      if (!fixes.has("empty-or-relative-path")) return "invalid";
      if (path === "" && isStorage) continue;
      path = `/${path}`;
    }
    let allowed = path === undefined ? "/" : pyNormalizeScopePath(path, upperCase);
    if (allowed === undefined) return "invalid";
    if (fixes.has("trailing-slash") && allowed.length > 1 && allowed.endsWith("/")) allowed = allowed.slice(0, -1);
    const access = fixes.has("storage-everywhere") && isStorage ? STORAGE_ACCESS[authz] : authz;
    if (access === c.authz && pyMatches(requested, allowed)) return "allow";
  }
  return "deny";
}
