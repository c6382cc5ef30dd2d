/**
 * Stable reason codes (docs/semantics.md §12). They appear in decision logs, in the
 * JSON body of denied responses, in metric labels and in tests: never rename one.
 */
export const REASON_CODES = [
  "request_malformed",
  "token_missing",
  "token_malformed",
  "token_too_large",
  "profile_unknown",
  "alg_not_allowed",
  "issuer_untrusted",
  "key_not_found",
  "key_unavailable",
  "signature_invalid",
  "token_expired",
  "token_not_yet_valid",
  "token_issued_in_future",
  "claim_invalid",
  "audience_mismatch",
  "scope_invalid",
  "path_invalid",
  "path_outside_base",
  "method_unmapped",
  "scope_insufficient",
  "route_unknown",
  "internal_error",
  "allowed",
  "passthrough",
] as const;

export type ReasonCode = (typeof REASON_CODES)[number];

/**
 * A deny reason an operator's policy gives and the authorization data declares
 * (`reasons`); never one of {@link REASON_CODES}. Its status comes from the data.
 */
export type OperatorReason = string & { readonly __operatorReason: true };

/** Reasons that deny. */
export type DenyReason = Exclude<ReasonCode, "allowed" | "passthrough">;

const KNOWN = new Set<string>(REASON_CODES);

export function isReasonCode(value: unknown): value is ReasonCode {
  return typeof value === "string" && KNOWN.has(value);
}

/**
 * A request the service refuses because of what the client sent (its token or its
 * path). It becomes a denied CheckResponse carrying `code`; `cause` and `detail` are
 * for the service's own log only and never reach the wire.
 */
export class DenyError extends Error {
  override readonly name = "DenyError";
  constructor(
    readonly code: DenyReason,
    readonly detail?: string,
    options?: { cause?: unknown },
  ) {
    super(detail ? `${code}: ${detail}` : code, options);
  }
}
