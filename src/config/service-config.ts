import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { KEY_STORE_DEFAULTS } from "../token/keys/key-store.js";
import { ConfigError } from "./config-error.js";
import { readYamlFile, validate } from "./read-yaml.js";

/** The repository root (dist/config/ or src/config/ are two levels below it). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const DEMO_DATA_FILE = resolve(PACKAGE_ROOT, "policies", "demo.yaml");
export const BUILT_POLICY_FILE = resolve(PACKAGE_ROOT, "build", "policy.wasm");

const listen = z.string().transform((value, ctx) => {
  const parsed = parseListen(value);
  if (!parsed) {
    ctx.addIssue({ code: "custom", message: `expected "host:port" (port 0-65535; IPv6 as "[::1]:9292"), got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return parsed;
});

const seconds = (what: string) => z.number({ error: `expected ${what} in seconds` }).nonnegative(`expected ${what} in seconds, not negative`);
const positiveSeconds = (what: string) => z.number({ error: `expected ${what} in seconds` }).positive(`expected ${what} in seconds, above 0`);
const positiveInt = (what: string) => z.number({ error: `expected ${what}` }).int(`expected ${what} as a whole number`).positive(`expected ${what} above 0`);

/**
 * The largest CheckRequest accepted. Envoy bounds what it sends (request headers at most
 * 8 MiB with max_request_headers_kb, plus a body only with with_request_body), and a
 * larger message is refused by gRPC itself, before any decision: keep Envoy's limits
 * below this one.
 */
export const DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024;

const schema = z.strictObject({
  grpc: z.strictObject({
    listen,
    max_request_bytes: positiveInt("the largest CheckRequest in bytes").default(DEFAULT_MAX_REQUEST_BYTES),
  }),
  policy: z
    .strictObject({
      data: z.string().min(1).optional(),
      bundle: z.string().min(1).optional(),
      watch: z.boolean({ error: "expected true (reload when a policy file changes) or false (only on SIGHUP)" }).default(true),
    })
    .prefault({}),
  tokens: z
    .strictObject({
      max_bytes: positiveInt("a token size limit in bytes").default(16 * 1024),
      leeway_seconds: seconds("the clock-skew leeway").default(60),
      cache_entries: z.number().int().nonnegative("expected 0 (no cache) or more entries").default(10_000),
    })
    .prefault({}),
  // The key store's own defaults, in seconds: written once, in KEY_STORE_DEFAULTS.
  keys: z
    .strictObject({
      cache_dir: z.string().min(1).optional(),
      refresh_interval_seconds: positiveSeconds("the key refresh interval").default(KEY_STORE_DEFAULTS.refreshIntervalMs / 1000),
      max_stale_seconds: positiveSeconds("the maximum key staleness").default(KEY_STORE_DEFAULTS.maxStaleMs / 1000),
      unknown_kid_cooldown_seconds: positiveSeconds("the unknown-kid refetch cooldown").default(KEY_STORE_DEFAULTS.unknownKidCooldownMs / 1000),
      fetch_timeout_seconds: positiveSeconds("the key fetch timeout").default(KEY_STORE_DEFAULTS.fetchTimeoutMs / 1000),
      max_response_bytes: positiveInt("a response size limit in bytes").default(KEY_STORE_DEFAULTS.maxResponseBytes),
      startup_wait_seconds: seconds("the start-up wait for key fetches (0: do not wait)").default(KEY_STORE_DEFAULTS.startupWaitMs / 1000),
      check_wait_seconds: seconds("the longest wait of a Check for a key fetch (0: never wait)").default(KEY_STORE_DEFAULTS.checkWaitMs / 1000),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
      decisions: z
        .strictObject({ file: z.string({ error: "expected the path of the decision log file" }).min(1, "expected the path of the decision log file") })
        .optional(),
    })
    .prefault({}),
});

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export function parseListen(value: string): ListenAddress | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  if (!m) return null;
  const port = Number(m[2]);
  if (port > 65535) return null;
  return { host: m[1]!, port };
}

export interface ServiceConfig {
  readonly file: string;
  readonly listen: ListenAddress;
  /** Largest CheckRequest accepted, in bytes (grpc.max_request_bytes). */
  readonly maxRequestBytes: number;
  /** Absolute path of the authorization data YAML. */
  readonly dataFile: string;
  /** Absolute path of the compiled policy (policy.wasm). */
  readonly bundleFile: string;
  /** Reload when the data or the compiled policy changes on disk (`policy.watch`); SIGHUP reloads either way. */
  readonly watchPolicy: boolean;
  readonly tokens: { readonly maxBytes: number; readonly leewaySeconds: number; readonly cacheEntries: number };
  readonly keys: {
    readonly cacheDir: string | null;
    readonly refreshIntervalMs: number;
    readonly maxStaleMs: number;
    readonly unknownKidCooldownMs: number;
    readonly fetchTimeoutMs: number;
    readonly maxResponseBytes: number;
    /** Longest wait of start-up for issuers without usable keys (`keys.startup_wait_seconds`). */
    readonly startupWaitMs: number;
    /** Longest wait of a Check for a key fetch it needs (`keys.check_wait_seconds`). */
    readonly checkWaitMs: number;
  };
  readonly logLevel: string;
  /** Absolute path of the decision log (`log.decisions.file`); absent: no decision log. */
  readonly decisionLogFile?: string;
}

/** Validates a service config (parsed YAML) from `file`; relative paths resolve against its folder. */
export function parseServiceConfig(file: string, raw: unknown): ServiceConfig {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(file, ["(top level): expected a mapping with at least grpc.listen"]);
  }
  const c = validate(file, schema, raw);
  const base = dirname(file);
  return Object.freeze({
    file,
    listen: c.grpc.listen,
    maxRequestBytes: c.grpc.max_request_bytes,
    dataFile: c.policy.data !== undefined ? resolve(base, c.policy.data) : DEMO_DATA_FILE,
    bundleFile: c.policy.bundle !== undefined ? resolve(base, c.policy.bundle) : BUILT_POLICY_FILE,
    watchPolicy: c.policy.watch,
    tokens: { maxBytes: c.tokens.max_bytes, leewaySeconds: c.tokens.leeway_seconds, cacheEntries: c.tokens.cache_entries },
    keys: {
      cacheDir: c.keys.cache_dir !== undefined ? resolve(base, c.keys.cache_dir) : null,
      refreshIntervalMs: c.keys.refresh_interval_seconds * 1000,
      maxStaleMs: c.keys.max_stale_seconds * 1000,
      unknownKidCooldownMs: c.keys.unknown_kid_cooldown_seconds * 1000,
      fetchTimeoutMs: c.keys.fetch_timeout_seconds * 1000,
      maxResponseBytes: c.keys.max_response_bytes,
      startupWaitMs: c.keys.startup_wait_seconds * 1000,
      checkWaitMs: c.keys.check_wait_seconds * 1000,
    },
    logLevel: c.log.level,
    ...(c.log.decisions !== undefined ? { decisionLogFile: resolve(base, c.log.decisions.file) } : {}),
  });
}

export async function loadServiceConfig(file: string): Promise<ServiceConfig> {
  const absolute = resolve(file);
  return parseServiceConfig(absolute, await readYamlFile(absolute));
}
