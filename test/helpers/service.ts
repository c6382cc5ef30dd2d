import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { type CheckOptions, buildCheckRequest, sendCheck } from "../../src/cli/check.js";
import { BUILT_POLICY_FILE, parseServiceConfig } from "../../src/config/service-config.js";
import type { CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth.js";
import { createLogger } from "../../src/observability/logger.js";
import { type RunningService, startService } from "../../src/server/service.js";

export interface TestService {
  readonly service: RunningService;
  readonly target: string;
  readonly dir: string;
  check(request: Omit<CheckOptions, "target" | "host"> & { host?: string }): Promise<CheckResponse>;
  close(): Promise<void>;
}

/** The Check wait for key fetches in test services unless a test sets `keys.check_wait_seconds`. */
export const TEST_CHECK_WAIT_SECONDS = 2;

/** A settable clock, in milliseconds since the epoch, for the service's `now` seam. */
export interface TestClock {
  now(): number;
  set(ms: number): void;
  advance(ms: number): void;
}

export function testClock(startMs: number): TestClock {
  let current = startMs;
  return {
    now: () => current,
    set: (ms) => {
      current = ms;
    },
    advance: (ms) => {
      current += ms;
    },
  };
}

/**
 * Starts the real service in-process on 127.0.0.1:0 with `data` written as the
 * authorization data YAML and the policy compiled from policies/ (build/policy.wasm).
 * `clock`, when given, drives token time checks, the verified-token cache and key staleness.
 */
export async function startTestService(data: object, serviceOverrides: Record<string, unknown> = {}, clock?: TestClock): Promise<TestService> {
  const dir = await mkdtemp(join(tmpdir(), "scitokens-authz-test-"));
  const dataFile = join(dir, "data.yaml");
  await writeFile(dataFile, stringify(data));
  // A Check waits for a key fetch it needs up to keys.check_wait_seconds (0.15 s by
  // default). Tests that expect the fetch to land raise it, so that a loaded CI machine
  // does not turn a slow loopback fetch into key_unavailable; a test of the wait itself
  // sets its own value.
  const keys = { check_wait_seconds: TEST_CHECK_WAIT_SECONDS, ...(serviceOverrides["keys"] as object | undefined) };
  // policy.data is always the data written here; a test may name another policy.wasm.
  const policy = { wasm: BUILT_POLICY_FILE, ...(serviceOverrides["policy"] as object | undefined), data: dataFile };
  const config = parseServiceConfig(join(dir, "service.yaml"), {
    grpc: { listen: "127.0.0.1:0" },
    log: { level: "silent" },
    ...serviceOverrides,
    policy,
    keys,
  });
  let service: RunningService;
  try {
    service = await startService(config, { logger: createLogger("silent"), ...(clock ? { now: clock.now } : {}) });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const target = `127.0.0.1:${service.port}`;
  return {
    service,
    target,
    dir,
    check: (request) => sendCheck(target, buildCheckRequest({ host: "storage.example.org", ...request, target })),
    async close() {
      await service.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Reads a header the response sets (allowed: upstream headers; denied: client headers). */
export function responseHeader(response: CheckResponse, name: string): string | undefined {
  const headers = response.okResponse?.headers ?? response.deniedResponse?.headers ?? [];
  return headers.find((h) => h.header?.key === name)?.header?.value;
}

export function reasonOf(response: CheckResponse): unknown {
  return (response.dynamicMetadata as Record<string, unknown> | undefined)?.["reason"];
}
