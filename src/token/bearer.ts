import { DenyError } from "../decision/reasons.js";

// RFC 6750 §2.1 b64token (token68).
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;
const BEARER = /^bearer(?:\s+(.*))?$/i;

/**
 * Extracts the bearer token from an `Authorization` header value (RFC 6750 §2.1; the
 * scheme is case-insensitive). Returns null when no bearer credential is present (so
 * `on_missing` applies). A bearer credential next to any other (Envoy joins repeated
 * headers with ","), an empty or ill-formed one is `token_malformed`; a token over
 * `maxBytes` is `token_too_large`, rejected before any parsing.
 */
export function extractBearer(authorization: string | undefined, maxBytes: number): string | null {
  if (authorization === undefined) return null;
  let token: string | null = null;
  let bearers = 0;
  const credentials = authorization.split(",").map((c) => c.trim()).filter((c) => c !== "");
  for (const credential of credentials) {
    const match = BEARER.exec(credential);
    if (!match) continue;
    bearers += 1;
    token = (match[1] ?? "").trim();
  }
  if (bearers === 0) return null;
  if (bearers > 1) throw new DenyError("token_malformed", "more than one bearer credential");
  // A token68 has no comma: anything beside the bearer credential makes it ambiguous.
  if (credentials.length > 1) throw new DenyError("token_malformed", "a bearer credential among other credentials");
  if (token === null || token === "") throw new DenyError("token_malformed", "empty bearer credential");
  if (Buffer.byteLength(token, "utf8") > maxBytes) throw new DenyError("token_too_large", `over ${maxBytes} bytes`);
  if (!TOKEN68.test(token)) throw new DenyError("token_malformed", "credential is not a token68 string");
  return token;
}
