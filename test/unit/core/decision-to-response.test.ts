import { describe, expect, it } from "vitest";
import { DENY_SHAPES, type Decision, type ResponseSettings, decisionToResponse } from "../../../src/envoy/decision-to-response.js";
import { type HeaderValueOption, HeaderValueOption_HeaderAppendAction } from "../../../src/gen/envoy/config/core/v3/base.js";
import { CheckResponse } from "../../../src/gen/envoy/service/auth/v3/external_auth.js";
import { type DenyReason, REASON_CODES } from "../../../src/reasons/index.js";
import type { VerifiedToken } from "../../../src/token/claims.js";
import { loadDocument } from "./fixtures.js";

/** google.rpc.Code values, from google/rpc/code.proto. */
const GRPC = { OK: 0, INVALID_ARGUMENT: 3, PERMISSION_DENIED: 7, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

interface DenyRow {
  http: number;
  grpc: keyof typeof GRPC;
  error: string;
  bearer_error: "invalid_token" | "insufficient_scope" | "none" | "absent";
}

const SETTINGS: ResponseSettings = { realm: "storage.example.org" };
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
    claims: { iss: claims.iss, ...(claims.sub !== undefined ? { sub: claims.sub } : {}) },
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
    const response = decisionToResponse({ id: DECISION_ID, reason: "token_expired", tokenPresented: true }, { ...SETTINGS, realm: "osdf-origin" });
    expect(headerMap(response.deniedResponse!.headers)["www-authenticate"]).toBe('Bearer realm="osdf-origin", error="invalid_token"');
  });
});

describe("decisionToResponse: allowed and passthrough (SEMANTICS §11)", () => {
  // What to set and remove is the policy's (test/unit/policy/identity-headers.test.ts);
  // the mapping overwrites, and never sends a value the upstream request cannot carry.
  it.each<["allowed" | "passthrough"]>([["allowed"], ["passthrough"]])("%s: the policy's headers are set (overwriting) and its removals kept", (reason) => {
    const response = decisionToResponse(
      {
        id: DECISION_ID,
        reason,
        tokenPresented: true,
        upstreamHeaders: { "x-scitokens-subject": "alice", "if-none-match": "*" },
        removeHeaders: ["x-scitokens-jti", "authorization"],
      },
      SETTINGS,
    );
    expect(response.status?.code).toBe(GRPC.OK);
    expect(response.deniedResponse).toBeUndefined();
    expect(response.dynamicMetadata).toEqual({ decision_id: DECISION_ID, reason });
    const ok = response.okResponse!;
    for (const option of ok.headers) expect(option.appendAction).toBe(HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD);
    expect(headerMap(ok.headers)).toStrictEqual({ "x-scitokens-subject": "alice", "if-none-match": "*" });
    expect(ok.headersToRemove).toEqual(["x-scitokens-jti", "authorization"]);
    expect(ok.responseHeadersToAdd).toEqual([]);
    expect(ok.queryParametersToSet).toEqual([]);
    expect(ok.queryParametersToRemove).toEqual([]);
  });

  it.each([
    ["CR LF", "alice\r\nx-injected: 1"],
    ["NUL", "a\u0000"],
    ["DEL", "al\u007fice"],
    ["a tab", "a\tb"],
    ["a C1 control", "a\u0085b"],
  ])("a value with %s is not set, and the header is removed instead", (_name, value) => {
    const response = decisionToResponse(
      { id: DECISION_ID, reason: "allowed", tokenPresented: true, upstreamHeaders: { "x-scitokens-subject": value }, removeHeaders: [] },
      SETTINGS,
    );
    expect(response.okResponse!.headers).toEqual([]);
    expect(response.okResponse!.headersToRemove).toEqual(["x-scitokens-subject"]);
  });
});

describe("decisionToResponse: a denial the policy shapes", () => {
  it("takes the policy's status, body and added headers; the challenge follows the final status", () => {
    const response = decisionToResponse(
      {
        id: DECISION_ID,
        reason: "scope_insufficient",
        tokenPresented: true,
        status: 404,
        responseHeaders: { "x-why": "hidden", "x-bad": "a\nb" },
        body: "not found\n",
      },
      SETTINGS,
    );
    expect(response.status?.code).toBe(GRPC.PERMISSION_DENIED);
    expect(response.deniedResponse?.status?.code).toBe(404);
    expect(response.deniedResponse?.body).toBe("not found\n");
    const headers = headerMap(response.deniedResponse!.headers);
    expect(headers).toStrictEqual({ "content-type": "application/json", "x-why": "hidden" });
  });

  it("keeps the reason's challenge when the policy only adds a header", () => {
    const response = decisionToResponse(
      { id: DECISION_ID, reason: "scope_insufficient", tokenPresented: true, responseHeaders: { "x-why": "group" } },
      SETTINGS,
    );
    expect(response.deniedResponse?.status?.code).toBe(403);
    expect(headerMap(response.deniedResponse!.headers)["www-authenticate"]).toBe('Bearer realm="storage.example.org", error="insufficient_scope"');
    expect(headerMap(response.deniedResponse!.headers)["x-why"]).toBe("group");
  });
});

describe("decisionToResponse: wire encoding", () => {
  it.each<[string, Decision]>([
    ["denied", { id: DECISION_ID, reason: "scope_insufficient", tokenPresented: true }],
    [
      "allowed",
      {
        id: DECISION_ID,
        reason: "allowed",
        tokenPresented: true,
        token: verifiedToken({ iss: "https://i.example.org", sub: "alice" }),
        scope: "read:/",
        upstreamHeaders: { "x-scitokens-subject": "alice" },
        removeHeaders: [],
      },
    ],
  ])("%s response survives protobuf encoding with its metadata", (_name, decision) => {
    const response = decisionToResponse(decision, SETTINGS);
    const decoded = CheckResponse.decode(CheckResponse.encode(response).finish());
    expect(decoded.dynamicMetadata).toEqual({ decision_id: DECISION_ID, reason: decision.reason });
    expect(decoded.status?.code).toBe(response.status?.code);
    if (response.deniedResponse) expect(decoded.deniedResponse?.body).toBe(response.deniedResponse.body);
    else expect(decoded.okResponse?.headers.map((h) => h.header?.key)).toEqual(response.okResponse?.headers.map((h) => h.header?.key));
  });
});
