import { execFile } from "node:child_process";
import { copyFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { type AuthzData, parseAuthzData } from "../../src/config/authz-data.js";
import { PACKAGE_ROOT } from "../../src/config/service-config.js";
import { CLI } from "../helpers/cli-process.js";

// Issue 9, migration helpers: `scitokens-authz import nginx-scitokens|xrootd FILE` as an
// operator runs it (the built CLI in a child process, in the fixtures folder so that the
// report names the files as given). The YAML on stdout must be data the service accepts
// (its own parser), with comments naming each value's origin; stderr reports each setting.

const FIXTURES = join(PACKAGE_ROOT, "test", "fixtures", "import");
const execFileAsync = promisify(execFile);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(...args: string[]): Promise<Run> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI, "import", ...args], { cwd: FIXTURES });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof e.code !== "number") throw error;
    return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

/** The printed YAML as the service reads it. */
function asData(yaml: string): AuthzData {
  return parseAuthzData(join(FIXTURES, "imported.yaml"), parse(yaml));
}

const lines = (text: string) => text.split("\n").filter((line) => line !== "");

let runs: Record<string, Run>;
let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "scitokens-authz-import-"));
  const cases: Record<string, string[]> = {
    nginxSeed: ["nginx-scitokens", "nginx-scitokens/authorizer.cfg"],
    nginxTwo: ["nginx-scitokens", "nginx-scitokens/two-issuers.cfg"],
    xrootdReadme: ["xrootd", "xrootd/scitokens.cfg"],
    xrootdTwo: ["xrootd", "xrootd/two-issuers.cfg"],
    xrootdSite: ["xrootd", "xrootd/site.cfg"],
    xrootdUnknown: ["xrootd", "xrootd/unknown-key.cfg"],
    xrootdRepeated: ["xrootd", "xrootd/repeated.cfg"],
    xrootdSkipped: ["xrootd", "xrootd/skipped.cfg"],
    nginxDefaults: ["nginx-scitokens", "nginx-scitokens/defaults.cfg"],
  };
  const done = await Promise.all(Object.entries(cases).map(async ([name, args]) => [name, await cli(...args)] as const));
  runs = Object.fromEntries(done);
});

afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("import nginx-scitokens: the seed's authorizer.cfg", () => {
  it("prints authorization data the service accepts, with each value's origin as a comment", () => {
    const run = runs["nginxSeed"]!;
    expect(run.code).toBe(0);
    const data = asData(run.stdout);
    expect(data.policyData["audiences"]).toEqual(["testing"]);
    expect([...data.issuers.values()].map((i) => [i.issuer, i.basePaths])).toEqual([["https://demo.scitokens.org", ["/protected"]]]);
    expect(data.onMissing).toBe("deny");
    expect(data.onInvalid).toBe("deny");
    expect(run.stdout).toContain("audiences: [testing] # authorizer.cfg:2 [Global] audience\n");
    expect(run.stdout).toContain("  # authorizer.cfg:4 [Issuer OSG-Demo]\n  - issuer: https://demo.scitokens.org # authorizer.cfg:6 issuer\n");
    expect(run.stdout).toContain("    base_path: /protected # authorizer.cfg:7 base_path\n");
  });

  it("reports what each setting became, in the order of the file, then a summary", () => {
    expect(lines(runs["nginxSeed"]!.stderr)).toEqual([
      "nginx-scitokens/authorizer.cfg:2: [Global] audience: became audiences: [testing]; nginx-scitokens also accepts SciTokens 1 tokens without aud, which are refused here (docs/semantics.md §5)",
      "nginx-scitokens/authorizer.cfg:4: [Issuer OSG-Demo]: became issuers[0] (the section name is kept as a comment)",
      "nginx-scitokens/authorizer.cfg:6: [Issuer OSG-Demo] issuer: became issuers[0].issuer: https://demo.scitokens.org",
      "nginx-scitokens/authorizer.cfg:7: [Issuer OSG-Demo] base_path: became issuers[0].base_path: /protected (scope paths stay relative to it, as in nginx-scitokens)",
      "nginx-scitokens/authorizer.cfg: (no token): became on_missing: deny: nginx-scitokens answers 401 to a request without a token, as the service does",
      "nginx-scitokens/authorizer.cfg: (unusable token): became on_invalid: deny: nginx-scitokens answers 401 to a token it cannot verify (wrong audience included), as the service does",
      expect.stringMatching(
        /^nginx-scitokens\/authorizer\.cfg: \(methods\): note: nginx-scitokens asks for read on GET and for write on PUT, POST, DELETE, MKCOL, COPY and MOVE/,
      ),
      "scitokens-authz import nginx-scitokens: wrote the authorization data to stdout: 1 issuer; 6 became authorization data, 0 without equivalent, 0 not imported, 1 note",
    ]);
  });
});

