import type { IssuerPolicy } from "../config/authz-data.js";
import { DenyError } from "../decision/reasons.js";
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
}

type Claims = Record<string, unknown>;

function optionalString(claims: Claims, name: string): string | null {
  const value = claims[name];
  if (value === undefined) return null;
  if (typeof value !== "string") throw new DenyError("claim_invalid", `${name} is not a string`);
  return value;
}

function stringList(value: unknown, name: string): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value) && value.every((v): v is string => typeof v === "string")) return value;
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
    if (typeof wlcg === "string" && /^1\.[0-9A-Za-z.-]*$/.test(wlcg)) return "wlcg:1";
    throw new DenyError("profile_unknown", "unrecognized wlcg.ver");
  }
  return "scitokens:1";
}

function scopeEntries(claims: Claims, profile: TokenProfile): string[] {
  const scope = claims["scope"];
  if (scope !== undefined) {
    if (typeof scope !== "string") throw new DenyError("claim_invalid", "scope is not a string");
    if (profile !== "scitokens:1") return splitScopeString(scope);
  }
  if (profile !== "scitokens:1") return [];
  // SciTokens 1 also accepts the legacy `scp`, type-checked even when `scope` wins.
  const scp = claims["scp"];
  const legacy = scp === undefined ? [] : stringList(scp, "scp").flatMap(splitScopeString);
  return typeof scope === "string" ? splitScopeString(scope) : legacy;
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
  if (groupsClaim !== undefined && !(Array.isArray(groupsClaim) && groupsClaim.every((g) => typeof g === "string"))) {
    throw new DenyError("claim_invalid", "wlcg.groups is not an array of strings");
  }
  const profile = detectProfile(claims);
  const scopes = parseScopes(scopeEntries(claims, profile));
  if (issuer.maxLifetime !== null && exp - iat > issuer.maxLifetime) {
    throw new DenyError("claim_invalid", "lifetime (exp - iat) exceeds the issuer's max_lifetime");
  }
  return Object.freeze({
    iss,
    sub,
    jti,
    aud,
    profile,
    scopes,
    groups: (groupsClaim as string[] | undefined) ?? [],
    exp,
    iat,
    nbf,
  });
}

/** SEMANTICS §4: checked at each request, including for cached tokens. `now` in seconds. */
export function checkTime(token: VerifiedToken, nowSeconds: number, leewaySeconds: number): void {
  if (nowSeconds >= token.exp + leewaySeconds) throw new DenyError("token_expired");
  if (token.nbf !== null && nowSeconds + leewaySeconds < token.nbf) throw new DenyError("token_not_yet_valid");
  if (nowSeconds + leewaySeconds < token.iat) throw new DenyError("token_issued_in_future");
}
