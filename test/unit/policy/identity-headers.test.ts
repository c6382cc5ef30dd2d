import { describe, expect, it } from "vitest";
import { parseAuthzData } from "../../../src/config/authz-data.js";
import { BUILT_POLICY_FILE } from "../../../src/config/service-config.js";
import { decisionToResponse } from "../../../src/envoy/decision-to-response.js";
import { type PolicyToken, buildPolicyInput, verifiedPolicyToken } from "../../../src/envoy/policy-input.js";
import { HeaderValueOption_HeaderAppendAction } from "../../../src/gen/envoy/config/core/v3/base.js";
import { PolicyEngine } from "../../../src/policy/engine.js";
import type { DenyReason } from "../../../src/reasons/index.js";
import { readClaims } from "../../../src/token/claims.js";
import { loadCases } from "../core/fixtures.js";

// The identity headers (SEMANTICS §11) are the shipped policy's: it names them from the
// route's prefix, fills them from the verified token and removes the client's copies.
// Each case runs the compiled policy (build/policy.wasm) and the response mapping.

const ISSUER = "https://issuer.example.org";
const AUDIENCE = "https://storage.example.org";
const IDENTITY_SUFFIXES = ["subject", "issuer", "scope", "groups", "jti"];

interface IdentityCase {
  name: string;
  token?: { sub?: string; jti?: string; groups?: string[]; scope: string; aud?: string; claims?: Record<string, unknown> };
  invalid?: DenyReason;
  data?: Record<string, unknown>;
  method?: string;
  reason: "allowed" | "passthrough";
  set: Record<string, string>;
  remove: string[];
}

async function decide(c: IdentityCase) {
  const data = parseAuthzData("identity-headers.yaml", { audiences: [AUDIENCE], issuers: [{ issuer: ISSUER, base_path: "/" }], ...c.data });
  const engine = await PolicyEngine.load(BUILT_POLICY_FILE, data.policyData);
  let token: PolicyToken = { state: "absent" };
  if (c.invalid !== undefined) token = { state: "invalid", reason: c.invalid };
  if (c.token !== undefined) {
    const now = 2_000_000_000;
    const claims: Record<string, unknown> = {
      iss: ISSUER,
      aud: c.token.aud ?? AUDIENCE,
      ver: "scitoken:2.0",
      scope: c.token.scope,
      iat: now,
      exp: now + 600,
      ...(c.token.sub !== undefined ? { sub: c.token.sub } : {}),
      ...(c.token.jti !== undefined ? { jti: c.token.jti } : {}),
      ...(c.token.groups !== undefined ? { "wlcg.groups": c.token.groups } : {}),
      ...c.token.claims,
    };
    token = verifiedPolicyToken(readClaims(claims, data.issuers.get(ISSUER)!));
  }
  const method = c.method ?? "GET";
  const input = buildPolicyInput({
    method,
    host: "storage.example.org",
    headers: {},
    path: "/data/f",
    segments: ["data", "f"],
    destination: null,
    destinationRemote: false,
    route: null,
    token,
  });
  return { data, decision: engine.evaluate(input) };
}

describe("identity headers from the shipped policy (SEMANTICS §11)", () => {
  it.each(loadCases<IdentityCase>("identity-headers.yaml"))("$name", async (c) => {
    const { data, decision } = await decide(c);
    expect({ allow: decision.allow, reason: decision.reason }).toEqual({ allow: true, reason: c.reason });
    if (!decision.allow) return;
    const response = decisionToResponse(
      { id: "d", reason: decision.reason, tokenPresented: c.token !== undefined, upstreamHeaders: decision.headers, removeHeaders: decision.removeHeaders },
      { realm: data.realm },
    );
    const ok = response.okResponse!;
    for (const option of ok.headers) expect(option.appendAction).toBe(HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD);
    expect(Object.fromEntries(ok.headers.map((h) => [h.header!.key, h.header!.value]))).toStrictEqual(c.set);
    // Besides the names in the table, the underscore spelling of every identity header is
    // always removed (CGI/WSGI upstreams read x_scitokens_subject as x-scitokens-subject).
    const underscored = IDENTITY_SUFFIXES.map((suffix) => `${data.headerPrefix}${suffix}`.replaceAll("-", "_"));
    expect([...ok.headersToRemove].filter((n) => !n.includes("_")).sort()).toEqual([...c.remove].sort());
    expect([...ok.headersToRemove].filter((n) => n.includes("_")).sort()).toEqual(underscored.sort());
    // Every identity header is either set or removed, never both.
    for (const suffix of IDENTITY_SUFFIXES) {
      const name = `${data.headerPrefix}${suffix}`;
      expect(ok.headers.some((h) => h.header!.key === name) !== ok.headersToRemove.includes(name), name).toBe(true);
    }
  });
});
