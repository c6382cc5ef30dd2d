import { DENY_SHAPES } from "../envoy/decision-to-response.js";
import { type PolicyToken, buildPolicyInput } from "../envoy/policy-input.js";
import { PolicyFault } from "../policy/engine.js";
import { type DenyReason, isReasonCode } from "../reasons/index.js";
import type { PolicySide } from "./policy-side.js";
import type { ReplayCase } from "./replay-requests.js";

/** One decision, as compared: allow or deny, the reason and the HTTP status. */
export interface Outcome {
  readonly decision: "allow" | "deny";
  readonly reason: string;
  readonly status: number;
}

/**
 * Decides one request under one side as the service would once the token's state is
 * known: a route the side's data lacks is `route_unknown`; a verified token of an issuer
 * the side does not trust (on that route) is invalid, `issuer_untrusted`; the rest is the
 * policy's answer, held to its contract (outside it: `internal_error`).
 */
export function decide(side: PolicySide, c: ReplayCase): Outcome {
  const route = c.route === null ? side.data.defaultRoute : side.data.routes.get(c.route);
  if (route === undefined) return deny("route_unknown");
  const input = buildPolicyInput({
    method: c.method,
    host: c.host,
    headers: {},
    path: c.path,
    segments: c.segments,
    destination: c.destination,
    destinationRemote: c.destinationRemote,
    route: c.route,
    token: policyToken(side, c, route.allowedIssuers),
  });
  try {
    const result = side.engine.evaluate(input);
    if (result.allow) return { decision: "allow", reason: result.reason, status: 200 };
    return deny(result.reason, result.status);
  } catch (error) {
    if (error instanceof PolicyFault) return deny("internal_error");
    throw error;
  }
}

function policyToken(side: PolicySide, c: ReplayCase, allowed: ReadonlySet<string> | null): PolicyToken {
  const token = c.token;
  if (token.state === "absent") return token;
  if (token.state === "invalid") return { state: "invalid", reason: token.reason as DenyReason };
  if (!side.data.issuers.has(token.iss) || (allowed !== null && !allowed.has(token.iss))) return { state: "invalid", reason: "issuer_untrusted" };
  // The claims the policy may read, rebuilt from what is kept (never the original set).
  const claims: Record<string, unknown> = { iss: token.iss, scope: token.scopes.map((s) => s.raw).join(" ") };
  if (token.sub !== null) claims["sub"] = token.sub;
  if (token.aud !== null) claims["aud"] = token.aud.length === 1 ? token.aud[0] : token.aud;
  if (token.groups.length > 0) claims["wlcg.groups"] = token.groups;
  return {
    state: "verified",
    iss: token.iss,
    sub: token.sub,
    jti: null,
    profile: token.profile,
    aud: token.aud,
    scopes: token.scopes,
    groups: token.groups,
    claims,
  };
}

function deny(reason: string, status?: number): Outcome {
  return {
    decision: "deny",
    reason,
    status: status ?? (isReasonCode(reason) && reason !== "allowed" && reason !== "passthrough" ? DENY_SHAPES[reason].http : 403),
  };
}
