import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_VERBS, loadAuthzData, parseAuthzData } from "../../../src/config/authz-data.js";
import { ConfigError } from "../../../src/config/config-error.js";
import { DEMO_DATA_FILE, PACKAGE_ROOT, defaultWorkers, parseListen, parseServiceConfig } from "../../../src/config/service-config.js";
import { loadCases } from "./fixtures.js";

interface BadConfigCase {
  name: string;
  data: unknown;
  expect_key: string;
  expect_text: string;
}

const DATA_FILE = "/etc/scitokens-authz/authz.yaml";
const CONFIG_FILE = "/etc/scitokens-authz/config.yaml";

function configErrorOf(fn: () => unknown): ConfigError {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, "expected a ConfigError").toBeInstanceOf(ConfigError);
  return thrown as ConfigError;
}

function expectProblem(error: ConfigError, file: string, c: BadConfigCase): void {
  expect(error.file).toBe(file);
  expect(error.message.startsWith(`${file}: `), error.message).toBe(true);
  const problem = error.problems.find((p) => p.startsWith(`${c.expect_key}: `));
  expect(problem, `no problem for key ${c.expect_key} in:\n${error.message}`).toBeDefined();
  expect(error.message).toContain(problem);
  expect(problem).toContain(c.expect_text);
}

