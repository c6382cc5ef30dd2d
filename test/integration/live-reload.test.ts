import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { buildCheckRequest, sendCheck } from "../../src/cli/check.js";
import type { ReloadEvent } from "../../src/server/service.js";
import { killAllServed, spawnServe } from "../helpers/cli-process.js";
import { type TestKey, jwksOf, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type ReloadableService, compilePolicy, revisionOf, startReloadableService } from "../helpers/policy-files.js";
import { reasonOf } from "../helpers/service.js";
import { TEST_AUDIENCE, mint } from "../helpers/tokens.js";

// Issue 7, live reload: the real service reloads its authorization data and compiled
// policy when they change on disk (edited in place or replaced by rename) or on SIGHUP,
// refuses a broken change (the last good generation goes on serving), decides each Check
// wholly by one generation, and swaps the key store when the issuers' key sources change.
// Tests wait for reload events and log lines, never for time to pass.

const OTHER_AUDIENCE = "https://other.example.org";

let key: TestKey;
let lateKey: TestKey;
let issuer: OidcServer;
let second: OidcServer;
let work: string;
let svc: ReloadableService | undefined;

beforeAll(async () => {
  [key, lateKey] = await Promise.all([makeKey("ES256", "key-1"), makeKey("ES256", "key-late")]);
  issuer = await startOidcServer({ keys: [key] });
  second = await startOidcServer({ keys: [key], path: "/second" });
  work = await mkdtemp(join(tmpdir(), "scitokens-authz-reload-work-"));
});

afterEach(async () => {
  await svc?.close();
  svc = undefined;
});

afterAll(async () => {
  killAllServed();
  await Promise.all([issuer?.close(), second?.close()]);
  if (work) await rm(work, { recursive: true, force: true });
});

function dataFor(audiences: string[], issuers: OidcServer[] = [issuer], basePath = "/data"): object {
  return { audiences, issuers: issuers.map((s) => ({ issuer: s.issuer, base_path: basePath })) };
}

const reloaded = (event: ReloadEvent): boolean => event.outcome === "reloaded";
const refused = (event: ReloadEvent): event is Extract<ReloadEvent, { outcome: "refused" }> => event.outcome === "refused";

async function read(token: string, path = "/data/file"): Promise<{ reason: unknown; revision: unknown }> {
  const response = await svc!.check({ method: "GET", path, token });
  return { reason: reasonOf(response), revision: revisionOf(response) };
}

describe("a data change is applied", () => {
  it.each([
    ["edited in place", (s: ReloadableService, data: object) => s.writeDataInPlace(data)],
    ["replaced by rename", (s: ReloadableService, data: object) => s.replaceData(data)],
  ])("%s: an audience_mismatch becomes allowed after the reload", async (_name, change) => {
    svc = await startReloadableService(dataFor([TEST_AUDIENCE]));
    const token = await mint(key, issuer.issuer, { audience: OTHER_AUDIENCE });
    const before = svc.service.revision;
    expect(await read(token)).toEqual({ reason: "audience_mismatch", revision: before });

    const next = svc.nextReload(reloaded);
    await change(svc, dataFor([TEST_AUDIENCE, OTHER_AUDIENCE]));
    const event = await next;

    expect(event).toMatchObject({ outcome: "reloaded", previousRevision: before, keys: "kept" });
    expect(event.revision).not.toBe(before);
    expect(svc.service.revision).toBe(event.revision);
    expect(svc.service.data.policyData["audiences"]).toEqual([TEST_AUDIENCE, OTHER_AUDIENCE]);
    expect(await read(token)).toEqual({ reason: "allowed", revision: event.revision });
    const loaded = svc.logs.filter((l) => l["msg"] === `policy loaded: revision ${event.revision}`);
    expect(loaded).toHaveLength(1);
    expect(loaded[0]).toMatchObject({ revision: event.revision, previous_revision: before, data: svc.dataFile, wasm: svc.bundleFile, keys: "kept" });
  });

  it("the same content written again is no reload: nothing is swapped", async () => {
    svc = await startReloadableService(dataFor([TEST_AUDIENCE]));
    const before = svc.service.revision;
    const next = svc.nextReload();
    await svc.writeDataInPlace(await readFile(svc.dataFile, "utf8"));
    expect(await next).toMatchObject({ outcome: "unchanged", revision: before });
    expect(svc.service.revision).toBe(before);
  });
});

