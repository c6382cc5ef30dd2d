import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compactVerify } from "jose";
import { describe, expect, it } from "vitest";
import { writeCachedJwks } from "../../../src/token/keys/disk-cache.js";
import { KEY_STORE_DEFAULTS } from "../../../src/token/keys/index.js";
import { expectDeny, frozenClock, useHarness } from "./harness.js";
import { gated, json, jwksOf, makeKey, signToken } from "./issuer-server.js";

// Key fetches never hold a request or the start-up hostage (README "Keys"): bounded
// waits, with the fetch going on behind them, and the same single flight and cooldown.

const h = useHarness();
const ISSUER = "https://issuer.example.org";
const COOLDOWN = KEY_STORE_DEFAULTS.unknownKidCooldownMs;
/** Long enough that only a bug, never a slow machine, makes a test wait it out. */
const FOREVER_MS = 60_000;

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "keys-waits-"));
  h.onCleanup(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A loopback jwks_uri whose answers the test holds, and a store for it (not started). */
async function heldIssuer(jwks: unknown, options: { startupWaitMs?: number; checkWaitMs?: number; cacheDir?: string } = {}) {
  const server = await h.server();
  const gate = gated(json(jwks));
  server.routes.set("/jwks", gate.handler);
  const clock = frozenClock();
  const jwksUri = `${server.origin}/jwks`;
  const store = h.store([{ issuer: ISSUER, jwksUri }], { now: clock.now, fetchTimeoutMs: FOREVER_MS, ...options });
  return { server, gate, clock, store, jwksUri, fetches: () => server.hits("/jwks") };
}

/** Resolves once the store's fetch for ISSUER has ended (a poll on status(), no sleep). */
async function fetchEnded(store: { status(): Array<{ fetching: boolean }> }): Promise<void> {
  while (store.status()[0]?.fetching) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe("KeyStore.start() with a hanging issuer", () => {
  it("does not wait for an issuer whose keys come from the disk cache; the refresh goes on behind", async () => {
    const dir = await tempDir();
    const key = await makeKey("ES256", "k1");
    const { gate, clock, store, jwksUri } = await heldIssuer(jwksOf(key), { cacheDir: dir, startupWaitMs: FOREVER_MS });
    await writeCachedJwks(dir, { issuer: ISSUER, jwksUri, fetchedAt: clock.t, jwks: jwksOf(key) });

    await store.start(); // would take FOREVER_MS if it waited for the held fetch
    await gate.arrived();
    expect(store.status()[0]).toMatchObject({ keys: 1, usable: true, fetching: true });
    await expect(store.getKey(ISSUER, { alg: "ES256", kid: "k1" })).resolves.toMatchObject({ type: "public" });
  });

  it.each([
    { name: "0 (do not wait)", startupWaitMs: 0 },
    { name: "a short wait", startupWaitMs: 20 },
  ])("waits for an issuer without keys at most startupWaitMs: $name, then the fetch lands later", async ({ startupWaitMs }) => {
    const key = await makeKey("ES256", "k1");
    const { gate, store, fetches } = await heldIssuer(jwksOf(key), { startupWaitMs, checkWaitMs: 0 });

    await store.start();
    expect(store.status()[0]).toMatchObject({ keys: 0, usable: false, fetching: true, lastError: null });
    await expectDeny(store.getKey(ISSUER, { alg: "ES256", kid: "k1" }), "key_unavailable");

    gate.release();
    await fetchEnded(store);
    await expect(store.getKey(ISSUER, { alg: "ES256", kid: "k1" })).resolves.toMatchObject({ type: "public" });
    expect(fetches()).toBe(1); // the request joined the start-up fetch
  });
});

describe("KeyStore request waits (checkWaitMs)", () => {
  it("a request needing a fetch that outlasts the wait is key_unavailable; the fetch goes on and serves the next", async () => {
    const key = await makeKey("ES256", "k1");
    const { gate, store, fetches } = await heldIssuer(jwksOf(key), { startupWaitMs: 0, checkWaitMs: 10 });
    await store.start();

    const denied = await expectDeny(store.getKey(ISSUER, { alg: "ES256", kid: "k1" }), "key_unavailable");
    expect(denied.detail).toMatch(/still running/);
    expect(store.status()[0]?.fetching).toBe(true);

    gate.release();
    await fetchEnded(store);
    await expect(store.getKey(ISSUER, { alg: "ES256", kid: "k1" })).resolves.toMatchObject({ type: "public" });
    expect(fetches()).toBe(1);
  });

  it.each([
    { name: "a rotated-in kid is found", kid: "k2", outcome: "found" },
    { name: "a kid still unknown after the fetch is key_not_found", kid: "nobody", outcome: "key_not_found" },
  ])("a fetch that lands within the wait answers the request normally: $name", async ({ kid, outcome }) => {
    const [k1, k2] = [await makeKey("ES256", "k1"), await makeKey("ES256", "k2")];
    const server = await h.server();
    server.routes.set("/jwks", json(jwksOf(k1)));
    const store = h.store([{ issuer: ISSUER, jwksUri: `${server.origin}/jwks` }], { checkWaitMs: FOREVER_MS });
    await store.start();
    const gate = gated(json(jwksOf(k1, k2)));
    server.routes.set("/jwks", gate.handler);

    const pending = store.getKey(ISSUER, { alg: "ES256", kid }).then(
      () => "found",
      (err: { code?: string }) => err.code,
    );
    await gate.arrived();
    gate.release();
    expect(await pending).toBe(outcome);
    expect(server.hits("/jwks")).toBe(2);
  });

  it("concurrent requests share the one held fetch, and the cooldown holds after it", async () => {
    const key = await makeKey("ES256", "k1");
    const { server, gate, clock, store, fetches } = await heldIssuer(jwksOf(key), { checkWaitMs: FOREVER_MS });
    gate.release();
    await store.start();
    const held = gated(json(jwksOf(key)));
    server.routes.set("/jwks", held.handler);

    const outcomes = Array.from({ length: 50 }, (_, i) =>
      store.getKey(ISSUER, { alg: "ES256", kid: `unknown-${i}` }).then(
        () => "found",
        (err: { code?: string }) => err.code,
      ),
    );
    await held.arrived();
    held.release();
    expect(new Set(await Promise.all(outcomes))).toEqual(new Set(["key_not_found"]));
    expect(fetches()).toBe(2);

    clock.advance(COOLDOWN - 1);
    await expectDeny(store.getKey(ISSUER, { alg: "ES256", kid: "unknown-again" }), "key_not_found");
    expect(fetches()).toBe(2);
  });

  it("checkWaitMs 0 never waits, but the fetch still starts", async () => {
    const [k1, k2] = [await makeKey("ES256", "k1"), await makeKey("ES256", "k2")];
    const { server, gate, store, fetches } = await heldIssuer(jwksOf(k1), { checkWaitMs: 0 });
    gate.release();
    await store.start();
    server.routes.set("/jwks", json(jwksOf(k1, k2)));

    await expectDeny(store.getKey(ISSUER, { alg: "ES256", kid: "k2" }), "key_unavailable");
    await fetchEnded(store);
    await expect(store.getKey(ISSUER, { alg: "ES256", kid: "k2" })).resolves.toMatchObject({ type: "public" });
    expect(fetches()).toBe(2);
  });
});

describe("KeyStore.getKey with a rejected key (tokens without kid)", () => {
  /** A started store whose issuer publishes `key` without kid. */
  async function kidlessIssuer(checkWaitMs = FOREVER_MS) {
    const key = await makeKey("ES256", undefined);
    const server = await h.server();
    server.routes.set("/jwks", json(jwksOf(key)));
    const clock = frozenClock();
    const store = h.store([{ issuer: ISSUER, jwksUri: `${server.origin}/jwks` }], { now: clock.now, checkWaitMs });
    await store.start();
    return { key, server, clock, store, fetches: () => server.hits("/jwks") };
  }

  it("after a rotation, yields the new key with one refetch, and the token verifies with it", async () => {
    const { server, store, fetches } = await kidlessIssuer();
    const old = await store.getKey(ISSUER, { alg: "ES256" });
    const rotated = await makeKey("ES256", undefined);
    server.routes.set("/jwks", json(jwksOf(rotated)));

    const token = await signToken(rotated, ISSUER);
    await expect(compactVerify(token, old)).rejects.toMatchObject({ code: "ERR_JWS_SIGNATURE_VERIFICATION_FAILED" });
    const fresh = await store.getKey(ISSUER, { alg: "ES256" }, { rejected: old });
    expect(fresh).not.toBe(old);
    await expect(compactVerify(token, fresh)).resolves.toBeDefined();
    expect(fetches()).toBe(2);
  });

  it("yields the rejected key itself when the set did not change, fetching at most once per cooldown", async () => {
    const { clock, store, fetches } = await kidlessIssuer();
    const current = await store.getKey(ISSUER, { alg: "ES256" });

    const flood = () => Promise.all(Array.from({ length: 100 }, () => store.getKey(ISSUER, { alg: "ES256" }, { rejected: current })));
    for (const key of await flood()) expect(key).toBe(current);
    expect(fetches()).toBe(2);
    for (const key of await flood()) expect(key).toBe(current);
    expect(fetches()).toBe(2);

    clock.advance(COOLDOWN);
    for (const key of await flood()) expect(key).toBe(current); // the same keys again keep the same key object
    expect(fetches()).toBe(3);
  });

  it("yields a newer key without fetching when a refresh brought it meanwhile", async () => {
    const { server, store, fetches } = await kidlessIssuer();
    const old = await store.getKey(ISSUER, { alg: "ES256" });
    server.routes.set("/jwks", json(jwksOf(await makeKey("ES256", undefined))));
    await store.refresh(ISSUER);
    expect(fetches()).toBe(2);

    const fresh = await store.getKey(ISSUER, { alg: "ES256" }, { rejected: old });
    expect(fresh).not.toBe(old);
    expect(fetches()).toBe(2);
  });

  it("is key_unavailable when the refetch outlasts the wait", async () => {
    const { key, server, store } = await kidlessIssuer(10);
    const current = await store.getKey(ISSUER, { alg: "ES256" });
    const gate = gated(json(jwksOf(key)));
    server.routes.set("/jwks", gate.handler);

    await expectDeny(store.getKey(ISSUER, { alg: "ES256" }, { rejected: current }), "key_unavailable");
    gate.release();
  });
});
