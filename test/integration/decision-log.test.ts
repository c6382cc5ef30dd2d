import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPolicySide } from "../../src/cli/policy-side.js";
import { decide } from "../../src/cli/replay-decide.js";
import { readReplayRequests } from "../../src/cli/replay-requests.js";
import { PACKAGE_ROOT } from "../../src/config/service-config.js";
import { hashJti } from "../../src/observability/decision-log.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type TestService, reasonOf, startTestService } from "../helpers/service.js";
import { TEST_AUDIENCE, mint } from "../helpers/tokens.js";

// The decision log (log.decisions.file) of the real service: one JSON line per Check, with
// what a re-evaluation needs, never the token or its jti.

const JTI = "jti-that-must-never-be-logged-0001";

let key: TestKey;
let otherKey: TestKey;
let issuer: OidcServer;
let svc: TestService;
let logFile: string;
let token: string;
let forged: string;
let lines: Array<Record<string, unknown>>;
let text: string;

const data = () => ({ audiences: [TEST_AUDIENCE], issuers: [{ issuer: issuer.issuer, base_path: "/protected" }] });

beforeAll(async () => {
  key = await makeKey("ES256");
  otherKey = await makeKey("ES256", key.kid);
  issuer = await startOidcServer({ keys: [key] });
  svc = await startTestService(data(), { log: { level: "silent", decisions: { file: "decisions.jsonl" } } });
  logFile = join(svc.dir, "decisions.jsonl");
  token = await mint(key, issuer.issuer, { scopes: ["read:/data"], subject: "alice", jti: JTI, groups: ["/demo"] });
  forged = await mint(otherKey, issuer.issuer, { scopes: ["read:/data"], jti: JTI });
  const responses = [
    await svc.check({ method: "GET", path: "/protected/data/a.txt", token }),
    await svc.check({ method: "PUT", path: "/protected/data/a.txt?x=1", token }),
    await svc.check({ method: "GET", path: "/protected/data/a.txt", token: forged }),
    await svc.check({ method: "GET", path: "/protected/data/a.txt" }),
  ];
  expect(responses.map(reasonOf)).toEqual(["allowed", "scope_insufficient", "signature_invalid", "token_missing"]);
  await svc.service.close(); // writes what is queued and closes the file
  text = await readFile(logFile, "utf8");
  lines = text
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
});

afterAll(async () => {
  await svc?.close().catch(() => rm(svc.dir, { recursive: true, force: true }));
  await issuer?.close();
});

describe("decision log", () => {
  it("holds one JSON line per Check, in order, with the generation's revision", () => {
    expect(lines).toHaveLength(4);
    for (const line of lines) {
      expect(line["policy_revision"]).toBe(svc.service.revision);
      expect(typeof line["decision_id"]).toBe("string");
      expect(Number.isNaN(Date.parse(line["time"] as string))).toBe(false);
      expect(line["route"]).toBeNull();
      expect(line["path"]).toBe("/protected/data/a.txt");
      expect(line["segments"]).toEqual(["protected", "data", "a.txt"]);
    }
    expect(lines.map((l) => [l["method"], l["decision"], l["reason"], l["status"]])).toEqual([
      ["GET", "allow", "allowed", 200],
      ["PUT", "deny", "scope_insufficient", 403],
      ["GET", "deny", "signature_invalid", 401],
      ["GET", "deny", "token_missing", 401],
    ]);
  });

  it("keeps the verified token's state, identity and scopes, and the jti only hashed", () => {
    expect(lines[0]!["token"]).toEqual({
      state: "verified",
      iss: issuer.issuer,
      sub: "alice",
      jti_sha256: hashJti(JTI),
      profile: "scitokens:2.0",
      aud: [TEST_AUDIENCE],
      scopes: [{ authz: "read", path: "/data", raw: "read:/data" }],
      groups: ["/demo"],
    });
    expect(lines[0]!["scope"]).toBe("read:/data");
    expect(lines[2]!["token"]).toEqual({ state: "invalid", reason: "signature_invalid" });
    expect(lines[3]!["token"]).toEqual({ state: "absent" });
  });

  it("never holds a token, a signature, the jti or the claims", () => {
    for (const secret of [token, forged, ...token.split("."), ...forged.split("."), JTI]) expect(text).not.toContain(secret);
    expect(text).not.toContain('"claims"');
    expect(text).not.toContain('"exp"');
  });
});

describe("decision log replayed (policy diff)", () => {
  it("re-evaluates every line to the decision the service logged", async () => {
    const { cases, notReplayable } = await readReplayRequests(logFile);
    expect([cases.length, notReplayable]).toEqual([4, 0]);
    const side = await loadPolicySide(join(PACKAGE_ROOT, "policies"), join(svc.dir, "data.yaml"), join(svc.dir, "replay"));
    expect(cases.map((c) => decide(side, c))).toEqual(lines.map((l) => ({ decision: l["decision"], reason: l["reason"], status: l["status"] })));
  });
});

describe("decision log that cannot be written", () => {
  it("does not fail Checks", async () => {
    const broken = await startTestService(data(), { log: { level: "silent", decisions: { file: "no-such-folder/decisions.jsonl" } } });
    try {
      for (let i = 0; i < 3; i++) expect(reasonOf(await broken.check({ method: "GET", path: "/protected/data/a.txt", token }))).toBe("allowed");
      expect(reasonOf(await broken.check({ method: "GET", path: "/protected/data/a.txt" }))).toBe("token_missing");
    } finally {
      await broken.close();
    }
  });
});