/** SEMANTICS §9, written out here rather than imported so that a change to the defaults fails. */
const SEMANTICS_VERBS = {
  read: ["GET", "HEAD", "OPTIONS", "PROPFIND"],
  "storage.read": ["GET", "HEAD", "OPTIONS", "PROPFIND"],
  write: ["PUT", "POST", "PATCH", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK"],
  "storage.modify": ["PUT", "POST", "PATCH", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK"],
  "storage.create": ["PUT", "MKCOL"],
  "storage.stage": [],
};

const MINIMAL_DATA = {
  audiences: ["https://storage.example.org"],
  issuers: [{ issuer: "https://issuer.example.org", base_path: "/data" }],
};

describe("parseAuthzData: refused documents", () => {
  it.each(loadCases<BadConfigCase>("bad-authz-data.yaml"))("$name", (c) => {
    expectProblem(
      configErrorOf(() => parseAuthzData(DATA_FILE, c.data)),
      DATA_FILE,
      c,
    );
  });

  it("reports every problem at once, each with its key", () => {
    const error = configErrorOf(() =>
      parseAuthzData(DATA_FILE, {
        audiences: "https://storage.example.org",
        issuers: [
          { issuer: "https://a.example.org", base_path: "/data", algorithms: ["HS256"] },
          { issuer: "https://b.example.org", base_path: "scratch", jwks_uri: "http://b.example.org/jwks" },
        ],
        on_missing: "allow",
      }),
    );
    const keys = error.problems.map((p) => p.slice(0, p.indexOf(": ")));
    expect(keys.sort()).toEqual(["audiences", "issuers[0].algorithms[0]", "issuers[1].base_path", "issuers[1].jwks_uri", "on_missing"]);
    expect(error.message).toContain("5 problems");
    for (const problem of error.problems) expect(error.message).toContain(problem);
  });

  it("reports cross-field problems together with key problems", () => {
    const issuer = { issuer: "https://issuer.example.org", base_path: "/data" };
    const error = configErrorOf(() =>
      parseAuthzData(DATA_FILE, {
        audiences: [],
        issuers: [
          issuer,
          issuer,
          { issuer: "https://b.example.org", base_path: "/b", jwks_uri: "https://b.example.org/jwks", jwks_file: "b.json", max_lifetime: 0 },
        ],
        verbs: { read: ["get"] },
        named_scopes: { write: { methods: ["PUT"] } },
      }),
    );
    const keys = error.problems.map((p) => p.slice(0, p.indexOf(": ")));
    expect(keys.sort()).toEqual(["issuers[1].issuer", "issuers[2].jwks_file", "issuers[2].max_lifetime", "named_scopes.write", "verbs.read[0]"]);
  });
});

describe("parseAuthzData: accepted documents and defaults", () => {
  it("fills the defaults of a minimal document", () => {
    const data = parseAuthzData(DATA_FILE, MINIMAL_DATA);
    expect(data.file).toBe(DATA_FILE);
    expect(data.headerPrefix).toBe("x-scitokens-");
    expect(data.removeAuthorization).toBe(false);
    expect(data.realm).toBe("scitokens-authz");
    expect(data.onMissing).toBe("deny");
    expect(data.onInvalid).toBe("deny");
    expect(data.policyData["verbs"]).toEqual(SEMANTICS_VERBS);
    expect(DEFAULT_VERBS).toEqual(SEMANTICS_VERBS);
    expect(data.policyData["audiences"]).toEqual(["https://storage.example.org"]);
    expect(data.policyData["named_scopes"]).toEqual({});
    expect([...data.issuers.keys()]).toEqual(["https://issuer.example.org"]);
    expect(data.issuers.get("https://issuer.example.org")).toEqual({
      issuer: "https://issuer.example.org",
      basePaths: ["/data"],
      restrictedPaths: null,
      audiences: null,
      algorithms: ["RS256", "ES256"],
      maxLifetime: null,
    });
  });

  it("freezes what it returns, down to the policy data", () => {
    const data = parseAuthzData(DATA_FILE, MINIMAL_DATA);
    expect(Object.isFrozen(data)).toBe(true);
    expect(Object.isFrozen(data.issuers.get("https://issuer.example.org"))).toBe(true);
    expect(Object.isFrozen(data.policyData)).toBe(true);
    expect(Object.isFrozen((data.policyData["verbs"] as Record<string, unknown>)["read"])).toBe(true);
  });

  it("merges verb overrides over the defaults", () => {
    const data = parseAuthzData(DATA_FILE, { ...MINIMAL_DATA, verbs: { "storage.stage": ["POST"], read: ["GET"] } });
    expect(data.policyData["verbs"]).toEqual({ ...SEMANTICS_VERBS, "storage.stage": ["POST"], read: ["GET"] });
  });

  it("normalizes issuer paths and resolves jwks_file against the data file's folder", () => {
    const data = parseAuthzData(DATA_FILE, {
      audiences: [],
      issuers: [
        {
          issuer: "https://issuer.example.org",
          base_path: ["/data/", "//scratch//tmp"],
          restricted_path: ["/data/public/"],
          audiences: ["ANY"],
          algorithms: ["ES384", "EdDSA"],
          max_lifetime: 3600,
          jwks_file: "keys/issuer.jwks",
        },
      ],
    });
    expect(data.issuers.get("https://issuer.example.org")).toEqual({
      issuer: "https://issuer.example.org",
      jwksFile: join(dirname(DATA_FILE), "keys", "issuer.jwks"),
      basePaths: ["/data", "/scratch/tmp"],
      restrictedPaths: ["/data/public"],
      audiences: ["ANY"],
      algorithms: ["ES384", "EdDSA"],
      maxLifetime: 3600,
    });
    expect(data.policyData["issuers"]).toEqual({
      "https://issuer.example.org": { base_path: ["/data", "/scratch/tmp"], restricted_path: ["/data/public"], audiences: ["ANY"] },
    });
  });

  it.each([
    ["https jwks_uri", { jwks_uri: "https://issuer.example.org/jwks" }],
    ["http jwks_uri on 127.0.0.1", { jwks_uri: "http://127.0.0.1:8080/jwks" }],
    ["http jwks_uri on 127.x.y.z", { jwks_uri: "http://127.1.2.3/jwks" }],
    ["http jwks_uri on localhost", { jwks_uri: "http://localhost:8080/jwks" }],
    ["http jwks_uri on [::1]", { jwks_uri: "http://[::1]:8080/jwks" }],
    ["http issuer with a static jwks_file (air-gapped)", { issuer: "http://issuer.internal", jwks_file: "/etc/keys.json" }],
    ["http loopback issuer with discovery", { issuer: "http://127.0.0.1:8484/dev" }],
    ["non-URL issuer with jwks_uri", { issuer: "my-issuer", jwks_uri: "https://keys.example.org/jwks" }],
  ])("accepts an issuer with %s", (_name, overrides) => {
    const entry = { issuer: "https://issuer.example.org", base_path: "/data", ...overrides };
    const data = parseAuthzData(DATA_FILE, { audiences: [], issuers: [entry] });
    expect(data.issuers.get(entry.issuer)?.issuer).toBe(entry.issuer);
  });

  it("keeps issuers that differ only by a trailing slash apart (no folding)", () => {
    const data = parseAuthzData(DATA_FILE, {
      audiences: [],
      issuers: [
        { issuer: "https://issuer.example.org", base_path: "/a" },
        { issuer: "https://issuer.example.org/", base_path: "/b" },
      ],
    });
    expect([...data.issuers.keys()]).toEqual(["https://issuer.example.org", "https://issuer.example.org/"]);
  });

  it("takes headers, realm and on_missing / on_invalid as given", () => {
    const data = parseAuthzData(DATA_FILE, {
      ...MINIMAL_DATA,
      headers: { prefix: "x-auth-", remove_authorization: true },
      realm: "osdf-origin",
      on_missing: "passthrough",
      on_invalid: "passthrough",
      named_scopes: { "dqsegdb.read": { methods: ["GET", "HEAD"], paths: ["/dq/"] }, "gracedb.read": { methods: ["GET"] } },
    });
    expect(data).toMatchObject({
      headerPrefix: "x-auth-",
      removeAuthorization: true,
      realm: "osdf-origin",
      onMissing: "passthrough",
      onInvalid: "passthrough",
    });
    expect(data.policyData["named_scopes"]).toEqual({
      "dqsegdb.read": { methods: ["GET", "HEAD"], paths: ["/dq"] },
      "gracedb.read": { methods: ["GET"], paths: null },
    });
  });

  it("loads the demo data file that `serve` uses by default", async () => {
    const data = await loadAuthzData(DEMO_DATA_FILE);
    expect(data.issuers.size).toBeGreaterThan(0);
    expect(data.policyData["verbs"]).toEqual(SEMANTICS_VERBS);
  });
});

describe("parseServiceConfig: refused documents", () => {
  it.each(loadCases<BadConfigCase>("bad-service-config.yaml"))("$name", (c) => {
    expectProblem(
      configErrorOf(() => parseServiceConfig(CONFIG_FILE, c.data)),
      CONFIG_FILE,
      c,
    );
  });

  it.each([
    ["null", null],
    ["a list", [{ grpc: { listen: "127.0.0.1:9292" } }]],
    ["a string", "grpc: {listen: 127.0.0.1:9292}"],
  ])("refuses a document that is %s", (_name, raw) => {
    const error = configErrorOf(() => parseServiceConfig(CONFIG_FILE, raw));
    expect(error.message).toBe(`${CONFIG_FILE}: (top level): expected a mapping with at least grpc.listen`);
  });

  it("reports every problem at once", () => {
    const error = configErrorOf(() => parseServiceConfig(CONFIG_FILE, { grpc: { listen: "localhost" }, tokens: { leeway_seconds: -1, max_bytes: 0 } }));
    const keys = error.problems.map((p) => p.slice(0, p.indexOf(": ")));
    expect(keys.sort()).toEqual(["grpc.listen", "tokens.leeway_seconds", "tokens.max_bytes"]);
    expect(error.message).toContain("3 problems");
  });
});

describe("parseServiceConfig: the admin HTTP listener (http.listen)", () => {
  it.each([
    ["IPv4", "127.0.0.1:9090", { host: "127.0.0.1", port: 9090 }],
    ["any address, a port picked by the system", "0.0.0.0:0", { host: "0.0.0.0", port: 0 }],
    ["IPv6", "[::1]:9090", { host: "[::1]", port: 9090 }],
  ])("takes %s", (_name, listen, expected) => {
    expect(parseServiceConfig(CONFIG_FILE, { grpc: { listen: "127.0.0.1:9292" }, http: { listen } }).httpListen).toEqual(expected);
  });
});

describe("parseServiceConfig: defaults", () => {
  it("fills every default of a minimal document", () => {
    const config = parseServiceConfig(CONFIG_FILE, { grpc: { listen: "127.0.0.1:9292" } });
    expect(config).toEqual({
      file: CONFIG_FILE,
      listen: { host: "127.0.0.1", port: 9292 },
      maxRequestBytes: 16 * 1024 * 1024,
      connectionAge: { maxAgeMs: 120_000, graceMs: 30_000 },
      workers: defaultWorkers(),
      httpListen: null,
      policy: { kind: "files", dataFile: join(PACKAGE_ROOT, "policies", "demo.yaml"), wasmFile: join(PACKAGE_ROOT, "build", "policy.wasm") },
      watchPolicy: true,
      memory: { maxSemiSpaceMb: 8, heapGrowingPercent: null },
      tokens: { maxBytes: 16 * 1024, leewaySeconds: 60, cacheEntries: 10_000, negativeCacheEntries: 10_000 },
      keys: {
        cacheDir: null,
        refreshIntervalMs: 10 * 60_000,
        maxStaleMs: 4 * 24 * 3600 * 1000,
        unknownKidCooldownMs: 30_000,
        fetchTimeoutMs: 5_000,
        maxResponseBytes: 1024 * 1024,
        startupWaitMs: 5_000,
        checkWaitMs: 150,
      },
      logLevel: "info",
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("runs one worker per core the process may use, unless workers says otherwise", () => {
    expect(defaultWorkers()).toBe(Math.min(256, availableParallelism()));
    const config = parseServiceConfig(CONFIG_FILE, { grpc: { listen: "127.0.0.1:9292", max_connection_age_seconds: 0 }, workers: 1 });
    expect(config.workers).toBe(1);
    expect(config.connectionAge).toEqual({ maxAgeMs: 0, graceMs: 30_000 });
  });

  it("turns the policy file watch off with policy.watch: false", () => {
    const config = parseServiceConfig(CONFIG_FILE, { grpc: { listen: "127.0.0.1:9292" }, policy: { watch: false } });
    expect(config.watchPolicy).toBe(false);
    expect(config.policy).toMatchObject({ kind: "files", dataFile: join(PACKAGE_ROOT, "policies", "demo.yaml") });
  });

  it("allows a leeway of 0", () => {
    const config = parseServiceConfig(CONFIG_FILE, { grpc: { listen: "127.0.0.1:9292" }, tokens: { leeway_seconds: 0 } });
    expect(config.tokens.leewaySeconds).toBe(0);
  });

  it("resolves relative paths against the config file's folder and converts seconds", () => {
    const config = parseServiceConfig(CONFIG_FILE, {
      grpc: { listen: "[::1]:0" },
      policy: { data: "authz.yaml", wasm: "/opt/policy.wasm" },
      keys: { cache_dir: "cache", refresh_interval_seconds: 120, unknown_kid_cooldown_seconds: 10, fetch_timeout_seconds: 2.5 },
      log: { level: "debug" },
    });
    expect(config.listen).toEqual({ host: "[::1]", port: 0 });
    expect(config.policy).toEqual({ kind: "files", dataFile: join(dirname(CONFIG_FILE), "authz.yaml"), wasmFile: "/opt/policy.wasm" });
    expect(config.keys).toMatchObject({
      cacheDir: join(dirname(CONFIG_FILE), "cache"),
      refreshIntervalMs: 120_000,
      unknownKidCooldownMs: 10_000,
      fetchTimeoutMs: 2_500,
    });
    expect(config.logLevel).toBe("debug");
  });
});

describe("parseServiceConfig: grpc.listen and grpc.tls", () => {
  it.each([
    ["an absolute socket path", "unix:/run/scitokens-authz/grpc.sock", { socketPath: "/run/scitokens-authz/grpc.sock" }],
    ["gRPC's unix:/// spelling", "unix:///run/scitokens-authz/grpc.sock", { socketPath: "/run/scitokens-authz/grpc.sock" }],
    ["a relative socket path (against the config's folder)", "unix:run/grpc.sock", { socketPath: join(dirname(CONFIG_FILE), "run", "grpc.sock") }],
    ["host:port", "0.0.0.0:9292", { host: "0.0.0.0", port: 9292 }],
  ])("listens on %s", (_name, listen, expected) => {
    expect(parseServiceConfig(CONFIG_FILE, { grpc: { listen } }).listen).toEqual(expected);
  });

  it("parseListen resolves a relative socket path against the folder given (serve --listen: the working folder)", () => {
    expect(parseListen("unix:grpc.sock", "/srv")).toEqual({ socketPath: "/srv/grpc.sock" });
    expect(parseListen("unix:", "/srv")).toBeNull();
  });

  it("has no TLS unless grpc.tls is set", () => {
    expect(parseServiceConfig(CONFIG_FILE, { grpc: { listen: "127.0.0.1:9292" } }).tls).toBeUndefined();
  });

  it("resolves the TLS files against the config's folder; client_ca_file turns on mutual TLS", () => {
    const tls = (extra: object) =>
      parseServiceConfig(CONFIG_FILE, { grpc: { listen: "127.0.0.1:9292", tls: { cert_file: "tls/server.pem", key_file: "/secrets/server.key", ...extra } } })
        .tls;
    expect(tls({})).toEqual({ certFile: join(dirname(CONFIG_FILE), "tls", "server.pem"), keyFile: "/secrets/server.key", clientCaFile: null });
    expect(tls({ client_ca_file: "tls/clients.pem" })?.clientCaFile).toBe(join(dirname(CONFIG_FILE), "tls", "clients.pem"));
  });
});

describe("parseServiceConfig: policy.bundle", () => {
  it("reads a bundle file with its signing keys, paths resolved against the config's folder", () => {
    const config = parseServiceConfig(CONFIG_FILE, {
      grpc: { listen: "127.0.0.1:9292" },
      policy: { bundle: { file: "bundle.tar.gz", signing: { keys: { ci: { algorithm: "ES256", key_file: "keys/ci.pem" } }, scope: "prod" } } },
    });
    expect(config.policy).toEqual({
      kind: "bundle-file",
      file: join(dirname(CONFIG_FILE), "bundle.tar.gz"),
      maxBytes: 64 * 1024 * 1024,
      signing: { keys: [{ keyid: "ci", algorithm: "ES256", keyFile: join(dirname(CONFIG_FILE), "keys", "ci.pem") }], keyid: null, scope: "prod" },
      base: dirname(CONFIG_FILE),
    });
  });

  it("reads a bundle server with OPA's polling defaults (60 to 120 s) and no signing", () => {
    const config = parseServiceConfig(CONFIG_FILE, {
      grpc: { listen: "127.0.0.1:9292" },
      policy: { bundle: { url: "https://bundles.example.org/scitokens.tar.gz", persist_dir: "state" } },
    });
    expect(config.policy).toEqual({
      kind: "bundle-url",
      url: "https://bundles.example.org/scitokens.tar.gz",
      pollMinMs: 60_000,
      pollMaxMs: 120_000,
      timeoutMs: 10_000,
      persistDir: join(dirname(CONFIG_FILE), "state"),
      maxBytes: 64 * 1024 * 1024,
      signing: null,
      base: dirname(CONFIG_FILE),
    });
  });
});

describe("parseListen", () => {
  it.each<[string, { host: string; port: number } | null]>([
    ["127.0.0.1:9292", { host: "127.0.0.1", port: 9292 }],
    ["0.0.0.0:0", { host: "0.0.0.0", port: 0 }],
    ["localhost:65535", { host: "localhost", port: 65535 }],
    ["authz.example.org:443", { host: "authz.example.org", port: 443 }],
    ["[::1]:9292", { host: "[::1]", port: 9292 }],
    ["[::]:9292", { host: "[::]", port: 9292 }],
    ["localhost", null],
    ["host:99999", null],
    ["host:65536", null],
    ["host:", null],
    [":9292", null],
    ["::1:9292", null],
    ["host:92a", null],
    ["host:-1", null],
    ["host name:80", null],
    ["", null],
  ])("%j", (value, expected) => {
    expect(parseListen(value)).toEqual(expected);
  });
});

describe("parseServiceConfig: log.decisions", () => {
  it("is off by default", () => {
    expect(parseServiceConfig(CONFIG_FILE, { grpc: { listen: "127.0.0.1:9292" } }).decisionLogFile).toBeUndefined();
  });

  it("resolves the decision log file against the config file's folder", () => {
    const config = parseServiceConfig(CONFIG_FILE, { grpc: { listen: "127.0.0.1:9292" }, log: { decisions: { file: "decisions.jsonl" } } });
    expect(config.decisionLogFile).toBe(join(dirname(CONFIG_FILE), "decisions.jsonl"));
  });

  it.each([
    ["no file", { decisions: {} }],
    ["an empty file", { decisions: { file: "" } }],
    ["an unknown key", { decisions: { file: "d.jsonl", rotate: true } }],
  ])("refuses %s", (_name, log) => {
    const error = configErrorOf(() => parseServiceConfig(CONFIG_FILE, { grpc: { listen: "127.0.0.1:9292" }, log }));
    expect(error.problems.join("\n")).toContain("log.decisions");
  });
});
