import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCheckRequest, sendCheck } from "../../src/cli/check.js";
import { PACKAGE_ROOT } from "../../src/config/service-config.js";
import { type ServedProcess, killAllServed, runCli, spawnServe } from "../helpers/cli-process.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { reasonOf } from "../helpers/service.js";
import { mint } from "../helpers/tokens.js";

// Issue 7, "Done when": the README walkthrough "Changing the policy, step by step", done
// as an operator does it. Their own git repository holds site/ (authz.rego copied from
// policies/, data.yaml, site.rego, site.tests.yaml); a service started with `serve
// --config` in a child process runs on a bundle built by `policy build`, with a real OIDC
// issuer on loopback. The operator changes an audience, adds a group write rule and a
// public read prefix, runs `policy test` and `policy diff`, commits, builds the bundle
// beside the live one, runs `validate` on it and renames it over the live one: the same
// process adopts it. A broken data file is refused by `policy build`, and a bundle cut
// short on its way is refused by the service, which keeps deciding as before. Every wait
// is for a log line; every file is in a temporary folder.

const cli = runCli;

const git = (cwd: string, ...args: string[]) =>
  execFileSync("git", ["-c", "user.name=operator", "-c", "user.email=operator@example.org", "-c", "commit.gpgsign=false", ...args], {
    cwd,
    encoding: "utf8",
  }).trim();

const STORAGE = "https://storage.example.org";
const OLD_DOOR = "https://xrootd.example.org";
const NEW_DOOR = "https://webdav.example.org";

const dataBefore = (iss: string) => `audiences: [${STORAGE}, ${OLD_DOOR}]
issuers:
  - issuer: ${iss}
    base_path: /protected
`;

// Step 1: the xrootd door's audience becomes the webdav door's, and the deny reason the
// site Rego gives is declared with its status.
const dataAfter = (iss: string) => `audiences: [${STORAGE}, ${NEW_DOOR}]
issuers:
  - issuer: ${iss}
    base_path: /protected
reasons:
  group_required: { status: 403 }
`;

// Step 2: the patterns of examples/site/public-read and examples/site/group-write.
const SITE_REGO = `package scitokens.site

import data.scitokens.authz

# Anonymous GET and HEAD under /protected/public (examples/site/public-read).
allow contains "public-read" if {
	input.token.state == "absent"
	input.attributes.request.http.method in {"GET", "HEAD"}
	authz.covers("/protected/public", input.path)
}

# Writes under /protected/cms/production belong to the group /cms/production: its members
# write there without a storage scope, nobody else even with one (examples/site/group-write).
_writes := {"PUT", "POST", "PATCH", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK"}

_production_write if {
	input.attributes.request.http.method in _writes
	authz.covers("/protected/cms/production", input.path)
}

grant contains "cms-production-group" if {
	_production_write
	"/cms/production" in input.token.groups
}

deny contains "group_required" if {
	_production_write
	not "/cms/production" in input.token.groups
}
`;

const tableBefore = (iss: string) => `- name: alice reads
  request: { method: GET, path: /protected/data/a.txt }
  token: { iss: "${iss}", sub: alice, aud: ${STORAGE}, scope: "read:/data" }
  expect: allowed
- name: the xrootd door
  request: { method: GET, path: /protected/data/a.txt }
  token: { iss: "${iss}", sub: alice, aud: ${OLD_DOOR}, scope: "read:/data" }
  expect: allowed
- name: no token
  request: { method: GET, path: /protected/public/readme }
  token: null
  expect: token_missing
`;

// Step 3: what must hold after the change.
const tableAfter = (iss: string) => `- name: alice reads
  request: { method: GET, path: /protected/data/a.txt }
  token: { iss: "${iss}", sub: alice, aud: ${STORAGE}, scope: "read:/data" }
  expect: allowed
- name: the webdav door
  request: { method: GET, path: /protected/data/a.txt }
  token: { iss: "${iss}", sub: alice, aud: ${NEW_DOOR}, scope: "read:/data" }
  expect: allowed
- name: the retired xrootd door
  request: { method: GET, path: /protected/data/a.txt }
  token: { iss: "${iss}", sub: alice, aud: ${OLD_DOOR}, scope: "read:/data" }
  expect: audience_mismatch
- name: no token, public read
  request: { method: GET, path: /protected/public/readme }
  token: null
  expect: passthrough
- name: no token, public write
  request: { method: PUT, path: /protected/public/readme }
  token: null
  expect: token_missing
- name: production member writes
  request: { method: PUT, path: /protected/cms/production/run1 }
  token: { iss: "${iss}", sub: bob, aud: ${STORAGE}, scope: "read:/", groups: [/cms/production] }
  expect: allowed
- name: non-member writes
  request: { method: PUT, path: /protected/cms/production/run1 }
  token: { iss: "${iss}", sub: carol, aud: ${STORAGE}, scope: "storage.modify:/", groups: [/cms] }
  expect: { decision: deny, reason: group_required, status: 403 }
`;

