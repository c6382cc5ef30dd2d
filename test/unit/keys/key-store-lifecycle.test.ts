import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { KEY_STORE_DEFAULTS } from "../../../src/token/keys/index.js";
import { expectDeny, frozenClock, recordingFetch, useHarness } from "./harness.js";
import { json, jwksOf, makeKey, serveDiscovery } from "./issuer-server.js";

const h = useHarness();
const MAX_STALE = KEY_STORE_DEFAULTS.maxStaleMs;
const COOLDOWN = KEY_STORE_DEFAULTS.unknownKidCooldownMs;
const K1 = { alg: "ES256", kid: "k1" } as const;

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "keys-cache-"));
  h.onCleanup(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe("KeyStore staleness", () => {
  it("keeps the last good keys while refreshes fail, until maxStale after their fetch", async () => {
    const server = await h.server();
    const issuer = server.origin;
    serveDiscovery(server, issuer, jwksOf(await makeKey("ES256", "k1")));
    const clock = frozenClock();
    const fetchedAt = clock.t;
    const store = h.store([{ issuer }], { now: clock.now });
    await store.start();

    server.routes.set("/jwks", json({ error: "down" }, 500));
    clock.advance(MAX_STALE);
    await store.refresh(issuer);
    await expect(store.getKey(issuer, K1)).resolves.toMatchObject({ type: "public" });
    expect(store.status()[0]).toMatchObject({ fetchedAt, usable: true, lastError: expect.stringMatching(/HTTP 500/) });

    clock.advance(1);
    await expectDeny(store.getKey(issuer, K1), "key_unavailable");
    expect(store.status()[0]).toMatchObject({ fetchedAt, usable: false });
  });

  it("recovers with a request-driven fetch once the issuer is back (cooldown-limited)", async () => {
    const server = await h.server();
    server.routes.set("/jwks", json({}, 503));
    const issuer = "https://issuer.example.org";
    const clock = frozenClock();
    const store = h.store([{ issuer, jwksUri: `${server.origin}/jwks` }], { now: clock.now });
    await store.start();
    await expectDeny(store.getKey(issuer, K1), "key_unavailable");
    expect(server.hits("/jwks")).toBe(2);

    server.routes.set("/jwks", json(jwksOf(await makeKey("ES256", "k1"))));
    await expectDeny(store.getKey(issuer, K1), "key_unavailable");
    expect(server.hits("/jwks")).toBe(2);
    clock.advance(COOLDOWN);
    await expect(store.getKey(issuer, K1)).resolves.toMatchObject({ type: "public" });
    expect(server.hits("/jwks")).toBe(3);
  });

  it("works without start(): the first request fetches", async () => {
    const server = await h.server();
    serveDiscovery(server, server.origin, jwksOf(await makeKey("ES256", "k1")));
    const store = h.store([{ issuer: server.origin }]);
    await expect(store.getKey(server.origin, K1)).resolves.toMatchObject({ type: "public" });
    expect(server.hits("/jwks")).toBe(1);
  });
});

describe("KeyStore disk cache", () => {
  it("writes every good fetch atomically to {sha256(issuer)}.json with mode 0600", async () => {
    const dir = await tempDir();
    const server = await h.server();
    const issuer = server.origin;
    const key = await makeKey("ES256", "k1");
    serveDiscovery(server, issuer, jwksOf(key));
    const clock = frozenClock();
    await h.store([{ issuer }], { now: clock.now, cacheDir: dir }).start();

    const name = `${createHash("sha256").update(issuer).digest("hex")}.json`;
    expect(await readdir(dir)).toEqual([name]);
    expect((await stat(join(dir, name))).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(join(dir, name), "utf8"))).toEqual({
      issuer,
      jwks_uri: `${server.origin}/jwks`,
      fetched_at: clock.t,
      jwks: jwksOf(key),
    });
  });

  it("lets a new KeyStore serve from disk while the issuer is down", async () => {
    const dir = await tempDir();
    const server = await h.server();
    const issuer = server.origin;
    serveDiscovery(server, issuer, jwksOf(await makeKey("ES256", "k1")));
    const clock = frozenClock();
    const fetchedAt = clock.t;
    const first = h.store([{ issuer }], { now: clock.now, cacheDir: dir });
    await first.start();
    first.close();

    server.routes.clear();
    clock.advance(MAX_STALE);
    const second = h.store([{ issuer }], { now: clock.now, cacheDir: dir });
    await second.start();
    await expect(second.getKey(issuer, K1)).resolves.toMatchObject({ type: "public" });
    await second.refresh(issuer); // joins the background refresh start() began
    expect(second.status()[0]).toMatchObject({ fetchedAt, usable: true, lastError: expect.stringMatching(/discovery failed/) });

    clock.advance(1);
    await expectDeny(second.getKey(issuer, K1), "key_unavailable");
  });

  it.each([
    ["older than maxStale", (t: number) => ({ fetched_at: t - MAX_STALE - 1 })],
    ["from the future", (t: number) => ({ fetched_at: t + 60_000 })],
    ["for another jwks_uri", () => ({ jwks_uri: "https://old.example.org/jwks" })],
    ["for another issuer", () => ({ issuer: "https://other.example.org" })],
  ])("ignores an entry %s", async (_name, change) => {
    const dir = await tempDir();
    const server = await h.server();
    server.routes.set("/jwks", json({}, 503));
    const issuer = "https://issuer.example.org";
    const jwksUri = `${server.origin}/jwks`;
    const clock = frozenClock();
    const entry = { issuer, jwks_uri: jwksUri, fetched_at: clock.t, jwks: jwksOf(await makeKey("ES256", "k1")), ...change(clock.t) };
    const file = join(dir, `${createHash("sha256").update(issuer).digest("hex")}.json`);
    await writeFile(file, JSON.stringify(entry));

    const store = h.store([{ issuer, jwksUri }], { now: clock.now, cacheDir: dir });
    await store.start();
    await expectDeny(store.getKey(issuer, K1), "key_unavailable");
  });

  it("ignores a corrupt entry and replaces it after a good fetch", async () => {
    const dir = await tempDir();
    const server = await h.server();
    server.routes.set("/jwks", json(jwksOf(await makeKey("ES256", "k1"))));
    const issuer = "https://issuer.example.org";
    const file = join(dir, `${createHash("sha256").update(issuer).digest("hex")}.json`);
    await writeFile(file, "{ not json");

    const store = h.store([{ issuer, jwksUri: `${server.origin}/jwks` }], { cacheDir: dir });
    await store.start();
    await expect(store.getKey(issuer, K1)).resolves.toMatchObject({ type: "public" });
    expect(JSON.parse(await readFile(file, "utf8"))).toMatchObject({ issuer });
  });
});

