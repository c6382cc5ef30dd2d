import { errors } from "jose";
import { DenyError } from "../decision/reasons.js";

/**
 * Where the jose error arose: choosing the key from the issuer's set, or verifying the
 * token with it. `ERR_JOSE_NOT_SUPPORTED` means an unusable alg in the first, and a
 * `crit` parameter jose does not understand in the second.
 */
export type JoseStage = "key-selection" | "verification";

/**
 * The one place where jose's error codes become reason codes (STYLE: errors are types
 * with stable codes). Anything that is not a jose error about the token is returned as
 * it is, so it surfaces as an internal fault rather than a deny.
 */
export function fromJoseError(error: unknown, stage: JoseStage): unknown {
  if (error instanceof DenyError) return error;
  if (!(error instanceof errors.JOSEError)) return error;
  switch (error.code) {
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return new DenyError("signature_invalid", undefined, { cause: error });
    case "ERR_JOSE_ALG_NOT_ALLOWED":
      return new DenyError("alg_not_allowed", undefined, { cause: error });
    case "ERR_JWKS_NO_MATCHING_KEY":
      return new DenyError("key_not_found", "no key in the issuer's set matches kid and alg", { cause: error });
    case "ERR_JWKS_MULTIPLE_MATCHING_KEYS":
      return new DenyError("key_not_found", "several keys match; the token must name one with kid", { cause: error });
    case "ERR_JOSE_NOT_SUPPORTED":
      return stage === "key-selection"
        ? new DenyError("alg_not_allowed", "alg is not an asymmetric JWS algorithm", { cause: error })
        : new DenyError("token_malformed", error.message, { cause: error });
    case "ERR_JWS_INVALID":
    case "ERR_JWT_INVALID":
      return new DenyError("token_malformed", error.message, { cause: error });
    default:
      return stage === "key-selection" ? new DenyError("key_not_found", error.code, { cause: error }) : error;
  }
}
