import { createHash } from "node:crypto";
import type { Decision } from "../envoy/decision-to-response.js";
import type { PolicyInput } from "../envoy/policy-input.js";
import type { CheckResponse } from "../gen/envoy/service/auth/v3/external_auth.js";
import type { ParsedScope } from "../token/scopes.js";

/** What the authorizer reports of one Check once its response is ready. */
export interface DecisionEvent {
  readonly decision: Decision;
  readonly response: CheckResponse;
  /** The route section that applied (null: the top level). */
  readonly route: string | null;
  readonly method: string | null;
  /** The normalized request path; null when it was refused or never read. */
  readonly path: string | null;
  /** The policy input, when the Check got as far as the policy. */
  readonly input: PolicyInput | undefined;
  /** How long the Check took to decide, in seconds (the latency metric). */
  readonly durationSeconds: number;
}

/**
 * The token as the decision log keeps it: its state and, when verified, what the policy
 * decides with. Never the raw token, its signature, the `jti` (only its SHA-256) or
 * the other claims.
 */
export type LoggedToken =
  | { readonly state: "absent" }
  | { readonly state: "invalid"; readonly reason: string }
  | {
      readonly state: "verified";
      readonly iss: string;
      readonly sub: string | null;
      /** Hex SHA-256 of the `jti` claim, to correlate with an issuer's records without holding the id. */
      readonly jti_sha256: string | null;
      readonly profile: string;
      readonly aud: readonly string[] | null;
      readonly scopes: readonly ParsedScope[];
      readonly groups: readonly string[];
    };

/**
 * One line of the decision log (README, "Decision log"). It holds what re-evaluating the
 * request under another policy needs (`scitokens-authz policy diff`): the request as the
 * policy saw it, the route and the token's state.
 */
export interface DecisionRecord {
  readonly time: string;
  readonly decision_id: string;
  readonly policy_revision: string;
  readonly route: string | null;
  readonly method: string | null;
  readonly host: string | null;
  readonly path: string | null;
  readonly segments: readonly string[] | null;
  readonly destination: string | null;
  readonly destination_remote: boolean;
  /** null when the service decided before the token was looked at (a bad path, an unknown route). */
  readonly token: LoggedToken | null;
  readonly decision: "allow" | "deny";
  readonly reason: string;
  /** The HTTP status Envoy answers a denied request with; 200 when allowed. */
  readonly status: number;
  /** The scope entry that granted an allowed request. */
  readonly scope: string | null;
}

const HTTP_OK = 200;

/** The hex SHA-256 of a `jti`: the decision log never holds the id itself. */
export function hashJti(jti: string): string {
  return createHash("sha256").update(jti, "utf8").digest("hex");
}

function loggedToken(input: PolicyInput | undefined): LoggedToken | null {
  const token = input?.token;
  if (token === undefined) return null;
  switch (token.state) {
    case "absent":
      return { state: "absent" };
    case "invalid":
      return { state: "invalid", reason: token.reason };
    case "verified":
      return {
        state: "verified",
        iss: token.iss,
        sub: token.sub,
        jti_sha256: token.jti === null ? null : hashJti(token.jti),
        profile: token.profile,
        aud: token.aud,
        scopes: token.scopes.map((s) => ({ authz: s.authz, path: s.path, raw: s.raw })),
        groups: token.groups,
      };
  }
}

/** Builds the decision log line of one Check decided by the generation `revision` at `timeMs`. */
export function buildDecisionRecord(event: DecisionEvent, revision: string, timeMs: number): DecisionRecord {
  const { decision, response, input } = event;
  const allowed = response.okResponse !== undefined && response.deniedResponse === undefined;
  return {
    time: new Date(timeMs).toISOString(),
    decision_id: decision.id,
    policy_revision: revision,
    route: event.route,
    method: event.method,
    host: input?.attributes.request.http.host ?? null,
    path: event.path,
    segments: input?.parsed_path ?? null,
    destination: input?.destination ?? null,
    destination_remote: input?.destination_remote ?? false,
    token: loggedToken(input),
    decision: allowed ? "allow" : "deny",
    reason: decision.reason,
    status: allowed ? HTTP_OK : (response.deniedResponse?.status?.code ?? 403),
    scope: decision.scope ?? null,
  };
}
