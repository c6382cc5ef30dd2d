import { SignJWT, base64url, exportSPKI } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type TestService, reasonOf, responseHeader, startTestService } from "../helpers/service.js";
import { type MintOverrides, TEST_AUDIENCE, mint } from "../helpers/tokens.js";

// The real service (gRPC on loopback, OPA-compiled WASM) against real OIDC/JWKS servers
// on loopback, with ES256 and RS256 keys; requests shaped like Envoy's CheckRequest.

let ec: TestKey;
let rsa: TestKey;
let issuer: OidcServer; // trusted; audiences without ANY
let anyIssuer: OidcServer; // trusted; its own audiences include ANY
let untrusted: OidcServer; // serves keys but is not in the data
let svc: TestService;

beforeAll(async () => {
  ec = await makeKey("ES256");
  rsa = await makeKey("RS256");
  issuer = await startOidcServer({ keys: [ec, rsa] });
  anyIssuer = await startOidcServer({ keys: [ec], path: "/any" });
  untrusted = await startOidcServer({ keys: [ec] });
  svc = await startTestService({
    audiences: [TEST_AUDIENCE],
    issuers: [
      { issuer: issuer.issuer, base_path: "/protected" },
      { issuer: anyIssuer.issuer, base_path: "/protected", audiences: [TEST_AUDIENCE, "ANY"] },
    ],
    // The cases are sent with context_extensions { route: webdav }, as Envoy's per-route
    // check_settings would; a route section without overrides behaves as the top level.
    routes: { webdav: {} },
  });
});

afterAll(async () => {
  await svc?.close();
  await Promise.all([issuer?.close(), anyIssuer?.close(), untrusted?.close()]);
});

const OK = 0;
const INVALID_ARGUMENT = 3;
const PERMISSION_DENIED = 7;
const UNAUTHENTICATED = 16;
const INVALID_TOKEN = 'Bearer realm="scitokens-authz", error="invalid_token"';
const INSUFFICIENT = 'Bearer realm="scitokens-authz", error="insufficient_scope"';

interface Case {
  name: string;
  token?: () => Promise<string>;
  method?: string;
  path: string;
  grpc: number;
  http?: number;
  reason: string;
  wwwAuthenticate?: string;
  upstream?: Record<string, string>;
}

const tok =
  (overrides: MintOverrides = {}, key: () => TestKey = () => ec, iss: () => string = () => issuer.issuer) =>
  () =>
    mint(key(), iss(), overrides);
const now = () => Math.floor(Date.now() / 1000);

