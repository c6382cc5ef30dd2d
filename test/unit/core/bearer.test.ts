import { describe, expect, it } from "vitest";
import type { DenyReason } from "../../../src/reasons/index.js";
import { extractBearer } from "../../../src/token/bearer.js";
import { denyOf } from "./fixtures.js";

// A JWT-shaped token68 credential (header.payload.signature, base64url).
const JWT = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlLm9yZyJ9.c2lnbmF0dXJl";
const MAX = 64;

describe("extractBearer (SEMANTICS §10, RFC 6750 §2.1)", () => {
  it.each<[string, string | undefined, string | null]>([
    ["no Authorization header", undefined, null],
    ["empty header", "", null],
    ["Bearer", `Bearer ${JWT}`, JWT],
    ["lower-case scheme", `bearer ${JWT}`, JWT],
    ["upper-case scheme", `BEARER ${JWT}`, JWT],
    ["mixed-case scheme", `BeArEr ${JWT}`, JWT],
    ["several spaces after the scheme", `Bearer    ${JWT}`, JWT],
    ["surrounding whitespace", `  Bearer ${JWT}  `, JWT],
    ["token68 with padding", "Bearer YWJj==", "YWJj=="],
    ["token68 with every allowed character", "Bearer aZ09-._~+/", "aZ09-._~+/"],
    ["Basic credentials only", "Basic YWxpY2U6c2VjcmV0", null],
    ["Negotiate credentials only", "Negotiate YIIC", null],
    ["scheme name merely starting with Bearer", `Bearerx ${JWT}`, null],
  ])("%s", (_name, header, token) => {
    expect(extractBearer(header, 16 * 1024)).toBe(token);
  });

  it.each<[string, string, DenyReason]>([
    ["two bearer credentials joined by a comma", `Bearer ${JWT}, Bearer ${JWT}x`, "request_malformed"],
    ["Basic then Bearer, joined by Envoy: ambiguous", `Basic YWxpY2U6c2VjcmV0, Bearer ${JWT}`, "request_malformed"],
    ["Bearer then Basic, joined by Envoy: ambiguous", `Bearer ${JWT},Basic YWxpY2U6c2VjcmV0`, "request_malformed"],
    ["bearer token followed by junk after a comma", `Bearer ${JWT},junk`, "request_malformed"],
    ["the same bearer credential twice", `Bearer ${JWT},Bearer ${JWT}`, "request_malformed"],
    ["two bearer credentials with different scheme case", `bearer a, BEARER b`, "request_malformed"],
    ["scheme without a credential", "Bearer", "token_malformed"],
    ["a no-break space after the scheme (an upstream splitting on any space would find the token)", "Bearer\u00a0abc.def.ghi", "token_malformed"],
    ["a slash right after the scheme", "Bearer/abc.def.ghi", "token_malformed"],
    ["a byte that was not UTF-8 after the token", `Bearer ${JWT}\ufffd`, "token_malformed"],
    ["an unreadable header_map value (decoded as NUL)", "\u0000", "token_malformed"],
    ["a C1 control inside Basic credentials", "Basic YTpi\u0085", "token_malformed"],
    ["a line feed", `Bearer ${JWT}\nX-Injected: 1`, "token_malformed"],
    ["scheme followed by spaces only", "Bearer    ", "token_malformed"],
    ["empty bearer credential next to Basic", "Basic YWxpY2U6c2VjcmV0, Bearer", "request_malformed"],
    ["space inside the credential", "Bearer abc def", "token_malformed"],
    ["quoted credential", 'Bearer "abc"', "token_malformed"],
    ["auth-param instead of token68", 'Bearer realm="x"', "token_malformed"],
    ["padding in the middle", "Bearer ab=c", "token_malformed"],
    ["non-ASCII character", "Bearer abcé", "token_malformed"],
    ["semicolon", "Bearer abc;def", "token_malformed"],
    ["one byte over the limit", `Bearer ${"a".repeat(MAX + 1)}`, "token_too_large"],
    ["far over the limit", `Bearer ${"a".repeat(MAX * 100)}`, "token_too_large"],
    ["over the limit is checked before the token68 syntax", `Bearer ${"a b".repeat(MAX)}`, "token_too_large"],
    ["limit counts UTF-8 bytes, not characters", `Bearer ${"é".repeat(MAX / 2 + 1)}`, "token_too_large"],
  ])("%s", (_name, header, reason) => {
    expect(denyOf(() => extractBearer(header, MAX)).code).toBe(reason);
  });

  it("accepts a token of exactly the limit", () => {
    const token = "a".repeat(MAX);
    expect(extractBearer(`Bearer ${token}`, MAX)).toBe(token);
  });

  it("never puts the token in the error message", () => {
    const secret = `${JWT}.extra`;
    const error = denyOf(() => extractBearer(`Bearer ${secret}, Bearer ${secret}`, 16 * 1024));
    expect(error.message).not.toContain(secret);
    expect(error.detail ?? "").not.toContain(secret);
  });
});