describe("a broken change is refused and the last good generation goes on serving", () => {
  const breakages: Array<[string, (s: ReloadableService) => Promise<void>, "data" | "bundle", RegExp]> = [
    ["broken YAML", (s) => s.writeDataInPlace("audiences: [unclosed\nissuers: {\n"), "data", /YAML syntax/],
    [
      "a schema error (unknown key)",
      async (s) => s.replaceData({ ...dataFor([TEST_AUDIENCE, OTHER_AUDIENCE]), audience: [OTHER_AUDIENCE] }),
      "data",
      /audience: unknown key; did you mean "audiences"\?/,
    ],
    ["no trusted issuer", (s) => s.replaceData({ audiences: [OTHER_AUDIENCE], issuers: [] }), "data", /issuers: expected at least one trusted issuer/],
    [
      "an issuer's key file missing",
      (s) => s.replaceData({ audiences: [OTHER_AUDIENCE], issuers: [{ issuer: issuer.issuer, base_path: "/data", jwks_file: "gone.jwks.json" }] }),
      "data",
      /issuers\[0\]\.jwks_file: expected a JWKS file, found nothing at .*gone\.jwks\.json/,
    ],
    ["the data file removed", (s) => rm(s.dataFile), "data", /does not exist/],
    ["garbage WASM", (s) => s.replaceBundle("\0asm garbage"), "bundle", /not a loadable OPA WebAssembly policy/],
    [
      "WASM without the decision entrypoint",
      async (s) => s.replaceBundle(await readFile(await compilePolicy(work, "other", "package other\n\nanswer := 1\n", "other/answer"))),
      "bundle",
      /expected the entrypoint scitokens\/authz\/decision/,
    ],
    [
      "WASM answering outside the contract",
      async (s) =>
        s.replaceBundle(await readFile(await compilePolicy(work, "rogue", 'package scitokens.authz\n\ndecision := "allowed"\n', "scitokens/authz/decision"))),
      "bundle",
      /does not answer within its contract/,
    ],
  ];

  it.each(breakages)("%s", async (_name, breakIt, which, problem) => {
    svc = await startReloadableService(dataFor([TEST_AUDIENCE]));
    const token = await mint(key, issuer.issuer, { audience: OTHER_AUDIENCE });
    const good = svc.service.revision;
    const file = which === "data" ? svc.dataFile : svc.bundleFile;
    const goodBytes = await readFile(file);

    const next = svc.nextReload((e) => refused(e) && e.problems.some((p) => problem.test(p)));
    await breakIt(svc);
    const event = await next;

    expect(event).toMatchObject({ outcome: "refused", file, revision: good });
    expect(svc.service.revision).toBe(good);
    expect(await read(token)).toEqual({ reason: "audience_mismatch", revision: good });
    // One clear line per refusal: the file and the problem, at error level.
    const lines = svc.logs.filter((l) => String(l["msg"]).startsWith("policy reload refused:"));
    expect(lines.length).toBeGreaterThanOrEqual(1);
    const line = lines.find((l) => (l["problems"] as string[]).some((p) => problem.test(p)))!;
    expect(line).toMatchObject({ level: 50, file, revision: good });
    expect(String(line["msg"])).toContain(file);

    // Putting the good file back is the revision already serving.
    const back = svc.nextReload((e) => e.outcome !== "refused");
    await writeFile(file, goodBytes);
    expect(await back).toMatchObject({ outcome: "unchanged", revision: good });
  });

  it("a bad service start is still refused before listening (no generation to keep)", async () => {
    await expect(startReloadableService({ audiences: [TEST_AUDIENCE], issuers: [] })).rejects.toThrow(/expected at least one trusted issuer/);
  });
});

