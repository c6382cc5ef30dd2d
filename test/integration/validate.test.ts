import { execFile, execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { exportJWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUILT_POLICY_FILE, DEMO_DATA_FILE, PACKAGE_ROOT } from "../../src/config/service-config.js";
import { CLI } from "../helpers/cli-process.js";
import { type TestKey, jwksOf, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";

// `scitokens-authz validate` as an operator's CI runs it: the built CLI in a child
// process, against files in a temporary folder. Exit 0 valid, 2 not valid.

const execFileAsync = promisify(execFile);
const OPA = join(PACKAGE_ROOT, ".tools", "bin", "opa");
const CAPABILITIES = join(PACKAGE_ROOT, "build", "capabilities.json");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function validate(...args: string[]): Promise<Run> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI, "validate", ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof e.code !== "number") throw error;
    return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

let dir: string;
let key: TestKey;
let counter = 0;

/** Writes `files` (objects as JSON, which is YAML) into a fresh folder; returns its service.yaml. */
async function fixture(files: Record<string, unknown>): Promise<{ folder: string; config: string }> {
  const folder = join(dir, `case-${++counter}`);
  await mkdir(folder);
  for (const [name, content] of Object.entries(files)) {
    await writeFile(join(folder, name), typeof content === "string" ? content : JSON.stringify(content, null, 2));
  }
  return { folder, config: join(folder, "service.yaml") };
}

/** A service config naming data.yaml beside it and a policy (the built one by default). */
function service(extra: Record<string, unknown> = {}, bundle: string = BUILT_POLICY_FILE): Record<string, unknown> {
  return { grpc: { listen: "127.0.0.1:0" }, policy: { data: "data.yaml", wasm: bundle }, ...extra };
}

function data(issuers: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { audiences: ["https://storage.example.org"], issuers, ...extra };
}

/** Compiles `rego` with the pinned OPA into a policy.wasm exporting `entrypoint`. */
function compile(name: string, rego: string, entrypoint: string): string {
  const out = join(dir, `rego-${name}`);
  execFileSync("mkdir", ["-p", out]);
  const source = join(out, "policy.rego");
  writeFileSync(source, rego);
  const bundle = join(out, "bundle.tar.gz");
  execFileSync(OPA, ["build", "-t", "wasm", "-e", entrypoint, "--capabilities", CAPABILITIES, "-o", bundle, source]);
  execFileSync("tar", ["-xzf", bundle, "-C", out, "/policy.wasm"], { stdio: ["ignore", "ignore", "ignore"] });
  return join(out, "policy.wasm");
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-authz-validate-"));
  key = await makeKey("ES256");
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("scitokens-authz validate: valid configurations", () => {
  it("accepts the embedded default (no --config) and says what it checked", async () => {
    const result = await validate();
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^scitokens-authz validate: valid/);
    expect(result.stdout).toContain("(embedded default)");
    expect(result.stdout).toContain(DEMO_DATA_FILE);
    expect(result.stdout).toContain(BUILT_POLICY_FILE);
    expect(result.stdout).toContain("entrypoint scitokens/authz/decision");
    expect(result.stdout).toMatch(/issuer +http:\/\/127\.0\.0\.1:8484\/dev: keys by OIDC discovery \(not fetched\)/);
    expect(result.stdout).toMatch(/revision +[0-9a-f]{12}$/m);
  });

  it("accepts a config with its data and the built policy, listing issuers, routes and a revision", async () => {
    const { folder, config } = await fixture({
      "service.yaml": service({ keys: { cache_dir: "cache/keys" } }),
      "data.yaml": data(
        [
          { issuer: "https://a.example", base_path: "/a", jwks_file: "a.jwks.json" },
          { issuer: "https://b.example", base_path: ["/b", "/b2"], jwks_uri: "https://b.example/jwks" },
          { issuer: "https://c.example/realms/x", base_path: "/c" },
        ],
        { routes: { dav: { issuers: ["https://b.example"], base_path: "/dav" }, plain: {} } },
      ),
      "a.jwks.json": jwksOf(key),
    });
    const result = await validate("--config", config);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain(`config     ${config}`);
    expect(result.stdout).toContain(`https://a.example: keys from ${join(folder, "a.jwks.json")} (1 usable key)`);
    expect(result.stdout).toContain("https://b.example: keys from https://b.example/jwks (not fetched)");
    expect(result.stdout).toContain("https://c.example/realms/x: keys by OIDC discovery (not fetched)");
    expect(result.stdout).toContain("routes     (top level), dav, plain");
    expect(result.stdout).toContain(`key cache  ${join(folder, "cache", "keys")}`);
    // A missing cache folder that the service could create is fine, and is not created here.
    await expect(stat(join(folder, "cache"))).rejects.toThrow(/ENOENT/);

    const json = await validate("--config", config, "--json");
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as { ok: boolean; problems: unknown[]; checked: Record<string, unknown> };
    expect(report.ok).toBe(true);
    expect(report.problems).toEqual([]);
    expect(report.checked).toMatchObject({
      config,
      data: join(folder, "data.yaml"),
      policy: BUILT_POLICY_FILE,
      entrypoint: "scitokens/authz/decision",
      routes: ["dav", "plain"],
      cache_dir: join(folder, "cache", "keys"),
    });
    expect(report.checked["synthetic_inputs"]).toBeGreaterThan(0);
    expect(report.checked["revision"]).toMatch(/^[0-9a-f]{12}$/);
    expect(report.checked["issuers"]).toEqual([
      { issuer: "https://a.example", source: "jwks_file", from: join(folder, "a.jwks.json"), usable_keys: 1 },
      { issuer: "https://b.example", source: "jwks_uri", from: "https://b.example/jwks", usable_keys: null },
      { issuer: "https://c.example/realms/x", source: "discovery", from: "https://c.example/realms/x", usable_keys: null },
    ]);
  });

  it("the revision changes with the data", async () => {
    const issuers = [{ issuer: "https://a.example", base_path: "/a" }];
    const first = await fixture({ "service.yaml": service(), "data.yaml": data(issuers) });
    const second = await fixture({ "service.yaml": service(), "data.yaml": data(issuers, { realm: "other" }) });
    const revisions = await Promise.all(
      [first, second].map(
        async ({ config }) => (JSON.parse((await validate("--config", config, "--json")).stdout) as { checked: { revision: string } }).checked.revision,
      ),
    );
    expect(revisions[0]).toMatch(/^[0-9a-f]{12}$/);
    expect(revisions[1]).not.toBe(revisions[0]);
  });
});

describe("scitokens-authz validate: problems", () => {
  it("lists a bad config key, a bad data key and a missing policy in one run (exit 2)", async () => {
    const { folder, config } = await fixture({
      "service.yaml": service({ tokens: { leeway_seconds: -1 } }, "missing/policy.wasm"),
      "data.yaml": data([{ issuer: "https://a.example", base_path: "a" }], { realm: 7 }),
    });
    const result = await validate("--config", config);
    expect(result.code, result.stdout + result.stderr).toBe(2);
    const lines = result.stdout.trimEnd().split("\n");
    expect(lines).toEqual([
      `${config}: tokens.leeway_seconds: expected the clock-skew leeway in seconds, not negative, found -1`,
      expect.stringMatching(
        new RegExp(`^${escapeRegExp(join(folder, "data.yaml"))}: issuers\\[0\\]\\.base_path: expected an absolute path like "/data", got "a"`),
      ),
      expect.stringMatching(new RegExp(`^${escapeRegExp(join(folder, "data.yaml"))}: realm: `)),
      `${join(folder, "missing", "policy.wasm")}: the compiled policy does not exist (run \`npm run build\`, or set policy.wasm)`,
      "scitokens-authz validate: 4 problems in 3 files: not valid",
    ]);

    const json = JSON.parse((await validate("--config", config, "--json")).stdout) as {
      ok: boolean;
      problems: Array<{ file: string; problem: string; line: string }>;
    };
    expect(json.ok).toBe(false);
    expect(json.problems.map((p) => p.file)).toEqual([config, join(folder, "data.yaml"), join(folder, "data.yaml"), join(folder, "missing", "policy.wasm")]);
    expect(json.problems.map((p) => p.line)).toEqual(lines.slice(0, 4));
  });

  it("says what it could not check when the config file itself cannot be read", async () => {
    const result = await validate("--config", join(dir, "nope.yaml"));
    expect(result.code).toBe(2);
    expect(result.stdout).toContain(`${join(dir, "nope.yaml")}: the file does not exist`);
    expect(result.stdout).toMatch(/^not checked: the authorization data, the policy and the key sources/m);
  });

  it.each([
    {
      name: "a file that is not WebAssembly",
      wasm: () => "not wasm at all",
      expected: /: not a loadable OPA WebAssembly policy/,
    },
    {
      name: "a policy without the decision entrypoint",
      wasm: () => ({ file: compile("other", "package other\n\nanswer := 1\n", "other/answer") }),
      expected: /: expected the entrypoint scitokens\/authz\/decision, found other\/answer/,
    },
    {
      name: "a policy that answers outside its contract",
      wasm: () => ({ file: compile("bad-answer", 'package scitokens.authz\n\ndecision := {"allow": "yes"}\n', "scitokens/authz/decision") }),
      expected:
        /: scitokens\/authz\/decision: expected a decision within the contract \(policies\/README\.md\) for GET \/a\/scitokens-authz-validate by https:\/\/a\.example with scope read:\/, found: the policy returned allow=yes/,
    },
  ])("refuses $name", async ({ wasm, expected }) => {
    const made = wasm();
    const bundle = typeof made === "string" ? "garbage.wasm" : made.file;
    const { config } = await fixture({
      "service.yaml": service({}, bundle),
      "data.yaml": data([{ issuer: "https://a.example", base_path: "/a" }]),
      ...(typeof made === "string" ? { "garbage.wasm": made } : {}),
    });
    const result = await validate("--config", config);
    expect(result.code, result.stdout + result.stderr).toBe(2);
    expect(result.stdout).toMatch(expected);
    expect(result.stdout).toMatch(/: 1 problem in 1 file: not valid\n$/);
  });

  it.each([
    { name: "missing", file: undefined, expected: /issuers\[0\]\.jwks_file: expected a JWKS file, found nothing at .*keys\.json$/m },
    {
      name: "not JSON",
      file: "{ not json",
      expected: /issuers\[0\]\.jwks_file: expected a JWKS \(a JSON object with a "keys" array\) in .*keys\.json, found: body is not valid JSON$/m,
    },
    { name: "that is a JSON array", file: "[]", expected: /issuers\[0\]\.jwks_file: expected a JWKS .*, found: body is not a JSON object$/m },
    { name: "without a keys array", file: '{"foo": 1}', expected: /issuers\[0\]\.jwks_file: expected a JWKS .*, found: JWKS has no "keys" array$/m },
    {
      name: "holding only private keys",
      file: "private",
      expected:
        /issuers\[0\]\.jwks_file: expected at least one usable public signing key in .*keys\.json, found none \(key 0 \(kid "[^"]+"\): private or symmetric key\)$/m,
    },
    { name: "with an empty keys array", file: '{"keys": []}', expected: /found none \(an empty keys array\)$/m },
  ])("refuses a jwks_file $name", async ({ file, expected }) => {
    const contents = file === "private" ? { keys: [{ ...(await exportJWK(key.privateKey)), kid: key.kid, alg: "ES256" }] } : file;
    const { config } = await fixture({
      "service.yaml": service(),
      "data.yaml": data([{ issuer: "https://a.example", base_path: "/a", jwks_file: "keys.json" }]),
      ...(contents !== undefined ? { "keys.json": contents } : {}),
    });
    const result = await validate("--config", config);
    expect(result.code, result.stdout + result.stderr).toBe(2);
    expect(result.stdout).toMatch(expected);
  });

  it.each([
    {
      name: "an http:// jwks_uri off loopback",
      issuer: { issuer: "https://a.example", base_path: "/a", jwks_uri: "http://keys.example/jwks" },
      key: "jwks_uri",
      expected: /expected an https:\/\/ URL/,
    },
    {
      name: "an http:// issuer off loopback (discovery)",
      issuer: { issuer: "http://a.example", base_path: "/a" },
      key: "issuer",
      expected: /OIDC discovery needs an https:\/\/ issuer/,
    },
  ])("refuses $name", async ({ issuer, key: field, expected }) => {
    const { config } = await fixture({ "service.yaml": service(), "data.yaml": data([issuer]) });
    const result = await validate("--config", config);
    expect(result.code).toBe(2);
    expect(result.stdout).toMatch(new RegExp(`data\\.yaml: issuers\\[0\\]\\.${field}: ${expected.source}`));
  });

  it("refuses a keys.cache_dir that is not a folder, still checking the rest", async () => {
    const { folder, config } = await fixture({
      "service.yaml": service({ keys: { cache_dir: "cache" } }),
      "data.yaml": data([{ issuer: "https://a.example", base_path: "/a" }]),
      cache: "a file",
    });
    const result = await validate("--config", config);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain(`${config}: keys.cache_dir: expected a folder, found ${join(folder, "cache")} is not one`);
    expect(result.stdout).toMatch(/1 problem in 1 file: not valid/);
  });

  it.each([
    [
      "a folder that does not exist",
      "missing/decisions.jsonl",
      {},
      /log\.decisions\.file: expected a file in an existing folder, found no folder .*missing \(the service does not create it\)/,
    ],
    ["a folder, not a file", ".", {}, /log\.decisions\.file: expected a regular file, found .*case-\d+ is not one/],
  ])("refuses a decision log in %s", async (_name, file, extra, expected) => {
    const { config } = await fixture({
      "service.yaml": service({ log: { decisions: { file } } }),
      "data.yaml": data([{ issuer: "https://a.example", base_path: "/a" }]),
      ...extra,
    });
    const result = await validate("--config", config);
    expect(result.code).toBe(2);
    expect(result.stdout).toMatch(expected);
    expect(result.stdout).toMatch(/1 problem in 1 file: not valid/);
  });

  it("accepts a decision log in an existing folder", async () => {
    const { config } = await fixture({
      "service.yaml": service({ log: { decisions: { file: "decisions.jsonl" } } }),
      "data.yaml": data([{ issuer: "https://a.example", base_path: "/a" }]),
    });
    const result = await validate("--config", config);
    expect(result.code).toBe(0);
  });

  it("checks the data's jwks_file even when another key of the data is not valid", async () => {
    const { config } = await fixture({
      "service.yaml": service(),
      "data.yaml": data([{ issuer: "https://a.example", base_path: "/a", jwks_file: "gone.json" }], { on_missing: "maybe" }),
    });
    const result = await validate("--config", config);
    expect(result.code).toBe(2);
    expect(result.stdout).toMatch(/data\.yaml: on_missing: /);
    expect(result.stdout).toMatch(/data\.yaml: issuers\[0\]\.jwks_file: expected a JWKS file, found nothing/);
    expect(result.stdout).toMatch(/^not checked: the policy's answers \(the authorization data is not valid\)$/m);
  });
});

describe("scitokens-authz validate: README", () => {
  it("prints the README's example problems as the README shows them", async () => {
    const readme = await readFile(join(PACKAGE_ROOT, "README.md"), "utf8");
    const example = /```\n(\/etc\/scitokens-authz\/[^`]*?scitokens-authz validate: [^`]*?)```/.exec(readme)?.[1];
    expect(example).toBeDefined();
    const { folder, config } = await fixture({
      "service.yaml": service({ tokens: { leeway_seconds: -1 } }, compile("readme", "package other\n\nanswer := 1\n", "other/answer")),
      "data.yaml": data([
        { issuer: "https://a.example", base_path: "/a" },
        { issuer: "https://tokens.example.org", base_path: "/data", jwks_file: "keys/tokens.jwks.json" },
      ]),
    });
    const result = await validate("--config", config);
    expect(result.code).toBe(2);
    const expected = example!
      .replaceAll("/etc/scitokens-authz/service.yaml", config)
      .replaceAll("/etc/scitokens-authz/authz.yaml", join(folder, "data.yaml"))
      .replaceAll("/etc/scitokens-authz/policy.wasm", join(dir, "rego-readme", "policy.wasm"))
      .replaceAll("/etc/scitokens-authz/", `${folder}/`);
    expect(result.stdout).toBe(expected);
  });
});

describe("scitokens-authz validate: offline", () => {
  let issuer: OidcServer;
  beforeAll(async () => {
    issuer = await startOidcServer({ keys: [key] });
  });
  afterAll(async () => {
    await issuer?.close();
  });

  it("never contacts an issuer it names, by discovery or jwks_uri", async () => {
    const { config } = await fixture({
      "service.yaml": service(),
      "data.yaml": data([
        { issuer: issuer.issuer, base_path: "/a" },
        { issuer: `${issuer.url}/other`, base_path: "/b", jwks_uri: issuer.jwksUri },
      ]),
    });
    const result = await validate("--config", config);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain(`${issuer.issuer}: keys by OIDC discovery (not fetched)`);
    expect(issuer.requests).toEqual([]);
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
