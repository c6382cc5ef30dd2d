import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUILT_POLICY_FILE } from "../../src/config/service-config.js";
import { writeCachedJwks } from "../../src/token/keys/disk-cache.js";
import { CLI, type ServedProcess, killAllServed, spawnServe } from "../helpers/cli-process.js";
import { type TestKey, jwksOf, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type MintOverrides, mint } from "../helpers/tokens.js";

// `scitokens-authz explain` as a user runs it: the built CLI in a child process, offline.
// A loopback issuer (OIDC discovery) is trusted but must never be asked for its keys; a
// second issuer has a jwks_file, so its tokens' signatures are verified.

const execFileAsync = promisify(execFile);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface ExplainJson {
  allow: boolean;
  reason: string;
  status: number | null;
  scope: string | null;
  why: string | null;
  token: {
    origin: string | null;
    state: string;
    reason: string | null;
    signature: { status: string; keys?: string; text: string };
    claims: Record<string, unknown> | null;
  };
  scopes: Array<{ scope: string; grants: boolean; why: string }>;
  scopes_hypothetical: boolean;
}

let dir: string;
let emptyRuntimeDir: string;
let config: string;
let cachedConfig: string;
let issuer: OidcServer;
let key: TestKey;
let fileKey: TestKey;
let otherKey: TestKey;
const FILE_ISSUER = "https://files.example.org";
const tokensSeen: string[] = [];

/** Runs `explain` with a clean environment (no token to discover unless given). */
async function explain(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const childEnv: NodeJS.ProcessEnv = { PATH: process.env["PATH"], HOME: process.env["HOME"], XDG_RUNTIME_DIR: emptyRuntimeDir, ...env };
  let run: Run;
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI, "explain", ...args], { env: childEnv });
    run = { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof e.code !== "number") throw error;
    run = { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
  // The raw token is never printed, in any output.
  for (const token of tokensSeen) {
    expect(run.stdout).not.toContain(token);
    expect(run.stderr).not.toContain(token);
  }
  return run;
}

async function explainJson(args: string[], env: Record<string, string> = {}): Promise<{ code: number; json: ExplainJson }> {
  const run = await explain([...args, "--json"], env);
  return { code: run.code, json: JSON.parse(run.stdout) as ExplainJson };
}

/** A token of the loopback issuer (keys only over the network). */
async function token(overrides: MintOverrides = {}, iss: string = issuer.issuer, signer: TestKey = key): Promise<string> {
  const t = await mint(signer, iss, overrides);
  tokensSeen.push(t);
  return t;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-authz-explain-"));
  emptyRuntimeDir = join(dir, "runtime");
  await mkdir(emptyRuntimeDir);
  key = await makeKey("ES256", "net-key");
  fileKey = await makeKey("ES256", "file-key");
  otherKey = await makeKey("ES256", "file-key"); // same kid, other key: a forged signature
  issuer = await startOidcServer({ keys: [key] });
  const data = {
    audiences: ["https://storage.example.org"],
    issuers: [
      { issuer: issuer.issuer, base_path: "/protected" },
      { issuer: FILE_ISSUER, base_path: "/files", jwks_file: "file.jwks.json" },
    ],
    named_scopes: { "demo.list": { methods: ["GET", "HEAD"], paths: ["/protected/catalog"] } },
  };
  await writeFile(join(dir, "data.yaml"), JSON.stringify(data, null, 2));
  await writeFile(join(dir, "file.jwks.json"), JSON.stringify(jwksOf(fileKey)));
  config = join(dir, "service.yaml");
  await writeFile(config, JSON.stringify({ grpc: { listen: "127.0.0.1:0" }, policy: { data: "data.yaml", wasm: BUILT_POLICY_FILE } }));
  // The same data, with the loopback issuer's keys in the key store's disk cache.
  const cacheDir = join(dir, "cache");
  await mkdir(cacheDir);
  await writeCachedJwks(cacheDir, { issuer: issuer.issuer, jwksUri: issuer.jwksUri, fetchedAt: Date.now(), jwks: jwksOf(key) });
  cachedConfig = join(dir, "cached.yaml");
  await writeFile(
    cachedConfig,
    JSON.stringify({ grpc: { listen: "127.0.0.1:0" }, policy: { data: "data.yaml", wasm: BUILT_POLICY_FILE }, keys: { cache_dir: "cache" } }),
  );
});

