import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { jwtVerify } from "jose";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { KeyStore } from "../../../src/token/keys/index.js";
import { expectDeny, fetchedUrls, recordingFetch, useHarness } from "./harness.js";
import { endless, hang, json, jwksOf, makeKey, serveDiscovery, signToken } from "./issuer-server.js";

const h = useHarness();
const OIDC = "/.well-known/openid-configuration";
const RFC8414 = "/.well-known/oauth-authorization-server";

describe("KeyStore key sources", () => {
  it("discovers jwks_uri by OpenID Connect discovery and verifies a token with it", async () => {
    const server = await h.server();
    const issuer = server.origin;
    const key = await makeKey("ES256", "k1");
    serveDiscovery(server, issuer, jwksOf(key));
    const store = h.store([{ issuer }]);
    await store.start();

    const token = await signToken(key, issuer);
    const { payload } = await jwtVerify(token, (header) => store.getKey(issuer, header));
    expect(payload.iss).toBe(issuer);
    expect([server.hits(OIDC), server.hits(RFC8414), server.hits("/jwks")]).toEqual([1, 0, 1]);
    expect(store.status()).toEqual([
      expect.objectContaining({ issuer, source: "discovery", from: `${server.origin}/jwks`, keys: 1, usable: true, lastError: null }),
    ]);
  });

  it("falls back to RFC 8414 metadata at {origin}/.well-known/oauth-authorization-server{path}", async () => {
    const server = await h.server();
    const issuer = `${server.origin}/tenant`;
    const key = await makeKey("RS256", "rsa-1");
    server.routes.set(`${RFC8414}/tenant`, json({ issuer, jwks_uri: `${server.origin}/tenant/jwks` }));
    server.routes.set("/tenant/jwks", json(jwksOf(key)));
    const store = h.store([{ issuer }]);
    await store.start();

    await expect(store.getKey(issuer, { alg: "RS256", kid: "rsa-1" })).resolves.toMatchObject({ type: "public" });
    expect([server.hits(`/tenant${OIDC}`), server.hits(`${RFC8414}/tenant`), server.hits("/tenant/jwks")]).toEqual([1, 1, 1]);
  });

  it("fails discovery when the metadata issuer is not exactly the configured issuer", async () => {
    const server = await h.server();
    const issuer = server.origin;
    const metadata = json({ issuer: `${issuer}/`, jwks_uri: `${server.origin}/jwks` });
    server.routes.set(OIDC, metadata);
    server.routes.set(RFC8414, metadata);
    server.routes.set("/jwks", json(jwksOf(await makeKey("ES256", "k1"))));
    const store = h.store([{ issuer }]);
    await store.start();

    await expectDeny(store.getKey(issuer, { alg: "ES256", kid: "k1" }), "key_unavailable");
    expect(server.hits("/jwks")).toBe(0);
    expect(store.status()[0]).toMatchObject({ usable: false, keys: 0, lastError: expect.stringMatching(/metadata issuer/) });
  });

  it("uses an explicit jwks_uri without any discovery", async () => {
    const server = await h.server();
    const issuer = "https://issuer.example.org";
    server.routes.set("/keys", json(jwksOf(await makeKey("ES256", "k1"))));
    const fetch = recordingFetch();
    const store = h.store([{ issuer, jwksUri: `${server.origin}/keys` }], { fetch });
    await store.start();

    await expect(store.getKey(issuer, { alg: "ES256", kid: "k1" })).resolves.toMatchObject({ type: "public" });
    expect(fetchedUrls(fetch)).toEqual([`${server.origin}/keys`]);
    expect(store.status()[0]).toMatchObject({ source: "jwks_uri", from: `${server.origin}/keys` });
  });

  it("reads a static jwks_file and never uses the network", async () => {
    const dir = await mkdtemp(join(tmpdir(), "keys-file-"));
    h.onCleanup(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, "jwks.json");
    const [first, second] = [await makeKey("ES256", "first"), await makeKey("ES256", "second")];
    await writeFile(file, JSON.stringify(jwksOf(first)));
    const issuer = "https://airgapped.example.org";
    const fetch = recordingFetch();
    const store = h.store([{ issuer, jwksFile: file }], { fetch });
    await store.start();
    await expect(store.getKey(issuer, { alg: "ES256", kid: "first" })).resolves.toMatchObject({ type: "public" });

    await writeFile(file, JSON.stringify(jwksOf(second)));
    await store.refresh(issuer);
    await expect(store.getKey(issuer, { alg: "ES256", kid: "second" })).resolves.toMatchObject({ type: "public" });
    expect(fetch).not.toHaveBeenCalled();
    expect(store.status()[0]).toMatchObject({ source: "jwks_file", from: file, keys: 1 });
  });

  it("reports a missing jwks_file as key_unavailable", async () => {
    const issuer = "https://airgapped.example.org";
    const store = h.store([{ issuer, jwksFile: join(tmpdir(), "does-not-exist", "jwks.json") }]);
    await store.start();
    await expectDeny(store.getKey(issuer, { alg: "ES256", kid: "k1" }), "key_unavailable");
    expect(store.status()[0]?.lastError).toMatch(/ENOENT/);
  });
});

