import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PACKAGE_ROOT } from "../../src/config/service-config.js";
import { CLI } from "../helpers/cli-process.js";

// `scitokens-authz policy test` through the built CLI: decision tables of
// test/fixtures/policy-test/ against the shipped policy and a site policy folder.

const run = promisify(execFile);
const FIXTURES = join(PACKAGE_ROOT, "test", "fixtures", "policy-test");

let dir: string;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, "policy", "test", ...args], { cwd: PACKAGE_ROOT });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A site policy folder as an operator keeps it: authz.rego, site.rego, data.yaml and a table. */
async function groupWriteDir(): Promise<string> {
  const site = join(dir, "group-write");
  await mkdir(site, { recursive: true });
  await copyFile(join(PACKAGE_ROOT, "policies", "authz.rego"), join(site, "authz.rego"));
  await copyFile(join(PACKAGE_ROOT, "examples", "site", "group-write", "site.rego"), join(site, "site.rego"));
  await copyFile(join(FIXTURES, "group-write-data.yaml"), join(site, "data.yaml"));
  await copyFile(join(FIXTURES, "group-write.tests.yaml"), join(site, "group-write.tests.yaml"));
  return site;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-authz-policy-test-test-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("policy test through the built CLI", () => {
  it("passes a table the shipped policy meets (policies/ with demo.yaml by default) and exits 0", async () => {
    const { code, stdout } = await cli(["--tables", join(FIXTURES, "demo.tests.yaml")]);
    expect({ code, stdout }).toEqual({ code: 0, stdout: "5 passed, 0 failed\n" });
  });

  it("reports a failing case with what was expected and what it got, and exits 1", async () => {
    const { code, stdout } = await cli(["policies", "--tables", join(FIXTURES, "failing.yaml")]);
    expect(code).toBe(1);
    expect(stdout).toMatch(/^FAIL archive write \[.*failing\.yaml\]: expected allow allowed, got deny scope_insufficient \(403\)$/m);
    expect(stdout.trimEnd().split("\n")).toHaveLength(2);
    expect(stdout).toContain("2 passed, 1 failed");
  });

  it("gives the failures as JSON with --json", async () => {
    const { code, stdout } = await cli(["--tables", join(FIXTURES, "failing.yaml"), "--json"]);
    expect(code).toBe(1);
    const report = JSON.parse(stdout) as { passed: number; failed: number; failures: unknown[] };
    expect(report).toMatchObject({
      passed: 2,
      failed: 1,
      failures: [
        {
          name: "archive write",
          expected: { decision: "allow", reason: "allowed", status: null },
          got: { decision: "deny", reason: "scope_insufficient", status: 403 },
        },
      ],
    });
  });

  it("passes a site policy folder (group-write: group_required and the group grant) with its DIR/data.yaml and DIR/*.tests.yaml", async () => {
    const site = await groupWriteDir();
    const { code, stdout, stderr } = await cli([site]);
    expect({ code, stdout, stderr }).toEqual({ code: 0, stdout: "5 passed, 0 failed\n", stderr: "" });
    const globbed = await cli([site, "--data", join(site, "data.yaml"), "--tables", join(site, "*.tests.yaml")]);
    expect([globbed.code, globbed.stdout]).toEqual([0, "5 passed, 0 failed\n"]);
    // Without the site Rego the group grant and group_required are gone.
    const bare = join(dir, "bare");
    await mkdir(bare, { recursive: true });
    await copyFile(join(PACKAGE_ROOT, "policies", "authz.rego"), join(bare, "authz.rego"));
    const without = await cli([bare, "--data", join(site, "data.yaml"), "--tables", join(site, "group-write.tests.yaml")]);
    expect(without.code).toBe(1);
    expect(without.stdout).toContain("3 passed, 2 failed");
  });

  it.each<[string, () => Promise<string[]>, RegExp]>([
    ["a folder that does not exist", async () => [join(dir, "missing")], /not a folder/],
    ["no tables in DIR", async () => ["policies"], /no decision tables/],
    ["a table file that does not exist", async () => ["--tables", join(dir, "nope.yaml")], /no such file/],
    [
      "a data file that does not exist",
      async () => ["--data", join(dir, "nope.yaml"), "--tables", join(FIXTURES, "demo.tests.yaml")],
      /--data .*: no such file/,
    ],
    [
      "a case without expect",
      async () => {
        const table = join(dir, "no-expect.yaml");
        await writeFile(table, "- name: read\n  request: { method: GET, path: /protected/a }\n");
        return ["--tables", table];
      },
      /read: no expect/,
    ],
    [
      "an entry that is not a table entry",
      async () => {
        const table = join(dir, "bad.yaml");
        await writeFile(table, "- name: read\n  request: { path: /protected/a }\n  expect: allowed\n");
        return ["--tables", table];
      },
      /request\.method/,
    ],
    [
      "a policy that does not compile",
      async () => {
        const broken = join(dir, "broken");
        await mkdir(broken, { recursive: true });
        await copyFile(join(PACKAGE_ROOT, "policies", "authz.rego"), join(broken, "authz.rego"));
        await writeFile(join(broken, "site.rego"), "package scitokens.site\n\ndeny contains x if {\n");
        return [broken, "--data", join(PACKAGE_ROOT, "policies", "demo.yaml"), "--tables", join(FIXTURES, "demo.tests.yaml")];
      },
      // OPA's own reason, with the file and line (OPA prints it on stdout).
      /does not compile: .*site\.rego:4: rego_parse_error: unexpected eof token/s,
    ],
    ["an unknown option", async () => ["--table", "x.yaml"], /Unknown option/],
  ])("exits 2 on bad input: %s", async (_name, args, message) => {
    const { code, stdout, stderr } = await cli(await args());
    expect({ code, stdout }).toEqual({ code: 2, stdout: "" });
    expect(stderr).toMatch(message);
  });
});