const cases: Case[] = [
  {
    name: "allowed read",
    token: tok({ scopes: ["read:/data"], subject: "alice", jti: "j-1" }),
    path: "/protected/data/file.txt",
    grpc: OK,
    reason: "allowed",
    upstream: { "x-scitokens-subject": "alice", "x-scitokens-scope": "read:/data", "x-scitokens-jti": "j-1" },
  },
  {
    name: "allowed read with an RSA-signed token",
    token: tok({ scopes: ["read:/data"] }, () => rsa),
    path: "/protected/data/file.txt",
    grpc: OK,
    reason: "allowed",
  },
  {
    name: "write denied for a read scope",
    token: tok({ scopes: ["read:/data"] }),
    method: "PUT",
    path: "/protected/data/file.txt",
    grpc: PERMISSION_DENIED,
    http: 403,
    reason: "scope_insufficient",
    wwwAuthenticate: INSUFFICIENT,
  },
  {
    name: "missing token",
    path: "/protected/data/file.txt",
    grpc: UNAUTHENTICATED,
    http: 401,
    reason: "token_missing",
    wwwAuthenticate: 'Bearer realm="scitokens-authz"',
  },
  {
    name: "expired token",
    token: tok({ now: new Date((now() - 3600) * 1000), lifetimeSeconds: 600 }),
    path: "/protected/data/file.txt",
    grpc: UNAUTHENTICATED,
    http: 401,
    reason: "token_expired",
    wwwAuthenticate: INVALID_TOKEN,
  },
  {
    name: "wrong audience",
    token: tok({ audience: "https://elsewhere.example.org" }),
    path: "/protected/data/file.txt",
    grpc: UNAUTHENTICATED,
    http: 401,
    reason: "audience_mismatch",
    wwwAuthenticate: INVALID_TOKEN,
  },
  {
    name: "aud ANY when the accepted audiences do not list ANY",
    token: tok({ audience: "ANY" }),
    path: "/protected/data/file.txt",
    grpc: UNAUTHENTICATED,
    http: 401,
    reason: "audience_mismatch",
  },
  {
    name: "aud ANY when the accepted audiences list ANY",
    token: tok(
      { audience: "ANY" },
      () => ec,
      () => anyIssuer.issuer,
    ),
    path: "/protected/data/file.txt",
    grpc: OK,
    reason: "allowed",
  },
  {
    name: "WLCG any audience when the accepted audiences list ANY",
    token: tok(
      { audience: "https://wlcg.cern.ch/jwt/v1/any", profile: "wlcg1", scopes: ["storage.read:/"] },
      () => ec,
      () => anyIssuer.issuer,
    ),
    path: "/protected/data/file.txt",
    grpc: OK,
    reason: "allowed",
  },
  {
    name: "sibling path: read:/foo does not cover /foobar",
    token: tok({ scopes: ["read:/foo"] }),
    path: "/protected/foobar",
    grpc: PERMISSION_DENIED,
    http: 403,
    reason: "scope_insufficient",
  },
  {
    name: "read:/foo covers /foo/bar",
    token: tok({ scopes: ["read:/foo"] }),
    path: "/protected/foo/bar",
    grpc: OK,
    reason: "allowed",
  },
  {
    name: ".. in the path",
    token: tok({ scopes: ["read:/"] }),
    path: "/protected/data/../../etc/passwd",
    grpc: INVALID_ARGUMENT,
    http: 400,
    reason: "path_invalid",
  },
  {
    name: "encoded .. in the path",
    token: tok({ scopes: ["read:/"] }),
    path: "/protected/%2e%2e/secret",
    grpc: INVALID_ARGUMENT,
    http: 400,
    reason: "path_invalid",
  },
  {
    name: "outside the issuer's base path",
    token: tok({ scopes: ["read:/"] }),
    path: "/public/data/file.txt",
    grpc: PERMISSION_DENIED,
    http: 403,
    reason: "path_outside_base",
  },
  {
    name: "scope paths are relative to the base path",
    token: tok({ scopes: ["read:/important"] }),
    path: "/protected/important/data",
    grpc: OK,
    reason: "allowed",
  },
  {
    name: "alg none",
    token: async () => {
      const header = base64url.encode(JSON.stringify({ alg: "none", typ: "JWT" }));
      const body = base64url.encode(
        JSON.stringify({ iss: issuer.issuer, aud: TEST_AUDIENCE, scope: "read:/", ver: "scitoken:2.0", iat: now(), exp: now() + 600 }),
      );
      return `${header}.${body}.`;
    },
    path: "/protected/data/file.txt",
    grpc: UNAUTHENTICATED,
    http: 401,
    reason: "alg_not_allowed",
    wwwAuthenticate: INVALID_TOKEN,
  },
  {
    name: "HMAC signed with the issuer's public key as the secret",
    token: async () => {
      const secret = new TextEncoder().encode(await exportSPKI(rsa.publicKey));
      return new SignJWT({ scope: "read:/", ver: "scitoken:2.0", aud: TEST_AUDIENCE })
        .setProtectedHeader({ alg: "HS256", kid: rsa.kid })
        .setIssuer(issuer.issuer)
        .setIssuedAt()
        .setExpirationTime("10m")
        .sign(secret);
    },
    path: "/protected/data/file.txt",
    grpc: UNAUTHENTICATED,
    http: 401,
    reason: "alg_not_allowed",
  },
  {
    name: "unknown kid",
    token: tok({ kid: "no-such-key" }),
    path: "/protected/data/file.txt",
    grpc: UNAUTHENTICATED,
    http: 401,
    reason: "key_not_found",
    wwwAuthenticate: INVALID_TOKEN,
  },
  {
    name: "signature by a key the issuer does not publish, under a published kid",
    token: async () => mint({ ...(await makeKey("ES256")), kid: ec.kid }, issuer.issuer),
    path: "/protected/data/file.txt",
    grpc: UNAUTHENTICATED,
    http: 401,
    reason: "signature_invalid",
  },
];

