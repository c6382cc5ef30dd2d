import { describe, expect, it } from "vitest";
import { type ReadinessInput, assessReadiness, nextStaleAt } from "../../../src/observability/readiness.js";
import type { IssuerKeyStatus } from "../../../src/token/keys/index.js";

const NOW = Date.parse("2026-06-01T12:00:00Z");
const MAX_STALE_MS = 3_600_000;

function issuer(name: string, state: Partial<IssuerKeyStatus>): IssuerKeyStatus {
  return {
    issuer: `https://${name}.example.org`,
    source: "discovery",
    from: `https://${name}.example.org/jwks`,
    keys: 2,
    fetchedAt: NOW - 60_000,
    usable: true,
    lastError: null,
    fetching: false,
    ...state,
  };
}

const fresh = issuer("fresh", {});
const staleButUsable = issuer("held", { fetchedAt: NOW - 1_800_000, lastError: "HTTP 503" });
const neverFetched = issuer("never", { keys: 0, from: null, fetchedAt: null, usable: false, lastError: "connect ECONNREFUSED" });
const firstFetchRunning = issuer("first", { keys: 0, from: null, fetchedAt: null, usable: false, fetching: true });
const tooStale = issuer("old", { fetchedAt: NOW - 7_200_000, usable: false, lastError: "HTTP 500" });

function input(keys: IssuerKeyStatus[], over: Partial<ReadinessInput> = {}): ReadinessInput {
  return { revision: "0123456789ab", closing: false, keys, maxStaleMs: MAX_STALE_MS, nowMs: NOW, ...over };
}

describe("assessReadiness", () => {
  it.each([
    ["every issuer fresh", input([fresh]), "ready"],
    ["keys held past a failed fetch, within max_stale", input([fresh, staleButUsable]), "ready"],
    ["no trusted issuer at all", input([]), "ready"],
    ["an issuer never fetched", input([fresh, neverFetched]), "issuer_keys_unusable"],
    ["an issuer's first fetch still running", input([firstFetchRunning]), "issuer_keys_unusable"],
    ["an issuer's keys past max_stale", input([tooStale, fresh]), "issuer_keys_unusable"],
    ["no policy loaded yet", input([], { revision: null }), "starting"],
    ["shutting down", input([fresh], { closing: true }), "shutting_down"],
  ])("%s: %s", (_name, given, status) => {
    const readiness = assessReadiness(given);
    expect({ status: readiness.status, ready: readiness.ready }).toEqual({ status, ready: status === "ready" });
  });

  it.each([
    [fresh, "keys_usable", "2 keys fetched 60 s ago from https://fresh.example.org/jwks"],
    [staleButUsable, "keys_usable", "2 keys fetched 1800 s ago from https://held.example.org/jwks; the last fetch failed: HTTP 503"],
    [neverFetched, "no_keys", "no keys: the last fetch failed: connect ECONNREFUSED"],
    [firstFetchRunning, "no_keys", "no keys: the first fetch is running"],
    [tooStale, "keys_too_stale", "the keys held were fetched 7200 s ago, beyond keys.max_stale_seconds (3600 s); the last fetch failed: HTTP 500"],
  ])("gives each issuer its reason: %#", (status, reason, detail) => {
    const [entry] = assessReadiness(input([status])).issuers;
    expect(entry).toMatchObject({ issuer: status.issuer, ready: reason === "keys_usable", reason, detail, last_error: status.lastError });
    expect(entry?.fetched_at).toBe(status.fetchedAt === null ? null : new Date(status.fetchedAt).toISOString());
  });
});

describe("nextStaleAt", () => {
  it("is when the first usable keys pass max_stale; none when no keys are usable", () => {
    expect(nextStaleAt(input([fresh, staleButUsable, tooStale]))).toBe(staleButUsable.fetchedAt! + MAX_STALE_MS + 1);
    expect(nextStaleAt(input([neverFetched, tooStale]))).toBeNull();
  });
});