describe("import xrootd: the example scitokens.cfg of XRootD's README", () => {
  it("prints the issuer and audience, and leaves the identity mapping to the upstream", () => {
    const run = runs["xrootdReadme"]!;
    expect(run.code).toBe(0);
    const data = asData(run.stdout);
    expect(data.policyData["audiences"]).toEqual(["test_server"]);
    expect([...data.issuers.values()].map((i) => [i.issuer, i.basePaths, i.restrictedPaths])).toEqual([
      ["https://scitokens.org/osg-connect", ["/stash"], null],
    ]);
    expect(run.stdout).not.toMatch(/osg\b(?!-connect)|mapfile|map_subject/);
    expect(run.stdout).toContain("on_missing: deny # scitokens.cfg sets no [Global] onmissing; XRootD's default passthrough denies when no plugin follows\n");
  });

  it.each([
    ["xrootd/scitokens.cfg:8: [Issuer OSG-Connect] map_subject: no equivalent: XRootD made the token's sub the request's username"],
    ['xrootd/scitokens.cfg:9: [Issuer OSG-Connect] default_user: no equivalent: XRootD ran the requests this issuer\'s scopes authorized as Unix user "osg"'],
    [
      "xrootd/scitokens.cfg:10: [Issuer OSG-Connect] name_mapfile: no equivalent: the mapfile's rules (sub, username, group, path to a username) are not read here",
    ],
  ])("reports %s, naming the identity headers the upstream gets instead", (start) => {
    const line = lines(runs["xrootdReadme"]!.stderr).find((l) => l.startsWith(start));
    expect(line).toBeDefined();
    expect(line).toContain("it gets x-scitokens-subject (sub, or the username_claim), x-scitokens-issuer and x-scitokens-groups (wlcg.groups) instead");
  });

  it.each([
    ["xrootd/scitokens.cfg:2: [Global] audience: became audiences: [test_server]"],
    ["xrootd/scitokens.cfg:7: [Issuer OSG-Connect] base_path: became issuers[0].base_path: /stash"],
    [
      "xrootd/scitokens.cfg: [Global] onmissing (not set): became on_missing: deny and on_invalid: deny: XRootD's default, passthrough, asks the next authorization plugin (ofs.authlib ++) and denies when there is none; deny is the safe reading. Where the upstream authorizes requests by other means, set on_missing and on_invalid to passthrough",
    ],
    [
      "scitokens-authz import xrootd: wrote the authorization data to stdout: 1 issuer; 5 became authorization data, 4 without equivalent, 0 not imported, 2 notes",
    ],
  ])("reports %s", (line) => {
    expect(lines(runs["xrootdReadme"]!.stderr)).toContain(line);
  });
});

