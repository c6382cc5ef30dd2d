import { DenyError } from "../reasons/index.js";

// RFC 6750 §2.1 b64token (token68).
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;
// "bearer" not continued by another tchar (RFC 9110 §5.6.2): `Bearerx` is another scheme,
// while `Bearer` followed by anything else (a no-break space, say) is a bearer credential
// with a bad separator, not "no token".
const SCHEME = /^bearer(?![!#$%&'*+.^_`|~0-9A-Za-z-])/i;
// Control characters, and U+FFFD where bytes were not UTF-8: an unreadable header.
// eslint-disable-next-line no-control-regex
const UNREADABLE = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\ufffd]/;

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/** Trims spaces and tabs with plain loops (a `[ \t]+$` regex is quadratic on long runs). */
function trimSpaces(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && isSpace(value.charCodeAt(start))) start += 1;
  while (end > start && isSpace(value.charCodeAt(end - 1))) end -= 1;
  return value.slice(start, end);
}

/**
 * Extracts the bearer token from an `Authorization` header value (RFC 6750 §2.1: the
 * scheme is case-insensitive, then spaces, then a token68). Returns null when no bearer
 * credential is present (so `on_missing` applies); a header with control characters or
 * bytes that were not UTF-8 is `token_malformed`, since it might hold one. A bearer
 * credential next to any other (Envoy joins repeated headers with ",") is
 * `request_malformed`; an empty or ill-formed one is `token_malformed`; a token over
 * `maxBytes` is `token_too_large`, rejected before any parsing. Linear in the header length: no backtracking regular expression runs on it.
 */
export function extractBearer(authorization: string | undefined, maxBytes: number): string | null {
  if (authorization === undefined) return null;
  // Whatever else it holds, it may hold a token: never read as "no token" (on_missing).
  if (UNREADABLE.test(authorization)) throw new DenyError("token_malformed", "unreadable Authorization header");
  const credentials = authorization
    .split(",")
    .map(trimSpaces)
    .filter((c) => c !== "");
  const bearers = credentials.filter((c) => SCHEME.test(c));
  if (bearers.length === 0) return null;
  // Authorization holds one credential, and a token68 has no comma: a comma-separated
  // second credential is a repeated header that Envoy joined, ambiguous to the upstream.
  if (bearers.length > 1) throw new DenyError("request_malformed", "more than one bearer credential");
  if (credentials.length > 1) throw new DenyError("request_malformed", "a bearer credential among other credentials");
  const rest = bearers[0]!.slice("bearer".length);
  const token = trimSpaces(rest);
  if (token === "") throw new DenyError("token_malformed", "empty bearer credential");
  if (!isSpace(rest.charCodeAt(0))) throw new DenyError("token_malformed", "no space after the Bearer scheme");
  if (Buffer.byteLength(token, "utf8") > maxBytes) throw new DenyError("token_too_large", `over ${maxBytes} bytes`);
  if (!TOKEN68.test(token)) throw new DenyError("token_malformed", "credential is not a token68 string");
  return token;
}
