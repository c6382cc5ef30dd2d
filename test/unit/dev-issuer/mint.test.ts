import { compactVerify, createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { MintOptions, TokenProfile } from "../../../src/dev-issuer/mint.js";
import { DEFAULT_LIFETIME_SECONDS, DEFAULT_SUBJECT, mintToken } from "../../../src/dev-issuer/mint.js";
import type { DevIssuer } from "../../../src/dev-issuer/server.js";
import { startDevIssuer } from "../../../src/dev-issuer/server.js";

const NOW = new Date("2025-01-02T03:04:05.678Z");
const NOW_SECONDS = 1735787045;
const AUDIENCE = "https://storage.example.org";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let issuer: DevIssuer;

beforeEach(async () => {
  issuer = await startDevIssuer({ port: 0 });
});

afterEach(async () => {
  await issuer.close();
});

function options(overrides: Partial<MintOptions> = {}): MintOptions {
  return {
    privateKey: issuer.privateKey,
    alg: issuer.alg,
    kid: issuer.kid,
    issuer: issuer.issuer,
    audience: AUDIENCE,
    scopes: ["read:/data", "write:/data/out"],
    now: NOW,
    ...overrides,
  };
}

/** Verifies against the running issuer's JWKS, over HTTP, at the minting time. */
async function verify(token: string, at: Date = NOW) {
  const jwks = createRemoteJWKSet(new URL(`${issuer.issuer}/jwks`));
  return jwtVerify(token, jwks, { issuer: issuer.issuer, currentDate: at });
}

describe("mintToken profiles", () => {
  it.each<{ name: string; profile: TokenProfile | undefined; scopeClaim?: "scope" | "scp"; expected: Record<string, unknown>; absent: string[] }>([
    {
      name: "default is SciTokens 2",
      profile: undefined,
      expected: { ver: "scitoken:2.0", scope: "read:/data write:/data/out" },
      absent: ["wlcg.ver", "scp"],
    },
    {
      name: "SciTokens 2",
      profile: "scitokens2",
      expected: { ver: "scitoken:2.0", scope: "read:/data write:/data/out" },
      absent: ["wlcg.ver", "scp"],
    },
    {
      name: "WLCG 1",
      profile: "wlcg1",
      expected: { "wlcg.ver": "1.0", scope: "read:/data write:/data/out" },
      absent: ["ver", "scp"],
    },
    {
      name: "SciTokens 1 with scope",
      profile: "scitokens1",
      expected: { scope: "read:/data write:/data/out" },
      absent: ["ver", "wlcg.ver", "scp"],
    },
    {
      name: "SciTokens 1 with legacy scp",
      profile: "scitokens1",
      scopeClaim: "scp",
      expected: { scp: ["read:/data", "write:/data/out"] },
      absent: ["ver", "wlcg.ver", "scope"],
    },
  ])("$name: verifies against the dev issuer and carries the profile's claims", async ({ profile, scopeClaim, expected, absent }) => {
    const token = await mintToken(options({ profile, scopeClaim }));
    const { payload, protectedHeader } = await verify(token);

    expect(protectedHeader).toEqual({ alg: "ES256", kid: issuer.kid, typ: "JWT" });
    expect(payload).toMatchObject({
      ...expected,
      iss: issuer.issuer,
      sub: DEFAULT_SUBJECT,
      aud: AUDIENCE,
      iat: NOW_SECONDS,
      exp: NOW_SECONDS + DEFAULT_LIFETIME_SECONDS,
    });
    expect(payload.jti).toMatch(UUID);
    for (const claim of [...absent, "nbf", "wlcg.groups"]) expect(payload).not.toHaveProperty([claim]);
  });
});

describe("mintToken claims", () => {
  it("writes subject, audience list, groups, jti, lifetime and nbf as given", async () => {
    const token = await mintToken(
      options({
        subject: "albert.einstein",
        audience: ["https://a.example", "https://b.example"],
        groups: ["/igwn", "/igwn/ligo"],
        jti: "token-1",
        lifetimeSeconds: 3600,
        nbf: true,
        profile: "wlcg1",
      }),
    );
    const { payload } = await verify(token);

    expect(payload).toMatchObject({
      sub: "albert.einstein",
      aud: ["https://a.example", "https://b.example"],
      "wlcg.groups": ["/igwn", "/igwn/ligo"],
      jti: "token-1",
      iat: NOW_SECONDS,
      nbf: NOW_SECONDS,
      exp: NOW_SECONDS + 3600,
    });
  });

  it("keeps a one-element audience array an array", async () => {
    const { payload } = await verify(await mintToken(options({ audience: ["https://a.example"] })));
    expect(payload.aud).toEqual(["https://a.example"]);
  });

  it("omits aud when no audience is given", async () => {
    const { payload } = await verify(await mintToken(options({ audience: undefined })));
    expect(payload).not.toHaveProperty("aud");
  });

  it("omits the scope claim when there are no scopes", async () => {
    const { payload } = await verify(await mintToken(options({ scopes: [] })));
    expect(payload).not.toHaveProperty("scope");
    expect(payload).not.toHaveProperty("scp");
  });

  it("gives every token its own random jti", async () => {
    const first = await verify(await mintToken(options()));
    const second = await verify(await mintToken(options()));
    expect(first.payload.jti).toMatch(UUID);
    expect(second.payload.jti).toMatch(UUID);
    expect(first.payload.jti).not.toBe(second.payload.jti);
  });

  it("defaults iat to the current time", async () => {
    const before = Math.floor(Date.now() / 1000);
    const { payload } = await verify(await mintToken(options({ now: undefined })), new Date());
    const after = Math.floor(Date.now() / 1000);
    expect(payload.iat).toBeGreaterThanOrEqual(before);
    expect(payload.iat).toBeLessThanOrEqual(after);
    expect(payload.exp).toBe((payload.iat ?? 0) + DEFAULT_LIFETIME_SECONDS);
  });

  it("lets extraClaims replace and remove claims", async () => {
    const token = await mintToken(options({ extraClaims: { ver: "scitoken:3.0", exp: "tomorrow", jti: undefined, "x-site": "LIGO-Hanford" } }));
    // jwtVerify would reject the string exp: check only the signature, then read the claims.
    const { payload } = await compactVerify(token, createRemoteJWKSet(new URL(`${issuer.issuer}/jwks`)));
    const claims = JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
    expect(claims).toMatchObject({ ver: "scitoken:3.0", exp: "tomorrow", "x-site": "LIGO-Hanford", iat: NOW_SECONDS });
    expect(claims).not.toHaveProperty("jti");
  });
});

describe("mintToken header", () => {
  it("leaves kid out when none is given", async () => {
    const token = await mintToken(options({ kid: undefined }));
    expect(decodeProtectedHeader(token)).toEqual({ alg: "ES256", typ: "JWT" });
    // The dev issuer's JWKS holds one key, so jose still finds it.
    await expect(verify(token)).resolves.toMatchObject({ payload: { iss: issuer.issuer } });
  });

  it("applies extraHeader over the defaults, signing a token with crit", async () => {
    const token = await mintToken(options({ extraHeader: { typ: undefined, jku: "https://evil.example/jwks", crit: ["x-policy"], "x-policy": 1 } }));
    expect(decodeProtectedHeader(token)).toEqual({
      alg: "ES256",
      kid: issuer.kid,
      jku: "https://evil.example/jwks",
      crit: ["x-policy"],
      "x-policy": 1,
    });
    await expect(verify(token)).rejects.toMatchObject({ code: "ERR_JOSE_NOT_SUPPORTED" });
  });
});

describe("mintToken with RS256", () => {
  it("mints tokens that verify against an RS256 dev issuer", async () => {
    const rsa = await startDevIssuer({ port: 0, alg: "RS256" });
    try {
      const token = await mintToken({
        privateKey: rsa.privateKey,
        alg: "RS256",
        kid: rsa.kid,
        issuer: rsa.issuer,
        audience: AUDIENCE,
        scopes: ["storage.read:/"],
        profile: "wlcg1",
        now: NOW,
      });
      const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(`${rsa.issuer}/jwks`)), {
        issuer: rsa.issuer,
        audience: AUDIENCE,
        currentDate: NOW,
      });
      expect(protectedHeader).toEqual({ alg: "RS256", kid: rsa.kid, typ: "JWT" });
      expect(payload).toMatchObject({ "wlcg.ver": "1.0", scope: "storage.read:/" });
    } finally {
      await rsa.close();
    }
  });
});

describe("mintToken refuses", () => {
  it.each<{ name: string; overrides: Partial<MintOptions>; message: RegExp }>([
    { name: "a scope with a space", overrides: { scopes: ["read:/a b"] }, message: /no whitespace/ },
    { name: "an empty scope", overrides: { scopes: ["read:/", ""] }, message: /non-empty/ },
    { name: "scp outside SciTokens 1", overrides: { scopeClaim: "scp", profile: "wlcg1" }, message: /SciTokens 1 legacy claim/ },
    { name: "a fractional lifetime", overrides: { lifetimeSeconds: 1.5 }, message: /lifetimeSeconds/ },
    { name: "an invalid date", overrides: { now: new Date(Number.NaN) }, message: /valid Date/ },
    { name: "an unknown profile", overrides: { profile: "scitokens3" as TokenProfile }, message: /unknown token profile/ },
  ])("$name", async ({ overrides, message }) => {
    await expect(mintToken(options(overrides))).rejects.toThrow(message);
  });

  it("a key that does not suit the algorithm", async () => {
    await expect(mintToken(options({ alg: "RS256" }))).rejects.toThrow(TypeError);
  });
});
