import { errors } from "jose";
import { DenyError } from "../reasons/index.js";

/**
 * Where the jose error arose: choosing the key from the issuer's set, or verifying the
 * token with it. `ERR_JOSE_NOT_SUPPORTED` means an unusable alg in the first, and a
 * `crit` parameter jose does not understand in the second.
 */
export type JoseStage = "key-selection" | "verification";

/**
 * The one place where jose's error codes become reason codes (STYLE: errors are types
 * with stable codes). Whatever else is thrown while a client's token is being matched
 * to a key or verified is still about that token, so it becomes a denial too
 * (`key_not_found` when choosing the key, `signature_invalid` when verifying), with the
 * error kept as `cause` for the log: client input never turns into a service fault.
 */
export function fromJoseError(error: unknown, stage: JoseStage): DenyError {
  if (error instanceof DenyError) return error;
  const code = error instanceof errors.JOSEError ? error.code : undefined;
  switch (code) {
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
        : new DenyError("token_malformed", (error as Error).message, { cause: error });
    case "ERR_JWS_INVALID":
    case "ERR_JWT_INVALID":
      return new DenyError("token_malformed", (error as Error).message, { cause: error });
    default: {
      const what = code ?? (error instanceof Error ? `${error.name}: ${error.message}` : String(error));
      return stage === "key-selection"
        ? new DenyError("key_not_found", `no usable key (${what})`, { cause: error })
        : new DenyError("signature_invalid", `cannot be verified (${what})`, { cause: error });
    }
  }
}

/**
 * Whether jose's `error`, thrown while verifying a token with a key, would be thrown
 * again for the same token and key: the token is malformed, names an algorithm not
 * allowed or unsupported, or its signature does not verify. Not when the crypto call
 * itself failed (jose keeps that failure as `cause`) or for anything unexpected: such a
 * refusal might not recur, so it is never remembered (the negative cache).
 */
export function isRepeatableRefusal(error: unknown): boolean {
  if (!(error instanceof errors.JOSEError)) return false;
  switch (error.code) {
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return error.cause === undefined;
    case "ERR_JOSE_ALG_NOT_ALLOWED":
    case "ERR_JOSE_NOT_SUPPORTED":
    case "ERR_JWS_INVALID":
    case "ERR_JWT_INVALID":
      return true;
    default:
      return false;
  }
}
