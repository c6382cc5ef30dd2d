import { afterEach, expect, vi } from "vitest";
import { DenyError, type DenyReason } from "../../../src/reasons/index.js";
import { type IssuerKeySource, KeyStore, type KeyStoreOptions } from "../../../src/token/keys/index.js";
import { type IssuerServer, startIssuerServer } from "./issuer-server.js";

/**
 * Per-test resources that are always released: servers closed, stores closed, in
 * reverse order of creation, so that the test process can exit.
 */
export function useHarness() {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  return {
    async server(): Promise<IssuerServer> {
      const server = await startIssuerServer();
      cleanups.push(() => server.close());
      return server;
    },
    store(sources: readonly IssuerKeySource[], options: KeyStoreOptions = {}): KeyStore {
      const store = new KeyStore(sources, options);
      cleanups.push(() => store.close());
      return store;
    },
    onCleanup(cleanup: () => unknown): void {
      cleanups.push(cleanup);
    },
  };
}

/** A clock that moves only when the test says so. */
export function frozenClock(start = Date.UTC(2025, 0, 1)) {
  const clock = {
    t: start,
    now: () => clock.t,
    advance(ms: number) {
      clock.t += ms;
    },
  };
  return clock;
}

/** A fetch that goes to the network and records every URL asked for. */
export function recordingFetch() {
  return vi.fn<typeof globalThis.fetch>((input, init) => globalThis.fetch(input, init));
}

export function fetchedUrls(spy: ReturnType<typeof recordingFetch>): string[] {
  return spy.mock.calls.map(([input]) => String(input));
}

/** Assert that `promise` rejects with a `DenyError` carrying `code`. */
export async function expectDeny(promise: Promise<unknown>, code: DenyReason): Promise<DenyError> {
  const error: unknown = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(DenyError);
  expect((error as DenyError).code).toBe(code);
  return error as DenyError;
}
