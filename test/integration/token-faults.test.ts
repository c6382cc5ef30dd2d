import { base64url } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type TestService, startTestService } from "../helpers/service.js";
import { type MintOverrides, TEST_AUDIENCE, mint } from "../helpers/tokens.js";
import { CHALLENGE, type ExpectedDeny, GrpcCode, expectAllowed, expectDenied, forbidden, unauthenticated } from "./expect-decision.js";

// Token-level denials (and their allowed neighbours) through the real gRPC path:
// SEMANTICS §1 (profiles, claim types), §2 (headers, kid, size), §4 (time), §6 (scopes),
// §10 (bearer extraction), §11 (response shape).

let ec: TestKey; // the issuer's only key
let ec2: TestKey; // a second ES256 key of the two-key issuer
let rsa: TestKey;
let attackerKey: TestKey;
let issuer: OidcServer; // one ES256 key
let twoKeyIssuer: OidcServer; // two ES256 keys
let mixedIssuer: OidcServer; // one ES256 key and one RS256 key
let attacker: OidcServer; // serves attackerKey; must never be contacted
let svc: TestService;

beforeAll(async () => {
  [ec, ec2, rsa, attackerKey] = await Promise.all([makeKey("ES256"), makeKey("ES256"), makeKey("RS256"), makeKey("ES256")]);
  [issuer, twoKeyIssuer, mixedIssuer, attacker] = await Promise.all([
    startOidcServer({ keys: [ec] }),
    startOidcServer({ keys: [ec, ec2] }),
    startOidcServer({ keys: [ec, rsa] }),
    startOidcServer({ keys: [attackerKey] }),
  ]);
  svc = await startTestService({
    audiences: [TEST_AUDIENCE],
    issuers: [issuer, twoKeyIssuer, mixedIssuer].map((server) => ({ issuer: server.issuer, base_path: "/" })),
  });
});

afterAll(async () => {
  await svc?.close();
  await Promise.all([issuer, twoKeyIssuer, mixedIssuer, attacker].map((server) => server?.close()));
});

const nowSeconds = () => Math.floor(Date.now() / 1000);
const at = (offsetSeconds: number) => new Date((nowSeconds() + offsetSeconds) * 1000);

/** A token of the one-key issuer, signed by its key unless told otherwise. */
const tok =
  (overrides: MintOverrides = {}, key: () => TestKey = () => ec, iss: () => string = () => issuer.issuer) =>
  () =>
    mint(key(), iss(), overrides);

/** A compact JWS with arbitrary header and payload and a junk signature (for parse-level faults). */
function unsignedJws(header: object, payload: object | string): string {
  const body = typeof payload === "string" ? payload : JSON.stringify(payload);
  return `${base64url.encode(JSON.stringify(header))}.${base64url.encode(body)}.${base64url.encode("signature")}`;
}

interface Case {
  name: string;
  /** The bearer token; or `authorization` for a raw header value. */
  token?: () => Promise<string>;
  authorization?: () => Promise<string>;
  method?: string;
  path?: string;
  /** A deny, or "allowed" with the upstream headers that must be set (`null`: must not be set). */
  expect: ExpectedDeny | { allowed: Record<string, string | null> };
}

const allowed = (headers: Record<string, string | null> = {}) => ({ allowed: headers });
const malformed = unauthenticated("token_malformed");
const requestMalformed: ExpectedDeny = { grpc: GrpcCode.INVALID_ARGUMENT, http: 400, reason: "request_malformed", wwwAuthenticate: null };