describe("several issuers", () => {
  it.each([
    [
      "nginxTwo",
      [
        ["https://demo.scitokens.org", ["/protected"]],
        ["https://cilogon.org/igwn", ["/igwn"]],
      ],
    ],
    [
      "xrootdTwo",
      [
        ["https://scitokens.org/osg-connect", ["/stash"]],
        ["https://scitokens.org/cms", ["/user/cms"]],
      ],
    ],
  ])("%s: one entry per section, in file order", (name, expected) => {
    const run = runs[name]!;
    expect(run.code).toBe(0);
    expect([...asData(run.stdout).issuers.values()].map((i) => [i.issuer, i.basePaths])).toEqual(expected);
    expect(run.stdout).toMatch(/# two-issuers\.cfg:4 \[Issuer OSG-Demo\]|# two-issuers\.cfg:1 \[Issuer OSG-Connect\]/);
  });

  it("XRootD's map_subject off has nothing to carry over; on goes to the upstream", () => {
    const report = lines(runs["xrootdTwo"]!.stderr);
    expect(report).toContain(
      "xrootd/two-issuers.cfg:11: [Issuer CMS] map_subject: no equivalent: map_subject off is XRootD's default (no username from sub); nothing to carry over",
    );
    expect(report.find((l) => l.startsWith("xrootd/two-issuers.cfg:5: [Issuer OSG-Connect] map_subject: no equivalent:"))).toBeDefined();
  });

  it("XRootD without an audience becomes an empty list (tokens without aud only), and says so", () => {
    const run = runs["xrootdTwo"]!;
    expect(asData(run.stdout).policyData["audiences"]).toEqual([]);
    expect(lines(run.stderr)).toContain(
      "xrootd/two-issuers.cfg: [Global] audience (not set): became audiences: []: without an audience XRootD accepts only tokens without aud; here that admits SciTokens 1 tokens only (SciTokens 2 and WLCG tokens always carry aud): list this server's audience",
    );
  });

  it("a repeated section counts once with its last values, as XRootD reads it (its README's example)", () => {
    const run = runs["xrootdRepeated"]!;
    expect(run.code).toBe(0);
    expect([...asData(run.stdout).issuers.values()].map((i) => [i.issuer, i.basePaths])).toEqual([["https://chtc.cs.wisc.edu/icecube", ["/icecube/path2"]]]);
    expect(lines(run.stderr)).toContain(
      "xrootd/repeated.cfg:3: [Issuer https://chtc.cs.wisc.edu/icecube] base_path: not imported: set again at line 7, and the last value counts (as in XRootD)",
    );
  });
});

describe("audience lists, restricted paths, onmissing and the authorization strategy (xrootd/site.cfg)", () => {
  it("splits audience at commas and spaces, adds audience_json's list, and keeps restricted_path", () => {
    const run = runs["xrootdSite"]!;
    expect(run.code).toBe(0);
    const data = asData(run.stdout);
    expect(data.policyData["audiences"]).toEqual([
      "https://xrootd.example.org",
      "xrootd.example.org",
      "https://xrootd.example.org:1094",
      "a site, with a comma",
    ]);
    const issuer = data.issuers.get("https://cms-auth.web.cern.ch/")!;
    expect(issuer.basePaths).toEqual(["/store", "/store-test"]);
    expect(issuer.restrictedPaths).toEqual(["/user", "/group"]);
    expect(data.defaultRoute.usernameClaim).toBe("preferred_username");
    expect(data.onMissing).toBe("passthrough");
    expect(data.onInvalid).toBe("passthrough");
    expect(run.stdout).toContain("    restricted_path: [/user, /group] # site.cfg:9 restricted_path\n");
    expect(run.stdout).toContain("on_missing: passthrough # site.cfg:4 [Global] onmissing = passthrough\n");
  });

  it("does not import an issuer whose tokens XRootD never authorized by scope", () => {
    const run = runs["xrootdSite"]!;
    expect(asData(run.stdout).issuers.has("https://wlcg.example.org")).toBe(false);
    expect(lines(run.stderr)).toContain(
      'xrootd/site.cfg:16: [Issuer groups-only]: not imported: authorization_strategy "group" leaves out capability, so XRootD never authorized this issuer\'s tokens by their scopes; here only scopes authorize, so importing it would grant what XRootD did not',
    );
  });

  it.each([
    ["xrootd/site.cfg:2: [Global] audience: became audiences: [https://xrootd.example.org, xrootd.example.org] (split at commas and spaces, as XRootD does)"],
    [
      'xrootd/site.cfg:3: [Global] audience_json: became audiences: [https://xrootd.example.org:1094, "a site, with a comma"] (XRootD accepts the audiences of both audience and audience_json)',
    ],
    [
      "xrootd/site.cfg:9: [Issuer https://cms-auth.web.cern.ch/] restricted_path: became issuers[0].restricted_path: [/user, /group] (relative to the base path, as in XRootD)",
    ],
    [
      "xrootd/site.cfg:10: [Issuer https://cms-auth.web.cern.ch/] username_claim: became username_claim: preferred_username (top level; it names the claim sent upstream as x-scitokens-subject, and never authorizes)",
    ],
  ])("reports %s", (line) => {
    expect(lines(runs["xrootdSite"]!.stderr)).toContain(line);
  });

  it("onmissing = passthrough says what the upstream must now decide", () => {
    const line = lines(runs["xrootdSite"]!.stderr).find((l) => l.startsWith("xrootd/site.cfg:4: [Global] onmissing: "));
    expect(line).toMatch(
      /became on_missing: passthrough and on_invalid: passthrough: .*the upstream must authorize them.*A valid token whose scopes do not grant the request is 403 here/,
    );
  });
});

describe("read as the source reads it", () => {
  it("XRootD keeps only the last line of a continued value; an issuer it cannot use here, or without its restriction, is left out", () => {
    const run = runs["xrootdSkipped"]!;
    expect(run.code).toBe(0);
    expect([...asData(run.stdout).issuers.values()].map((i) => [i.issuer, i.basePaths])).toEqual([["https://kept.example.org", ["/data2"]]]);
    const report = lines(run.stderr);
    expect(report).toContain(
      "xrootd/skipped.cfg:6: [Issuer kept] base_path: became issuers[0].base_path: /data2 (continued on line 7: XRootD's reader keeps only the last line)",
    );
    expect(report).toContain(
      'xrootd/skipped.cfg:10: [Issuer plain-http]: not imported: issuer "http://insecure.example.org": keys are found here by OIDC discovery over HTTPS only (http:// only on loopback); to use it, add it by hand with a jwks_file',
    );
    expect(report).toContain(
      "xrootd/skipped.cfg:16: [Issuer unusable-restriction]: not imported: no restricted_path entry is a path here, and without one the issuer would get more than XRootD gave it",
    );
  });

  it("ConfigParser's [DEFAULT] settings apply to the sections that lack them (nginx-scitokens)", () => {
    const run = runs["nginxDefaults"]!;
    expect(run.code).toBe(0);
    expect([...asData(run.stdout).issuers.values()].map((i) => [i.issuer, i.basePaths])).toEqual([["https://demo.scitokens.org", ["/shared"]]]);
    expect(run.stdout).toContain("    base_path: /shared # defaults.cfg:2 base_path\n");
    expect(lines(run.stderr)).toContain(
      "nginx-scitokens/defaults.cfg:2: [Issuer OSG-Demo] base_path: became issuers[0].base_path: /shared (scope paths stay relative to it, as in nginx-scitokens)",
    );
  });
});

describe("unknown sections and keys are reported, never silently dropped", () => {
  it.each([
    [
      "xrootdUnknown",
      'xrootd/unknown-key.cfg:3: [Global] audiences: unknown key, not imported: XRootD reads only audience, audience_json, onmissing in [Global] and ignores it; did you mean "audience"?',
    ],
    [
      "xrootdUnknown",
      'xrootd/unknown-key.cfg:8: [Issuer OSG-Connect] authz_strategy: unknown key, not imported: XRootD ignores it in an [Issuer NAME] section; did you mean "authorization_strategy"?',
    ],
    [
      "xrootdUnknown",
      "xrootd/unknown-key.cfg:10: [Monitoring]: unknown section, not imported (its keys: interval): XRootD reads only [Global] and [Issuer NAME] sections and ignores it",
    ],
    [
      "nginxTwo",
      'nginx-scitokens/two-issuers.cfg:12: [Issuer IGWN] basepath: unknown key, not imported: nginx-scitokens reads only issuer, base_path, map_subject in an [Issuer NAME] section; did you mean "base_path"?',
    ],
    [
      "nginxTwo",
      'nginx-scitokens/two-issuers.cfg:11: [Issuer IGWN] restricted_path: not imported: an XRootD setting that nginx-scitokens does not read; if XRootD reads this file, run "scitokens-authz import xrootd" on it',
    ],
  ])("%s: %s", (name, line) => {
    expect(runs[name]!.code).toBe(0);
    expect(lines(runs[name]!.stderr)).toContain(line);
  });

  it("counts them in the summary, and the data holds only what was imported", () => {
    const run = runs["xrootdUnknown"]!;
    expect(lines(run.stderr).at(-1)).toBe(
      "scitokens-authz import xrootd: wrote the authorization data to stdout: 1 issuer; 5 became authorization data, 1 without equivalent, 3 not imported, 2 notes",
    );
    expect(asData(run.stdout).policyData["audiences"]).toEqual(["https://xrootd.example.org"]);
    expect(run.stdout).not.toMatch(/other\.example|interval|strategy/);
  });
});

describe("bad input exits 2 with one line per problem, naming file:line, and prints no data", () => {
  it.each([
    [
      ["xrootd", "not-ini.json"],
      [
        'scitokens-authz import xrootd: not-ini.json:1: not INI: expected a section header like [Global], a setting like "key = value" or a comment, found "{"',
        'scitokens-authz import xrootd: not-ini.json:4: not INI: expected a section header like [Global], a setting like "key = value" or a comment, found "}"',
      ],
    ],
    [
      ["nginx-scitokens", "not-ini.json"],
      [
        'scitokens-authz import nginx-scitokens: not-ini.json:1: not INI: expected a section header like [Global], a setting like "key = value" or a comment, found "{"',
        'scitokens-authz import nginx-scitokens: not-ini.json:2: not INI: found the setting "\\"audience\\"" before any [section] header',
        'scitokens-authz import nginx-scitokens: not-ini.json:4: not INI: expected a section header like [Global], a setting like "key = value" or a comment, found "}"',
      ],
    ],
    [
      ["xrootd", "xrootd/bad-onmissing.cfg"],
      [
        'scitokens-authz import xrootd: xrootd/bad-onmissing.cfg:2: onmissing: expected passthrough, allow or deny, found "fallthrough" (XRootD refuses this file too)',
      ],
    ],
    [
      ["nginx-scitokens", "nginx-scitokens/no-issuer.cfg"],
      [
        "nginx-scitokens/no-issuer.cfg:2: [Global] audience: became audiences: [testing]; nginx-scitokens also accepts SciTokens 1 tokens without aud, which are refused here (docs/semantics.md §5)",
        "nginx-scitokens/no-issuer.cfg:4: [Issuer OSG-Demo]: not imported: the section has no issuer, and nginx-scitokens skips it too",
        "scitokens-authz import nginx-scitokens: nginx-scitokens/no-issuer.cfg: no issuer to import: authorization data needs at least one [Issuer NAME] section with issuer and base_path",
      ],
    ],
    [["xrootd", "xrootd/absent.cfg"], ["scitokens-authz import xrootd: xrootd/absent.cfg: the file does not exist"]],
    [["xrootd", "xrootd"], ["scitokens-authz import xrootd: xrootd: cannot be read (EISDIR)"]],
    [
      ["sendmail", "authorizer.cfg"],
      [
        'scitokens-authz import: expected the kind of file first, nginx-scitokens or xrootd, found "sendmail"',
        "usage: scitokens-authz import nginx-scitokens|xrootd FILE [--output FILE]",
      ],
    ],
  ])("import %j", async (args, expected) => {
    const run = await cli(...args);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("");
    expect(lines(run.stderr)).toEqual(expected);
  });
});

describe("--output", () => {
  it("writes the data to the file, nothing to stdout, and says where", async () => {
    const output = join(scratch, "authz.yaml");
    const run = await cli("nginx-scitokens", "nginx-scitokens/authorizer.cfg", "--output", output);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("");
    const written = await readFile(output, "utf8");
    expect(written).toBe(runs["nginxSeed"]!.stdout);
    expect(lines(run.stderr).at(-1)).toBe(
      `scitokens-authz import nginx-scitokens: wrote ${output}: 1 issuer; 6 became authorization data, 0 without equivalent, 0 not imported, 1 note`,
    );
  });

  it("refuses to overwrite the file being converted", async () => {
    const source = join(scratch, "scitokens.cfg");
    await copyFile(join(FIXTURES, "xrootd", "scitokens.cfg"), source);
    const run = await cli("xrootd", source, "--output", join(scratch, ".", "scitokens.cfg"));
    expect(run.code).toBe(2);
    expect(lines(run.stderr)[0]).toBe("scitokens-authz import xrootd: --output names the file being converted: give another file");
    expect(await readFile(source, "utf8")).toBe(await readFile(join(FIXTURES, "xrootd", "scitokens.cfg"), "utf8"));
  });
});
