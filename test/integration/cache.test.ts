import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type TestClock, type TestService, reasonOf, startTestService, testClock } from "../helpers/service.js";
import { TEST_AUDIENCE, mint } from "../helpers/tokens.js";
import { expectAllowed, expectDenied, unauthenticated } from "./expect-decision.js";

// SEMANTICS §4: time is checked at each request and a verification is never honoured
// past exp (+ leeway), even when it comes from the verified-token cache. The clock
// moves through the service's `now` seam; the same token string is presented again,
// so later checks are answered from the cache.

const LEEWAY_S = 60;
const LIFETIME_S = 600;
const PATH = "/data/file";

let key: TestKey;
let issuer: OidcServer;
let clock: TestClock;
let svc: TestService | undefined;
let ownIssuer: OidcServer | undefined; // for a test that changes the issuer's keys

beforeAll(async () => {
  key = await makeKey("ES256");
  issuer = await startOidcServer({ keys: [key] });
});

afterEach(async () => {
  await svc?.close();
  await ownIssuer?.close();
  svc = undefined;
  ownIssuer = undefined;
});

afterAll(async () => {
  await issuer?.close();
});

async function start(serviceOverrides: Record<string, unknown> = {}, trusted: OidcServer = issuer): Promise<TestService> {
  // Whole seconds, so that exp + leeway boundaries are exact.
  clock = testClock(Math.floor(Date.now() / 1000) * 1000);
  svc = await startTestService({ audiences: [TEST_AUDIENCE], issuers: [{ issuer: trusted.issuer, base_path: "/" }] }, serviceOverrides, clock);
  return svc;
}

const atSeconds = (s: number) => clock.set(s * 1000);

describe("the verified-token cache never outlives exp", () => {
  it("allows a token at t, within the leeway after exp, and denies the same token string once exp + leeway has passed", async () => {
    const service = await start();
    const t0 = clock.now() / 1000;
    const token = await mint(key, issuer.issuer, { now: new Date(t0 * 1000), lifetimeSeconds: LIFETIME_S });
    const exp = t0 + LIFETIME_S;

    expectAllowed(await service.check({ method: "GET", path: PATH, token }));
    atSeconds(exp - 1);
    expectAllowed(await service.check({ method: "GET", path: PATH, token }));
    atSeconds(exp + LEEWAY_S - 1);
    expectAllowed(await service.check({ method: "GET", path: PATH, token }));
    atSeconds(exp + LEEWAY_S);
    expectDenied(await service.check({ method: "GET", path: PATH, token }), unauthenticated("token_expired"));
    atSeconds(exp + 3600);
    expectDenied(await service.check({ method: "GET", path: PATH, token }), unauthenticated("token_expired"));
  });

  it("a cached verification is refused once the issuer withdraws the key", async () => {
    ownIssuer = await startOidcServer({ keys: [key] });
    const rotating = ownIssuer;
    const service = await start({}, rotating);
    const t0 = clock.now() / 1000;
    const token = await mint(key, rotating.issuer, { now: new Date(t0 * 1000), lifetimeSeconds: LIFETIME_S });
    expectAllowed(await service.check({ method: "GET", path: PATH, token }));
    expectAllowed(await service.check({ method: "GET", path: PATH, token }));

    // The issuer now publishes no keys and the service has refetched them: the token that
    // was verified (and cached) before is refused like a fresh one.
    rotating.setKeys([]);
    await service.service.keys.refresh(rotating.issuer);
    expectDenied(await service.check({ method: "GET", path: PATH, token }), unauthenticated("key_not_found"));
    const fresh = await mint(key, rotating.issuer, { now: new Date(t0 * 1000), lifetimeSeconds: LIFETIME_S });
    expectDenied(await service.check({ method: "GET", path: PATH, token: fresh }), unauthenticated("key_not_found"));
  });

  it("a cached verification is refused once the issuer's keys are past their maximum staleness", async () => {
    ownIssuer = await startOidcServer({ keys: [key] });
    const failing = ownIssuer;
    const service = await start({ keys: { max_stale_seconds: 120 } }, failing);
    const t0 = clock.now() / 1000;
    const token = await mint(key, failing.issuer, { now: new Date(t0 * 1000), lifetimeSeconds: LIFETIME_S });
    expectAllowed(await service.check({ method: "GET", path: PATH, token }));

    failing.respond("jwks", { status: 500, body: "" });
    failing.respond("openid-configuration", { status: 500, body: "" });
    atSeconds(t0 + 60);
    expectAllowed(await service.check({ method: "GET", path: PATH, token }));
    atSeconds(t0 + 121);
    const response = await service.check({ method: "GET", path: PATH, token });
    expect(response.deniedResponse?.status?.code).toBe(503);
    expect(reasonOf(response)).toBe("key_unavailable");
  });

  it("a token cached while valid is not valid before its nbf when the clock is set back", async () => {
    const service = await start();
    const t0 = clock.now() / 1000;
    const token = await mint(key, issuer.issuer, { now: new Date(t0 * 1000), extraClaims: { nbf: t0 + 300 } });

    expectDenied(await service.check({ method: "GET", path: PATH, token }), unauthenticated("token_not_yet_valid"));
    atSeconds(t0 + 300 - LEEWAY_S);
    expectAllowed(await service.check({ method: "GET", path: PATH, token }));
    atSeconds(t0);
    expectDenied(await service.check({ method: "GET", path: PATH, token }), unauthenticated("token_not_yet_valid"));
  });

  it("with leeway 0, the same token is denied from exp on", async () => {
    const service = await start({ tokens: { leeway_seconds: 0 } });
    const t0 = clock.now() / 1000;
    const token = await mint(key, issuer.issuer, { now: new Date(t0 * 1000), lifetimeSeconds: LIFETIME_S });

    expectAllowed(await service.check({ method: "GET", path: PATH, token }));
    atSeconds(t0 + LIFETIME_S - 1);
    expectAllowed(await service.check({ method: "GET", path: PATH, token }));
    atSeconds(t0 + LIFETIME_S);
    expectDenied(await service.check({ method: "GET", path: PATH, token }), unauthenticated("token_expired"));
  });

  it("with the cache disabled (cache_entries: 0) expiry is the same", async () => {
    const service = await start({ tokens: { cache_entries: 0 } });
    const t0 = clock.now() / 1000;
    const token = await mint(key, issuer.issuer, { now: new Date(t0 * 1000), lifetimeSeconds: LIFETIME_S });

    expectAllowed(await service.check({ method: "GET", path: PATH, token }));
    atSeconds(t0 + LIFETIME_S + LEEWAY_S - 1);
    expectAllowed(await service.check({ method: "GET", path: PATH, token }));
    atSeconds(t0 + LIFETIME_S + LEEWAY_S);
    expectDenied(await service.check({ method: "GET", path: PATH, token }), unauthenticated("token_expired"));
  });
});

describe("the clock seam reaches the token checks", () => {
  it("a token minted an hour ahead of the real clock is valid at the service's clock", async () => {
    const service = await start();
    clock.advance(3600_000);
    const token = await mint(key, issuer.issuer, { now: new Date(clock.now()) });
    expectAllowed(await service.check({ method: "GET", path: PATH, token }));
    expect(clock.now()).toBeGreaterThan(Date.now());
  });
});
