import { PATH_AUTHZ } from "../config/authz-data.js";
import { CONTROL_CHARACTER, normalizeScopePath } from "../paths/normalize.js";
import { DenyError } from "../reasons/index.js";

/** One entry of a token's scope, as the policy sees it (policies/README.md). */
export interface ParsedScope {
  readonly authz: string;
  /** Normalized absolute path for path-style scopes; for named scopes the path as written, or null. */
  readonly path: string | null;
  /** The entry as it appeared in the token. */
  readonly raw: string;
}

const PATH_STYLE = new Set<string>(PATH_AUTHZ);
const STORAGE_PREFIX = "storage.";

/**
 * Parses scope entries (SEMANTICS §6): `AUTHZ[:PATH]`, AUTHZ case-sensitive. `read` and
 * `write` without a path mean `/`; `storage.*` without a path are dropped (WLCG requires
 * one); a relative path is made absolute. An entry whose path is unsafe (path-style or
 * named, as scitokens-cpp checks both), or any entry with a control character,
 * invalidates the whole token (`scope_invalid`).
 */
export function parseScopes(entries: readonly string[]): ParsedScope[] {
  const scopes: ParsedScope[] = [];
  for (const raw of entries) {
    if (raw === "") continue;
    if (CONTROL_CHARACTER.test(raw)) throw new DenyError("scope_invalid", "control character in scope");
    const colon = raw.indexOf(":");
    const authz = colon === -1 ? raw : raw.slice(0, colon);
    const rawPath = colon === -1 ? null : raw.slice(colon + 1);
    if (!PATH_STYLE.has(authz)) {
      // A named scope's path grants nothing by itself (named_scopes decides), but an
      // unsafe one marks a token that no enforcer should honour, as for read/write.
      if (rawPath !== null && rawPath !== "") {
        const checked = normalizeScopePath(rawPath);
        if (!checked.ok) throw new DenyError("scope_invalid", `${authz} path has ${checked.why}`);
      }
      scopes.push({ authz, path: rawPath, raw });
      continue;
    }
    if (rawPath === null || rawPath === "") {
      if (authz.startsWith(STORAGE_PREFIX)) continue;
      scopes.push({ authz, path: "/", raw });
      continue;
    }
    const normalized = normalizeScopePath(rawPath);
    if (!normalized.ok) throw new DenyError("scope_invalid", `${authz} path has ${normalized.why}`);
    scopes.push({ authz, path: normalized.path, raw });
  }
  return scopes;
}

/** Splits a space-separated `scope` string (ASCII spaces only). */
export function splitScopeString(scope: string): string[] {
  return scope.split(" ").filter((entry) => entry !== "");
}