describe("KeyStore timers and close()", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("refreshes every refreshIntervalMs and close() stops the timer", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    const server = await h.server();
    server.routes.set("/jwks", json(jwksOf(await makeKey("ES256", "k1"))));
    const issuer = "https://issuer.example.org";
    const store = h.store([{ issuer, jwksUri: `${server.origin}/jwks` }], { refreshIntervalMs: 60_000 });
    await store.start();
    expect(vi.getTimerCount()).toBe(1);

    await vi.advanceTimersByTimeAsync(60_000);
    await store.refresh(issuer); // joins the refresh the timer started
    expect(server.hits("/jwks")).toBe(2);

    store.close();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    await store.refresh(issuer);
    expect(server.hits("/jwks")).toBe(2);
    await expect(store.getKey(issuer, K1)).resolves.toMatchObject({ type: "public" });
  });

  it("close() aborts a fetch in flight and start() still resolves", async () => {
    const server = await h.server();
    const arrived = new Promise<void>((resolve) => server.routes.set("/jwks", () => resolve()));
    const issuer = "https://issuer.example.org";
    const fetch = recordingFetch();
    const store = h.store([{ issuer, jwksUri: `${server.origin}/jwks` }], { fetch, fetchTimeoutMs: 60_000 });
    const started = store.start();
    await arrived; // the request is at the server, which never answers
    store.close();
    await started;
    expect(store.status()[0]?.lastError).toMatch(/aborted/);
    await expectDeny(store.getKey(issuer, K1), "key_unavailable");
    expect(fetch).toHaveBeenCalledTimes(1);
  });
});