afterAll(async () => {
  killAllServed();
  await issuer?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("explain: the decision serve would give", () => {
  it("allows, and says the signature was NOT verified when the keys are only on the network", async () => {
    const t = await token({ scopes: ["read:/data"], groups: ["/cms"] });
    const run = await explain(["--config", config, "--token", t, "--path", "/protected/data/file.txt"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^ALLOWED by scope read:\/data\n/);
    expect(run.stdout).toContain("signature NOT verified (keys not available offline)");
    expect(run.stdout).toMatch(/iss {6}http:\/\/127\.0\.0\.1:\d+ {2}\(trusted; base path \/protected\)/);
    expect(run.stdout).toContain("sub      dev-user");
    expect(run.stdout).toMatch(/exp {6}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in (9 min \d+ s|10 min)\)/);
    expect(run.stdout).toContain("groups   /cms");
    expect(run.stdout).toContain("[yes] read:/data  grants GET /protected/data/file.txt");
    const { code, json } = await explainJson(["--config", config, "--token", t, "--path", "/protected/data/file.txt"]);
    expect(code).toBe(0);
    expect(json).toMatchObject({ allow: true, reason: "allowed", scope: "read:/data", token: { state: "verified", signature: { status: "not_verified" } } });
  });

  it.each<{ name: string; args: () => Promise<string[]>; reason: string; status: number; why: RegExp }>([
    { name: "no token", args: async () => ["--no-token", "--path", "/protected/data/x"], reason: "token_missing", status: 401, why: /no token/ },
    {
      name: "an expired token",
      args: async () => ["--token", await token({ now: new Date(Date.now() - 7200_000) }), "--path", "/protected/data/x"],
      reason: "token_expired",
      status: 401,
      why: /exp .* UTC has passed \(leeway 60 s\)/,
    },
    {
      name: "a token for another audience",
      args: async () => ["--token", await token({ audience: "https://elsewhere.example.org" }), "--path", "/protected/data/x"],
      reason: "audience_mismatch",
      status: 401,
      why: /"https:\/\/elsewhere\.example\.org" is not accepted here \(accepted: https:\/\/storage\.example\.org\)/,
    },
    {
      name: "an untrusted issuer",
      args: async () => ["--token", await token({}, "https://untrusted.example.org"), "--path", "/protected/data/x"],
      reason: "issuer_untrusted",
      status: 401,
      why: /"https:\/\/untrusted\.example\.org" is not a trusted issuer/,
    },
    {
      name: "a path outside the base path",
      args: async () => ["--token", await token(), "--path", "/elsewhere/x"],
      reason: "path_outside_base",
      status: 403,
      why: /\/elsewhere\/x is not under the base path \(\/protected\)/,
    },
    {
      name: "a method no scope maps",
      args: async () => ["--token", await token(), "--method", "FROB", "--path", "/protected/data/x"],
      reason: "method_unmapped",
      status: 403,
      why: /FROB is in no verbs list/,
    },
    {
      name: "a scope that does not cover the request",
      args: async () => ["--token", await token({ scopes: ["read:/data"] }), "--method", "PUT", "--path", "/protected/data/x"],
      reason: "scope_insufficient",
      status: 403,
      why: /none of the token's 1 scope grants PUT \/protected\/data\/x/,
    },
    {
      name: "a route the data does not define",
      args: async () => ["--token", await token(), "--route", "nope", "--path", "/protected/data/x"],
      reason: "route_unknown",
      status: 500,
      why: /route "nope" is not defined/,
    },
    {
      name: "a MOVE to another host",
      args: async () => [
        "--token",
        await token({ scopes: ["write:/"] }),
        "--method",
        "MOVE",
        "--path",
        "/protected/a",
        "--destination",
        "https://remote.example.org/b",
      ],
      reason: "scope_insufficient",
      status: 403,
      why: /the Destination names another host/,
    },
  ])("denies $name: $reason", async ({ args, reason, status, why }) => {
    const { code, json } = await explainJson(["--config", config, ...(await args())]);
    expect(code).toBe(1);
    expect(json).toMatchObject({ allow: false, reason, status });
    expect(json.why).toMatch(why);
  });

  it("gives each scope of the token its own verdict, and why not", async () => {
    const t = await token({ scopes: ["read:/data", "write:/data/sub", "read:/other", "demo.list", "foo.bar", "storage.read", "storage.create:/data"] });
    const { code, json } = await explainJson(["--config", config, "--token", t, "--path", "/protected/data/x"]);
    expect(code).toBe(0);
    expect(json.scope).toBe("read:/data");
    expect(json.scopes).toEqual([
      { scope: "read:/data", grants: true, why: "grants GET /protected/data/x" },
      { scope: "write:/data/sub", grants: false, why: expect.stringMatching(/^wrong method: write allows PUT, POST, .*, not GET$/) },
      { scope: "read:/other", grants: false, why: "/protected/data/x is not under /protected/other (base path + scope path)" },
      { scope: "demo.list", grants: false, why: "/protected/data/x is not under the named scope's paths (/protected/catalog)" },
      { scope: "foo.bar", grants: false, why: "foo.bar is not a configured scope (not in verbs, nor in named_scopes): ignored" },
      { scope: "storage.create:/data", grants: false, why: "wrong method: storage.create allows PUT, MKCOL, not GET" },
      { scope: "storage.read", grants: false, why: "ignored: a storage.* scope without a path grants nothing (WLCG requires one)" },
    ]);
    const text = await explain(["--config", config, "--token", t, "--method", "PUT", "--path", "/protected/data/sub/y"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/\[no\] {2}read:\/data +wrong method: read allows GET, HEAD, OPTIONS, PROPFIND, not PUT/);
    expect(text.stdout).toMatch(/\[yes\] write:\/data\/sub +grants PUT \/protected\/data\/sub\/y/);
    expect(text.stdout).toMatch(/\[yes\] storage\.create:\/data +grants PUT \/protected\/data\/sub\/y \(create only: If-None-Match: \*\)/);
  });

  it("judges the scopes of an expired token as if it were usable, and says so", async () => {
    const t = await token({ scopes: ["read:/data"], now: new Date(Date.now() - 7200_000) });
    const { json } = await explainJson(["--config", config, "--token", t, "--path", "/protected/data/x"]);
    expect(json.reason).toBe("token_expired");
    expect(json.scopes_hypothetical).toBe(true);
    expect(json.scopes).toEqual([{ scope: "read:/data", grants: true, why: "grants GET /protected/data/x" }]);
  });
});

describe("explain: where the token comes from", () => {
  it("finds it by WLCG Bearer Token Discovery through BEARER_TOKEN_FILE", async () => {
    const file = join(dir, "bt-file");
    await writeFile(file, `${await token({ scopes: ["read:/data"] })}\n`);
    const { code, json } = await explainJson(["--config", config, "--path", "/protected/data/x"], { BEARER_TOKEN_FILE: file });
    expect(code).toBe(0);
    expect(json.token.origin).toBe("BEARER_TOKEN_FILE");
    expect(json.reason).toBe("allowed");
  });

  it("prefers BEARER_TOKEN, then $XDG_RUNTIME_DIR/bt_u$UID", async () => {
    const fromEnv = await explainJson(["--config", config, "--path", "/protected/data/x"], { BEARER_TOKEN: await token() });
    expect(fromEnv.json.token.origin).toBe("BEARER_TOKEN");
    const runtime = join(dir, "runtime-with-token");
    await mkdir(runtime);
    await writeFile(join(runtime, `bt_u${process.getuid?.() ?? 0}`), await token());
    const fromRuntime = await explainJson(["--config", config, "--path", "/protected/data/x"], { XDG_RUNTIME_DIR: runtime });
    expect(fromRuntime.json.token.origin).toBe("XDG_RUNTIME_DIR");
  });

  it.each([
    {
      name: "a token file that does not exist",
      args: ["--token-file", "/nonexistent/token", "--path", "/x"],
      stderr: /--token-file: cannot read the token file \/nonexistent\/token \(ENOENT\)/,
    },
    { name: "no --path", args: ["--no-token"], stderr: /--path is required/ },
    { name: "an empty --token", args: ["--token", " ", "--path", "/x"], stderr: /--token: the token is empty/ },
    {
      name: "a configuration that does not exist",
      args: ["--no-token", "--path", "/x", "--config", "/nonexistent/service.yaml"],
      stderr: /configuration error/,
    },
  ])("exits 2 for $name", async ({ args, stderr }) => {
    const run = await explain(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(stderr);
  });
});

describe("explain: the signature, offline", () => {
  it("verifies the signature with a jwks_file issuer's keys", async () => {
    const t = await token({ scopes: ["read:/"] }, FILE_ISSUER, fileKey);
    const run = await explain(["--config", config, "--token", t, "--path", "/files/a"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("signature verified offline with the jwks_file");
    expect(run.stdout).not.toContain("NOT verified");
    const { json } = await explainJson(["--config", config, "--token", t, "--path", "/files/a"]);
    expect(json).toMatchObject({ allow: true, reason: "allowed", token: { state: "verified", signature: { status: "verified", keys: "jwks_file" } } });
  });

  it("reports a bad signature against a jwks_file as signature_invalid", async () => {
    const t = await token({ scopes: ["read:/"] }, FILE_ISSUER, otherKey);
    const { code, json } = await explainJson(["--config", config, "--token", t, "--path", "/files/a"]);
    expect(code).toBe(1);
    expect(json).toMatchObject({ allow: false, reason: "signature_invalid", status: 401, token: { state: "invalid", signature: { status: "failed" } } });
  });

  it("verifies the signature with the keys in keys.cache_dir", async () => {
    const good = await explainJson(["--config", cachedConfig, "--token", await token(), "--path", "/protected/x"]);
    expect(good.json).toMatchObject({ reason: "allowed", token: { signature: { status: "verified", keys: "disk_cache" } } });
    const forged = await explainJson([
      "--config",
      cachedConfig,
      "--token",
      await token({}, issuer.issuer, await makeKey("ES256", "net-key")),
      "--path",
      "/protected/x",
    ]);
    expect(forged.json).toMatchObject({ reason: "signature_invalid", token: { signature: { status: "failed" } } });
  });

  it("made no request to the loopback issuer in any of these runs", () => {
    expect(issuer.requests).toEqual([]);
  });
});

describe("explain agrees with serve", () => {
  let served: ServedProcess | undefined;
  let target: string;
  let agreeConfig: string;

  beforeAll(async () => {
    // Only the jwks_file issuer, so that serve fetches nothing either.
    const data = {
      audiences: ["https://storage.example.org"],
      issuers: [{ issuer: FILE_ISSUER, base_path: "/files", jwks_file: "file.jwks.json", restricted_path: ["/public", "/shared"] }],
      named_scopes: { "demo.list": { methods: ["GET"], paths: ["/files/public/catalog"] } },
    };
    await writeFile(join(dir, "files-only.yaml"), JSON.stringify(data));
    agreeConfig = join(dir, "agree.yaml");
    await writeFile(
      agreeConfig,
      JSON.stringify({ grpc: { listen: "127.0.0.1:0" }, policy: { data: "files-only.yaml", wasm: BUILT_POLICY_FILE, watch: false } }),
    );
    served = spawnServe(["--config", agreeConfig]);
    const [, port] = await served.waitFor(/"msg":"listening on 127\.0\.0\.1:(\d+)"/);
    target = `127.0.0.1:${port}`;
  }, 30_000);

  afterAll(async () => {
    await served?.stop();
  });

  const fileToken = async (overrides: MintOverrides = {}, signer: TestKey = fileKey): Promise<string> => {
    const t = await mint(signer, FILE_ISSUER, overrides);
    tokensSeen.push(t);
    return t;
  };

  it.each<{ name: string; token: () => Promise<string | null>; method: string; path: string }>([
    { name: "a read under a restricted path", token: () => fileToken({ scopes: ["read:/public"] }), method: "GET", path: "/files/public/a" },
    { name: "a read outside the restricted paths", token: () => fileToken({ scopes: ["read:/"] }), method: "GET", path: "/files/private/a" },
    { name: "a write with a read scope", token: () => fileToken({ scopes: ["read:/"] }), method: "PUT", path: "/files/public/a" },
    { name: "a named scope", token: () => fileToken({ scopes: ["demo.list"] }), method: "GET", path: "/files/public/catalog/x" },
    { name: "an expired token", token: () => fileToken({ now: new Date(Date.now() - 7200_000) }), method: "GET", path: "/files/public/a" },
    { name: "a forged signature", token: () => fileToken({}, otherKey), method: "GET", path: "/files/public/a" },
    { name: "another audience", token: () => fileToken({ audience: "https://elsewhere.example.org" }), method: "GET", path: "/files/public/a" },
    { name: "no token", token: async () => null, method: "GET", path: "/files/public/a" },
    { name: "an unmapped method", token: () => fileToken(), method: "FROB", path: "/files/public/a" },
  ])("$name", async ({ token: make, method, path }) => {
    const t = await make();
    const tokenArgs = t === null ? [] : ["--token", t];
    const check = await execFileAsync(process.execPath, [CLI, "check", "--target", target, ...tokenArgs, "--method", method, "--path", path]).then(
      ({ stdout }) => ({ code: 0, stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
    );
    const servedReason = /reason=(\w+)/.exec(check.stdout)?.[1];
    const { code, json } = await explainJson(["--config", agreeConfig, ...(t === null ? ["--no-token"] : tokenArgs), "--method", method, "--path", path]);
    expect(servedReason).toBeDefined();
    expect(json.reason).toBe(servedReason);
    expect(code).toBe(check.code);
    if (t !== null) expect(json.token.signature.status).not.toBe("not_verified");
  });
});