const cases: Case[] = [
  // §2 header parameters
  {
    name: "crit naming a header parameter the service does not understand",
    token: tok({ extraHeader: { crit: ["urn:example:unknown"], "urn:example:unknown": true } }),
    expect: malformed,
  },
  {
    name: "crit naming exp, which is no JWS header extension",
    token: tok({ extraHeader: { crit: ["exp"], exp: 1 } }),
    expect: malformed,
  },
  // §2 size
  {
    name: "a signed token one byte over the 16 KiB limit",
    token: () => tokenOfLength(16 * 1024 + 1),
    expect: unauthenticated("token_too_large"),
  },
  {
    name: "a token of exactly 16 KiB (the limit is inclusive)",
    token: () => tokenOfLength(16 * 1024),
    expect: allowed(),
  },
  {
    name: "64 KiB of token68 junk is rejected for its size, unparsed",
    token: async () => "A".repeat(64 * 1024),
    expect: unauthenticated("token_too_large"),
  },
  // §10 bearer extraction
  {
    name: "two bearer credentials (repeated Authorization joined by Envoy)",
    authorization: async () => "Bearer a, Bearer b",
    expect: requestMalformed,
  },
  {
    name: "two bearer credentials, the first one valid",
    authorization: async () => `Bearer ${await mint(ec, issuer.issuer)}, Bearer ${await mint(ec, issuer.issuer)}`,
    expect: requestMalformed,
  },
  {
    name: "Bearer scheme without a credential",
    authorization: async () => "Bearer",
    expect: malformed,
  },
  {
    name: "a credential that is not token68",
    authorization: async () => "Bearer not a token",
    expect: malformed,
  },
  {
    name: "not a JWT",
    token: async () => "not-a-jwt",
    expect: malformed,
  },
  {
    name: "three segments that are not base64url JSON",
    token: async () => "aaaa.bbbb.cccc",
    expect: malformed,
  },
  {
    name: "a JWS whose payload is not JSON",
    token: async () => unsignedJws({ alg: "ES256", kid: ec.kid }, "not json"),
    expect: malformed,
  },
  {
    name: "scheme in lower case",
    authorization: async () => `bearer ${await mint(ec, issuer.issuer)}`,
    expect: allowed(),
  },
  // §1 profiles
  { name: "ver scitoken:3.0", token: tok({ extraClaims: { ver: "scitoken:3.0" } }), expect: unauthenticated("profile_unknown") },
  { name: "ver as the integer 2", token: tok({ extraClaims: { ver: 2 } }), expect: unauthenticated("profile_unknown") },
  {
    name: "wlcg.ver 2.0",
    token: tok({ profile: "wlcg1", scopes: ["storage.read:/"], extraClaims: { "wlcg.ver": "2.0" } }),
    expect: unauthenticated("profile_unknown"),
  },
  { name: "wlcg.ver 1.2 (any 1.x)", token: tok({ profile: "wlcg1", scopes: ["storage.read:/"], extraClaims: { "wlcg.ver": "1.2" } }), expect: allowed() },
  { name: "ver wins over an unknown wlcg.ver", token: tok({ extraClaims: { "wlcg.ver": "9.0" } }), expect: allowed() },
  { name: "scitokens:2.0 spelling of ver", token: tok({ extraClaims: { ver: "scitokens:2.0" } }), expect: allowed() },
  {
    name: "SciTokens 1 (no ver) with the legacy scp list",
    token: tok({ profile: "scitokens1", scopeClaim: "scp", scopes: ["read:/data"] }),
    path: "/data/file",
    expect: allowed({ "x-scitokens-scope": "read:/data" }),
  },
  {
    name: "SciTokens 1 (ver 1, an integer) with scp as a string",
    token: tok({ profile: "scitokens1", scopes: [], extraClaims: { ver: 1, scp: "read:/data" } }),
    path: "/data/file",
    expect: allowed({ "x-scitokens-scope": "read:/data" }),
  },
  {
    name: "SciTokens 2 ignores scp",
    token: tok({ scopes: [], extraClaims: { scp: ["read:/data"] } }),
    path: "/data/file",
    expect: forbidden("scope_insufficient"),
  },
  {
    name: "SciTokens 2 without aud",
    token: tok({ audience: undefined }),
    expect: unauthenticated("audience_mismatch"),
  },
  {
    name: "WLCG without aud",
    token: tok({ audience: undefined, profile: "wlcg1", scopes: ["storage.read:/"] }),
    expect: unauthenticated("audience_mismatch"),
  },
  // §1 claim types
  { name: "aud: [1]", token: tok({ audience: undefined, extraClaims: { aud: [1] } }), expect: unauthenticated("claim_invalid") },
  {
    name: "aud with a matching string and a non-string element",
    token: tok({ audience: undefined, extraClaims: { aud: [TEST_AUDIENCE, 1] } }),
    expect: unauthenticated("claim_invalid"),
  },
  { name: "aud as an object", token: tok({ audience: undefined, extraClaims: { aud: { value: TEST_AUDIENCE } } }), expect: unauthenticated("claim_invalid") },
  { name: "missing exp", token: tok({ extraClaims: { exp: undefined } }), expect: unauthenticated("claim_invalid") },
  { name: "missing iat", token: tok({ extraClaims: { iat: undefined } }), expect: unauthenticated("claim_invalid") },
  { name: "exp as a numeric string", token: tok({ extraClaims: { exp: String(nowSeconds() + 600) } }), expect: unauthenticated("claim_invalid") },
  { name: "nbf as a string", token: tok({ extraClaims: { nbf: "0" } }), expect: unauthenticated("claim_invalid") },
  { name: "sub as a number", token: tok({ extraClaims: { sub: 42 } }), expect: unauthenticated("claim_invalid") },
  { name: "jti as a number", token: tok({ extraClaims: { jti: 7 } }), expect: unauthenticated("claim_invalid") },
  { name: "scope as an array", token: tok({ scopes: [], extraClaims: { scope: ["read:/"] } }), expect: unauthenticated("claim_invalid") },
  { name: "wlcg.groups as a string", token: tok({ extraClaims: { "wlcg.groups": "/cms" } }), expect: unauthenticated("claim_invalid") },
  { name: "iss as a number", token: async () => unsignedJws({ alg: "ES256", kid: ec.kid }, { iss: 1 }), expect: unauthenticated("claim_invalid") },
  {
    name: "float exp and iat",
    token: tok({ extraClaims: { iat: nowSeconds() - 0.5, exp: nowSeconds() + 599.5 } }),
    expect: allowed(),
  },
  { name: "unknown claims are ignored", token: tok({ extraClaims: { "x-site": { nested: [1, 2] }, acr: 3 } }), expect: allowed() },
  // §4 time
  { name: "nbf beyond the leeway", token: tok({ extraClaims: { nbf: nowSeconds() + 120 } }), expect: unauthenticated("token_not_yet_valid") },
  { name: "nbf within the leeway", token: tok({ extraClaims: { nbf: nowSeconds() + 30 } }), expect: allowed() },
  { name: "iat beyond the leeway", token: tok({ now: at(120) }), expect: unauthenticated("token_issued_in_future") },
  { name: "iat within the leeway", token: tok({ now: at(30) }), expect: allowed() },
  { name: "expired 30 s ago, within the 60 s leeway", token: tok({ now: at(-630), lifetimeSeconds: 600 }), expect: allowed() },
  { name: "expired 90 s ago, beyond the leeway", token: tok({ now: at(-690), lifetimeSeconds: 600 }), expect: unauthenticated("token_expired") },
  // §6 scopes
  { name: "scope path read:/a/../b", token: tok({ scopes: ["read:/a/../b"] }), expect: unauthenticated("scope_invalid") },
  { name: "scope path read:/a/./b", token: tok({ scopes: ["read:/a/./b"] }), expect: unauthenticated("scope_invalid") },
  { name: "scope path read:/a%2Fb", token: tok({ scopes: ["read:/a%2Fb"] }), expect: unauthenticated("scope_invalid") },
  { name: "scope path read:/a%5Cb", token: tok({ scopes: ["read:/a%5Cb"] }), expect: unauthenticated("scope_invalid") },
  { name: "scope path with an encoded .. (read:/%2e%2e/etc)", token: tok({ scopes: ["read:/%2e%2e/etc"] }), expect: unauthenticated("scope_invalid") },
  { name: "scope path with an encoded NUL", token: tok({ scopes: ["read:/a%00b"] }), expect: unauthenticated("scope_invalid") },
  { name: "scope path with a % left after decoding (read:/a%252Fb)", token: tok({ scopes: ["read:/a%252Fb"] }), expect: unauthenticated("scope_invalid") },
  { name: "scope path with a bad escape (read:/a%zz)", token: tok({ scopes: ["read:/a%zz"] }), expect: unauthenticated("scope_invalid") },
  {
    name: "one bad scope invalidates the whole token, even next to a granting one",
    token: tok({ scopes: ["read:/data", "write:/x/../y"] }),
    path: "/data/file",
    expect: unauthenticated("scope_invalid"),
  },
  {
    name: "a percent-encoded scope path is decoded once",
    token: tok({ scopes: ["read:/my%20data"] }),
    path: "/my%20data/file",
    expect: allowed({ "x-scitokens-scope": "read:/my%20data" }),
  },
  { name: "a relative scope path gets a leading /", token: tok({ scopes: ["read:data"] }), path: "/data/file", expect: allowed() },
  { name: "AUTHZ is case-sensitive (READ:/ grants nothing)", token: tok({ scopes: ["READ:/"] }), expect: forbidden("scope_insufficient") },
  // §6, §9 WLCG storage scopes
  {
    name: "WLCG storage.create:/new PUT is create-only",
    token: tok({ profile: "wlcg1", scopes: ["storage.create:/new"] }),
    method: "PUT",
    path: "/new/object",
    expect: allowed({ "if-none-match": "*", "x-scitokens-scope": "storage.create:/new" }),
  },
  {
    name: "WLCG storage.modify:/x PUT may overwrite",
    token: tok({ profile: "wlcg1", scopes: ["storage.modify:/x"] }),
    method: "PUT",
    path: "/x/object",
    expect: allowed({ "if-none-match": null, "x-scitokens-scope": "storage.modify:/x" }),
  },
  {
    name: "storage.create and storage.modify on the same path: not create-only",
    token: tok({ profile: "wlcg1", scopes: ["storage.create:/x", "storage.modify:/x"] }),
    method: "PUT",
    path: "/x/object",
    expect: allowed({ "if-none-match": null, "x-scitokens-scope": "storage.create:/x" }),
  },
  {
    name: "storage.create does not grant DELETE",
    token: tok({ profile: "wlcg1", scopes: ["storage.create:/new"] }),
    method: "DELETE",
    path: "/new/object",
    expect: forbidden("scope_insufficient"),
  },
  {
    name: "WLCG storage.read without a path is ignored",
    token: tok({ profile: "wlcg1", scopes: ["storage.read"] }),
    path: "/data/file",
    expect: forbidden("scope_insufficient"),
  },
  {
    name: "SciTokens read without a path means /",
    token: tok({ scopes: ["read"] }),
    path: "/data/file",
    expect: allowed({ "x-scitokens-scope": "read" }),
  },
  {
    name: "a SciTokens token's storage.read:/x grants like a WLCG token's",
    token: tok({ scopes: ["storage.read:/data"] }),
    path: "/data/file",
    expect: allowed({ "x-scitokens-scope": "storage.read:/data" }),
  },
  {
    name: "wlcg.groups reach the upstream comma-joined",
    token: tok({ profile: "wlcg1", scopes: ["storage.read:/"], groups: ["/cms", "/cms/uscms", "/cms/production"] }),
    expect: allowed({ "x-scitokens-groups": "/cms,/cms/uscms,/cms/production" }),
  },
  // §2 kid
  { name: "no kid, single-key issuer", token: tok({ kid: undefined }), expect: allowed() },
  {
    name: "no kid, two-key issuer (both ES256)",
    token: tok(
      { kid: undefined },
      () => ec,
      () => twoKeyIssuer.issuer,
    ),
    expect: unauthenticated("key_not_found"),
  },
  {
    name: "no kid, issuer with one ES256 and one RS256 key: one key usable for ES256",
    token: tok(
      { kid: undefined },
      () => ec,
      () => mixedIssuer.issuer,
    ),
    expect: allowed(),
  },
  {
    name: "no kid, issuer with one ES256 and one RS256 key: one key usable for RS256",
    token: tok(
      { kid: undefined },
      () => rsa,
      () => mixedIssuer.issuer,
    ),
    expect: allowed(),
  },
  {
    name: "no kid, single-key issuer, signed by another key",
    token: tok({ kid: undefined }, () => attackerKey),
    expect: unauthenticated("signature_invalid"),
  },
  { name: "kid as a number", token: tok({ extraHeader: { kid: 5 } }), expect: unauthenticated("key_not_found") },
];

