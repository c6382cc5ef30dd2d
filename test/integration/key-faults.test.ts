import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../src/config/config-error.js";
import { type TestKey, jwksOf, makeKey } from "../helpers/keys.js";
import { type CannedResponse, type OidcServer, type OidcServerOptions, startOidcServer } from "../helpers/oidc-server.js";
import { type TestService, responseHeader, startTestService, testClock } from "../helpers/service.js";
import { TEST_AUDIENCE, mint } from "../helpers/tokens.js";
import { type ExpectedDeny, GrpcCode, expectAllowed, expectDenied, unauthenticated } from "./expect-decision.js";

// Real misbehaving issuers on loopback (SEMANTICS §3): unavailable key sets, unknown-kid
// floods, rotation, static key files, disk cache, and what each costs in issuer traffic.

const KEY_UNAVAILABLE: ExpectedDeny = { grpc: GrpcCode.UNAVAILABLE, http: 503, reason: "key_unavailable", wwwAuthenticate: null };
const PATH = "/data/file";

let keyA: TestKey;
let keyB: TestKey;
let dir: string;
const servers: OidcServer[] = [];
const services: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  [keyA, keyB] = await Promise.all([makeKey("ES256", "key-a"), makeKey("ES256", "key-b")]);
  dir = await mkdtemp(join(tmpdir(), "scitokens-key-faults-"));
});

