import { randomUUID } from "node:crypto";
import { jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import { expectDeny, frozenClock, useHarness } from "./harness.js";
import { type TestKey, json, jwksOf, makeKey, signToken } from "./issuer-server.js";

const h = useHarness();
const ISSUER = "https://issuer.example.org";
const COOLDOWN = 30_000;

/** A started store on a loopback jwks_uri serving `keys`, with a frozen clock. */
async function storeServing(...keys: TestKey[]) {
  const server = await h.server();
  server.routes.set("/jwks", json(jwksOf(...keys)));
  const clock = frozenClock();
  const store = h.store([{ issuer: ISSUER, jwksUri: `${server.origin}/jwks` }], { now: clock.now });
  await store.start();
  return { server, clock, store, fetches: () => server.hits("/jwks") };
}

describe("KeyStore unknown kid", () => {
  it("refetches once per cooldown, whatever the outcome, then denies key_not_found", async () => {
    const { clock, store, fetches } = await storeServing(await makeKey("ES256", "k1"));
    expect(fetches()).toBe(1);

    await expectDeny(store.getKey(ISSUER, { alg: "ES256", kid: "unknown" }), "key_not_found");
    expect(fetches()).toBe(2);
    clock.advance(COOLDOWN - 1);
    await expectDeny(store.getKey(ISSUER, { alg: "ES256", kid: "unknown" }), "key_not_found");
    await expectDeny(store.getKey(ISSUER, { alg: "ES256", kid: "other" }), "key_not_found");
    expect(fetches()).toBe(2);
    clock.advance(1);
    await expectDeny(store.getKey(ISSUER, { alg: "ES256", kid: "unknown" }), "key_not_found");
    expect(fetches()).toBe(3);
  });

  it("counts a failed refetch against the cooldown", async () => {
    const { server, clock, store, fetches } = await storeServing(await makeKey("ES256", "k1"));
    server.routes.set("/jwks", json({ error: "down" }, 503));
    await expectDeny(store.getKey(ISSUER, { alg: "ES256", kid: "unknown" }), "key_not_found");
    clock.advance(COOLDOWN / 2);
    await expectDeny(store.getKey(ISSUER, { alg: "ES256", kid: "unknown" }), "key_not_found");
    expect(fetches()).toBe(2);
    await expect(store.getKey(ISSUER, { alg: "ES256", kid: "k1" })).resolves.toMatchObject({ type: "public" });
  });

  it("finds a rotated-in key with the refetch its first token causes", async () => {
    const [oldKey, newKey] = [await makeKey("ES256", "2024"), await makeKey("ES256", "2025")];
    const { server, store, fetches } = await storeServing(oldKey);
    server.routes.set("/jwks", json(jwksOf(oldKey, newKey)));

    const token = await signToken(newKey, ISSUER);
    const { protectedHeader } = await jwtVerify(token, (header) => store.getKey(ISSUER, header));
    expect(protectedHeader.kid).toBe("2025");
    expect(fetches()).toBe(2);
  });

  it("surfaces key_not_found through jose's jwtVerify unchanged", async () => {
    const { store } = await storeServing(await makeKey("ES256", "k1"));
    const token = await signToken(await makeKey("ES256", "stranger"), ISSUER);
    await expectDeny(
      jwtVerify(token, (header) => store.getKey(ISSUER, header)),
      "key_not_found",
    );
  });

  it("does not amplify a flood of 1000 random kids into issuer traffic", async () => {
    const { clock, store, fetches } = await storeServing(await makeKey("ES256", "k1"));
    const flood = () =>
      Promise.all(
        Array.from({ length: 1000 }, () =>
          store.getKey(ISSUER, { alg: "ES256", kid: randomUUID() }).then(
            () => "found",
            (err: { code?: string }) => err.code,
          ),
        ),
      );

    const concurrent = await flood();
    expect(new Set(concurrent)).toEqual(new Set(["key_not_found"]));
    expect(fetches()).toBe(2);
    clock.advance(COOLDOWN - 1);
    const later = await flood();
    expect(new Set(later)).toEqual(new Set(["key_not_found"]));
    expect(fetches()).toBe(2);
    await expect(store.getKey(ISSUER, { alg: "ES256", kid: "k1" })).resolves.toMatchObject({ type: "public" });
  });

  it("shares one in-flight fetch between concurrent refreshes and requests", async () => {
    const { store, fetches } = await storeServing(await makeKey("ES256", "k1"));
    await Promise.all([store.refresh(ISSUER), store.refresh(ISSUER), store.getKey(ISSUER, { alg: "ES256", kid: "unknown" }).catch(() => undefined)]);
    expect(fetches()).toBe(2);
  });

  it("denies a known kid whose key does not suit the alg, without refetching", async () => {
    const { store, fetches } = await storeServing(await makeKey("RS256", "rsa"));
    await expectDeny(store.getKey(ISSUER, { alg: "ES256", kid: "rsa" }), "key_not_found");
    expect(fetches()).toBe(1);
  });

  it("denies a kid that is not a string", async () => {
    const { store } = await storeServing(await makeKey("ES256", "k1"));
    await expectDeny(store.getKey(ISSUER, { alg: "ES256", kid: 1 as unknown as string }), "key_not_found");
  });

  it.each(["HS256", "none", "RSA-OAEP", undefined])("denies alg %s with alg_not_allowed", async (alg) => {
    const { store } = await storeServing(await makeKey("ES256", "k1"));
    await expectDeny(store.getKey(ISSUER, { alg, kid: "k1" } as { alg: string; kid: string }), "alg_not_allowed");
  });
});

describe("KeyStore missing kid", () => {
  it("accepts a token without kid when exactly one key suits its alg", async () => {
    const only = await makeKey("ES256", undefined);
    const { store, fetches } = await storeServing(only);
    const token = await signToken(only, ISSUER);
    const { payload } = await jwtVerify(token, (header) => store.getKey(ISSUER, header));
    expect(payload.iss).toBe(ISSUER);
    expect(fetches()).toBe(1);
  });

  it("accepts a token without kid when the other keys are for other algs", async () => {
    const { store } = await storeServing(await makeKey("RS256", "rsa"), await makeKey("ES256", "ec"));
    await expect(store.getKey(ISSUER, { alg: "ES256" })).resolves.toMatchObject({
      algorithm: expect.objectContaining({ name: "ECDSA" }),
    });
  });

  it("denies a token without kid when two keys suit its alg, without refetching", async () => {
    const { store, fetches } = await storeServing(await makeKey("ES256", "a"), await makeKey("ES256", "b"));
    const error = await expectDeny(store.getKey(ISSUER, { alg: "ES256" }), "key_not_found");
    expect(error.detail).toMatch(/several keys/);
    expect(fetches()).toBe(1);
  });

  it("denies a token without kid when no key suits its alg", async () => {
    const { store } = await storeServing(await makeKey("RS256", "rsa"));
    await expectDeny(store.getKey(ISSUER, { alg: "ES256" }), "key_not_found");
  });
});