/** A valid token of the one-key issuer exactly `bytes` long (padding a claim and the header). */
async function tokenOfLength(bytes: number): Promise<string> {
  const at = new Date(nowSeconds() * 1000);
  const build = (claimPad: number, headerPad: number) =>
    mint(ec, issuer.issuer, { now: at, jti: "fixed-jti", extraClaims: { pad: "x".repeat(claimPad) }, extraHeader: { pad: "y".repeat(headerPad) } });
  for (let headerPad = 0; headerPad < 4; headerPad++) {
    let low = 0;
    let high = bytes;
    while (low < high) {
      const mid = (low + high) >> 1;
      if ((await build(mid, headerPad)).length < bytes) low = mid + 1;
      else high = mid;
    }
    const token = await build(low, headerPad);
    if (token.length === bytes) return token;
  }
  throw new Error(`no token of exactly ${bytes} bytes`);
}

describe("token faults through the real gRPC service", () => {
  it.each(cases)("$name", async (c) => {
    let authorization: string | undefined;
    if (c.authorization) authorization = await c.authorization();
    else if (c.token) authorization = `Bearer ${await c.token()}`;
    const response = await svc.check({
      method: c.method ?? "GET",
      path: c.path ?? "/data/file",
      ...(authorization !== undefined ? { headers: { authorization } } : {}),
    });
    if ("allowed" in c.expect) {
      const headers = expectAllowed(response);
      for (const [name, value] of Object.entries(c.expect.allowed)) expect(headers[name], name).toBe(value ?? undefined);
    } else {
      expectDenied(response, c.expect);
    }
  });
});