let work: string;
let repo: string;
let bundle: string;
let serviceYaml: string;
let key: TestKey;
let issuer: OidcServer;
let served: ServedProcess | undefined;
let target: string;
let pid: number | undefined;
let baseRevision: string;
let headRevision: string;
let tokens: Record<"alice" | "aliceOldDoor" | "aliceNewDoor" | "member" | "nonMember", string>;

/** The decision of the running service for one request: its reason, and the HTTP status of a denial. */
async function decide(method: string, path: string, token?: string): Promise<{ reason: unknown; http: number | undefined }> {
  const response = await sendCheck(target, buildCheckRequest({ target, method, path, host: "storage.example.org", token }));
  return { reason: reasonOf(response), http: response.deniedResponse?.status?.code };
}

/** Every decision the walkthrough is about, as the running service gives it now. */
async function decisions(): Promise<Record<string, unknown>> {
  const read = "/protected/data/a.txt";
  const production = "/protected/cms/production/run1";
  const anonymous = await cli(repo, "check", "--target", target, "--path", "/protected/public/readme");
  return {
    read: await decide("GET", read, tokens.alice),
    "old door": await decide("GET", read, tokens.aliceOldDoor),
    "new door": await decide("GET", read, tokens.aliceNewDoor),
    "anonymous public read": { exit: anonymous.code, first: anonymous.stdout.split("\n")[0]!.replace(/ {2}decision_id=.*/, "") },
    "anonymous public write": await decide("PUT", "/protected/public/readme"),
    "member write": await decide("PUT", production, tokens.member),
    "non-member write": await decide("PUT", production, tokens.nonMember),
  };
}

const BEFORE = {
  read: { reason: "allowed", http: undefined },
  "old door": { reason: "allowed", http: undefined },
  "new door": { reason: "audience_mismatch", http: 401 },
  "anonymous public read": { exit: 1, first: "DENIED   http=401 grpc=16 reason=token_missing" },
  "anonymous public write": { reason: "token_missing", http: 401 },
  "member write": { reason: "scope_insufficient", http: 403 },
  "non-member write": { reason: "allowed", http: undefined },
};

const AFTER = {
  read: { reason: "allowed", http: undefined },
  "old door": { reason: "audience_mismatch", http: 401 },
  "new door": { reason: "allowed", http: undefined },
  "anonymous public read": { exit: 0, first: "ALLOWED  reason=passthrough" },
  "anonymous public write": { reason: "token_missing", http: 401 },
  "member write": { reason: "allowed", http: undefined },
  "non-member write": { reason: "group_required", http: 403 },
};

/** Resolves with the next stdout line of the service matching `pattern`, ignoring the lines printed so far. */
function nextLine(pattern: RegExp): Promise<Record<string, unknown>> {
  const svc = served!;
  let checked = svc.lines.length;
  return new Promise((resolve, reject) => {
    // spawnServe appends every stdout line to `lines`: look at the new ones whenever output arrives.
    const onData = () =>
      setImmediate(() => {
        for (; checked < svc.lines.length; checked++) {
          const line = svc.lines[checked]!;
          if (pattern.test(line)) {
            svc.child.stdout!.off("data", onData);
            resolve(JSON.parse(line) as Record<string, unknown>);
            return;
          }
        }
      });
    svc.child.stdout!.on("data", onData);
    void svc.closed.then(({ code }) => reject(new Error(`serve exited (${code}) before printing ${pattern}`)));
  });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "scitokens-authz-walkthrough-"));
  key = await makeKey("ES256");
  issuer = await startOidcServer({ keys: [key] });
  const iss = issuer.issuer;
  const token = (audience: string, scopes: string[], subject: string, groups?: string[]) =>
    mint(key, iss, { audience, scopes, subject, ...(groups ? { groups } : {}) });
  tokens = {
    alice: await token(STORAGE, ["read:/data"], "alice"),
    aliceOldDoor: await token(OLD_DOOR, ["read:/data"], "alice"),
    aliceNewDoor: await token(NEW_DOOR, ["read:/data"], "alice"),
    member: await token(STORAGE, ["read:/"], "bob", ["/cms/production"]),
    nonMember: await token(STORAGE, ["storage.modify:/"], "carol", ["/cms"]),
  };

  // The operator's repository as it is before the change, committed.
  repo = join(work, "site-policy");
  await mkdir(join(repo, "site"), { recursive: true });
  await copyFile(join(PACKAGE_ROOT, "policies", "authz.rego"), join(repo, "site", "authz.rego"));
  await writeFile(join(repo, "site", "data.yaml"), dataBefore(iss));
  await writeFile(join(repo, "site", "site.tests.yaml"), tableBefore(iss));
  git(repo, "init", "-q");
  git(repo, "add", "site");
  git(repo, "commit", "-qm", "site policy");

  // The service, on a bundle of that commit (the README's /var/lib/scitokens-authz and /etc/scitokens-authz).
  const lib = join(work, "var-lib");
  const etc = join(work, "etc");
  await mkdir(lib);
  await mkdir(etc);
  bundle = join(lib, "site.tar.gz");
  const built = await cli(repo, "policy", "build", "site/", "--data", "site/data.yaml", "--output", bundle, "--json");
  expect(built.stderr).toBe("");
  expect(built.code).toBe(0);
  baseRevision = (JSON.parse(built.stdout) as { policyRevision: string }).policyRevision;
  serviceYaml = join(etc, "service.yaml");
  await writeFile(serviceYaml, `grpc: { listen: "127.0.0.1:0" }\npolicy:\n  bundle: { file: ${bundle} }\n`);
  served = spawnServe(["--config", serviceYaml]);
  const [, port] = (await served.waitFor(/"msg":"listening on 127\.0\.0\.1:(\d+)"/)) as RegExpMatchArray;
  target = `127.0.0.1:${port}`;
  pid = served.child.pid;
}, 60_000);

