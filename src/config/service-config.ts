import { availableParallelism } from "node:os";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { BUNDLE_SIGNING_ALGORITHMS, type BundleSigningConfig } from "../bundle/signatures.js";
import { KEY_STORE_DEFAULTS } from "../token/keys/key-store.js";
import { isFetchableUrl } from "./authz-data.js";
import { ConfigError } from "./config-error.js";
import { type Environment, applyEnvironment } from "./environment.js";
import { readYamlFile, validate } from "./read-yaml.js";

/** The repository root (dist/config/ or src/config/ are two levels below it). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const DEMO_DATA_FILE = resolve(PACKAGE_ROOT, "policies", "demo.yaml");
export const BUILT_POLICY_FILE = resolve(PACKAGE_ROOT, "build", "policy.wasm");
/** The Envoy ext_authz API and gRPC health as a FileDescriptorSet (setup's `buf build`), for gRPC reflection. */
export const BUILT_DESCRIPTOR_SET = resolve(PACKAGE_ROOT, "build", "grpc-descriptors.binpb");

/** What `grpc.listen` (and `serve --listen`) accepts, for error messages. */
export const LISTEN_FORMS = `"host:port" (port 0-65535; IPv6 as "[::1]:9292") or "unix:/path/to.sock"`;

// The format only: a relative socket path resolves against the config's folder afterwards.
const listen = z
  .string({ error: `expected ${LISTEN_FORMS}` })
  .refine((value) => parseListen(value, "/") !== null, { error: (issue) => `expected ${LISTEN_FORMS}, got ${JSON.stringify(issue.input)}` });

const pemFile = (what: string) => z.string({ error: `expected the path of ${what}` }).min(1, `expected the path of ${what}`);

const tlsSchema = z.strictObject(
  {
    cert_file: pemFile("the server's certificate chain (PEM, the server certificate first)"),
    key_file: pemFile("the server certificate's private key (PEM, unencrypted)"),
    client_ca_file: pemFile("the CA certificates that sign client certificates (PEM): mutual TLS").optional(),
  },
  { error: (issue) => (issue.code === "invalid_type" ? "expected a mapping {cert_file, key_file, client_ca_file (optional: mutual TLS)}" : undefined) },
);

