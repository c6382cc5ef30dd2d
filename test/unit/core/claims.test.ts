import { describe, expect, it } from "vitest";
import type { IssuerPolicy } from "../../../src/config/authz-data.js";
import type { DenyReason } from "../../../src/reasons/index.js";
import { MAX_POLICY_CLAIM_DEPTH, type TokenProfile, type VerifiedToken, checkTime, detectProfile, readClaims } from "../../../src/token/claims.js";
import { denyOf, loadDocument } from "./fixtures.js";

type Claims = Record<string, unknown>;

interface ClaimsFixture {
  issuer: string;
  base: Claims;
  profiles: Array<{ name: string; claims: Claims; profile?: TokenProfile; deny?: DenyReason }>;
  claims: Array<{
    name: string;
    set?: Claims;
    unset?: string[];
    max_lifetime?: number;
    expect?: Partial<Omit<VerifiedToken, "scopes">> & { scopes?: Array<{ authz: string; path: string | null }> };
    deny?: DenyReason;
  }>;
}

const fixture = loadDocument<ClaimsFixture>("claims.yaml");

function issuerPolicy(maxLifetime: number | null = null): IssuerPolicy {
  return {
    issuer: fixture.issuer,
    basePaths: ["/"],
    restrictedPaths: null,
    audiences: null,
    algorithms: ["RS256", "ES256"],
    maxLifetime,
  };
}

describe("detectProfile (SEMANTICS §1)", () => {
  it.each(fixture.profiles)("$name", (c) => {
    if (c.deny !== undefined) {
      expect(denyOf(() => detectProfile(c.claims)).code).toBe(c.deny);
      return;
    }
    expect(detectProfile(c.claims)).toBe(c.profile);
  });

  it.each(fixture.profiles)("readClaims agrees: $name", (c) => {
    const claims = { ...fixture.base, ...c.claims };
    if (c.deny !== undefined) {
      expect(denyOf(() => readClaims(claims, issuerPolicy())).code).toBe(c.deny);
      return;
    }
    expect(readClaims(claims, issuerPolicy()).profile).toBe(c.profile);
  });
});

describe("readClaims (SEMANTICS §1, §4, §6)", () => {
  it.each(fixture.claims)("$name", (c) => {
    const claims: Claims = { ...fixture.base, ...c.set };
    for (const name of c.unset ?? []) delete claims[name];
    const read = () => readClaims(claims, issuerPolicy(c.max_lifetime ?? null));
    if (c.deny !== undefined) {
      expect(c.expect).toBeUndefined();
      expect(denyOf(read).code).toBe(c.deny);
      return;
    }
    const token = read();
    const { scopes, ...rest } = c.expect ?? {};
    expect(token).toMatchObject(rest);
    if (scopes !== undefined) expect(token.scopes.map(({ authz, path }) => ({ authz, path }))).toEqual(scopes);
  });

  it("keeps only the listed claims, and freezes them", () => {
    const token = readClaims({ ...fixture.base, scope: "read:/a", email: "alice@example.org", extra: 1 }, issuerPolicy());
    expect(Object.keys(token).sort()).toEqual(["aud", "claims", "exp", "groups", "iat", "iss", "jti", "nbf", "profile", "scopes", "sub"]);
    expect(Object.isFrozen(token)).toBe(true);
    expect(token.claims).toMatchObject({ email: "alice@example.org", extra: 1, scope: "read:/a" });
    expect(Object.isFrozen(token.claims)).toBe(true);
  });

  it("hands the policy the claims without values nested too deep or holding lone surrogates", () => {
    let deep: unknown = "bottom";
    for (let i = 0; i < 10_000; i++) deep = [deep];
    const token = readClaims({ ...fixture.base, deep, odd: "a\ud800", "k\udc00": 1, ok: { nested: ["x"] } }, issuerPolicy());
    expect(token.claims["odd"]).toBeUndefined();
    expect(Object.keys(token.claims).some((k) => k.startsWith("k"))).toBe(false);
    expect(token.claims["ok"]).toEqual({ nested: ["x"] });
    expect(() => JSON.stringify(token.claims)).not.toThrow();
    let depth = 0;
    for (let node = token.claims["deep"]; Array.isArray(node); node = node[0]) depth += 1;
    expect(depth).toBeLessThanOrEqual(MAX_POLICY_CLAIM_DEPTH);
  });
});

describe("checkTime (SEMANTICS §4)", () => {
  const EXP = 1_000_000;
  const IAT = 990_000;
  const token = (times: { exp?: number; iat?: number; nbf?: number | null } = {}): VerifiedToken =>
    readClaims({ iss: fixture.issuer, exp: times.exp ?? EXP, iat: times.iat ?? IAT, ...(times.nbf != null ? { nbf: times.nbf } : {}) }, issuerPolicy());

  it.each<[string, { exp?: number; iat?: number; nbf?: number }, number, number, DenyReason | null]>([
    // name, token times, now, leeway, expected reason (null: valid)
    ["well inside the lifetime", {}, 995_000, 60, null],
    ["one second before exp, leeway 0", {}, EXP - 1, 0, null],
    ["at exp, leeway 0", {}, EXP, 0, "token_expired"],
    ["after exp, leeway 0", {}, EXP + 1, 0, "token_expired"],
    ["inside the leeway after exp", {}, EXP + 59, 60, null],
    ["at exp + leeway", {}, EXP + 60, 60, "token_expired"],
    ["long expired", {}, EXP + 86_400, 60, "token_expired"],
    ["fractional exp, just before", { exp: EXP + 0.5 }, EXP, 0, null],
    ["fractional exp, reached", { exp: EXP + 0.5 }, EXP + 0.5, 0, "token_expired"],
    ["at nbf, leeway 0", { nbf: 995_000 }, 995_000, 0, null],
    ["one second before nbf, leeway 0", { nbf: 995_000 }, 994_999, 0, "token_not_yet_valid"],
    ["nbf within the leeway", { nbf: 995_000 }, 994_940, 60, null],
    ["nbf one second beyond the leeway", { nbf: 995_000 }, 994_939, 60, "token_not_yet_valid"],
    ["at iat, leeway 0", { iat: 995_000 }, 995_000, 0, null],
    ["one second before iat, leeway 0", { iat: 995_000 }, 994_999, 0, "token_issued_in_future"],
    ["iat within the leeway", { iat: 995_000 }, 994_940, 60, null],
    ["iat one second beyond the leeway", { iat: 995_000 }, 994_939, 60, "token_issued_in_future"],
    ["nbf before iat is checked first", { iat: 995_000, nbf: 995_000 }, 990_000, 60, "token_not_yet_valid"],
    ["expiry is checked before nbf", { exp: 995_000, nbf: 999_000 }, 996_000, 0, "token_expired"],
  ])("%s", (_name, times, now, leeway, reason) => {
    const check = () => checkTime(token(times), now, leeway);
    if (reason === null) expect(check).not.toThrow();
    else expect(denyOf(check).code).toBe(reason);
  });
});
