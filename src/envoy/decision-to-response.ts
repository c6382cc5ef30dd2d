import type { DenyReason, ReasonCode } from "../reasons/index.js";
import type { CheckResponse } from "../gen/envoy/service/auth/v3/external_auth.js";
import { type HeaderValueOption, HeaderValueOption_HeaderAppendAction } from "../gen/envoy/config/core/v3/base.js";
import { StatusCode as HttpStatusCode } from "../gen/envoy/type/v3/http_status.js";
import { CONTROL_CHARACTER } from "../paths/normalize.js";
import type { VerifiedToken } from "../token/claims.js";

/** gRPC status codes used in CheckResponse.status (google.rpc.Code). */
export const GrpcCode = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  PERMISSION_DENIED: 7,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** One decision for one Check; everything the response and the decision log need. */
export interface Decision {
  readonly id: string;
  readonly reason: ReasonCode;
  /** Whether the client presented a bearer token (RFC 6750 error parameter). */
  readonly tokenPresented: boolean;
  /** Set when allowed with a verified token. */
  readonly token?: VerifiedToken;
  readonly scope?: string | null;
  readonly createOnly?: boolean;
  /** Why, for the decision log only (never on the wire, never token material). */
  readonly detail?: string | undefined;
}

export interface ResponseSettings {
  readonly headerPrefix: string;
  readonly realm: string;
  readonly removeAuthorization: boolean;
  /** The claim sent as the subject header (`username_claim`); default `sub`. */
  readonly usernameClaim?: string;
}

interface DenyShape {
  readonly http: number;
  readonly grpc: number;
  /** RFC 6750 §3.1 error code in WWW-Authenticate, or none. */
  readonly bearerError: "invalid_token" | "insufficient_scope" | null;
  readonly error: string;
}

const unauthenticated: DenyShape = { http: 401, grpc: GrpcCode.UNAUTHENTICATED, bearerError: "invalid_token", error: "unauthorized" };
const forbidden: DenyShape = { http: 403, grpc: GrpcCode.PERMISSION_DENIED, bearerError: "insufficient_scope", error: "forbidden" };
const badRequest: DenyShape = { http: 400, grpc: GrpcCode.INVALID_ARGUMENT, bearerError: null, error: "bad_request" };
// A fault of the deployment or of the service itself: denied (fail closed), never a gRPC
// error that Envoy's failure_mode_allow could turn into an allow.
const serviceFault: DenyShape = { http: 500, grpc: GrpcCode.INTERNAL, bearerError: null, error: "internal" };

/** SEMANTICS §11: how each deny reason reaches the client. */
export const DENY_SHAPES: Readonly<Record<DenyReason, DenyShape>> = {
  request_malformed: badRequest,
  token_missing: { ...unauthenticated, bearerError: null },
  token_malformed: unauthenticated,
  token_too_large: unauthenticated,
  profile_unknown: unauthenticated,
  alg_not_allowed: unauthenticated,
  issuer_untrusted: unauthenticated,
  key_not_found: unauthenticated,
  signature_invalid: unauthenticated,
  token_expired: unauthenticated,
  token_not_yet_valid: unauthenticated,
  token_issued_in_future: unauthenticated,
  claim_invalid: unauthenticated,
  audience_mismatch: unauthenticated,
  scope_invalid: unauthenticated,
  key_unavailable: { http: 503, grpc: GrpcCode.UNAVAILABLE, bearerError: null, error: "unavailable" },
  path_invalid: badRequest,
  path_outside_base: forbidden,
  method_unmapped: forbidden,
  scope_insufficient: forbidden,
  route_unknown: serviceFault,
  internal_error: serviceFault,
};

/** Identity header suffixes, set on allow and always stripped from what the client sent. */
export const IDENTITY_HEADERS = ["subject", "issuer", "scope", "groups", "jti"] as const;

function set(key: string, value: string): HeaderValueOption {
  return {
    header: { key, value, rawValue: Buffer.alloc(0) },
    append: undefined,
    appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
    keepEmptyValue: false,
  };
}

