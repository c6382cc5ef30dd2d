import { type HeaderValueOption, HeaderValueOption_HeaderAppendAction } from "../gen/envoy/config/core/v3/base.js";
import type { CheckResponse } from "../gen/envoy/service/auth/v3/external_auth.js";
import type { StatusCode as HttpStatusCode } from "../gen/envoy/type/v3/http_status.js";
import { CONTROL_CHARACTER } from "../paths/normalize.js";
import { type DenyReason, type OperatorReason, type ReasonCode, isReasonCode } from "../reasons/index.js";
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
  /** A reason of the service, or a deny reason the operator declared (its status is set). */
  readonly reason: ReasonCode | OperatorReason;
  /** Whether the client presented a bearer token (RFC 6750 error parameter). */
  readonly tokenPresented: boolean;
  /** The verified token, for the decision log. */
  readonly token?: VerifiedToken;
  /** The scope that granted the request, for the decision log. */
  readonly scope?: string | null;
  /** Allowed: the headers the policy sets on the upstream request. */
  readonly upstreamHeaders?: Readonly<Record<string, string>>;
  /** Allowed: the headers the policy removes from the upstream request. */
  readonly removeHeaders?: readonly string[];
  /** Denied by the policy: an HTTP status instead of the reason's usual one. */
  readonly status?: number;
  /** Denied by the policy: headers added to the client's response. */
  readonly responseHeaders?: Readonly<Record<string, string>>;
  /** Denied by the policy: a body instead of the usual JSON one. */
  readonly body?: string;
  /** Why, for the decision log only (never on the wire, never token material). */
  readonly detail?: string | undefined;
}

export interface ResponseSettings {
  /** The `WWW-Authenticate` realm of the route. */
  readonly realm: string;
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

/** An operator's reason (declared in the data, with its status): a refusal by policy. */
const OPERATOR_SHAPE: DenyShape = forbidden;

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

// `rawValue` is never set: one empty buffer for every header (the encoder only reads it).
const NO_RAW_VALUE = Buffer.alloc(0);

function set(key: string, value: string): HeaderValueOption {
  return {
    header: { key, value, rawValue: NO_RAW_VALUE },
    append: undefined,
    appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
    keepEmptyValue: false,
  };
}

// A header value must not carry line breaks or other controls: claims are the issuer's,
// but an odd `sub` must not break the upstream request. Such a header is removed instead.
const UNSAFE_HEADER_VALUE = CONTROL_CHARACTER;

/**
 * Maps a decision to Envoy's CheckResponse (SEMANTICS §11). Pure: no I/O, so it is tested
 * with tables. An allow carries the headers the policy sets and removes upstream; a
 * denial gets the HTTP status, `WWW-Authenticate` and a small JSON body of its reason,
 * with what the policy overrides, never the token or its claims.
 */
export function decisionToResponse(decision: Decision, settings: ResponseSettings): CheckResponse {
  const dynamicMetadata = { decision_id: decision.id, reason: decision.reason };
  if (decision.reason === "allowed" || decision.reason === "passthrough") {
    const headers: HeaderValueOption[] = [];
    const headersToRemove = [...(decision.removeHeaders ?? [])];
    for (const [name, value] of Object.entries(decision.upstreamHeaders ?? {})) {
      if (UNSAFE_HEADER_VALUE.test(value)) headersToRemove.push(name);
      else headers.push(set(name, value));
    }
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
  const shape = isReasonCode(decision.reason) ? DENY_SHAPES[decision.reason as DenyReason] : OPERATOR_SHAPE;
  const http = decision.status ?? shape.http;
  const headers = new Map<string, string>([["content-type", "application/json"]]);
  if (http === 401 || http === 403) {
    const error = decision.tokenPresented && shape.bearerError ? `, error="${shape.bearerError}"` : "";
    headers.set("www-authenticate", `Bearer realm="${settings.realm}"${error}`);
  }
  if (http === 503) headers.set("retry-after", "30");
  for (const [name, value] of Object.entries(decision.responseHeaders ?? {})) {
    if (!UNSAFE_HEADER_VALUE.test(value)) headers.set(name, value);
  }
  return {
    status: { code: shape.grpc, message: decision.reason, details: [] },
    deniedResponse: {
      status: { code: http as HttpStatusCode },
      headers: [...headers].map(([name, value]) => set(name, value)),
      body: decision.body ?? `${JSON.stringify({ error: shape.error, reason: decision.reason, decision_id: decision.id })}\n`,
    },
    dynamicMetadata,
  };
}
