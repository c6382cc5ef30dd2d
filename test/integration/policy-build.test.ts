import { execFileSync } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { bundleRevision } from "../../src/bundle/snapshot.js";
import { PACKAGE_ROOT } from "../../src/config/service-config.js";
import { repack, signingKeyFiles, unpack } from "../helpers/bundles.js";
import { runCli } from "../helpers/cli-process.js";

// Issue 7, `scitokens-authz policy build` as an operator runs it (the built CLI in a child
// process, in a git repository of their own): an OPA bundle whose .manifest revision is
// the git commit, signed with OPA when asked; then `validate` and `explain` on a service
// config that names the bundle.

const cli = runCli;

const git = (cwd: string, ...args: string[]) =>
  execFileSync("git", ["-c", "user.name=test", "-c", "user.email=test@example.org", "-c", "commit.gpgsign=false", ...args], { cwd, encoding: "utf8" }).trim();

const DATA = {
  audiences: ["https://storage.example.org"],
  issuers: [{ issuer: "https://issuer.example.org", base_path: "/data", jwks_file: "keys/issuer.jwks.json" }],
};

let repo: string;

beforeAll(async () => {
  repo = await mkdtemp(join(tmpdir(), "scitokens-authz-policy-build-"));
  await mkdir(join(repo, "policies"));
  await copyFile(join(PACKAGE_ROOT, "policies", "authz.rego"), join(repo, "policies", "authz.rego"));
  await writeFile(join(repo, "policies", "data.yaml"), stringify(DATA));
  git(repo, "init", "-q");
  git(repo, "add", ".");
  git(repo, "commit", "-qm", "site policy");
});

afterAll(async () => {
  if (repo) await rm(repo, { recursive: true, force: true });
});