afterEach(async () => {
  await Promise.all(services.splice(0).map((s) => s.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function issuerServer(o: OidcServerOptions, canned: { jwks?: CannedResponse } = {}): Promise<OidcServer> {
  const server = await startOidcServer(o);
  servers.push(server);
  if (canned.jwks) server.respond("jwks", canned.jwks);
  return server;
}

/**
 * Starts the service for `issuers`; closed after the test (closing it earlier is fine).
 * A Check here waits for the key fetch it needs as long as it takes (these tests count
 * traffic and reasons; test/attacks/key-server-faults.test.ts covers the bounded wait).
 */
async function serviceFor(issuers: object[], serviceOverrides: { keys?: Record<string, unknown> } = {}): Promise<TestService> {
  const keys = { check_wait_seconds: 60, ...serviceOverrides.keys };
  const svc = await startTestService({ audiences: [TEST_AUDIENCE], issuers }, { ...serviceOverrides, keys });
  let closing: Promise<void> | undefined;
  const closeOnce = () => (closing ??= svc.close());
  services.push({ close: closeOnce });
  return { ...svc, check: svc.check, close: closeOnce };
}

/** Requests for the JWKS document (one per key fetch attempt that got that far). */
const jwksRequests = (server: OidcServer) => server.requests.filter((target) => target.endsWith("/jwks")).length;

describe("an issuer whose keys cannot be had", () => {
  it("JWKS answering 500 from the start: 503 key_unavailable with retry-after, one refetch per cooldown", async () => {
    const issuer = await issuerServer({ keys: [keyA] }, { jwks: { status: 500, body: { error: "boom" } } });
    const svc = await serviceFor([{ issuer: issuer.issuer, base_path: "/" }]);
    expect(jwksRequests(issuer)).toBe(1); // the start-up attempt

    for (let i = 0; i < 5; i++) {
      const response = await svc.check({ method: "GET", path: PATH, token: await mint(keyA, issuer.issuer) });
      expectDenied(response, KEY_UNAVAILABLE);
      expect(responseHeader(response, "retry-after")).toMatch(/^\d+$/);
    }
    expect(jwksRequests(issuer)).toBe(2); // plus one on-demand attempt for five requests

    // The issuer recovers; the next refresh makes its tokens good again.
    issuer.respond("jwks", undefined);
    await svc.service.keys.refresh(issuer.issuer);
    expectAllowed(await svc.check({ method: "GET", path: PATH, token: await mint(keyA, issuer.issuer) }));
  });

  it.each<{ name: string; options: () => Partial<OidcServerOptions>; jwks?: CannedResponse; overrides?: { keys: Record<string, unknown> } }>([
    { name: "discovery metadata naming another issuer", options: () => ({ metadataIssuer: "https://evil.example.org" }) },
    { name: "no discovery document at all", options: () => ({ discovery: [] }) },
    { name: "a JWKS that is not JSON", options: () => ({}), jwks: { status: 200, body: "<html>maintenance</html>" } },
    { name: "a JWKS without a keys array", options: () => ({}), jwks: { status: 200, body: { keys: "none" } } },
    {
      name: "a JWKS over the size limit",
      options: () => ({}),
      jwks: { status: 200, body: { keys: [], pad: "x".repeat(4096) } },
      overrides: { keys: { max_response_bytes: 1024 } },
    },
    { name: "a JWKS that never answers (fetch timeout)", options: () => ({}), jwks: { hang: true }, overrides: { keys: { fetch_timeout_seconds: 0.2 } } },
  ])("$name: 503 key_unavailable", async ({ options, jwks, overrides }) => {
    const issuer = await issuerServer({ keys: [keyA], ...options() }, jwks ? { jwks } : {});
    const svc = await serviceFor([{ issuer: issuer.issuer, base_path: "/" }], overrides);
    expectDenied(await svc.check({ method: "GET", path: PATH, token: await mint(keyA, issuer.issuer) }), KEY_UNAVAILABLE);
  });

  it("metadata naming another issuer: its jwks_uri is never fetched", async () => {
    const issuer = await issuerServer({ keys: [keyA], metadataIssuer: `http://127.0.0.1:1/other` });
    const svc = await serviceFor([{ issuer: issuer.issuer, base_path: "/" }]);
    expectDenied(await svc.check({ method: "GET", path: PATH, token: await mint(keyA, issuer.issuer) }), KEY_UNAVAILABLE);
    expect(issuer.requests.length).toBeGreaterThan(0);
    expect(jwksRequests(issuer)).toBe(0);
  });

  it("an empty key set denies with key_not_found (401), not 503: the issuer answered", async () => {
    const issuer = await issuerServer({ keys: [] });
    const svc = await serviceFor([{ issuer: issuer.issuer, base_path: "/" }]);
    expectDenied(await svc.check({ method: "GET", path: PATH, token: await mint(keyA, issuer.issuer) }), unauthenticated("key_not_found"));
  });
});

describe("discovery", () => {
  it("falls back to RFC 8414 {origin}/.well-known/oauth-authorization-server{path}", async () => {
    const issuer = await issuerServer({ keys: [keyA], path: "/realms/igwn", discovery: ["oauth-authorization-server"] });
    const svc = await serviceFor([{ issuer: issuer.issuer, base_path: "/" }]);
    expectAllowed(await svc.check({ method: "GET", path: PATH, token: await mint(keyA, issuer.issuer) }));
    expect(issuer.requests).toContain("/.well-known/oauth-authorization-server/realms/igwn");
  });

  it("a configured jwks_uri skips discovery", async () => {
    const issuer = await issuerServer({ keys: [keyA], discovery: [] });
    const svc = await serviceFor([{ issuer: issuer.issuer, jwks_uri: issuer.jwksUri, base_path: "/" }]);
    expectAllowed(await svc.check({ method: "GET", path: PATH, token: await mint(keyA, issuer.issuer) }));
    expect(issuer.requests).toEqual(["/jwks"]);
  });
});

describe("unknown kid", () => {
  it("a flood of 200 random kids causes at most one extra JWKS fetch", async () => {
    const issuer = await issuerServer({ keys: [keyA] });
    const svc = await serviceFor([{ issuer: issuer.issuer, base_path: "/" }]);
    const before = issuer.requests.length;
    const beforeJwks = jwksRequests(issuer);

    const tokens = await Promise.all(Array.from({ length: 200 }, () => mint(keyA, issuer.issuer, { kid: randomUUID() })));
    const responses = await Promise.all(tokens.map((token) => svc.check({ method: "GET", path: PATH, token })));
    for (const response of responses) expectDenied(response, unauthenticated("key_not_found"));

    expect(jwksRequests(issuer) - beforeJwks).toBeLessThanOrEqual(1);
    expect(issuer.requests.length - before).toBeLessThanOrEqual(2); // one attempt: discovery + JWKS
    // The issuer's real tokens are unaffected and cost nothing.
    const after = issuer.requests.length;
    expectAllowed(await svc.check({ method: "GET", path: PATH, token: await mint(keyA, issuer.issuer) }));
    expect(issuer.requests.length).toBe(after);
  });

  it("a flood while the issuer fails keeps the last good keys and causes at most one fetch", async () => {
    const issuer = await issuerServer({ keys: [keyA] });
    const svc = await serviceFor([{ issuer: issuer.issuer, base_path: "/" }]);
    issuer.respond("jwks", { status: 503, body: "" });
    const beforeJwks = jwksRequests(issuer);

    const responses = await Promise.all(
      Array.from({ length: 100 }, async () => svc.check({ method: "GET", path: PATH, token: await mint(keyA, issuer.issuer, { kid: randomUUID() }) })),
    );
    for (const response of responses) expectDenied(response, unauthenticated("key_not_found"));
    expect(jwksRequests(issuer) - beforeJwks).toBeLessThanOrEqual(1);
    expectAllowed(await svc.check({ method: "GET", path: PATH, token: await mint(keyA, issuer.issuer) }));
  });

  it("kid-less tokens matching several keys never cause a fetch", async () => {
    const issuer = await issuerServer({ keys: [keyA, keyB] });
    const svc = await serviceFor([{ issuer: issuer.issuer, base_path: "/" }]);
    const before = issuer.requests.length;
    const responses = await Promise.all(
      Array.from({ length: 50 }, async () => svc.check({ method: "GET", path: PATH, token: await mint(keyA, issuer.issuer, { kid: undefined }) })),
    );
    for (const response of responses) expectDenied(response, unauthenticated("key_not_found"));
    expect(issuer.requests.length).toBe(before);
  });
});

describe("key rotation", () => {
  it("a token with the new kid is accepted after exactly one refetch; the removed kid is then unknown", async () => {
    const issuer = await issuerServer({ keys: [keyA] });
    const svc = await serviceFor([{ issuer: issuer.issuer, base_path: "/" }]);
    expectAllowed(await svc.check({ method: "GET", path: PATH, token: await mint(keyA, issuer.issuer) }));
    const beforeJwks = jwksRequests(issuer);

    issuer.setKeys([keyB]);
    expectAllowed(await svc.check({ method: "GET", path: PATH, token: await mint(keyB, issuer.issuer) }));
    expect(jwksRequests(issuer)).toBe(beforeJwks + 1);
    expectAllowed(await svc.check({ method: "GET", path: PATH, token: await mint(keyB, issuer.issuer) }));
    expect(jwksRequests(issuer)).toBe(beforeJwks + 1);

    // A fresh token (no verification cache) under the retired kid: unknown, no new fetch in the cooldown.
    expectDenied(await svc.check({ method: "GET", path: PATH, token: await mint(keyA, issuer.issuer) }), unauthenticated("key_not_found"));
    expect(jwksRequests(issuer)).toBe(beforeJwks + 1);
  });
});

describe("jwks_file (air-gapped sites)", () => {
  it("verifies from the file and never touches the network, even for unknown kids", async () => {
    // The issuer URL is a live loopback server publishing no keys: any traffic would show.
    const issuer = await issuerServer({ keys: [] });
    const file = join(dir, `jwks-${randomUUID()}.json`);
    await writeFile(file, JSON.stringify(jwksOf(keyA)));
    const svc = await serviceFor([{ issuer: issuer.issuer, jwks_file: file, base_path: "/" }]);

    expectAllowed(await svc.check({ method: "GET", path: PATH, token: await mint(keyA, issuer.issuer) }));
    // A key added to the file is found when a token names it (the file is read again).
    await writeFile(file, JSON.stringify(jwksOf(keyA, keyB)));
    expectAllowed(await svc.check({ method: "GET", path: PATH, token: await mint(keyB, issuer.issuer) }));
    expectDenied(await svc.check({ method: "GET", path: PATH, token: await mint(keyA, issuer.issuer, { kid: "nope" }) }), unauthenticated("key_not_found"));
    expect(issuer.requests).toEqual([]);
  });

  it.each([
    ["missing", undefined, /issuers\[0\]\.jwks_file: expected a JWKS file, found nothing at .*\.json/],
    [
      "without a usable key",
      JSON.stringify({ keys: [] }),
      /issuers\[0\]\.jwks_file: expected at least one usable public signing key in .*, found none \(an empty keys array\)/,
    ],
    ["not JSON", "keys:", /issuers\[0\]\.jwks_file: expected a JWKS \(a JSON object with a "keys" array\)/],
  ])("a key file %s stops the service before it listens, without network traffic", async (_name, content, expected) => {
    const issuer = await issuerServer({ keys: [keyA] });
    const file = join(dir, `key-file-${randomUUID()}.json`);
    if (content !== undefined) await writeFile(file, content);
    const started = serviceFor([{ issuer: issuer.issuer, jwks_file: file, base_path: "/" }]);
    await expect(started).rejects.toThrow(ConfigError);
    await expect(started).rejects.toThrow(expected);
    expect(issuer.requests).toEqual([]);
  });
});

describe("last good keys", () => {
  it("a restart serves from the disk cache while the issuer is down", async () => {
    const cacheDir = join(dir, `cache-${randomUUID()}`);
    const issuer = await issuerServer({ keys: [keyA] });
    const first = await serviceFor([{ issuer: issuer.issuer, base_path: "/" }], { keys: { cache_dir: cacheDir } });
    expectAllowed(await first.check({ method: "GET", path: PATH, token: await mint(keyA, issuer.issuer) }));
    await first.close();

    issuer.respond("openid-configuration", { status: 500, body: "" });
    issuer.respond("jwks", { status: 500, body: "" });
    const second = await serviceFor([{ issuer: issuer.issuer, base_path: "/" }], { keys: { cache_dir: cacheDir } });
    expectAllowed(await second.check({ method: "GET", path: PATH, token: await mint(keyA, issuer.issuer) }));
  });

  it("keeps the last good keys while the issuer is down, up to the maximum staleness, then 503", async () => {
    const issuer = await issuerServer({ keys: [keyA] });
    const clock = testClock(Date.now());
    const svc = await startTestService(
      { audiences: [TEST_AUDIENCE], issuers: [{ issuer: issuer.issuer, base_path: "/" }] },
      {
        keys: { max_stale_seconds: 3600 },
      },
      clock,
    );
    services.push(svc);
    issuer.respond("jwks", { status: 500, body: "" });
    const token = () => mint(keyA, issuer.issuer, { now: new Date(clock.now()) });

    clock.advance(3600 * 1000 - 1000);
    expectAllowed(await svc.check({ method: "GET", path: PATH, token: await token() }));
    clock.advance(2000);
    expectDenied(await svc.check({ method: "GET", path: PATH, token: await token() }), KEY_UNAVAILABLE);

    issuer.respond("jwks", undefined);
    await svc.service.keys.refresh(issuer.issuer);
    expectAllowed(await svc.check({ method: "GET", path: PATH, token: await token() }));
  });
});
