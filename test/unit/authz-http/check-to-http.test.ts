import { describe, expect, it } from "vitest";
import { checkResponseToHttp } from "../../../src/authz-http/index.js";
import { DENY_SHAPES, type Decision, decisionToResponse } from "../../../src/envoy/decision-to-response.js";
import type { CheckResponse } from "../../../src/gen/envoy/service/auth/v3/external_auth.js";
import type { DenyReason, OperatorReason } from "../../../src/reasons/index.js";

// Issue 9: the Authorizer's CheckResponse as the HTTP authorization endpoint's answer.
// Allowed: 200 (Envoy's http_service allows on 200 only) with the upstream headers as
// response headers and the removed ones in x-envoy-auth-headers-to-remove. Denied: the
// gRPC path's denied_response, status, headers and body, as they are.

const SETTINGS = { realm: "storage.example.org" };
const ID = "3f0e6c1a-9a51-4b8e-8a8c-2b1f8f2f6a11";

function answer(decision: Omit<Decision, "id">, revision = "0123456789ab") {
  const response = decisionToResponse({ id: ID, ...decision }, SETTINGS);
  return checkResponseToHttp({ ...response, dynamicMetadata: { ...response.dynamicMetadata, policy_revision: revision } });
}

const META = { "x-scitokens-authz-decision-id": ID, "x-scitokens-authz-revision": "0123456789ab" };

describe("allowed", () => {
  it("200, the identity headers set, the others listed for removal", () => {
    expect(
      answer({
        reason: "allowed",
        tokenPresented: true,
        upstreamHeaders: { "x-scitokens-subject": "alice", "x-scitokens-issuer": "https://issuer.example.org", "if-none-match": "*" },
        removeHeaders: ["x-scitokens-groups", "x_scitokens_groups", "authorization"],
      }),
    ).toEqual({
      status: 200,
      headers: {
        ...META,
        "x-scitokens-authz-reason": "allowed",
        "x-scitokens-subject": "alice",
        "x-scitokens-issuer": "https://issuer.example.org",
        "if-none-match": "*",
        "x-envoy-auth-headers-to-remove": "x-scitokens-groups,x_scitokens_groups,authorization",
      },
      body: "",
    });
  });

  it("passthrough: 200 without identity, every identity header removed", () => {
    const { status, headers } = answer({ reason: "passthrough", tokenPresented: false, upstreamHeaders: {}, removeHeaders: ["x-scitokens-subject"] });
    expect(status).toBe(200);
    expect(headers).toEqual({ ...META, "x-scitokens-authz-reason": "passthrough", "x-envoy-auth-headers-to-remove": "x-scitokens-subject" });
  });

  it("a UTF-8 value goes out as its bytes (Node writes one byte per character)", () => {
    const { headers } = answer({ reason: "allowed", tokenPresented: true, upstreamHeaders: { "x-scitokens-subject": "jürgen 日本" }, removeHeaders: [] });
    expect(Buffer.from(headers["x-scitokens-subject"]!, "latin1").toString("utf8")).toBe("jürgen 日本");
  });

  it("a value with a control character is not sent but removed (as on the gRPC path)", () => {
    const { headers } = answer({ reason: "allowed", tokenPresented: true, upstreamHeaders: { "x-scitokens-subject": "a\r\nb" }, removeHeaders: [] });
    expect(headers["x-scitokens-subject"]).toBeUndefined();
    expect(headers["x-envoy-auth-headers-to-remove"]).toBe("x-scitokens-subject");
  });

  it.each(["content-length", "transfer-encoding", "connection", "host", "x-envoy-auth-headers-to-remove", "x-scitokens-authz-reason"])(
    "a policy header named %s, which would frame the answer itself, is left out",
    (name) => {
      const { headers } = answer({ reason: "allowed", tokenPresented: true, upstreamHeaders: { [name]: "7", "x-site": "1" }, removeHeaders: [] });
      expect(headers["x-site"]).toBe("1");
      expect(headers[name]).not.toBe("7");
    },
  );
});

describe("denied: the gRPC path's denied_response", () => {
  it.each(Object.entries(DENY_SHAPES) as Array<[DenyReason, (typeof DENY_SHAPES)[DenyReason]]>)("%s: HTTP %#", (reason, shape) => {
    const response = decisionToResponse({ id: ID, reason, tokenPresented: true }, SETTINGS);
    const http = answer({ reason, tokenPresented: true });
    expect(http.status).toBe(shape.http);
    expect(http.body).toBe(response.deniedResponse!.body);
    expect(JSON.parse(http.body)).toEqual({ error: shape.error, reason, decision_id: ID });
    const grpcHeaders = Object.fromEntries(response.deniedResponse!.headers.map((h) => [h.header!.key, h.header!.value]));
    expect(http.headers).toEqual({ ...grpcHeaders, ...META, "x-scitokens-authz-reason": reason });
  });

  it("401 with the bearer challenge", () => {
    expect(answer({ reason: "token_expired", tokenPresented: true }).headers["www-authenticate"]).toBe(
      'Bearer realm="storage.example.org", error="invalid_token"',
    );
    expect(answer({ reason: "token_missing", tokenPresented: false }).headers["www-authenticate"]).toBe('Bearer realm="storage.example.org"');
  });

  it("503 key_unavailable with Retry-After", () => {
    const http = answer({ reason: "key_unavailable", tokenPresented: true });
    expect(http.status).toBe(503);
    expect(http.headers["retry-after"]).toBe("30");
  });

  it("an operator's reason: its status, the policy's headers and body", () => {
    const http = answer({
      reason: "embargoed" as OperatorReason,
      tokenPresented: true,
      status: 451,
      responseHeaders: { "content-type": "text/plain", link: "<https://example.org/embargo>" },
      body: "under embargo\n",
    });
    expect(http).toMatchObject({ status: 451, body: "under embargo\n" });
    expect(http.headers).toMatchObject({ "content-type": "text/plain", link: "<https://example.org/embargo>", "x-scitokens-authz-reason": "embargoed" });
  });
});

it("a CheckResponse that is neither allowed nor denied is answered 500 internal_error", () => {
  const odd: CheckResponse = { status: { code: 13, message: "", details: [] }, dynamicMetadata: { decision_id: ID } };
  expect(checkResponseToHttp(odd)).toEqual({
    status: 500,
    headers: { "x-scitokens-authz-decision-id": ID, "content-type": "application/json" },
    body: '{"error":"internal","reason":"internal_error"}\n',
  });
});