describe("Check through the real gRPC service", () => {
  it.each(cases)("$name", async (c) => {
    // context_extensions as Envoy's per-route check_settings would send them.
    const response = await svc.check({ method: c.method ?? "GET", path: c.path, token: c.token ? await c.token() : undefined, route: "webdav" });
    expect(response.status?.code).toBe(c.grpc);
    expect(reasonOf(response)).toBe(c.reason);
    expect((response.dynamicMetadata as Record<string, unknown>)["decision_id"]).toMatch(/^[0-9a-f-]{36}$/);
    if (c.grpc === OK) {
      expect(response.deniedResponse).toBeUndefined();
      for (const [name, value] of Object.entries(c.upstream ?? {})) expect(responseHeader(response, name)).toBe(value);
      expect(responseHeader(response, "x-scitokens-issuer")).toMatch(/^http:\/\/127\.0\.0\.1:\d+/);
    } else {
      expect(response.status?.message).toBe(c.reason);
      expect(response.deniedResponse?.status?.code).toBe(c.http);
      expect(responseHeader(response, "content-type")).toBe("application/json");
      const body = JSON.parse(response.deniedResponse?.body ?? "{}") as Record<string, unknown>;
      expect(body["reason"]).toBe(c.reason);
      expect(body["decision_id"]).toBe((response.dynamicMetadata as Record<string, unknown>)["decision_id"]);
      if (c.wwwAuthenticate !== undefined) expect(responseHeader(response, "www-authenticate")).toBe(c.wwwAuthenticate);
    }
  });

  it("rejects an untrusted issuer without any request reaching it", async () => {
    const servers = [untrusted, issuer, anyIssuer];
    const before = servers.map((s) => s.requests.length);
    // Several shapes: a kid the trusted issuers do not know either, and no kid at all.
    for (const overrides of [{}, { kid: "unknown-kid" }, { kid: undefined }]) {
      const response = await svc.check({ method: "GET", path: "/protected/data/file.txt", token: await mint(ec, untrusted.issuer, overrides) });
      expect(response.status?.code).toBe(UNAUTHENTICATED);
      expect(reasonOf(response)).toBe("issuer_untrusted");
      expect(responseHeader(response, "www-authenticate")).toBe(INVALID_TOKEN);
    }
    expect(servers.map((s) => s.requests.length)).toEqual(before);
    expect(untrusted.requests).toEqual([]);
  });

  it("never returns the token in a denied body or header", async () => {
    const token = await mint(ec, issuer.issuer, { audience: "https://elsewhere.example.org" });
    const response = await svc.check({ method: "GET", path: "/protected/x", token });
    const text = JSON.stringify(response);
    expect(reasonOf(response)).toBe("audience_mismatch");
    expect(text).not.toContain(token);
    expect(text).not.toContain(token.split(".")[1]!);
  });

  it("replaces identity headers a client sent and removes those it does not set", async () => {
    const token = await mint(ec, issuer.issuer, { scopes: ["read:/"], subject: "bob" });
    const response = await svc.check({
      method: "GET",
      path: "/protected/x",
      token,
      headers: { "x-scitokens-subject": "root", "x-scitokens-groups": "/admins" },
    });
    expect(response.status?.code).toBe(OK);
    expect(responseHeader(response, "x-scitokens-subject")).toBe("bob");
    expect(response.okResponse?.headersToRemove).toContain("x-scitokens-groups");
  });
});

describe("a route the data does not define", () => {
  it("is denied with 500 route_unknown (never a gRPC error that failure_mode_allow could turn into an allow)", async () => {
    const token = await mint(ec, issuer.issuer, { scopes: ["read:/"] });
    const response = await svc.check({ method: "GET", path: "/protected/x", token, route: "no-such-route" });
    expect({ grpc: response.status?.code, http: response.deniedResponse?.status?.code, reason: reasonOf(response) }).toEqual({
      grpc: 13,
      http: 500,
      reason: "route_unknown",
    });
    expect(response.okResponse).toBeUndefined();
    expect(JSON.stringify(response)).not.toContain(token);
  });
});