describe("keys are never taken from the token (jku, x5u, jwk, x5c)", () => {
  const attackerHeaders: Array<{ name: string; header: () => Record<string, unknown> }> = [
    { name: "jku", header: () => ({ jku: attacker.jwksUri }) },
    { name: "x5u", header: () => ({ x5u: `${attacker.url}/cert.pem` }) },
    { name: "jwk", header: () => ({ jwk: { ...attackerKey.publicJwk, kid: undefined } }) },
    { name: "x5c", header: () => ({ x5c: [base64url.encode("not a certificate")] }) },
    { name: "jku, x5u and jwk together", header: () => ({ jku: attacker.jwksUri, x5u: `${attacker.url}/cert.pem`, jwk: attackerKey.publicJwk }) },
  ];

  it.each(attackerHeaders)("$name pointing at the attacker's key, kid unknown to the issuer: key_not_found, no request to the attacker", async ({ header }) => {
    const token = await mint(attackerKey, issuer.issuer, { extraHeader: header() });
    expectDenied(await svc.check({ method: "GET", path: "/data/file", token }), unauthenticated("key_not_found"));
    expect(attacker.requests).toEqual([]);
  });

  it.each(attackerHeaders)("$name with the issuer's kid but the attacker's signature: signature_invalid, no request to the attacker", async ({ header }) => {
    const token = await mint({ ...attackerKey, kid: ec.kid }, issuer.issuer, { extraHeader: header() });
    expectDenied(await svc.check({ method: "GET", path: "/data/file", token }), unauthenticated("signature_invalid"));
    expect(attacker.requests).toEqual([]);
  });

  it("a kid-less token carrying its own jwk is checked against the issuer's key", async () => {
    const token = await mint(attackerKey, issuer.issuer, { kid: undefined, extraHeader: { jwk: attackerKey.publicJwk, jku: attacker.jwksUri } });
    expectDenied(await svc.check({ method: "GET", path: "/data/file", token }), unauthenticated("signature_invalid"));
    expect(attacker.requests).toEqual([]);
  });
});

describe("response shape for token faults", () => {
  it("a missing token gets a challenge without an error code; a malformed one gets invalid_token", async () => {
    expectDenied(await svc.check({ method: "GET", path: "/data/file" }), {
      grpc: GrpcCode.UNAUTHENTICATED,
      http: 401,
      reason: "token_missing",
      wwwAuthenticate: CHALLENGE.none,
    });
    expectDenied(await svc.check({ method: "GET", path: "/data/file", token: "not-a-jwt" }), malformed);
  });

  it("a non-Bearer Authorization scheme counts as no token", async () => {
    expectDenied(await svc.check({ method: "GET", path: "/data/file", headers: { authorization: "Basic dXNlcjpwYXNz" } }), {
      grpc: GrpcCode.UNAUTHENTICATED,
      http: 401,
      reason: "token_missing",
      wwwAuthenticate: CHALLENGE.none,
    });
  });
});
