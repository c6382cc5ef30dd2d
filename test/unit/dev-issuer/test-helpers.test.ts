import { calculateJwkThumbprint, createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { jwksOf, makeKey } from "../../helpers/keys.js";
import type { OidcServer, OidcServerOptions } from "../../helpers/oidc-server.js";
import { startOidcServer } from "../../helpers/oidc-server.js";
import { TEST_AUDIENCE, mint } from "../../helpers/tokens.js";

const started: OidcServer[] = [];

async function start(o: OidcServerOptions): Promise<OidcServer> {
  const server = await startOidcServer(o);
  started.push(server);
  return server;
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((server) => server.close()));
});

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

describe("makeKey", () => {
  it.each(["ES256", "RS256"] as const)("makes a %s key whose kid defaults to its thumbprint", async (alg) => {
    const key = await makeKey(alg);
    expect(key.alg).toBe(alg);
    expect(key.kid).toBe(await calculateJwkThumbprint(key.publicJwk));
    expect(key.publicJwk).toMatchObject({ kid: key.kid, alg, use: "sig" });
    expect(key.publicJwk).not.toHaveProperty("d");
  });

  it("uses the kid it is given", async () => {
    const key = await makeKey("ES256", "key-1");
    expect(key.kid).toBe("key-1");
    expect(jwksOf(key)).toEqual({ keys: [expect.objectContaining({ kid: "key-1" })] });
  });
});

describe("startOidcServer", () => {
  it("serves discovery and JWKS for its issuer and records every request", async () => {
    const key = await makeKey("ES256");
    const server = await start({ keys: [key], path: "/realms/igwn" });
    expect(server.issuer).toBe(`${server.url}/realms/igwn`);
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(server.requests).toEqual([]);

    expect(await getJson(`${server.issuer}/.well-known/openid-configuration`)).toEqual({
      status: 200,
      body: {
        issuer: server.issuer,
        jwks_uri: server.jwksUri,
        token_endpoint_auth_methods_supported: ["none"],
        id_token_signing_alg_values_supported: ["ES256"],
      },
    });
    expect(await getJson(server.jwksUri)).toEqual({ status: 200, body: jwksOf(key) });
    expect((await fetch(`${server.url}/.well-known/oauth-authorization-server/realms/igwn`)).status).toBe(404);

    expect(server.requests).toEqual([
      "/realms/igwn/.well-known/openid-configuration",
      "/realms/igwn/jwks",
      "/.well-known/oauth-authorization-server/realms/igwn",
    ]);
  });

  it("serves RFC 8414 metadata when asked, and a different metadata issuer", async () => {
    const server = await start({
      keys: [await makeKey("RS256")],
      path: "/x",
      discovery: ["oauth-authorization-server"],
      metadataIssuer: "https://elsewhere.example",
    });
    expect(await getJson(`${server.url}/.well-known/oauth-authorization-server/x`)).toMatchObject({
      status: 200,
      body: { issuer: "https://elsewhere.example", jwks_uri: server.jwksUri },
    });
    expect((await fetch(`${server.issuer}/.well-known/openid-configuration`)).status).toBe(404);
  });

  it("changes its key set at runtime, and can publish keys without kid", async () => {
    const first = await makeKey("ES256");
    const second = await makeKey("RS256");
    const server = await start({ keys: [first] });

    server.setKeys([second, { ...first, kid: undefined }]);
    const body = (await getJson(server.jwksUri)).body as { keys: Array<Record<string, unknown>> };
    expect(body.keys).toHaveLength(2);
    expect(body.keys[0]).toEqual(second.publicJwk);
    expect(body.keys[1]).not.toHaveProperty("kid");

    server.setKeys({ keys: [] });
    expect(await getJson(server.jwksUri)).toEqual({ status: 200, body: { keys: [] } });
  });

  it("answers with a canned response until told otherwise", async () => {
    const server = await start({ keys: [await makeKey("ES256")] });
    server.respond("jwks", { status: 503, body: "down" });
    const res = await fetch(server.jwksUri);
    expect(res.status).toBe(503);
    expect(await res.text()).toBe("down");

    server.respond("jwks", undefined);
    expect((await fetch(server.jwksUri)).status).toBe(200);
  });

  it("can hang a request, which close cuts", async () => {
    const server = await start({ keys: [await makeKey("ES256")] });
    server.respond("openid-configuration", { hang: true });
    const pending = fetch(`${server.issuer}/.well-known/openid-configuration`);
    await vi.waitFor(() => expect(server.requests).toHaveLength(1));

    await server.close();
    await expect(pending).rejects.toThrow(TypeError);
  });
});

describe("mint", () => {
  it("mints a SciTokens 2 token for the test audience that verifies against the server's JWKS", async () => {
    const key = await makeKey("ES256");
    const server = await start({ keys: [key] });
    const token = await mint(key, server.issuer);

    const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(server.jwksUri)), {
      issuer: server.issuer,
      audience: TEST_AUDIENCE,
    });
    expect(protectedHeader).toEqual({ alg: "ES256", kid: key.kid, typ: "JWT" });
    expect(payload).toMatchObject({ ver: "scitoken:2.0", scope: "read:/", aud: TEST_AUDIENCE });
    expect(server.requests).toEqual(["/jwks"]);
  });

  it("takes overrides, including leaving out kid and aud", async () => {
    const key = await makeKey("RS256", "rsa-1");
    const token = await mint(key, "https://issuer.example", {
      kid: undefined,
      audience: undefined,
      scopes: ["storage.read:/"],
      profile: "wlcg1",
    });
    expect(decodeProtectedHeader(token)).toEqual({ alg: "RS256", typ: "JWT" });
    const { payload } = await jwtVerify(token, key.publicKey);
    expect(payload).toMatchObject({ iss: "https://issuer.example", "wlcg.ver": "1.0", scope: "storage.read:/" });
    expect(payload).not.toHaveProperty("aud");
  });
});
