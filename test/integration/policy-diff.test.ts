import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { policyDiff } from "../../src/cli/policy-diff.js";
import { PACKAGE_ROOT } from "../../src/config/service-config.js";
import { CLI } from "../helpers/cli-process.js";

// `scitokens-authz policy diff` on a fixture pair of policies: the same Rego with data
// that differs in one audience and one base path. Exactly the requests those decide flip.

const run = promisify(execFile);
const FIXTURES = join(PACKAGE_ROOT, "test", "fixtures", "policy-diff");
const TABLE = join(FIXTURES, "table.yaml");
const LOG = join(FIXTURES, "decisions.jsonl");

let dir: string;
let base: string;
let head: string;

/** A checkout-like folder: policies/*.rego of this repository and `data` as policies/demo.yaml. */
async function side(name: string, data: string): Promise<string> {
  const root = join(dir, name);
  await mkdir(join(root, "policies"), { recursive: true });
  for (const file of await readdir(join(PACKAGE_ROOT, "policies"))) {
    if (file.endsWith(".rego")) await copyFile(join(PACKAGE_ROOT, "policies", file), join(root, "policies", file));
  }
  await copyFile(join(FIXTURES, data), join(root, "policies", "demo.yaml"));
  return root;
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, "policy", "diff", ...args], { cwd: PACKAGE_ROOT });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-authz-policy-diff-test-"));
  base = await side("base", "base.yaml");
  head = await side("head", "head.yaml");
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const AUDIENCE_FLIP = { from: { decision: "allow", reason: "allowed", status: 200 }, to: { decision: "deny", reason: "audience_mismatch", status: 401 } };
const BASE_PATH_FLIP = { from: { decision: "allow", reason: "allowed", status: 200 }, to: { decision: "deny", reason: "path_outside_base", status: 403 } };

describe("policy diff", () => {
  it("reports exactly the decisions a table's requests flip", async () => {
    const report = await policyDiff({ base, head, requests: TABLE });
    expect(report.requests).toBe(7);
    expect(report.changed).toBe(2);
    expect(report.changes.map((c) => ({ from: c.from, to: c.to, count: c.count, names: c.examples.map((e) => e.name) }))).toEqual(
      expect.arrayContaining([
        { ...AUDIENCE_FLIP, count: 1, names: ["old audience"] },
        { ...BASE_PATH_FLIP, count: 1, names: ["archive read"] },
      ]),
    );
    expect(report.changes).toHaveLength(2);
    expect(report.unmetExpectations).toEqual([]);
  });

  it("reports exactly the decisions a decision log's requests flip, and skips what the policy never saw", async () => {
    const report = await policyDiff({ base, head, requests: LOG });
    expect(report.requests).toBe(7);
    expect(report.notEvaluated).toBe(1);
    expect(report.changed).toBe(3);
    const byReason = Object.fromEntries(report.changes.map((c) => [c.to.reason, { count: c.count, names: c.examples.map((e) => e.name) }]));
    expect(byReason).toEqual({ path_outside_base: { count: 2, names: ["d-3", "d-4"] }, audience_mismatch: { count: 1, names: ["d-2"] } });
  });

  it.each([
    ["table", TABLE],
    ["decision log", LOG],
  ])("reports nothing for identical sides (%s)", async (_name, requests) => {
    const report = await policyDiff({ base, head: base, requests });
    expect(report.changed).toBe(0);
    expect(report.changes).toEqual([]);
  });

  it("names expectations the head policy does not meet", async () => {
    const table = join(dir, "expect.yaml");
    await writeFile(
      table,
      stringify([
        {
          name: "archive stays readable",
          request: { method: "GET", path: "/archive/2019/b.txt" },
          token: { iss: "https://issuer.example.org", aud: "https://storage.example.org", scope: "read:/2019" },
          expect: "allowed",
        },
      ]),
    );
    expect((await policyDiff({ base, head: base, requests: table })).unmetExpectations).toEqual([]);
    const report = await policyDiff({ base, head, requests: table });
    expect(report.unmetExpectations).toEqual([{ name: "archive stays readable", expected: "allowed", got: "path_outside_base" }]);
    const { code, stdout } = await cli(["--base", base, "--head", base, "--requests", table]);
    expect([code, stdout.includes("expectations the head policy does not meet")]).toEqual([0, false]);
  });
});

describe("policy diff through the built CLI", () => {
  it("prints each change with its count and examples and exits 1", async () => {
    const { code, stdout } = await cli(["--base", base, "--head", head, "--requests", TABLE]);
    expect(code).toBe(1);
    expect(stdout).toContain("7 requests re-evaluated; 2 decisions change");
    expect(stdout).toContain("allow allowed → deny audience_mismatch (401): 1");
    expect(stdout).toContain("allow allowed → deny path_outside_base (403): 1");
    expect(stdout).toContain("GET /archive/2019/b.txt");
  });

  it("exits 0 for identical sides, with --json", async () => {
    const { code, stdout } = await cli(["--base", base, "--head", base, "--requests", LOG, "--json"]);
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as Record<string, unknown>;
    expect(report).toMatchObject({ requests: 7, not_evaluated: 1, changed: 0, changes: [] });
  });

  it("takes a side from a git revision (policies/ and the data at HEAD)", async () => {
    const { code, stdout } = await cli(["--base", "HEAD", "--head", "HEAD", "--requests", LOG, "--json"]);
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as { base: { commit: string; data: string } };
    expect(report.base.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(report.base.data).toBe("HEAD:policies/demo.yaml");
  });

  it("uses --data relative to each side", async () => {
    const { code, stdout } = await cli(["--base", base, "--head", head, "--data", "policies/demo.yaml", "--requests", LOG]);
    expect(code).toBe(1);
    expect(stdout).toContain("3 decisions change");
  });

  it.each([
    [
      "a side that is neither a folder nor a revision",
      ["--base", "no-such-revision-or-folder", "--head", "HEAD", "--requests", TABLE],
      /neither a folder nor a git revision/,
    ],
    ["a missing option", ["--base", "HEAD", "--requests", TABLE], /--head is required/],
    ["a missing request file", ["--base", "HEAD", "--head", "HEAD", "--requests", join(FIXTURES, "missing.yaml")], /cannot be read/],
    ["a request file that is not a table", ["--base", "HEAD", "--head", "HEAD", "--requests", join(FIXTURES, "base.yaml")], /expected a decision table/],
    ["a data file a side lacks", ["--base", "HEAD", "--head", "HEAD", "--data", "policies/none.yaml", "--requests", TABLE], /does not exist at/],
  ])("exits 2 on %s", async (_name, args, message) => {
    const { code, stderr } = await cli(args);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
  });
});
