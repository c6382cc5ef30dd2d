import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseAuthzData } from "../../src/config/authz-data.js";
import type { CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth.js";
import { DenyError } from "../../src/reasons/index.js";
import { KeyStore } from "../../src/token/keys/index.js";
import { TokenVerifier } from "../../src/token/verify.js";
import { es256, forge } from "../attacks/forge.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type TestClock, type TestService, reasonOf, startTestService, testClock } from "../helpers/service.js";
import { TEST_AUDIENCE, mint } from "../helpers/tokens.js";
import { expectAllowed, expectDenied, unauthenticated } from "./expect-decision.js";

// The negative cache (tokens.negative_cache_entries): a refused token presented again is
// refused from the cache while what the refusal rests on stands, with the answer a full
// verification gives. Each case is asked of a service with the cache and of one without
// it, on the default route and on a route that does not accept the token's issuer; the
// answers must be the same, and the metrics say which were answered from the cache.

const PATH = "/data/file";
const LEEWAY_S = 60;
const HTTP = { http: { listen: "127.0.0.1:0" } };

let key: TestKey; // the issuer's key, kid "k1"
let impostor: TestKey; // another key that claims kid "k1"
let rsa: TestKey; // RS256, an algorithm the issuer does not accept
let issuer: OidcServer;
let other: OidcServer; // the issuer the route "other" accepts
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  [key, impostor, rsa] = await Promise.all([makeKey("ES256", "k1"), makeKey("ES256", "k1"), makeKey("RS256", "k1")]);
  [issuer, other] = await Promise.all([startOidcServer({ keys: [key] }), startOidcServer({ keys: [key] })]);
});

