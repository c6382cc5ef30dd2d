import type { IssuerPolicy } from "../config/authz-data.js";
import { DenyError } from "../reasons/index.js";
import { type ParsedScope, parseScopes, splitScopeString } from "./scopes.js";

/** Token profiles (SEMANTICS §1), named as the policy input spells them. */
export type TokenProfile = "scitokens:2.0" | "wlcg:1" | "scitokens:1";

/** What the service keeps of a verified token: never the raw token, and only these claims. */
export interface VerifiedToken {
  readonly iss: string;
  readonly sub: string | null;
  readonly jti: string | null;
  /** null when the token has no `aud` claim. */
  readonly aud: readonly string[] | null;
  readonly profile: TokenProfile;
  readonly scopes: readonly ParsedScope[];
  readonly groups: readonly string[];
  readonly exp: number;
  readonly iat: number;
  readonly nbf: number | null;
  /** The payload as the policy sees it: see {@link policyClaims}. */
  readonly claims: Readonly<Record<string, unknown>>;
}

type Claims = Record<string, unknown>;

// A lone UTF-16 surrogate (a JSON "\ud800" escape) is not text: it cannot reach the
// policy (OPA's JSON parser refuses it) nor a header, so such a claim is invalid.
const LONE_SURROGATE = /\p{Cs}/u;

function text(value: string, name: string): string {
  if (LONE_SURROGATE.test(value)) throw new DenyError("claim_invalid", `${name} holds a lone surrogate`);
  return value;
}

function optionalString(claims: Claims, name: string): string | null {
  const value = claims[name];
  if (value === undefined) return null;
  if (typeof value !== "string") throw new DenyError("claim_invalid", `${name} is not a string`);
  return text(value, name);
}

function stringList(value: unknown, name: string): string[] {
  if (typeof value === "string") return [text(value, name)];
  if (Array.isArray(value) && value.every((v): v is string => typeof v === "string")) return value.map((v) => text(v, name));
  throw new DenyError("claim_invalid", `${name} is not a string or an array of strings`);
}

function numeric(claims: Claims, name: string, required: boolean): number | null {
  const value = claims[name];
  if (value === undefined) {
    if (required) throw new DenyError("claim_invalid", `${name} is missing`);
    return null;
  }
  if (typeof value !== "number" || !Number.isFinite(value)) throw new DenyError("claim_invalid", `${name} is not a number`);
  return value;
}

/** Detects the profile; `ver` wins over `wlcg.ver` (SEMANTICS §1). */
export function detectProfile(claims: Claims): TokenProfile {
  const ver = claims["ver"];
  if (ver !== undefined) {
    if (ver === "scitoken:2.0" || ver === "scitokens:2.0") return "scitokens:2.0";
    if (ver === "scitokens:1.0" || ver === 1) return "scitokens:1";
    throw new DenyError("profile_unknown", "unrecognized ver");
  }
  const wlcg = claims["wlcg.ver"];
  if (wlcg !== undefined) {
    if (typeof wlcg === "string" && wlcg.startsWith("1.")) return "wlcg:1";
    throw new DenyError("profile_unknown", "unrecognized wlcg.ver");
  }
  return "scitokens:1";
}

/** The scope entries: `scope`, or in SciTokens 1 only, the legacy `scp` when `scope` is absent (§1). */
function scopeEntries(claims: Claims, profile: TokenProfile): string[] {
  const scope = optionalString(claims, "scope");
  // SciTokens 1 type-checks `scp` even when `scope` wins; other profiles ignore it.
  const scp = profile === "scitokens:1" && claims["scp"] !== undefined ? stringList(claims["scp"], "scp") : null;
  if (scope !== null) return splitScopeString(scope);
  return scp?.flatMap(splitScopeString) ?? [];
}

/**
 * Checks claim types and the profile of a signature-verified payload and parses its
 * scopes (SEMANTICS §1, §6). Time is checked separately, on every request.
 */
export function readClaims(claims: Claims, issuer: IssuerPolicy): VerifiedToken {
  const iss = optionalString(claims, "iss");
  if (iss !== issuer.issuer) throw new DenyError("claim_invalid", "iss changed between decoding and verification");
  const sub = optionalString(claims, "sub");
  const jti = optionalString(claims, "jti");
  const exp = numeric(claims, "exp", true)!;
  const iat = numeric(claims, "iat", true)!;
  const nbf = numeric(claims, "nbf", false);
  const aud = claims["aud"] === undefined ? null : stringList(claims["aud"], "aud");
  const groupsClaim = claims["wlcg.groups"];
  if (groupsClaim !== undefined && !Array.isArray(groupsClaim)) throw new DenyError("claim_invalid", "wlcg.groups is not an array of strings");
  const groups = groupsClaim === undefined ? [] : stringList(groupsClaim, "wlcg.groups");
  const profile = detectProfile(claims);
  const scopes = parseScopes(scopeEntries(claims, profile));
  if (issuer.maxLifetime !== null && exp - iat > issuer.maxLifetime) {
    throw new DenyError("claim_invalid", "lifetime (exp - iat) exceeds the issuer's max_lifetime");
  }
  return Object.freeze({
    claims: policyClaims(claims),
    iss,
    sub,
    jti,
    aud,
    profile,
    scopes,
    groups,
    exp,
    iat,
    nbf,
  });
}

/** Depth of nested arrays and objects kept in {@link policyClaims}. */
export const MAX_POLICY_CLAIM_DEPTH = 16;

/**
 * A verified payload as the policy may read it: a frozen copy without values nested
 * deeper than {@link MAX_POLICY_CLAIM_DEPTH} and without strings (values or keys) that
 * hold a lone surrogate. Neither could cross into the WASM policy (its JSON would not
 * serialize or parse), and an issuer's odd claim must not make a Check fail.
 */
export function policyClaims(payload: Claims): Readonly<Record<string, unknown>> {
  return copyClaim(payload, 0) as Readonly<Record<string, unknown>>;
}

function copyClaim(value: unknown, depth: number): unknown {
  if (typeof value === "string") return LONE_SURROGATE.test(value) ? undefined : value;
  if (value === null || typeof value !== "object") return value;
  if (depth >= MAX_POLICY_CLAIM_DEPTH) return undefined;
  if (Array.isArray(value)) {
    return Object.freeze(value.map((item) => copyClaim(item, depth + 1)).filter((item) => item !== undefined));
  }
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (LONE_SURROGATE.test(key)) continue;
    const copy = copyClaim(item, depth + 1);
    if (copy !== undefined) out[key] = copy;
  }
  return Object.freeze(out);
}

/** SEMANTICS §4: checked at each request, including for cached tokens. `now` in seconds. */
export function checkTime(token: VerifiedToken, nowSeconds: number, leewaySeconds: number): void {
  if (nowSeconds >= token.exp + leewaySeconds) throw new DenyError("token_expired");
  if (token.nbf !== null && nowSeconds + leewaySeconds < token.nbf) throw new DenyError("token_not_yet_valid");
  if (nowSeconds + leewaySeconds < token.iat) throw new DenyError("token_issued_in_future");
}