// The admin HTTP listener takes host:port only, whatever grpc.listen accepts.
const httpListen = z.string({ error: 'expected "host:port" of the admin HTTP listener' }).transform((value, ctx): TcpListenAddress => {
  const parsed = parseListen(value);
  if (parsed === null || "socketPath" in parsed) {
    ctx.addIssue({
      code: "custom",
      message: `expected "host:port" of the admin HTTP listener (port 0-65535; IPv6 as "[::1]:9090"), got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return parsed;
});

const seconds = (what: string) => z.number({ error: `expected ${what} in seconds` }).nonnegative(`expected ${what} in seconds, not negative`);
const positiveSeconds = (what: string) => z.number({ error: `expected ${what} in seconds` }).positive(`expected ${what} in seconds, above 0`);
const positiveInt = (what: string) =>
  z
    .number({ error: `expected ${what}` })
    .int(`expected ${what} as a whole number`)
    .positive(`expected ${what} above 0`);

/**
 * The largest CheckRequest accepted. Envoy bounds what it sends (request headers at most
 * 8 MiB with max_request_headers_kb, plus a body only with with_request_body), and a
 * larger message is refused by gRPC itself, before any decision: keep Envoy's limits
 * below this one.
 */
export const DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024;

/**
 * The largest request head (request line and headers) the HTTP authorization endpoint
 * reads (`authz_http.max_header_bytes`). Above what nginx (4 × 8 KiB header buffers) and
 * Envoy (60 KiB of request headers) pass on by default, so that a client's headers are
 * refused by the proxy in front, never by the service (nginx would turn that into a 500).
 */
export const DEFAULT_AUTHZ_HTTP_MAX_HEADER_BYTES = 64 * 1024;

/**
 * How long a gRPC connection may live before the service asks the client to open another
 * (`grpc.max_connection_age_seconds`; gRPC's MAX_CONNECTION_AGE, ±10% jitter): Envoy keeps
 * its HTTP/2 connections open for good, so without an age the connections made while one
 * worker was alone (start-up, a restart) stay with it. Two minutes spreads them again
 * soon, at the cost of one new connection per client connection every two minutes.
 */
export const DEFAULT_MAX_CONNECTION_AGE_SECONDS = 120;

/**
 * How long a connection past its age may finish the calls it carries before it is cut
 * (`grpc.max_connection_age_grace_seconds`): far longer than any Check (Envoy gives one
 * 200 ms by default); only long streams such as a health Watch meet it.
 */
export const DEFAULT_MAX_CONNECTION_AGE_GRACE_SECONDS = 30;

/**
 * `memory.max_semi_space_mb` by default: V8's young generation (two semi-spaces) at most
 * 16 MB. Left to itself, V8 grows it to 64 MB and more under load, and the old generation
 * with it: measured in docs/benchmarks.md ("Memory").
 */
export const DEFAULT_MAX_SEMI_SPACE_MB = 8;
/** The largest `memory.max_semi_space_mb`: far beyond any useful young generation. */
export const MAX_SEMI_SPACE_MB = 1024;
/** The largest `memory.heap_growing_percent`. */
export const MAX_HEAP_GROWING_PERCENT = 1000;

/** The most worker processes `workers` accepts: far beyond any machine this runs on, below a typo's 10000. */
export const MAX_WORKERS = 256;

/** Largest OPA bundle, decompressed (`policy.bundle.max_bytes`). */
export const DEFAULT_BUNDLE_MAX_BYTES = 64 * 1024 * 1024;

const bundleSchema = z.strictObject(
  {
    file: z.string().min(1, "expected the path of an OPA bundle (.tar.gz)").optional(),
    url: z
      .string()
      .refine(isFetchableUrl, "expected an https:// URL of the bundle (http:// only for loopback hosts: 127.0.0.0/8, [::1], localhost)")
      .optional(),
    polling: z
      .strictObject({
        min_delay_seconds: positiveSeconds("the shortest delay between bundle downloads").default(60),
        max_delay_seconds: positiveSeconds("the longest delay between bundle downloads").default(120),
      })
      .optional(),
    timeout_seconds: positiveSeconds("the bundle download timeout").optional(),
    persist_dir: z.string().min(1, "expected the folder where the last good bundle is kept").optional(),
    max_bytes: positiveInt("the largest bundle in bytes, decompressed").default(DEFAULT_BUNDLE_MAX_BYTES),
    signing: z
      .strictObject({
        keys: z
          .record(
            z.string().min(1, "expected a key id"),
            z.strictObject({
              algorithm: z.enum(BUNDLE_SIGNING_ALGORITHMS, { error: `expected one of ${BUNDLE_SIGNING_ALGORITHMS.join(", ")}` }),
              key_file: z.string({ error: "expected the path of a PEM public key" }).min(1, "expected the path of a PEM public key"),
            }),
            { error: "expected a mapping of key ids to {algorithm, key_file}" },
          )
          .refine((keys) => Object.keys(keys).length > 0, "expected at least one key"),
        keyid: z.string().min(1, "expected the id of one of the keys").optional(),
        scope: z.string().default(""),
      })
      .optional(),
  },
  {
    error: (issue) =>
      typeof issue.input === "string"
        ? "expected a mapping {file: …} or {url: …}, got a path: the compiled policy alone is now set with policy.wasm"
        : "expected a mapping {file: …} or {url: …}",
  },
);

export const serviceConfigSchema = z.strictObject({
  grpc: z.strictObject({
    listen,
    max_request_bytes: positiveInt("the largest CheckRequest in bytes").default(DEFAULT_MAX_REQUEST_BYTES),
    max_connection_age_seconds: seconds("the longest life of a client connection (0 for no limit)").default(DEFAULT_MAX_CONNECTION_AGE_SECONDS),
    max_connection_age_grace_seconds: seconds("the time a connection past its age has to finish its calls").default(DEFAULT_MAX_CONNECTION_AGE_GRACE_SECONDS),
    tls: tlsSchema.optional(),
  }),
  // Worker processes serving Checks (absent: one per core the service may use; 1: a single process).
  workers: z
    .number({ error: `expected the number of worker processes, 1 to ${MAX_WORKERS}` })
    .int(`expected the number of worker processes as a whole number, 1 to ${MAX_WORKERS}`)
    .min(1, `expected the number of worker processes, 1 to ${MAX_WORKERS} (1: a single process)`)
    .max(MAX_WORKERS, `expected the number of worker processes, 1 to ${MAX_WORKERS}`)
    .optional(),
  http: z
    .strictObject(
      { listen: httpListen },
      { error: (issue) => (issue.code === "invalid_type" ? 'expected a mapping like { listen: "127.0.0.1:9090" }' : undefined) },
    )
    .optional(),
  // The HTTP authorization endpoint for nginx auth_request and Envoy's http_service (off when absent).
  authz_http: z
    .strictObject(
      {
        listen,
        max_header_bytes: positiveInt("the largest request head in bytes").default(DEFAULT_AUTHZ_HTTP_MAX_HEADER_BYTES),
      },
      { error: (issue) => (issue.code === "invalid_type" ? "expected a mapping {listen, max_header_bytes (optional)}" : undefined) },
    )
    .optional(),
  policy: z
    .strictObject({
      data: z.string().min(1).optional(),
      wasm: z.string().min(1).optional(),
      bundle: bundleSchema.optional(),
      watch: z.boolean({ error: "expected true (reload when a policy file changes) or false (only on SIGHUP)" }).default(true),
    })
    .prefault({}),
  tokens: z
    .strictObject({
      max_bytes: positiveInt("a token size limit in bytes").default(16 * 1024),
      leeway_seconds: seconds("the clock-skew leeway").default(60),
      cache_entries: z.number().int().nonnegative("expected 0 (no cache) or more entries").default(10_000),
      negative_cache_entries: z.number().int().nonnegative("expected 0 (no cache) or more entries").default(10_000),
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
  // V8's heap, given to node as flags when serve starts (src/cli/heap-flags.ts); null: V8's own sizing.
  memory: z
    .strictObject({
      max_semi_space_mb: z
        .number({ error: `expected V8's semi-space size in MB, 1 to ${MAX_SEMI_SPACE_MB}, or null (V8's own)` })
        .int(`expected V8's semi-space size in MB as a whole number, 1 to ${MAX_SEMI_SPACE_MB}`)
        .min(1, `expected V8's semi-space size in MB, 1 to ${MAX_SEMI_SPACE_MB}, or null (V8's own)`)
        .max(MAX_SEMI_SPACE_MB, `expected V8's semi-space size in MB, 1 to ${MAX_SEMI_SPACE_MB}`)
        .nullable()
        .default(DEFAULT_MAX_SEMI_SPACE_MB),
      heap_growing_percent: z
        .number({ error: `expected how far the old generation grows past its live size, in %, 1 to ${MAX_HEAP_GROWING_PERCENT}, or null (V8's own)` })
        .int(`expected the old generation's growth in % as a whole number, 1 to ${MAX_HEAP_GROWING_PERCENT}`)
        .min(1, `expected the old generation's growth in %, 1 to ${MAX_HEAP_GROWING_PERCENT}, or null (V8's own)`)
        .max(MAX_HEAP_GROWING_PERCENT, `expected the old generation's growth in %, 1 to ${MAX_HEAP_GROWING_PERCENT}`)
        .nullable()
        .default(null),
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

/** Where the gRPC listener binds (`grpc.listen`): a TCP host and port, or a Unix domain socket. */
export type ListenAddress = TcpListenAddress | UnixListenAddress;

export interface TcpListenAddress {
  readonly host: string;
  readonly port: number;
}

export interface UnixListenAddress {
  /** Absolute path of the socket file. */
  readonly socketPath: string;
}

const UNIX_PREFIX = "unix:";

/**
 * The longest socket path, in bytes: `sun_path` holds 108 bytes on Linux, the last a NUL
 * (unix(7)); a longer path fails to bind with a less helpful error.
 */
export const MAX_SOCKET_PATH_BYTES = 107;

/**
 * Parses `"host:port"` or `"unix:PATH"` (gRPC's name syntax; a relative PATH resolves
 * against `base`). Null when it is neither.
 */
export function parseListen(value: string, base: string = process.cwd()): ListenAddress | null {
  if (value.startsWith(UNIX_PREFIX)) {
    // gRPC also spells an absolute path unix:///path.
    const path = value.slice(UNIX_PREFIX.length).replace(/^\/\/(?=\/)/, "");
    if (path === "" || path.includes("\0")) return null;
    return { socketPath: resolve(base, path) };
  }
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  if (!m) return null;
  const port = Number(m[2]);
  if (port > 65535) return null;
  return { host: m[1]!, port };
}

/** What a gRPC client targets to reach `listen`; `port` is the TCP port actually bound. */
export function listenTarget(listen: ListenAddress, port?: number): string {
  return "socketPath" in listen ? `${UNIX_PREFIX}${listen.socketPath}` : `${listen.host}:${port ?? listen.port}`;
}

/** The files of the gRPC listener's TLS (`grpc.tls`), paths absolute. */
export interface TlsSettings {
  /** The server's certificate chain, PEM, its own certificate first. */
  readonly certFile: string;
  /** The private key of that certificate, PEM, unencrypted. */
  readonly keyFile: string;
  /** CA certificates (PEM) that sign client certificates: mutual TLS when set. */
  readonly clientCaFile: string | null;
}

/** The HTTP authorization endpoint (`authz_http`): nginx auth_request and Envoy's http_service. */
export interface AuthzHttpSettings {
  readonly listen: ListenAddress;
  /** Largest request line and headers read, in bytes (`authz_http.max_header_bytes`). */
  readonly maxHeaderBytes: number;
}

/** Where the policy comes from (`policy`). */
export type PolicySource =
  | {
      /** The authorization data YAML and the compiled policy, as two files. */
      readonly kind: "files";
      readonly dataFile: string;
      readonly wasmFile: string;
    }
  | (BundleCommon & {
      /** An OPA bundle file (`policy.bundle.file`). */
      readonly kind: "bundle-file";
      readonly file: string;
    })
  | (BundleCommon & {
      /** An OPA bundle polled from a bundle server (`policy.bundle.url`). */
      readonly kind: "bundle-url";
      readonly url: string;
      readonly pollMinMs: number;
      readonly pollMaxMs: number;
      readonly timeoutMs: number;
      /** Where the last good bundle is kept for restarts; null: not kept. */
      readonly persistDir: string | null;
    });

interface BundleCommon {
  readonly maxBytes: number;
  readonly signing: BundleSigningConfig | null;
  /** The folder relative `jwks_file` paths of a bundle's data resolve against (the config's). */
  readonly base: string;
}

export interface ServiceConfig {
  readonly file: string;
  readonly listen: ListenAddress;
  /** Largest CheckRequest accepted, in bytes (grpc.max_request_bytes). */
  readonly maxRequestBytes: number;
  /**
   * gRPC connection management: a connection older than `maxAgeMs` (±10%) is asked to
   * close (GOAWAY), and cut `graceMs` later if calls are still open; 0: no age limit.
   */
  readonly connectionAge: { readonly maxAgeMs: number; readonly graceMs: number };
  /** TLS on the gRPC listener (`grpc.tls`); absent: plaintext. */
  readonly tls?: TlsSettings;
  /** Processes serving Checks (`workers`, default one per available core); 1: a single process, no cluster. */
  readonly workers: number;
  /** V8's heap sizing (`memory`), given to node as flags when serve starts; null: V8's own. */
  readonly memory: { readonly maxSemiSpaceMb: number | null; readonly heapGrowingPercent: number | null };
  /** The admin HTTP listener (`http.listen`: /healthz, /readyz, /metrics); null: none. */
  readonly httpListen: TcpListenAddress | null;
  /** The HTTP authorization endpoint (`authz_http`); absent: not served. */
  readonly authzHttp?: AuthzHttpSettings;
  /** The policy files or bundle (paths absolute). */
  readonly policy: PolicySource;
  /** Reload when a policy file changes on disk (`policy.watch`); SIGHUP reloads either way. */
  readonly watchPolicy: boolean;
  readonly tokens: { readonly maxBytes: number; readonly leewaySeconds: number; readonly cacheEntries: number; readonly negativeCacheEntries: number };
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
  const base = dirname(file);
  const c = validate(file, serviceConfigSchema, raw, [
    ...listenCrossChecks(raw as Record<string, unknown>, base),
    ...policyCrossChecks(raw as Record<string, unknown>),
  ]);
  const tls = c.grpc.tls;
  return Object.freeze({
    file,
    listen: parseListen(c.grpc.listen, base)!,
    maxRequestBytes: c.grpc.max_request_bytes,
    connectionAge: { maxAgeMs: c.grpc.max_connection_age_seconds * 1000, graceMs: c.grpc.max_connection_age_grace_seconds * 1000 },
    workers: c.workers ?? defaultWorkers(),
    memory: { maxSemiSpaceMb: c.memory.max_semi_space_mb, heapGrowingPercent: c.memory.heap_growing_percent },
    httpListen: c.http?.listen ?? null,
    ...(tls !== undefined
      ? {
          tls: {
            certFile: resolve(base, tls.cert_file),
            keyFile: resolve(base, tls.key_file),
            clientCaFile: tls.client_ca_file !== undefined ? resolve(base, tls.client_ca_file) : null,
          },
        }
      : {}),
    ...(c.authz_http !== undefined ? { authzHttp: { listen: parseListen(c.authz_http.listen, base)!, maxHeaderBytes: c.authz_http.max_header_bytes } } : {}),
    policy: policySource(c.policy, base),
    watchPolicy: c.policy.watch,
    tokens: {
      maxBytes: c.tokens.max_bytes,
      leewaySeconds: c.tokens.leeway_seconds,
      cacheEntries: c.tokens.cache_entries,
      negativeCacheEntries: c.tokens.negative_cache_entries,
    },
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

/** The default of `workers`: the cores this process may run on (its CPU affinity and, on Linux, its cgroup's CPU quota). */
export function defaultWorkers(): number {
  return Math.min(MAX_WORKERS, Math.max(1, availableParallelism()));
}

type PolicySection = z.output<typeof serviceConfigSchema>["policy"];

function policySource(policy: PolicySection, base: string): PolicySource {
  const bundle = policy.bundle;
  if (bundle === undefined) {
    return {
      kind: "files",
      dataFile: policy.data !== undefined ? resolve(base, policy.data) : DEMO_DATA_FILE,
      wasmFile: policy.wasm !== undefined ? resolve(base, policy.wasm) : BUILT_POLICY_FILE,
    };
  }
  const signing = bundle.signing
    ? {
        keys: Object.entries(bundle.signing.keys).map(([keyid, key]) => ({ keyid, algorithm: key.algorithm, keyFile: resolve(base, key.key_file) })),
        keyid: bundle.signing.keyid ?? null,
        scope: bundle.signing.scope,
      }
    : null;
  const common = { maxBytes: bundle.max_bytes, signing, base };
  if (bundle.file !== undefined) return { kind: "bundle-file", file: resolve(base, bundle.file), ...common };
  const polling = bundle.polling ?? { min_delay_seconds: 60, max_delay_seconds: 120 };
  return {
    kind: "bundle-url",
    url: bundle.url!,
    pollMinMs: polling.min_delay_seconds * 1000,
    pollMaxMs: polling.max_delay_seconds * 1000,
    timeoutMs: (bundle.timeout_seconds ?? 10) * 1000,
    persistDir: bundle.persist_dir !== undefined ? resolve(base, bundle.persist_dir) : null,
    ...common,
  };
}

/**
 * A Unix socket path too long to bind, once resolved against the config's folder, and
 * an `authz_http.listen` that is the gRPC listener's address.
 */
function listenCrossChecks(raw: Record<string, unknown>, base: string): Array<{ path: PropertyKey[]; message: string }> {
  const listenOf = (section: string): ListenAddress | null => {
    const value = raw[section];
    const listen = value !== null && typeof value === "object" ? (value as Record<string, unknown>)["listen"] : undefined;
    return typeof listen === "string" ? parseListen(listen, base) : null;
  };
  const grpc = listenOf("grpc");
  const http = listenOf("authz_http");
  const out = [
    ...(grpc !== null ? socketPathProblems(grpc).map((message) => ({ path: ["grpc", "listen"], message })) : []),
    ...(http !== null ? socketPathProblems(http).map((message) => ({ path: ["authz_http", "listen"], message })) : []),
  ];
  if (grpc !== null && http !== null && sameAddress(grpc, http)) {
    out.push({ path: ["authz_http", "listen"], message: `expected another address than grpc.listen, got ${listenTarget(http)} for both` });
  }
  return out;
}

/** Whether two listeners would bind the same address (port 0 picks a free port each time). */
function sameAddress(a: ListenAddress, b: ListenAddress): boolean {
  if ("socketPath" in a || "socketPath" in b) return "socketPath" in a && "socketPath" in b && a.socketPath === b.socketPath;
  return a.port !== 0 && a.port === b.port && a.host === b.host;
}

/** Why `listen` cannot be bound as written (a socket path over the length limit), or nothing. */
export function socketPathProblems(listen: ListenAddress): string[] {
  if (!("socketPath" in listen)) return [];
  const bytes = Buffer.byteLength(listen.socketPath);
  return bytes > MAX_SOCKET_PATH_BYTES
    ? [`expected a socket path of at most ${MAX_SOCKET_PATH_BYTES} bytes (the system's limit), got ${bytes}: ${listen.socketPath}`]
    : [];
}

/** The checks across keys of `policy` that the schema cannot express. */
function policyCrossChecks(raw: Record<string, unknown>): Array<{ path: PropertyKey[]; message: string }> {
  const policy = raw["policy"];
  if (policy === null || typeof policy !== "object" || Array.isArray(policy)) return [];
  const p = policy as Record<string, unknown>;
  const out: Array<{ path: PropertyKey[]; message: string }> = [];
  const bundle = p["bundle"];
  if (bundle === null || typeof bundle !== "object" || Array.isArray(bundle)) return out;
  const b = bundle as Record<string, unknown>;
  for (const key of ["data", "wasm"]) {
    if (p[key] !== undefined) out.push({ path: ["policy", key], message: "expected no policy.data or policy.wasm with policy.bundle: the bundle holds both" });
  }
  if ((b["file"] === undefined) === (b["url"] === undefined))
    out.push({ path: ["policy", "bundle"], message: "expected exactly one of file (a local bundle) and url (a bundle server)" });
  if (b["file"] !== undefined) {
    for (const key of ["polling", "timeout_seconds", "persist_dir"]) {
      if (b[key] !== undefined) out.push({ path: ["policy", "bundle", key], message: "applies to a bundle server (url) only, not to a bundle file" });
    }
  }
  const polling = b["polling"] as Record<string, unknown> | undefined;
  if (
    polling &&
    typeof polling["min_delay_seconds"] === "number" &&
    typeof polling["max_delay_seconds"] === "number" &&
    polling["min_delay_seconds"] > polling["max_delay_seconds"]
  ) {
    out.push({ path: ["policy", "bundle", "polling"], message: "expected min_delay_seconds not above max_delay_seconds" });
  }
  const signing = b["signing"] as Record<string, unknown> | undefined;
  const keys = signing?.["keys"];
  if (typeof signing?.["keyid"] === "string" && keys !== null && typeof keys === "object" && !Object.hasOwn(keys, signing["keyid"])) {
    out.push({
      path: ["policy", "bundle", "signing", "keyid"],
      message: `expected one of the keys (${Object.keys(keys).join(", ")}), got ${JSON.stringify(signing["keyid"])}`,
    });
  }
  return out;
}

/**
 * Reads and validates a service configuration file, with the environment's overrides
 * (`ENVIRONMENT_OVERRIDES`) applied; a problem with an overridden key names its variable.
 */
export async function loadServiceConfig(file: string, env: Environment = process.env): Promise<ServiceConfig> {
  const absolute = resolve(file);
  const { raw, problems, applied } = applyEnvironment(await readYamlFile(absolute), env);
  if (problems.length > 0) throw new ConfigError(absolute, problems);
  try {
    return parseServiceConfig(absolute, raw);
  } catch (error) {
    if (!(error instanceof ConfigError) || applied.size === 0) throw error;
    throw new ConfigError(
      error.file,
      error.problems.map((problem) => {
        const variable = [...applied].find(([key]) => problem.startsWith(`${key}: `))?.[1];
        return variable !== undefined ? `${problem} (from ${variable})` : problem;
      }),
    );
  }
}
