/**
 * Fuzz target: `extractBearer` (RFC 6750 §2.1, SEMANTICS §10) on a header value, under
 * three size limits. It returns null or a token68 within the limit, or throws a
 * DenyError; null means the header holds no bearer credential (so `on_missing`, which may
 * let the request through, applies only then); and the limit changes an outcome only by
 * turning it into `token_too_large`.
 */
import { DenyError, isReasonCode } from "../../../src/reasons/index.js";
import { extractBearer } from "../../../src/token/bearer.js";
import { describe, ensure, show } from "../invariants.js";

const LIMITS = [1, 16, 16_384] as const;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;

type Outcome = { token: string | null } | { code: string };

function isOws(c: string): boolean {
  return c === " " || c === "\t";
}

function trimOws(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isOws(text[start]!)) start += 1;
  while (end > start && isOws(text[end - 1]!)) end -= 1;
  return text.slice(start, end);
}

/** The comma-separated credentials of the header, as Envoy joins repeated headers. */
function credentials(header: string): string[] {
  return header
    .split(",")
    .map(trimOws)
    .filter((c) => c !== "");
}

/** RFC 7235: auth-scheme (case-insensitive), then whitespace or nothing. */
function isBearer(credential: string): boolean {
  return credential.slice(0, 6).toLowerCase() === "bearer" && (credential.length === 6 || isOws(credential[6]!));
}

function outcome(header: string, limit: number): Outcome {
  try {
    return { token: extractBearer(header, limit) };
  } catch (error) {
    ensure(error instanceof DenyError, `threw ${describe(error)} rather than a DenyError`, header);
    ensure(isReasonCode(error.code), `DenyError with the unknown code ${show(error.code)}`, header);
    return { code: error.code };
  }
}

function ensureToken(header: string, limit: number, token: string | null): void {
  const creds = credentials(header);
  if (token === null) {
    ensure(!creds.some(isBearer), "returned null (no credential) for a header holding a bearer credential", header);
    return;
  }
  ensure(TOKEN68.test(token), `returned ${show(token)}, not a token68`, header);
  ensure(Buffer.byteLength(token, "utf8") <= limit, `returned a token over the ${limit}-byte limit`, header);
  ensure(creds.length === 1, "returned a token from a header with several credentials", header);
  const only = creds[0]!;
  ensure(isBearer(only) && trimOws(only.slice(6)) === token, `returned ${show(token)}, which is not the credential of the header`, header);
}

export function fuzz(data: Buffer): void {
  const header = data.toString("utf8");
  const outcomes = LIMITS.map((limit) => {
    const result = outcome(header, limit);
    if ("token" in result) ensureToken(header, limit, result.token);
    return result;
  });
  // A smaller limit may only turn an outcome into token_too_large.
  for (let i = 0; i < outcomes.length; i += 1) {
    const smaller = outcomes[i]!;
    if ("code" in smaller && smaller.code === "token_too_large") continue;
    for (const larger of outcomes.slice(i + 1)) {
      ensure(
        JSON.stringify(larger) === JSON.stringify(smaller),
        `limits ${LIMITS.join(", ")} give ${outcomes.map((o) => JSON.stringify(o)).join(", ")}`,
        header,
      );
    }
  }
}
