import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCheckRequest, sendCheck } from "../../src/cli/check.js";
import { extractBearer } from "../../src/token/bearer.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type TestService, reasonOf, startTestService } from "../helpers/service.js";
import { TEST_AUDIENCE, mint } from "../helpers/tokens.js";
import { GrpcCode, expectDenied, unauthenticated } from "./expect-decision.js";

// Inputs found in review to end as internal errors, slow parsing or smuggled identity.

let key: TestKey;
let issuer: OidcServer;
let svc: TestService;
let passthrough: TestService;

beforeAll(async () => {
  key = await makeKey("ES256");
  issuer = await startOidcServer({ keys: [key] });
  const data = { audiences: [TEST_AUDIENCE], issuers: [{ issuer: issuer.issuer, base_path: "/" }] };
  svc = await startTestService(data);
  passthrough = await startTestService({ ...data, on_missing: "passthrough" });
});

afterAll(async () => {
  await svc?.close();
  await passthrough?.close();
  await issuer?.close();
});

describe("claims with a lone UTF-16 surrogate are invalid, not an internal error", () => {
  it.each([
    ["sub", { subject: "\ud800" }],
    ["jti", { jti: "a\udfffb" }],
    ["aud", { audience: [TEST_AUDIENCE, "\ud83d"] }],
    ["scope path", { scopes: ["read:/\ud800"] }],
    ["named scope", { scopes: ["read:/", "x.\udc00"] }],
    ["wlcg.groups", { groups: ["/cms\ud800"] }],
  ])("%s", async (_name, overrides) => {
    const token = await mint(key, issuer.issuer, { scopes: ["read:/"], ...overrides });
    expectDenied(await svc.check({ method: "GET", path: "/data", token }), unauthenticated("claim_invalid"));
  });

  it("a well-formed astral character is fine", async () => {
    const token = await mint(key, issuer.issuer, { scopes: ["read:/"], subject: "😀" });
    const response = await svc.check({ method: "GET", path: "/data", token });
    expect(response.status?.code).toBe(GrpcCode.OK);
  });
});

describe("identity headers under their underscore spelling", () => {
  it("are removed on passthrough, where no identity is set", async () => {
    const response = await passthrough.check({ method: "GET", path: "/data", headers: { x_scitokens_subject: "root" } });
    expect(reasonOf(response)).toBe("passthrough");
    expect(response.okResponse?.headersToRemove).toEqual(
      expect.arrayContaining(["x_scitokens_subject", "x_scitokens_issuer", "x_scitokens_scope", "x_scitokens_groups", "x_scitokens_jti"]),
    );
  });
});

describe("bearer parsing is linear in the header length", () => {
  // A backtracking pattern took seconds on these (Envoy admits headers of 60 KiB); the
  // runner's test timeout is the guard, the assertions are about the answer.
  it.each([
    ["spaces then line separators", `Bearer${" ".repeat(60_000)}\u2028x\u2028y`, "token_malformed"],
    ["a huge token then spaces", `Bearer ${"a".repeat(60_000)}${" ".repeat(60_000)}x`, "token_too_large"],
  ])("%s", (_name, header, code) => {
    expect(() => extractBearer(header, 16 * 1024)).toThrow(expect.objectContaining({ code }));
  });

  it("empty list elements (commas and spaces) are skipped, as HTTP list syntax allows", () => {
    expect(extractBearer(`${", ".repeat(30_000)}Bearer abc.def.ghi`, 16 * 1024)).toBe("abc.def.ghi");
  });

  it("through the service, a 60 KiB pathological header is answered", async () => {
    const response = await svc.check({ method: "GET", path: "/data", headers: { authorization: `Bearer${" ".repeat(60_000)}\u2028x\u2028y` } });
    expectDenied(response, unauthenticated("token_malformed"));
  });
});

describe("an Authorization header that might hold a token is never read as no token", () => {
  // With on_missing: passthrough and on_invalid: deny, reading such a header as "no token"
  // would let an invalid token through anonymously (review finding).
  it.each([
    ["a no-break space after the scheme", (t: string) => ({ headers: { authorization: `Bearer\u00a0${t}` } })],
    ["a control character after the token", (t: string) => ({ headers: { authorization: `Bearer ${t}\u0001` } })],
    ["a replacement character where bytes were not UTF-8", (t: string) => ({ headers: { authorization: `Bearer ${t}\ufffd` } })],
  ])("%s: 401 token_malformed, not passthrough", async (_name, request) => {
    const token = `${await mint(key, issuer.issuer, { scopes: ["read:/"] })}x`;
    expectDenied(await passthrough.check({ method: "GET", path: "/data", ...request(token) }), unauthenticated("token_malformed"));
  });

  it("raw header bytes that are not UTF-8 (header_map): 401 token_malformed, not passthrough", async () => {
    const token = await mint(key, issuer.issuer, { scopes: ["read:/"] });
    const request = buildCheckRequest({ target: passthrough.target, host: "storage.example.org", method: "GET", path: "/data" });
    const http = request.attributes!.request!.http!;
    http.headerMap = {
      headers: [
        ...Object.entries(http.headers).map(([k, value]) => ({ key: k, value, rawValue: Buffer.alloc(0) })),
        { key: "authorization", value: "", rawValue: Buffer.concat([Buffer.from(`Bearer ${token}`), Buffer.from([0xff])]) },
      ],
    };
    http.headers = {};
    expectDenied(await sendCheck(passthrough.target, request), unauthenticated("token_malformed"));
  });
});
