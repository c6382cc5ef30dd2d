import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../src/config/config-error.js";
import { parseServiceConfig } from "../../../src/config/service-config.js";
import { KEY_STORE_DEFAULTS } from "../../../src/token/keys/index.js";

// keys.startup_wait_seconds and keys.check_wait_seconds: named defaults, seconds in the
// file, milliseconds for the key store, every bad value reported with its key.

const FILE = "/etc/scitokens-authz/config.yaml";
const parse = (keys?: Record<string, unknown>) => parseServiceConfig(FILE, { grpc: { listen: "127.0.0.1:9292" }, ...(keys ? { keys } : {}) });

function problemsOf(keys: Record<string, unknown>): readonly string[] {
  try {
    parse(keys);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error("expected a ConfigError");
}

describe("keys.startup_wait_seconds and keys.check_wait_seconds", () => {
  it.each([
    { name: "no keys section", keys: undefined },
    { name: "a keys section without them", keys: { fetch_timeout_seconds: 5 } },
  ])("default to 5 s and 0.15 s, the key store's own defaults: $name", ({ keys }) => {
    expect(parse(keys).keys).toMatchObject({ startupWaitMs: 5_000, checkWaitMs: 150 });
    expect(KEY_STORE_DEFAULTS).toMatchObject({ startupWaitMs: 5_000, checkWaitMs: 150 });
  });

  it("keeps the Check wait below Envoy's default ext_authz timeout of 200 ms", () => {
    expect(parse().keys.checkWaitMs).toBeLessThan(200);
  });

  it.each([
    { keys: { startup_wait_seconds: 0, check_wait_seconds: 0 }, startupWaitMs: 0, checkWaitMs: 0 },
    { keys: { startup_wait_seconds: 30, check_wait_seconds: 0.05 }, startupWaitMs: 30_000, checkWaitMs: 50 },
  ])("converts $keys to milliseconds (0: do not wait)", ({ keys, startupWaitMs, checkWaitMs }) => {
    expect(parse(keys).keys).toMatchObject({ startupWaitMs, checkWaitMs });
  });

  it("reports every bad value at once, naming the key", () => {
    const problems = problemsOf({ startup_wait_seconds: -1, check_wait_seconds: "150ms" });
    expect(problems).toEqual([
      expect.stringMatching(/^keys\.startup_wait_seconds: .*start-up wait.*not negative/),
      expect.stringMatching(/^keys\.check_wait_seconds: expected the longest wait of a Check .* in seconds/),
    ]);
  });
});
