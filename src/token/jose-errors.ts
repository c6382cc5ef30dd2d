import { errors } from "jose";
import { DenyError } from "../decision/reasons.js";

/**
 * The one place where jose's error codes become reason codes (STYLE: errors are types
 * with stable codes). Anything jose throws that is not about the token itself is left
 * as it is, so it surfaces as an internal fault rather than a deny.
 */
export function fromJoseError(error: unknown): unknown {
  if (error instanceof DenyError) return error;
  if (!(error instanceof errors.JOSEError)) return error;
  switch (error.code) {
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return new DenyError("signature_invalid", undefined, { cause: error });
    case "ERR_JOSE_ALG_NOT_ALLOWED":
      return new DenyError("alg_not_allowed", undefined, { cause: error });
    case "ERR_JWKS_NO_MATCHING_KEY":
    case "ERR_JWKS_MULTIPLE_MATCHING_KEYS":
      return new DenyError("key_not_found", undefined, { cause: error });
    case "ERR_JWS_INVALID":
    case "ERR_JWT_INVALID":
    case "ERR_JOSE_NOT_SUPPORTED": // e.g. a crit header parameter jose does not understand
      return new DenyError("token_malformed", error.message, { cause: error });
    default:
      return error;
  }
}