afterAll(async () => {
  await Promise.all([issuer?.close(), other?.close()]);
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function data(trusted: OidcServer = issuer): object {
  return {
    audiences: [TEST_AUDIENCE],
    issuers: [
      { issuer: trusted.issuer, base_path: "/", algorithms: ["ES256"] },
      { issuer: other.issuer, base_path: "/" },
    ],
    routes: { other: { issuers: [other.issuer] } },
  };
}

async function service(overrides: Record<string, unknown> = {}, clock?: TestClock, trusted?: OidcServer): Promise<TestService> {
  const svc = await startTestService(data(trusted), { ...HTTP, ...overrides }, clock);
  cleanups.push(() => svc.close());
  return svc;
}

/** The negative cache's counters of a service. */
async function negativeLookups(svc: TestService): Promise<{ hits: number; misses: number }> {
  const text = await (await fetch(`http://127.0.0.1:${svc.service.httpPort}/metrics`)).text();
  const sample = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
  return { hits: sample("scitokens_authz_token_negative_cache_hits_total"), misses: sample("scitokens_authz_token_negative_cache_misses_total") };
}

/** A response with its decision id blanked: what must not differ between two services. */
function comparable(response: CheckResponse): string {
  const id = (response.dynamicMetadata as Record<string, unknown> | undefined)?.["decision_id"];
  return JSON.stringify(response).replaceAll(String(id), "<id>");
}

interface Case {
  readonly name: string;
  readonly reason: string;
  /** Whether the second and later Checks are answered from the negative cache. */
  readonly kept: boolean;
  readonly token: (nowS: number) => Promise<string> | string;
}

const CASES: readonly Case[] = [
  { name: "a bad signature", reason: "signature_invalid", kept: true, token: () => mint(impostor, issuer.issuer) },
  {
    name: "an expired token",
    reason: "token_expired",
    kept: true,
    token: (now) => mint(key, issuer.issuer, { now: new Date((now - 7200) * 1000), lifetimeSeconds: 600 }),
  },
  {
    name: "a token not yet valid",
    reason: "token_not_yet_valid",
    kept: true,
    token: (now) => mint(key, issuer.issuer, { now: new Date(now * 1000), extraClaims: { nbf: now + 600 } }),
  },
  {
    name: "a token issued in the future",
    reason: "token_issued_in_future",
    kept: true,
    token: (now) => mint(key, issuer.issuer, { now: new Date((now + 3600) * 1000) }),
  },
  { name: "exp of the wrong type", reason: "claim_invalid", kept: true, token: () => mint(key, issuer.issuer, { extraClaims: { exp: "4102444800" } }) },
  { name: "an unknown profile", reason: "profile_unknown", kept: true, token: () => mint(key, issuer.issuer, { extraClaims: { ver: "scitoken:9.0" } }) },
  { name: "a scope path that climbs", reason: "scope_invalid", kept: true, token: () => mint(key, issuer.issuer, { scopes: ["read:/a/../../b"] }) },
  {
    name: "a crit parameter jose does not know",
    reason: "token_malformed",
    kept: true,
    token: () => mint(key, issuer.issuer, { extraHeader: { crit: ["x-unknown"], "x-unknown": 1 } }),
  },
  {
    name: "an unencoded payload (RFC 7797 b64: false)",
    reason: "token_malformed",
    kept: true,
    token: (now) => forge({ alg: "ES256", kid: "k1", crit: ["b64"], b64: false }, { iss: issuer.issuer, iat: now, exp: now + 600 }, es256(key.privateKey)),
  },
  { name: "not a JWS", reason: "token_malformed", kept: true, token: () => "not.a-jws" },
  { name: "alg none", reason: "alg_not_allowed", kept: true, token: () => forge({ alg: "none", typ: "JWT" }, { iss: issuer.issuer }, "") },
  { name: "an algorithm the issuer does not accept", reason: "alg_not_allowed", kept: true, token: () => mint(rsa, issuer.issuer) },
  { name: "an untrusted issuer", reason: "issuer_untrusted", kept: true, token: () => mint(key, "https://untrusted.example.org/idp") },
  { name: "an unknown kid (a key lookup: never kept)", reason: "key_not_found", kept: false, token: () => mint(key, issuer.issuer, { kid: "k-unknown" }) },
];

describe("a refused token presented again gets the answer a full verification gives", () => {
  let cached: TestService;
  let uncached: TestService;

  beforeAll(async () => {
    // Their own cleanup: the services serve every case of this block.
    cached = await startTestService(data(), HTTP);
    uncached = await startTestService(data(), { ...HTTP, tokens: { negative_cache_entries: 0 } });
  });

  afterAll(async () => {
    await Promise.all([cached?.close(), uncached?.close()]);
  });

  it.each(CASES)("$name: $reason every time", async ({ reason, kept, token: make }) => {
    const token = await make(Math.floor(Date.now() / 1000));
    const before = await negativeLookups(cached);
    // Default route, again, the route that does not accept the issuer, again, default.
    const routes = [undefined, undefined, "other", "other", undefined];
    const answers: Array<[string, string]> = [];
    for (const route of routes) {
      const request = { method: "GET", path: PATH, token, ...(route ? { route } : {}) };
      answers.push([comparable(await cached.check(request)), comparable(await uncached.check(request))]);
    }
    for (const [fromCache, inFull] of answers) expect(fromCache).toBe(inFull);
    expect(JSON.parse(answers[0]![0]).dynamicMetadata.reason).toBe(reason);
    const after = await negativeLookups(cached);
    expect({ hits: after.hits - before.hits, misses: after.misses - before.misses }).toEqual(kept ? { hits: 4, misses: 1 } : { hits: 0, misses: 5 });
    expect(await negativeLookups(uncached)).toEqual({ hits: 0, misses: 0 });
  });

  it("a valid token is not looked up in the negative cache once it is in the verified-token cache", async () => {
    const token = await mint(key, issuer.issuer);
    const before = await negativeLookups(cached);
    expectAllowed(await cached.check({ method: "GET", path: PATH, token }));
    expectAllowed(await cached.check({ method: "GET", path: PATH, token }));
    const after = await negativeLookups(cached);
    expect({ hits: after.hits - before.hits, misses: after.misses - before.misses }).toEqual({ hits: 0, misses: 1 });
  });
});

describe("the same refusal in the service's log detail", () => {
  // The detail (what the log line says after the code) of a refusal from the cache is
  // the one of the refusal it keeps: checked on the verifier itself, with real keys.
  it.each(CASES)("$name", async ({ token: make }) => {
    const token = await make(Math.floor(Date.now() / 1000));
    const store = new KeyStore([{ issuer: issuer.issuer }, { issuer: other.issuer }]);
    cleanups.push(async () => store.close());
    await store.start();
    const authz = parseAuthzData("data.yaml", data());
    const verifier = (negativeCacheEntries: number) =>
      new TokenVerifier({
        issuers: authz.issuers,
        keys: (iss, header, lookup) => store.getKey(iss, header, lookup),
        recheckKey: (iss, kid) => store.assertStillUsable(iss, kid),
        keyVersion: (iss, afterRejection) => store.keyVersion(iss, afterRejection),
        leewaySeconds: LEEWAY_S,
        cacheEntries: 100,
        negativeCacheEntries,
      });
    const refusal = async (v: TokenVerifier, route: ReadonlySet<string> | null) => {
      try {
        await v.verify(token, route);
      } catch (error) {
        return error instanceof DenyError ? `${error.code}: ${error.detail}` : `not a DenyError: ${String(error)}`;
      }
      return "verified";
    };
    const withCache = verifier(100);
    const inFull = verifier(0);
    const otherRoute = authz.routes.get("other")!.allowedIssuers;
    for (const route of [null, null, otherRoute, otherRoute, null]) {
      expect(await refusal(withCache, route)).toBe(await refusal(inFull, route));
    }
  });
});

describe("refusals that rest on the issuer's keys", () => {
  it("are dropped when the keys change: a kid reused for a new key, once the service has the new set", async () => {
    const rotating = await startOidcServer({ keys: [key] });
    cleanups.push(() => rotating.close());
    const svc = await service({}, undefined, rotating);
    const token = await mint(impostor, rotating.issuer); // kid k1, signed by the key that will replace k1

    expectDenied(await svc.check({ method: "GET", path: PATH, token }), unauthenticated("signature_invalid"));
    expectDenied(await svc.check({ method: "GET", path: PATH, token }), unauthenticated("signature_invalid"));
    expect(await negativeLookups(svc)).toEqual({ hits: 1, misses: 1 });

    rotating.setKeys([impostor]);
    await svc.service.keys.refresh(rotating.issuer);
    expectAllowed(await svc.check({ method: "GET", path: PATH, token }));
    expect(await negativeLookups(svc)).toEqual({ hits: 1, misses: 2 });
  });

  it("a kid-less token signed by a new key: refused from the cache during the cooldown, then the retry fetches the new key", async () => {
    const old = await makeKey("ES256", "old");
    const next = await makeKey("ES256", "next");
    const rotating = await startOidcServer({ keys: [{ ...old, kid: undefined }] });
    cleanups.push(() => rotating.close());
    const clock = testClock(Math.floor(Date.now() / 1000) * 1000);
    const svc = await service({ keys: { unknown_kid_cooldown_seconds: 30 } }, clock, rotating);
    const token = await mint(next, rotating.issuer, { kid: undefined });

    // Refused in full (asking once for newer keys), then from the cache.
    expectDenied(await svc.check({ method: "GET", path: PATH, token }), unauthenticated("signature_invalid"));
    expectDenied(await svc.check({ method: "GET", path: PATH, token }), unauthenticated("signature_invalid"));
    rotating.setKeys([{ ...next, kid: undefined }]);
    // Within the cooldown a full verification would not fetch either: the same refusal.
    clock.advance(29_000);
    const fetchesBefore = rotating.requests.filter((r) => r.endsWith("/jwks")).length;
    expectDenied(await svc.check({ method: "GET", path: PATH, token }), unauthenticated("signature_invalid"));
    expect(rotating.requests.filter((r) => r.endsWith("/jwks")).length).toBe(fetchesBefore);
    expect(await negativeLookups(svc)).toEqual({ hits: 2, misses: 1 });
    // Once a fetch may start, the retry is verified in full and fetches the new key.
    clock.advance(1_000);
    expectAllowed(await svc.check({ method: "GET", path: PATH, token }));
    expect(await negativeLookups(svc)).toEqual({ hits: 2, misses: 2 });
  });

  it("key_not_found is never kept: the kid is found once the issuer publishes it and the cooldown allows a fetch", async () => {
    const rotating = await startOidcServer({ keys: [key] });
    cleanups.push(() => rotating.close());
    const clock = testClock(Math.floor(Date.now() / 1000) * 1000);
    const svc = await service({ keys: { unknown_kid_cooldown_seconds: 30 } }, clock, rotating);
    const added = await makeKey("ES256", "k2");
    const token = await mint(added, rotating.issuer);

    expectDenied(await svc.check({ method: "GET", path: PATH, token }), unauthenticated("key_not_found"));
    rotating.setKeys([key, added]);
    expectDenied(await svc.check({ method: "GET", path: PATH, token }), unauthenticated("key_not_found"));
    clock.advance(30_000);
    expectAllowed(await svc.check({ method: "GET", path: PATH, token }));
    expect(await negativeLookups(svc)).toEqual({ hits: 0, misses: 3 });
  });

  it("key_unavailable is never kept: the token is allowed once the issuer's keys come", async () => {
    const down = await startOidcServer({ keys: [key] });
    cleanups.push(() => down.close());
    down.respond("openid-configuration", { status: 500, body: "" });
    const clock = testClock(Math.floor(Date.now() / 1000) * 1000);
    const svc = await service({ keys: { unknown_kid_cooldown_seconds: 30, startup_wait_seconds: 5 } }, clock, down);
    const token = await mint(key, down.issuer);

    const first = await svc.check({ method: "GET", path: PATH, token });
    expect(reasonOf(first)).toBe("key_unavailable");
    expect(reasonOf(await svc.check({ method: "GET", path: PATH, token }))).toBe("key_unavailable");
    down.respond("openid-configuration", undefined);
    clock.advance(30_000);
    expectAllowed(await svc.check({ method: "GET", path: PATH, token }));
    expect(await negativeLookups(svc)).toEqual({ hits: 0, misses: 3 });
  });
});

describe("a token refused by time is checked against the clock at every hit", () => {
  it("not yet valid, then valid once nbf is reached, then not yet valid again when the clock is set back", async () => {
    const clock = testClock(Math.floor(Date.now() / 1000) * 1000);
    const svc = await service({}, clock);
    const t0 = clock.now() / 1000;
    const token = await mint(key, issuer.issuer, { now: new Date(t0 * 1000), extraClaims: { nbf: t0 + 300 } });

    expectDenied(await svc.check({ method: "GET", path: PATH, token }), unauthenticated("token_not_yet_valid"));
    expectDenied(await svc.check({ method: "GET", path: PATH, token }), unauthenticated("token_not_yet_valid"));
    clock.set((t0 + 300 - LEEWAY_S) * 1000);
    expectAllowed(await svc.check({ method: "GET", path: PATH, token }));
    expectAllowed(await svc.check({ method: "GET", path: PATH, token })); // now from the verified-token cache
    clock.set(t0 * 1000);
    expectDenied(await svc.check({ method: "GET", path: PATH, token }), unauthenticated("token_not_yet_valid"));
    expect(await negativeLookups(svc)).toEqual({ hits: 2, misses: 1 });
  });

  it("expired stays expired as time goes on, and is valid again if the clock is set back before exp", async () => {
    const clock = testClock(Math.floor(Date.now() / 1000) * 1000);
    const svc = await service({}, clock);
    const t0 = clock.now() / 1000;
    const token = await mint(key, issuer.issuer, { now: new Date((t0 - 700) * 1000), lifetimeSeconds: 600 });

    expectDenied(await svc.check({ method: "GET", path: PATH, token }), unauthenticated("token_expired"));
    clock.advance(3_600_000);
    expectDenied(await svc.check({ method: "GET", path: PATH, token }), unauthenticated("token_expired"));
    clock.set((t0 - 650) * 1000);
    expectAllowed(await svc.check({ method: "GET", path: PATH, token }));
    expect(await negativeLookups(svc)).toEqual({ hits: 2, misses: 1 });
  });
});

describe("tokens.negative_cache_entries", () => {
  it("bounds the cache: with 1 entry, two refused tokens in turn are verified in full every time", async () => {
    const svc = await service({ tokens: { negative_cache_entries: 1 } });
    const [a, b] = await Promise.all([mint(impostor, issuer.issuer), mint(impostor, issuer.issuer)]);
    for (const token of [a, b, a, b]) expectDenied(await svc.check({ method: "GET", path: PATH, token }), unauthenticated("signature_invalid"));
    expect(await negativeLookups(svc)).toEqual({ hits: 0, misses: 4 });
    expectDenied(await svc.check({ method: "GET", path: PATH, token: b }), unauthenticated("signature_invalid"));
    expect(await negativeLookups(svc)).toEqual({ hits: 1, misses: 4 });
  });

  it("0 turns the cache off: nothing is looked up", async () => {
    const svc = await service({ tokens: { negative_cache_entries: 0 } });
    const token = await mint(impostor, issuer.issuer);
    for (let i = 0; i < 3; i++) expectDenied(await svc.check({ method: "GET", path: PATH, token }), unauthenticated("signature_invalid"));
    expect(await negativeLookups(svc)).toEqual({ hits: 0, misses: 0 });
  });
});
