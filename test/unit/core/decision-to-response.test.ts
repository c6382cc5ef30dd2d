import { describe, expect, it } from "vitest";
import { type DenyReason, REASON_CODES, type ReasonCode } from "../../../src/reasons/index.js";
import {
  type Decision,
  DENY_SHAPES,
  IDENTITY_HEADERS,
  type ResponseSettings,
  decisionToResponse,
} from "../../../src/envoy/decision-to-response.js";
import { HeaderValueOption_HeaderAppendAction, type HeaderValueOption } from "../../../src/gen/envoy/config/core/v3/base.js";
import { CheckResponse } from "../../../src/gen/envoy/service/auth/v3/external_auth.js";
import type { VerifiedToken } from "../../../src/token/claims.js";
import { loadCases, loadDocument } from "./fixtures.js";

/** google.rpc.Code values, from google/rpc/code.proto. */
const GRPC = { OK: 0, INVALID_ARGUMENT: 3, PERMISSION_DENIED: 7, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

interface DenyRow {
  http: number;
  grpc: keyof typeof GRPC;
  error: string;
  bearer_error: "invalid_token" | "insufficient_scope" | "none" | "absent";
}

interface AllowCase {
  name: string;
  reason: "allowed" | "passthrough";
  token?: { iss: string; sub?: string; jti?: string; groups?: string[] };
  scope?: string | null;
  create_only?: boolean;
  settings?: Partial<ResponseSettings>;
  set: Record<string, string>;
  remove: string[];
}

const SETTINGS: ResponseSettings = { headerPrefix: "x-scitokens-", realm: "storage.example.org", removeAuthorization: false };
const DECISION_ID = "3f0e6c1a-9a51-4b8e-8a8c-2b1f8f2f6a11";

/** A verified token whose every value is recognizable, to prove none reaches a denied response. */
function verifiedToken(claims: { iss: string; sub?: string; jti?: string; groups?: string[] }): VerifiedToken {
  return {
    iss: claims.iss,
    sub: claims.sub ?? null,
    jti: claims.jti ?? null,
    aud: ["https://storage.example.org"],
    profile: "wlcg:1",
    scopes: [{ authz: "storage.read", path: "/secret-path", raw: "storage.read:/secret-path" }],
    groups: claims.groups ?? [],
    identity: claims.sub !== undefined ? { sub: claims.sub, preferred_username: `${claims.sub}-login` } : {},
    exp: 2_000_003_600,
    iat: 2_000_000_000,
    nbf: null,
  };
}

function headerMap(options: readonly HeaderValueOption[]): Record<string, string> {
  const map: Record<string, string> = {};
  for (const option of options) {
    expect(option.header).toBeDefined();
    const key = option.header!.key;
    expect(map, `header ${key} set twice`).not.toHaveProperty(key);
    map[key] = option.header!.value;
  }
  return map;
}

const DENY_REASONS = REASON_CODES.filter((r): r is DenyReason => r !== "allowed" && r !== "passthrough");
const denyTable = loadDocument<Record<string, DenyRow>>("deny-responses.yaml");

describe("decisionToResponse: denied (SEMANTICS §11)", () => {
  it("the table covers exactly the deny reason codes, as does DENY_SHAPES", () => {
    expect(Object.keys(denyTable).sort()).toEqual([...DENY_REASONS].sort());
    expect(Object.keys(DENY_SHAPES).sort()).toEqual([...DENY_REASONS].sort());
  });

  const rows = DENY_REASONS.flatMap((reason) => [true, false].map((tokenPresented) => ({ reason, tokenPresented })));

  it.each(rows)("$reason (token presented: $tokenPresented)", ({ reason, tokenPresented }) => {
    const row = denyTable[reason]!;
    const token = verifiedToken({ iss: "https://issuer.example.org", sub: "alice-secret-sub", jti: "jti-secret", groups: ["/secret-group"] });
    const decision: Decision = { id: DECISION_ID, reason, tokenPresented, token, scope: "storage.read:/secret-path" };
    const response = decisionToResponse(decision, SETTINGS);

    expect(response.status?.code).toBe(GRPC[row.grpc]);
    expect(response.okResponse).toBeUndefined();
    expect(response.deniedResponse?.status?.code).toBe(row.http);
    expect(response.dynamicMetadata).toEqual({ decision_id: DECISION_ID, reason });

    const denied = response.deniedResponse!;
    for (const option of denied.headers) {
      expect(option.appendAction).toBe(HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD);
    }
    const headers = headerMap(denied.headers);
    expect(headers["content-type"]).toBe("application/json");

    let challenge: string | undefined;
    if (row.bearer_error === "absent") challenge = undefined;
    else if (row.bearer_error === "none" || !tokenPresented) challenge = `Bearer realm="${SETTINGS.realm}"`;
    else challenge = `Bearer realm="${SETTINGS.realm}", error="${row.bearer_error}"`;
    expect(headers["www-authenticate"]).toBe(challenge);
    expect(headers["retry-after"]).toBe(row.http === 503 ? "30" : undefined);

    expect(JSON.parse(denied.body)).toStrictEqual({ error: row.error, reason, decision_id: DECISION_ID });
    const wire = JSON.stringify(response);
    for (const secret of ["alice-secret-sub", "jti-secret", "/secret-group", "/secret-path", "issuer.example.org"]) {
      expect(wire).not.toContain(secret);
    }
  });

  it("uses the configured realm", () => {
    const response = decisionToResponse(
      { id: DECISION_ID, reason: "token_expired", tokenPresented: true },
      { ...SETTINGS, realm: "osdf-origin" },
    );
    expect(headerMap(response.deniedResponse!.headers)["www-authenticate"]).toBe('Bearer realm="osdf-origin", error="invalid_token"');
  });
});

describe("decisionToResponse: allowed and passthrough (SEMANTICS §11)", () => {
  it.each(loadCases<AllowCase>("allow-responses.yaml"))("$name", (c) => {
    const decision: Decision = {
      id: DECISION_ID,
      reason: c.reason,
      tokenPresented: c.token !== undefined,
      ...(c.token !== undefined ? { token: verifiedToken(c.token) } : {}),
      ...(c.scope !== undefined ? { scope: c.scope } : {}),
      ...(c.create_only !== undefined ? { createOnly: c.create_only } : {}),
    };
    const settings = { ...SETTINGS, ...c.settings };
    const response = decisionToResponse(decision, settings);

    expect(response.status?.code).toBe(GRPC.OK);
    expect(response.deniedResponse).toBeUndefined();
    expect(response.dynamicMetadata).toEqual({ decision_id: DECISION_ID, reason: c.reason });
    const ok = response.okResponse!;
    for (const option of ok.headers) {
      expect(option.appendAction).toBe(HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD);
    }
    expect(headerMap(ok.headers)).toStrictEqual(c.set);
    // Besides the names in the table, the underscore spelling of every identity header is
    // always removed (CGI/WSGI upstreams read x_scitokens_subject as x-scitokens-subject).
    const underscored = IDENTITY_HEADERS.map((suffix) => `${settings.headerPrefix}${suffix}`.replaceAll("-", "_"));
    expect([...ok.headersToRemove].filter((n) => !n.includes("_")).sort()).toEqual([...c.remove].sort());
    expect([...ok.headersToRemove].filter((n) => n.includes("_")).sort()).toEqual(underscored.sort());
    expect(ok.responseHeadersToAdd).toEqual([]);
    expect(ok.queryParametersToSet).toEqual([]);
    expect(ok.queryParametersToRemove).toEqual([]);
  });

  it.each<[ReasonCode, boolean]>([
    ["allowed", false],
    ["allowed", true],
    ["passthrough", false],
    ["passthrough", true],
  ])("%s (remove_authorization %s): every identity header is either set or removed, never both", (reason, removeAuthorization) => {
    const response = decisionToResponse(
      { id: DECISION_ID, reason, tokenPresented: true, token: verifiedToken({ iss: "https://i.example.org", sub: "alice" }), scope: "read:/" },
      { ...SETTINGS, removeAuthorization },
    );
    const set = Object.keys(headerMap(response.okResponse!.headers));
    const removed = response.okResponse!.headersToRemove;
    for (const suffix of IDENTITY_HEADERS) {
      const name = `${SETTINGS.headerPrefix}${suffix}`;
      expect(set.includes(name) !== removed.includes(name), name).toBe(true);
    }
    expect(removed.includes("authorization")).toBe(removeAuthorization);
  });
});

describe("decisionToResponse: wire encoding", () => {
  it.each<[string, Decision]>([
    ["denied", { id: DECISION_ID, reason: "scope_insufficient", tokenPresented: true }],
    ["allowed", { id: DECISION_ID, reason: "allowed", tokenPresented: true, token: verifiedToken({ iss: "https://i.example.org", sub: "alice" }), scope: "read:/" }],
  ])("%s response survives protobuf encoding with its metadata", (_name, decision) => {
    const response = decisionToResponse(decision, SETTINGS);
    const decoded = CheckResponse.decode(CheckResponse.encode(response).finish());
    expect(decoded.dynamicMetadata).toEqual({ decision_id: DECISION_ID, reason: decision.reason });
    expect(decoded.status?.code).toBe(response.status?.code);
    if (response.deniedResponse) expect(decoded.deniedResponse?.body).toBe(response.deniedResponse.body);
    else expect(decoded.okResponse?.headers.map((h) => h.header?.key)).toEqual(response.okResponse?.headers.map((h) => h.header?.key));
  });
});

describe("decisionToResponse: username_claim", () => {
  const token = verifiedToken({ iss: "https://i.example.org", sub: "uid-7" });
  it.each([
    ["sub (the default)", undefined, "uid-7"],
    ["another claim the token has", "preferred_username", "uid-7-login"],
    ["a claim the token lacks: no subject header", "email", undefined],
  ])("%s", (_name, usernameClaim, subject) => {
    const response = decisionToResponse(
      { id: DECISION_ID, reason: "allowed", tokenPresented: true, token, scope: "read:/" },
      { ...SETTINGS, ...(usernameClaim !== undefined ? { usernameClaim } : {}) },
    );
    expect(headerMap(response.okResponse!.headers)["x-scitokens-subject"]).toBe(subject);
    if (subject === undefined) expect(response.okResponse!.headersToRemove).toContain("x-scitokens-subject");
  });
});
