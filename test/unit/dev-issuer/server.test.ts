import { calculateJwkThumbprint } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { isLoopbackHost } from "../../../src/dev-issuer/loopback.js";
import type { DevIssuer, DevIssuerOptions } from "../../../src/dev-issuer/server.js";
import { startDevIssuer } from "../../../src/dev-issuer/server.js";

const started: DevIssuer[] = [];

async function start(o: DevIssuerOptions): Promise<DevIssuer> {
  const issuer = await startDevIssuer(o);
  started.push(issuer);
  return issuer;
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((issuer) => issuer.close()));
});

describe("startDevIssuer discovery and keys", () => {
  it("serves the discovery document for its issuer URL", async () => {
    const issuer = await start({ port: 0 });
    expect(issuer.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const res = await fetch(`${issuer.issuer}/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual({
      issuer: issuer.issuer,
      jwks_uri: `${issuer.issuer}/jwks`,
      token_endpoint_auth_methods_supported: ["none"],
      id_token_signing_alg_values_supported: ["ES256"],
    });
  });

  it.each(["ES256", "RS256"] as const)("serves its public %s key, kid = RFC 7638 thumbprint", async (alg) => {
    const issuer = await start({ port: 0, alg });
    const res = await fetch(`${issuer.issuer}/jwks`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");

    const jwks = (await res.json()) as { keys: Array<Record<string, unknown>> };
    expect(jwks).toEqual({ keys: [issuer.publicJwk] });
    expect(issuer.publicJwk).toMatchObject({ kid: issuer.kid, alg, use: "sig", kty: alg === "ES256" ? "EC" : "RSA" });
    expect(issuer.publicJwk).not.toHaveProperty("d");
    expect(issuer.alg).toBe(alg);
    expect(issuer.kid).toBe(await calculateJwkThumbprint(issuer.publicJwk));
  });

  it("generates a new key on every start", async () => {
    const first = await start({ port: 0 });
    const second = await start({ port: 0 });
    expect(first.kid).not.toBe(second.kid);
  });

  it("puts the path into the issuer URL and the served documents", async () => {
    const issuer = await start({ port: 0, path: "/realms/dev" });
    expect(issuer.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/realms\/dev$/);

    const metadata = (await (await fetch(`${issuer.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(metadata).toMatchObject({ issuer: issuer.issuer, jwks_uri: `${issuer.issuer}/jwks` });
    expect((await fetch(`${issuer.issuer}/jwks`)).status).toBe(200);
  });

  it("ignores a query string", async () => {
    const issuer = await start({ port: 0 });
    expect((await fetch(`${issuer.issuer}/jwks?refresh=1`)).status).toBe(200);
  });

  it("answers HEAD without a body", async () => {
    const issuer = await start({ port: 0 });
    const res = await fetch(`${issuer.issuer}/jwks`, { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
  });
});

describe("startDevIssuer other requests", () => {
  it.each<{ name: string; path?: string; target: string }>([
    { name: "the root", target: "/" },
    { name: "an unknown path", target: "/favicon.ico" },
    { name: "jwks with a trailing slash", target: "/jwks/" },
    { name: "below the discovery document", target: "/.well-known/openid-configuration/x" },
    { name: "RFC 8414 metadata", target: "/.well-known/oauth-authorization-server" },
    { name: "a doubled leading slash", target: "//jwks" },
    { name: "a percent-encoded path", target: "/%6Awks" },
    { name: "jwks outside the issuer path", path: "/dev", target: "/jwks" },
    { name: "discovery outside the issuer path", path: "/dev", target: "/.well-known/openid-configuration" },
  ])("404 for $name", async ({ path, target }) => {
    const issuer = await start({ port: 0, ...(path === undefined ? {} : { path }) });
    const origin = new URL(issuer.issuer).origin;
    const res = await fetch(`${origin}${target}`);
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual({ error: "not_found" });
  });

  it.each(["POST", "PUT", "DELETE"])("405 for %s on a served document", async (method) => {
    const issuer = await start({ port: 0 });
    const res = await fetch(`${issuer.issuer}/jwks`, { method });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, HEAD");
  });
});

describe("startDevIssuer hosts", () => {
  it.each([
    { host: "localhost", url: /^http:\/\/localhost:\d+$/ },
    { host: "::1", url: /^http:\/\/\[::1\]:\d+$/ },
    { host: "[::1]", url: /^http:\/\/\[::1\]:\d+$/ },
  ])("listens on loopback host $host", async ({ host, url }) => {
    const issuer = await start({ host, port: 0 });
    expect(issuer.issuer).toMatch(url);
    expect((await fetch(`${issuer.issuer}/jwks`)).status).toBe(200);
  });

  it.each(["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.org", "127.0.0.1.example.org", "localhost.example.org", ""])(
    "refuses the non-loopback host %j",
    async (host) => {
      await expect(startDevIssuer({ host, port: 0 })).rejects.toThrow(/only listens on loopback hosts/);
    },
  );

  it.each([
    ["127.0.0.1", true],
    ["127.255.255.254", true],
    ["::1", true],
    ["[::1]", true],
    ["0:0:0:0:0:0:0:1", true],
    ["::ffff:127.0.0.1", true],
    ["LOCALHOST", true],
    ["128.0.0.1", false],
    ["0.0.0.0", false],
    ["::", false],
    ["::ffff:10.0.0.1", false],
    ["127.1", false],
  ])("isLoopbackHost(%j) is %s", (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });
});

describe("startDevIssuer ports and options", () => {
  it("rejects a port in use, naming host and port", async () => {
    const first = await start({ port: 0 });
    const { port } = new URL(first.issuer);

    await expect(startDevIssuer({ port: Number(port) })).rejects.toThrow(`127.0.0.1:${port}: the port is in use`);
    expect((await fetch(`${first.issuer}/jwks`)).status).toBe(200);
  });

  it.each<{ name: string; options: DevIssuerOptions; message: RegExp }>([
    { name: "a negative port", options: { port: -1 }, message: /port must be an integer from 0 to 65535/ },
    { name: "a port above 65535", options: { port: 65536 }, message: /port must be an integer/ },
    { name: "a fractional port", options: { port: 80.5 }, message: /port must be an integer/ },
    { name: "a path without a leading slash", options: { port: 0, path: "dev" }, message: /path must be/ },
    { name: "a path with a trailing slash", options: { port: 0, path: "/dev/" }, message: /path must be/ },
    { name: "a path of a slash", options: { port: 0, path: "/" }, message: /path must be/ },
    { name: "a path with a query", options: { port: 0, path: "/dev?x" }, message: /path must be/ },
    { name: "an HMAC algorithm", options: { port: 0, alg: "HS256" as "ES256" }, message: /ES256 or RS256/ },
  ])("refuses $name", async ({ options, message }) => {
    await expect(startDevIssuer(options)).rejects.toThrow(message);
  });

  it("stops serving on close, and close can be called again", async () => {
    const issuer = await startDevIssuer({ port: 0 });
    expect((await fetch(`${issuer.issuer}/jwks`)).status).toBe(200);

    await issuer.close();
    await expect(issuer.close()).resolves.toBeUndefined();
    await expect(fetch(`${issuer.issuer}/jwks`)).rejects.toThrow(TypeError);
  });
});