describe("issuers changing on reload", () => {
  it("a new issuer's tokens become allowed (keys fetched); a removed one is issuer_untrusted and its key store is closed", async () => {
    svc = await startReloadableService(dataFor([TEST_AUDIENCE], [issuer]));
    const fromSecond = await mint(key, second.issuer);
    const fromFirst = await mint(key, issuer.issuer);
    expect((await read(fromSecond)).reason).toBe("issuer_untrusted");
    const firstStore = svc.service.keys;

    const added = svc.nextReload(reloaded);
    await svc.replaceData(dataFor([TEST_AUDIENCE], [issuer, second]));
    expect(await added).toMatchObject({ keys: "replaced" });
    expect(await read(fromSecond)).toEqual({ reason: "allowed", revision: svc.service.revision });
    expect((await read(fromFirst)).reason).toBe("allowed");
    const bothStore = svc.service.keys;
    expect(bothStore).not.toBe(firstStore);
    expect(
      bothStore
        .status()
        .map((s) => s.issuer)
        .sort(),
    ).toEqual([issuer.issuer, second.issuer].sort());

    // The first store was closed once no Check used it: it fetches nothing any more.
    const seenByFirst = issuer.requests.length;
    await firstStore.refresh(issuer.issuer);
    expect(issuer.requests.length).toBe(seenByFirst);

    const removed = svc.nextReload(reloaded);
    await svc.writeDataInPlace(dataFor([TEST_AUDIENCE], [issuer]));
    expect(await removed).toMatchObject({ keys: "replaced" });
    expect((await read(fromSecond)).reason).toBe("issuer_untrusted");
    expect((await read(fromFirst)).reason).toBe("allowed");
    const seenBySecond = second.requests.length;
    await bothStore.refresh(second.issuer);
    expect(second.requests.length).toBe(seenBySecond);
    expect(svc.logs.filter((l) => l["msg"] === "key store of a retired policy closed (no more fetches for it)")).toHaveLength(2);
  });

  it("a Check in flight finishes on the generation it started with, and its key store closes after it", async () => {
    // The Check needs a key fetch (unknown kid), held at the issuer while the data changes
    // to a version that would deny it (another audience) and another key store (a second issuer).
    svc = await startReloadableService(dataFor([TEST_AUDIENCE], [issuer]), { keys: { check_wait_seconds: 10, startup_wait_seconds: 0 } });
    const started = svc.service.revision;
    const token = await mint(lateKey, issuer.issuer);
    let release = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    try {
      issuer.hold("jwks", gate);
      issuer.setKeys([key, lateKey]);
      const fetched = issuer.nextRequest("jwks");
      const inFlight = svc.check({ method: "GET", path: "/data/file", token });
      await fetched;

      const next = svc.nextReload(reloaded);
      await svc.replaceData(dataFor([OTHER_AUDIENCE], [issuer, second]));
      const event = await next;
      expect(event).toMatchObject({ keys: "replaced", previousRevision: started });
      const closedLines = () => svc!.logs.filter((l) => String(l["msg"]).startsWith("key store of a retired policy closed"));
      expect(closedLines()).toEqual([]);

      release();
      const response = await inFlight;
      expect({ reason: reasonOf(response), revision: revisionOf(response) }).toEqual({ reason: "allowed", revision: started });
      expect(closedLines()).toHaveLength(1);
      // New Checks get the new generation, which denies the same token.
      expect((await read(token)).revision).toBe(event.revision);
      expect((await read(token)).reason).toBe("audience_mismatch");
      const decision = svc.logs.find((l) => l["msg"] === "decision" && l["policy_revision"] === started && l["reason"] === "allowed");
      expect(decision).toBeDefined();
    } finally {
      release();
      issuer.hold("jwks", undefined);
      issuer.setKeys([key]);
    }
  });
});

