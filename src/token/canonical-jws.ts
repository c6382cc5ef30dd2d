import { DenyError } from "../reasons/index.js";

const BASE64URL_ALPHABET = /^[A-Za-z0-9_-]*$/;
// The last character of a segment whose length is 2 (or 3) modulo 4 carries 4 (or 2)
// unused low bits: the characters whose alphabet index has them zero.
const LAST_OF_2_MOD_4 = /[AQgw]$/;
const LAST_OF_3_MOD_4 = /[AEIMQUYcgkosw048]$/;

/**
 * True when `segment` is the one base64url spelling of its bytes (RFC 7515 §2, RFC 4648
 * §5 without padding): no `=`, no characters outside the URL-safe alphabet, no length
 * that no byte string encodes to, and the unused low bits of the last character zero
 * (RFC 4648 §3.5). Node's decoder ignores all of those; this checks them without
 * decoding (jose decodes the segments once, when it verifies).
 */
export function isCanonicalBase64url(segment: string): boolean {
  if (!BASE64URL_ALPHABET.test(segment)) return false;
  switch (segment.length % 4) {
    case 0:
      return true;
    case 2:
      return LAST_OF_2_MOD_4.test(segment);
    case 3:
      return LAST_OF_3_MOD_4.test(segment);
    default:
      return false;
  }
}

/**
 * Splits a JWS compact serialization into its three segments, each canonical
 * base64url, else `token_malformed`. Signed bytes then have one spelling, so respelling
 * a token (appending `==`, setting unused bits) gives no new token. This is not the
 * uniqueness of a signature: an ECDSA signature (r, s) has a twin (r, n − s) that anyone
 * can compute and that verifies too, so anything that must recognise "the same token"
 * (a deny-list) keys on `jti` or the claims, never on the token's bytes.
 */
export function splitCanonicalJws(token: string): [header: string, payload: string, signature: string] {
  const parts = token.split(".");
  if (parts.length !== 3) throw new DenyError("token_malformed", "not a JWS compact serialization (three segments)");
  for (const part of parts) {
    if (!isCanonicalBase64url(part)) throw new DenyError("token_malformed", "a segment is not canonical base64url");
  }
  return parts as [string, string, string];
}