describe("KeyStore URL policy", () => {
  it.each([
    ["a plain-http issuer for discovery", { issuer: "http://example.org" }, /issuer \(for discovery\) http:\/\/example.org must use https/],
    ["a plain-http jwks_uri", { issuer: "https://ok.example.org", jwksUri: "http://example.org/jwks" }, /jwks_uri http:\/\/example.org\/jwks must use https/],
    ["a non-URL issuer for discovery", { issuer: "my-issuer" }, /not an absolute URL/],
    ["both jwks_uri and jwks_file", { issuer: "https://ok.example.org", jwksUri: "https://ok.example.org/k", jwksFile: "/k.json" }, /not both/],
  ])("refuses %s at construction, without traffic", (_name, source, message) => {
    const fetch = recordingFetch();
    expect(() => new KeyStore([source], { fetch })).toThrow(message);
    expect(fetch).not.toHaveBeenCalled();
  });

  it("reports every configuration problem at once", () => {
    const sources = [
      { issuer: "http://a.example.org" },
      { issuer: "https://b.example.org", jwksUri: "ftp://b.example.org/jwks" },
      { issuer: "https://b.example.org" },
    ];
    expect(() => new KeyStore(sources)).toThrow(/a\.example\.org[\s\S]*ftp[\s\S]*configured twice/);
  });

  it("accepts a non-URL issuer with a static jwks_file (only compared as a string)", () => {
    expect(new KeyStore([{ issuer: "urn:example:issuer", jwksFile: "/etc/jwks.json" }]).status()).toHaveLength(1);
  });

  it("never fetches a discovered plain-http non-loopback jwks_uri", async () => {
    const server = await h.server();
    const issuer = server.origin;
    server.routes.set(OIDC, json({ issuer, jwks_uri: "http://example.org/jwks" }));
    const fetch = recordingFetch();
    const store = h.store([{ issuer }], { fetch });
    await store.start();

    await expectDeny(store.getKey(issuer, { alg: "ES256", kid: "k1" }), "key_unavailable");
    expect(fetchedUrls(fetch).some((url) => url.includes("example.org"))).toBe(false);
    expect(store.status()[0]?.lastError).toMatch(/jwks_uri http:\/\/example.org\/jwks must use https/);
  });

  it("rejects an untrusted issuer before any traffic", async () => {
    const server = await h.server();
    serveDiscovery(server, server.origin, jwksOf(await makeKey("ES256", "k1")));
    const fetch = recordingFetch();
    const store = h.store([{ issuer: server.origin }], { fetch });

    await expectDeny(store.getKey("https://evil.example.org", { alg: "ES256", kid: "k1" }), "issuer_untrusted");
    await expectDeny(store.getKey(`${server.origin}/`, { alg: "ES256", kid: "k1" }), "issuer_untrusted");
    await expectDeny(store.refresh("https://evil.example.org"), "issuer_untrusted");
    expect(fetch).not.toHaveBeenCalled();
    expect(server.total()).toBe(0);
  });
});

describe("KeyStore fetch faults", () => {
  const jwksUriStore = async (handler: Parameters<Awaited<ReturnType<typeof h.server>>["routes"]["set"]>[1], options = {}) => {
    const server = await h.server();
    server.routes.set("/jwks", handler);
    const issuer = "https://issuer.example.org";
    const store = h.store([{ issuer, jwksUri: `${server.origin}/jwks` }], options);
    await store.start();
    return { store, issuer, server };
  };

  it.each([
    ["HTTP 500", json({ error: "boom" }, 500), {}, /HTTP 500/],
    ["a non-JSON body", json("<!doctype html>"), {}, /not valid JSON/],
    ["a JSON object without keys", json({ kid: "x" }), {}, /no "keys" array/],
    ["a slow response beyond the timeout", hang, { fetchTimeoutMs: 100 }, /timed out after 100 ms/],
    ["a body over the size limit", json({ keys: [], pad: "x".repeat(4096) }), { maxResponseBytes: 2048 }, /exceeds the 2048 byte limit/],
    ["an endless body", endless, {}, /body exceeds the 1048576 byte limit/],
  ])("has no keys after %s: key_unavailable", async (_name, handler, options, message) => {
    const { store, issuer } = await jwksUriStore(handler, options);
    await expectDeny(store.getKey(issuer, { alg: "ES256", kid: "k1" }), "key_unavailable");
    expect(store.status()[0]).toMatchObject({ keys: 0, fetchedAt: null, usable: false, lastError: expect.stringMatching(message) });
  });

  it("leaves out private, symmetric and encryption keys but keeps the rest", async () => {
    const good = await makeKey("ES256", "good");
    const secretEc = { ...good.jwk, kid: "private", d: "AAAA" };
    const { store, issuer } = await jwksUriStore(
      json({ keys: [good.jwk, secretEc, { kty: "oct", kid: "hmac", k: "c2VjcmV0" }, { ...good.jwk, kid: "enc", use: "enc" }, "junk"] }),
    );
    expect(store.status()[0]?.keys).toBe(1);
    await expect(store.getKey(issuer, { alg: "ES256", kid: "good" })).resolves.toMatchObject({ type: "public" });
    await expectDeny(store.getKey(issuer, { alg: "ES256", kid: "private" }), "key_not_found");
  });

  it("logs fetch outcomes with issuer and URL", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const server = await h.server();
    server.routes.set("/jwks", json(jwksOf(await makeKey("ES256", "k1"))));
    const issuer = "https://issuer.example.org";
    const store = h.store([{ issuer, jwksUri: `${server.origin}/jwks` }], { logger: pino(sink) });
    await store.start();
    server.routes.set("/jwks", json({}, 503));
    await store.refresh(issuer);

    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records).toEqual([
      expect.objectContaining({ msg: "jwks fetch ok", issuer, url: `${server.origin}/jwks`, keys: 1 }),
      expect.objectContaining({ msg: "jwks fetch failed", issuer, url: `${server.origin}/jwks`, err: expect.stringMatching(/HTTP 503/) }),
    ]);
  });
});