function identityValues(decision: Decision, usernameClaim: string): Record<(typeof IDENTITY_HEADERS)[number], string | null> {
  const token = decision.token;
  return {
    subject: usernameClaim === "sub" ? (token?.sub ?? null) : (token?.identity[usernameClaim] ?? null),
    issuer: token?.iss ?? null,
    scope: decision.scope ?? null,
    // Comma-joined; a group name holding a comma could not be split back, so then no header.
    groups: token && token.groups.length > 0 && !token.groups.some((g) => g.includes(",")) ? token.groups.join(",") : null,
    jti: token?.jti ?? null,
  };
}

// Header values must not carry line breaks or other controls; claims are attacker-influenced
// only within a verified token, but an issuer's odd `sub` must not break the upstream request.
const UNSAFE_HEADER_VALUE = CONTROL_CHARACTER;

interface IdentityNames {
  /** `prefix + suffix`, in IDENTITY_HEADERS order. */
  readonly names: readonly string[];
  /**
   * The same names with `_` for `-`: CGI/WSGI upstreams read both as one variable, so a
   * client must not be able to smuggle identity in through them either.
   */
  readonly underscored: readonly string[];
}

const namesByPrefix = new Map<string, IdentityNames>();

function identityNames(prefix: string): IdentityNames {
  let names = namesByPrefix.get(prefix);
  if (!names) {
    const hyphenated = IDENTITY_HEADERS.map((suffix) => `${prefix}${suffix}`);
    names = { names: hyphenated, underscored: hyphenated.map((n) => n.replaceAll("-", "_")).filter((n, i) => n !== hyphenated[i]) };
    namesByPrefix.set(prefix, names);
  }
  return names;
}

/**
 * Maps a decision to Envoy's CheckResponse (SEMANTICS §11). Pure: no I/O, so it is tested
 * with tables. Allowed requests get identity headers (client copies replaced or removed);
 * denied ones get the HTTP status, WWW-Authenticate and a small JSON body, never the
 * token or its claims.
 */
export function decisionToResponse(decision: Decision, settings: ResponseSettings): CheckResponse {
  const dynamicMetadata = { decision_id: decision.id, reason: decision.reason };
  if (decision.reason === "allowed" || decision.reason === "passthrough") {
    const headers: HeaderValueOption[] = [];
    const headersToRemove: string[] = [];
    const values = identityValues(decision, settings.usernameClaim ?? "sub");
    const { names, underscored } = identityNames(settings.headerPrefix);
    IDENTITY_HEADERS.forEach((suffix, i) => {
      const name = names[i]!;
      const value = decision.reason === "allowed" ? values[suffix] : null;
      if (value !== null && !UNSAFE_HEADER_VALUE.test(value)) headers.push(set(name, value));
      else headersToRemove.push(name);
    });
    headersToRemove.push(...underscored);
    if (decision.createOnly) headers.push(set("if-none-match", "*"));
    if (settings.removeAuthorization) headersToRemove.push("authorization");
    return {
      status: { code: GrpcCode.OK, message: "", details: [] },
      okResponse: {
        headers,
        headersToRemove,
        dynamicMetadata: undefined,
        responseHeadersToAdd: [],
        queryParametersToSet: [],
        queryParametersToRemove: [],
      },
      dynamicMetadata,
    };
  }
  const shape = DENY_SHAPES[decision.reason];
  const headers: HeaderValueOption[] = [set("content-type", "application/json")];
  if (shape.http === 401 || shape.http === 403) {
    const error = decision.tokenPresented && shape.bearerError ? `, error="${shape.bearerError}"` : "";
    headers.push(set("www-authenticate", `Bearer realm="${settings.realm}"${error}`));
  }
  if (shape.http === 503) headers.push(set("retry-after", "30"));
  return {
    status: { code: shape.grpc, message: decision.reason, details: [] },
    deniedResponse: {
      status: { code: shape.http as HttpStatusCode },
      headers,
      body: `${JSON.stringify({ error: shape.error, reason: decision.reason, decision_id: decision.id })}\n`,
    },
    dynamicMetadata,
  };
}