describe("policy build", () => {
  it("writes build/bundle.tar.gz: the WASM, the Rego, the data and a manifest whose revision is the commit", async () => {
    const run = await cli(repo, "policy", "build");
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const commit = git(repo, "rev-parse", "HEAD");
    const bytes = await readFile(join(repo, "build", "bundle.tar.gz"));
    expect(run.stdout).toContain(`wrote ${join(repo, "build", "bundle.tar.gz")}`);
    expect(run.stdout).toContain(`revision         ${commit} (.manifest)`);
    expect(run.stdout).toContain(`policy_revision  ${bundleRevision(bytes)}`);
    expect(run.stdout).toContain("signature        none");
    const files = await unpack(bytes);
    expect([...files.keys()].sort()).toEqual(["/.manifest", "/data.json", "/policy.wasm", "/policy/authz.rego"]);
    expect(JSON.parse(files.get("/.manifest")!.toString())).toMatchObject({
      revision: commit,
      roots: ["scitokens"],
      wasm: [{ entrypoint: "scitokens/authz/decision", module: "/policy.wasm" }],
    });
    expect(JSON.parse(files.get("/data.json")!.toString())).toEqual({ scitokens: { data: DATA } });
  });

  it("marks the revision -dirty when the policy folder has uncommitted changes, and takes --revision", async () => {
    await writeFile(join(repo, "policies", "data.yaml"), stringify({ ...DATA, audiences: ["ANY"] }));
    try {
      const dirty = await cli(repo, "policy", "build", "--output", "dirty.tar.gz", "--json");
      expect(dirty.code).toBe(0);
      expect(JSON.parse(dirty.stdout)).toMatchObject({ revision: `${git(repo, "rev-parse", "HEAD")}-dirty` });
      const named = await cli(repo, "policy", "build", "--output", "named.tar.gz", "--revision", "v1.2.3", "--json");
      expect(JSON.parse(named.stdout)).toMatchObject({ revision: "v1.2.3" });
    } finally {
      git(repo, "checkout", "--", "policies/data.yaml");
    }
  });

  it.each<[string, (dir: string) => Promise<string[]>, RegExp]>([
    [
      "outside git without --revision",
      async (dir) => [join(dir, "policies")],
      /not in a git repository with a commit; give the bundle's revision with --revision/,
    ],
    [
      "data that is not valid",
      async (dir) => {
        await writeFile(join(dir, "policies", "data.yaml"), stringify({ audiences: ["x"], issuers: [{ issuer: "https://i.example.org", base_path: "data" }] }));
        return [join(dir, "policies"), "--revision", "x"];
      },
      /data\.yaml: issuers\[0\]\.base_path: expected an absolute path like "\/data"/,
    ],
    [
      "Rego that does not compile",
      async (dir) => {
        await writeFile(join(dir, "policies", "site.rego"), "package scitokens.site\n\nallow if {\n");
        return [join(dir, "policies"), "--revision", "x"];
      },
      /the policy does not build: .*site\.rego/,
    ],
  ])("refuses %s (exit 2)", async (_name, prepare, expected) => {
    const dir = await mkdtemp(join(tmpdir(), "scitokens-authz-policy-build-bad-"));
    try {
      await mkdir(join(dir, "policies"));
      await copyFile(join(PACKAGE_ROOT, "policies", "authz.rego"), join(dir, "policies", "authz.rego"));
      await writeFile(join(dir, "policies", "data.yaml"), stringify(DATA));
      const run = await cli(dir, "policy", "build", ...(await prepare(dir)));
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(expected);
      expect(run.stdout).toBe("");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("validate and explain on a signed bundle", () => {
  let site: string;

  beforeAll(async () => {
    site = await mkdtemp(join(tmpdir(), "scitokens-authz-bundle-site-"));
    const keys = await signingKeyFiles(site, "ci");
    await mkdir(join(site, "keys"));
    await writeFile(join(site, "keys", "issuer.jwks.json"), JSON.stringify({ keys: [] }));
    const built = await cli(repo, "policy", "build", "--output", join(site, "bundle.tar.gz"), "--signing-key", keys.privateKey);
    expect(built.stdout).toContain('signature        RS256, key id "default"');
    const service = {
      grpc: { listen: "127.0.0.1:0" },
      policy: { bundle: { file: "bundle.tar.gz", signing: { keys: { default: { algorithm: "RS256", key_file: "ci.pub.pem" } } } } },
    };
    await writeFile(join(site, "service.yaml"), stringify(service));
    await writeFile(
      join(site, "tampered.tar.gz"),
      await repack(await readFile(join(site, "bundle.tar.gz")), (files) =>
        files.set("/data.json", Buffer.from(JSON.stringify({ scitokens: { data: { ...DATA, audiences: ["ANY"] } } }))),
      ),
    );
    await writeFile(join(site, "tampered.yaml"), stringify({ ...service, policy: { bundle: { ...service.policy.bundle, file: "tampered.tar.gz" } } }));
  });

  afterAll(async () => {
    if (site) await rm(site, { recursive: true, force: true });
  });

  it("validate checks the bundle as serve would: the signature, the data inside and the policy", async () => {
    const run = await cli(site, "validate", "--config", "service.yaml");
    const bytes = await readFile(join(site, "bundle.tar.gz"));
    expect(run.code).toBe(2);
    // The issuer's jwks_file resolves against the service config's folder and is empty.
    expect(run.stdout).toContain(`${join(site, "bundle.tar.gz")}#scitokens/data/data.json: issuers[0].jwks_file: `);
    await writeFile(
      join(site, "keys", "issuer.jwks.json"),
      JSON.stringify({
        keys: [
          {
            kty: "EC",
            crv: "P-256",
            kid: "k",
            use: "sig",
            alg: "ES256",
            x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
          },
        ],
      }),
    );
    const valid = await cli(site, "validate", "--config", "service.yaml");
    expect(valid.stderr).toBe("");
    expect(valid.code).toBe(0);
    expect(valid.stdout).toContain(`  policy     ${join(site, "bundle.tar.gz")}#policy.wasm`);
    expect(valid.stdout).toContain(`  bundle     revision ${git(repo, "rev-parse", "HEAD")}, signature verified`);
    expect(valid.stdout).toContain(`  revision   ${bundleRevision(bytes)}`);
    const tampered = await cli(site, "validate", "--config", "tampered.yaml");
    expect(tampered.code).toBe(2);
    expect(tampered.stdout).toContain(`${join(site, "tampered.tar.gz")}: signature: data.json: digest mismatch: the file is not the one that was signed`);
  });

  it("explain decides with the bundle's policy and data", async () => {
    const run = await cli(site, "explain", "--config", "service.yaml", "--no-token", "--method", "GET", "--path", "/data/file", "--json");
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ allow: false, reason: "token_missing" });
  });
});