describe("static key files", () => {
  it("are read again by a reload, even one that finds the policy files unchanged", async () => {
    const jwksFile = join(work, "static.jwks.json");
    await writeFile(jwksFile, JSON.stringify(jwksOf(key)));
    const staticIssuer = "https://static.example.org";
    svc = await startReloadableService({ audiences: [TEST_AUDIENCE], issuers: [{ issuer: staticIssuer, jwks_file: jwksFile, base_path: "/data" }] });
    const token = await mint(lateKey, staticIssuer);
    // The unknown kid makes the store read the file once; the cooldown then holds.
    expect((await read(token)).reason).toBe("key_not_found");
    await writeFile(jwksFile, JSON.stringify(jwksOf(key, lateKey)));
    expect((await read(token)).reason).toBe("key_not_found");

    expect(await svc.service.reload("test")).toMatchObject({ outcome: "unchanged" });
    expect(await read(token)).toEqual({ reason: "allowed", revision: svc.service.revision });
  });
});

describe("SIGHUP through the command line", () => {
  it("reloads the data and logs it, with policy.watch: false", async () => {
    const dataFile = join(work, "sighup-authz.yaml");
    await writeFile(dataFile, JSON.stringify(dataFor([TEST_AUDIENCE])));
    const configFile = join(work, "sighup-service.yaml");
    await writeFile(configFile, JSON.stringify({ grpc: { listen: "127.0.0.1:0" }, policy: { data: dataFile, watch: false }, log: { level: "info" } }));
    const served = spawnServe(["--config", configFile]);
    try {
      const [, started] = await served.waitFor(/"trigger":"start".*"msg":"policy loaded: revision (\w+)"/);
      const [, port] = await served.waitFor(/"msg":"listening on 127\.0\.0\.1:(\d+)"/);
      const target = `127.0.0.1:${port}`;
      const token = await mint(key, issuer.issuer, { audience: OTHER_AUDIENCE });
      const request = buildCheckRequest({ target, host: "storage.example.org", method: "GET", path: "/data/file", token });
      const before = await sendCheck(target, request);
      expect({ reason: reasonOf(before), revision: revisionOf(before) }).toEqual({ reason: "audience_mismatch", revision: started });

      await writeFile(dataFile, JSON.stringify(dataFor([OTHER_AUDIENCE])));
      served.child.kill("SIGHUP");
      await served.waitFor(/"signal":"SIGHUP".*"msg":"reload requested"/);
      const [, revision] = await served.waitFor(/"trigger":"SIGHUP".*"msg":"policy loaded: revision (\w+)"/);
      expect(revision).not.toBe(started);
      const after = await sendCheck(target, request);
      expect({ reason: reasonOf(after), revision: revisionOf(after) }).toEqual({ reason: "allowed", revision });

      // A broken file on SIGHUP: refused, one line naming it, the process goes on serving.
      await writeFile(dataFile, "audiences: [");
      served.child.kill("SIGHUP");
      const [refusal] = await served.waitFor(/"msg":"policy reload refused: .*/);
      expect(refusal).toContain(dataFile);
      const still = await sendCheck(target, request);
      expect({ reason: reasonOf(still), revision: revisionOf(still) }).toEqual({ reason: "allowed", revision });
      // policy.watch: false: no reload came from the file changes themselves.
      expect(served.lines.filter((l) => l.includes('"trigger":"changed:'))).toEqual([]);
      expect(await served.stop()).toBe(0);
    } finally {
      if (served.child.exitCode === null && served.child.signalCode === null) served.child.kill("SIGKILL");
    }
  }, 30_000);
});