afterAll(async () => {
  await served?.stop();
  killAllServed();
  await issuer?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("changing the policy, step by step (README)", () => {
  it("starts on the committed policy", async () => {
    const loaded = served!.lines.map((line) => JSON.parse(line) as Record<string, unknown>).find((l) => l["trigger"] === "start");
    expect(loaded).toMatchObject({ msg: `policy loaded: revision ${baseRevision}`, bundle, bundle_revision: git(repo, "rev-parse", "HEAD") });
    expect(await decisions()).toEqual(BEFORE);
  });

  it("steps 1 to 4: the change is edited, passes its decision table, and policy diff lists the decisions it flips", async () => {
    const iss = issuer.issuer;
    await writeFile(join(repo, "site", "data.yaml"), dataAfter(iss));
    await writeFile(join(repo, "site", "site.rego"), SITE_REGO);
    await writeFile(join(repo, "site", "site.tests.yaml"), tableAfter(iss));

    const tested = await cli(repo, "policy", "test", "site/");
    expect(tested).toEqual({ code: 0, stdout: "7 passed, 0 failed\n", stderr: "" });

    // Against the last commit: HEAD's site/ and the working tree's.
    const diff = await cli(
      repo,
      "policy",
      "diff",
      "--base",
      "HEAD",
      "--head",
      ".",
      "--policy-dir",
      "site",
      "--requests",
      "site/site.tests.yaml",
      "--data",
      "site/data.yaml",
    );
    expect(diff.stderr).toBe("");
    expect(diff.code).toBe(1);
    expect(diff.stdout).toBe(
      [
        `policy diff: base HEAD (${git(repo, "rev-parse", "HEAD").slice(0, 12)}) → head .`,
        "  7 requests re-evaluated; 5 decisions change",
        "",
        "deny audience_mismatch (401) → allow allowed: 1",
        `    GET /protected/data/a.txt, iss=${iss} sub=alice scope="read:/data"  [the webdav door]`,
        "",
        "allow allowed → deny audience_mismatch (401): 1",
        `    GET /protected/data/a.txt, iss=${iss} sub=alice scope="read:/data"  [the retired xrootd door]`,
        "",
        "deny token_missing (401) → allow passthrough: 1",
        "    GET /protected/public/readme, no token  [no token, public read]",
        "",
        "deny scope_insufficient (403) → allow allowed: 1",
        `    PUT /protected/cms/production/run1, iss=${iss} sub=bob scope="read:/"  [production member writes]`,
        "",
        "allow allowed → deny group_required (403): 1",
        `    PUT /protected/cms/production/run1, iss=${iss} sub=carol scope="storage.modify:/"  [non-member writes]`,
        "",
      ].join("\n"),
    );
    // Not adopted yet: nothing reached the service.
    expect(await decisions()).toEqual(BEFORE);
  }, 60_000);

  it("steps 5 and 6: committed, built beside the live bundle, validated and renamed over it, the running service adopts it", async () => {
    git(repo, "add", "site");
    git(repo, "commit", "-qm", "webdav door audience; public read of /protected/public; /cms/production writes for its group");
    const commit = git(repo, "rev-parse", "HEAD");

    const built = await cli(repo, "policy", "build", "site/", "--data", "site/data.yaml", "--output", `${bundle}.new`);
    expect(built.stderr).toBe("");
    expect(built.code).toBe(0);
    expect(built.stdout).toContain(`wrote ${bundle}.new\n`);
    expect(built.stdout).toContain(`  revision         ${commit} (.manifest)\n`);
    expect(built.stdout).toContain("  policy           authz.rego, site.rego (compiled to policy.wasm, entrypoint scitokens/authz/decision)\n");
    headRevision = /policy_revision {2}([0-9a-f]{12}) /.exec(built.stdout)![1]!;
    expect(headRevision).not.toBe(baseRevision);

    // validate reads a service configuration: the live one with the new bundle's name.
    const candidate = join(work, "candidate.yaml");
    await writeFile(candidate, (await readFile(serviceYaml, "utf8")).replaceAll(bundle, `${bundle}.new`));
    const valid = await cli(repo, "validate", "--config", candidate);
    expect(valid.stderr).toBe("");
    expect(valid.code).toBe(0);
    expect(valid.stdout).toContain("scitokens-authz validate: valid (checked offline: no key was fetched, nothing listened)\n");
    expect(valid.stdout).toContain(`  bundle     revision ${commit}, signature not checked (no policy.bundle.signing)\n`);
    expect(valid.stdout).toContain(`  revision   ${headRevision}\n`);

    const loaded = nextLine(/"msg":"policy (loaded|reload refused)/);
    await rename(`${bundle}.new`, bundle);
    expect(await loaded).toMatchObject({
      msg: `policy loaded: revision ${headRevision}`,
      revision: headRevision,
      previous_revision: baseRevision,
      bundle,
      bundle_revision: commit,
      signed: false,
      trigger: `changed: ${bundle}`,
    });
    expect(served!.child.pid).toBe(pid);
    expect(served!.child.exitCode).toBeNull();
    expect(served!.lines.filter((line) => line.includes('"msg":"listening on')).length).toBe(1);
    expect(await decisions()).toEqual(AFTER);
  }, 60_000);

  it("step 7: a broken data file is refused by policy build, and a damaged bundle by the service, which decides as before", async () => {
    const data = join(repo, "site", "data.yaml");
    await writeFile(data, (await readFile(data, "utf8")).replace("base_path: /protected", "base_path: protected"));
    const refused = await cli(repo, "policy", "build", "site/", "--data", "site/data.yaml", "--output", `${bundle}.new`);
    expect(refused.code).toBe(2);
    expect(refused.stdout).toBe("");
    // The file and the key, then what was expected and what was found.
    expect(refused.stderr).toContain(`scitokens-authz policy build: ${data}: issuers[0].base_path: expected an absolute path like "/data", got "protected"`);
    expect(existsSync(`${bundle}.new`)).toBe(false);
    git(repo, "checkout", "--", "site/data.yaml");

    // A bundle cut short on its way (a copy that failed halfway) reaches the watched file.
    const good = await readFile(bundle);
    await writeFile(`${bundle}.new`, good.subarray(0, 2000));
    const refusal = nextLine(/"msg":"policy (loaded|reload refused)/);
    await rename(`${bundle}.new`, bundle);
    const line = await refusal;
    expect(line).toMatchObject({
      level: 50,
      file: bundle,
      problems: ["not a gzipped OPA bundle (unexpected end of file)"],
      revision: headRevision,
      msg: `policy reload refused: ${bundle}: not a gzipped OPA bundle (unexpected end of file); still serving revision ${headRevision}`,
    });
    expect(served!.child.pid).toBe(pid);
    expect(await decisions()).toEqual(AFTER);

    // Putting the good bundle back (rebuilt from the commit: the same bytes) changes nothing.
    const rebuilt = await cli(repo, "policy", "build", "site/", "--data", "site/data.yaml", "--output", `${bundle}.new`, "--json");
    expect(rebuilt.code).toBe(0);
    expect(JSON.parse(rebuilt.stdout)).toMatchObject({ policyRevision: headRevision });
    const unchanged = nextLine(/"msg":"policy (loaded|reload refused|unchanged)/);
    await rename(`${bundle}.new`, bundle);
    expect(await unchanged).toMatchObject({ revision: headRevision, msg: "policy unchanged: nothing to reload (key files read again)" });
    expect(await decisions()).toEqual(AFTER);
  }, 60_000);
});
