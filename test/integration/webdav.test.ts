import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type TestService, reasonOf, responseHeader, startTestService } from "../helpers/service.js";
import { TEST_AUDIENCE, mint } from "../helpers/tokens.js";
import { GrpcCode, expectDenied } from "./expect-decision.js";

// WebDAV specifics through the real service: MOVE/COPY Destination, create-only uploads,
// and the groups header.

let key: TestKey;
let issuer: OidcServer;
let svc: TestService;

beforeAll(async () => {
  key = await makeKey("ES256");
  issuer = await startOidcServer({ keys: [key] });
  svc = await startTestService({ audiences: [TEST_AUDIENCE], issuers: [{ issuer: issuer.issuer, base_path: "/store" }] });
});

afterAll(async () => {
  await svc?.close();
  await issuer?.close();
});

describe("MOVE and COPY need the grant on the Destination too", () => {
  it.each([
    { name: "MOVE within the granted subtree", method: "MOVE", destination: "https://storage.example.org/store/up/b", reason: "allowed" },
    { name: "COPY with an absolute-path Destination", method: "COPY", destination: "/store/up/c", reason: "allowed" },
    { name: "MOVE out of the granted subtree", method: "MOVE", destination: "https://storage.example.org/store/other/b", reason: "scope_insufficient" },
    { name: "MOVE to a sibling prefix", method: "MOVE", destination: "/store/upload/b", reason: "scope_insufficient" },
    { name: "MOVE to a Destination with ..", method: "MOVE", destination: "https://storage.example.org/store/up/../other", reason: "path_invalid" },
    { name: "MOVE without a Destination", method: "MOVE", destination: undefined, reason: "path_invalid" },
  ])("$name: $reason", async ({ method, destination, reason }) => {
    const token = await mint(key, issuer.issuer, { scopes: ["write:/up"] });
    const response = await svc.check({
      method,
      path: "/store/up/a",
      token,
      headers: destination === undefined ? {} : { destination },
    });
    if (reason === "allowed") {
      expect(response.status?.code).toBe(GrpcCode.OK);
      expect(reasonOf(response)).toBe("allowed");
    } else if (reason === "path_invalid") {
      expectDenied(response, { grpc: GrpcCode.INVALID_ARGUMENT, http: 400, reason, wwwAuthenticate: null });
    } else {
      expectDenied(response, { grpc: GrpcCode.PERMISSION_DENIED, http: 403, reason });
    }
  });
});

describe("storage.create is create-only", () => {
  it.each([
    { name: "PUT granted only by storage.create gets If-None-Match: *", scopes: ["storage.create:/new"], method: "PUT", ifNoneMatch: "*" },
    { name: "PUT granted by storage.modify too gets none", scopes: ["storage.create:/new", "storage.modify:/new"], method: "PUT", ifNoneMatch: undefined },
    { name: "MKCOL granted by storage.create gets none", scopes: ["storage.create:/new"], method: "MKCOL", ifNoneMatch: undefined },
  ])("$name", async ({ scopes, method, ifNoneMatch }) => {
    const token = await mint(key, issuer.issuer, { scopes, profile: "wlcg1" });
    const response = await svc.check({ method, path: "/store/new/file", token });
    expect(response.status?.code).toBe(GrpcCode.OK);
    expect(responseHeader(response, "if-none-match")).toBe(ifNoneMatch);
  });

  it("storage.create does not grant DELETE", async () => {
    const token = await mint(key, issuer.issuer, { scopes: ["storage.create:/new"], profile: "wlcg1" });
    expectDenied(await svc.check({ method: "DELETE", path: "/store/new/file", token }), {
      grpc: GrpcCode.PERMISSION_DENIED,
      http: 403,
      reason: "scope_insufficient",
    });
  });
});

describe("groups header", () => {
  it("comma-joins wlcg.groups", async () => {
    const token = await mint(key, issuer.issuer, { scopes: ["read:/"], groups: ["/cms", "/cms/prod"] });
    const response = await svc.check({ method: "GET", path: "/store/x", token });
    expect(responseHeader(response, "x-scitokens-groups")).toBe("/cms,/cms/prod");
  });

  it("sends no groups header when a group name holds a comma, and removes the client's", async () => {
    const token = await mint(key, issuer.issuer, { scopes: ["read:/"], groups: ["/a,b", "/c"] });
    const response = await svc.check({ method: "GET", path: "/store/x", token, headers: { "x-scitokens-groups": "/admin" } });
    expect(response.status?.code).toBe(GrpcCode.OK);
    expect(responseHeader(response, "x-scitokens-groups")).toBeUndefined();
    expect(response.okResponse?.headersToRemove).toContain("x-scitokens-groups");
  });
});

describe("Destination on another host", () => {
  it.each([
    { name: "another host name", destination: "https://evil.example.net/store/up/x", reason: "scope_insufficient" },
    { name: "the same host with another port", destination: "https://storage.example.org:8443/store/up/x", reason: "scope_insufficient" },
    { name: "a network-path reference", destination: "//evil.example.net/store/up/x", reason: "path_invalid" },
  ])("COPY to $name is refused ($reason)", async ({ destination, reason }) => {
    const token = await mint(key, issuer.issuer, { scopes: ["write:/up", "read:/up"] });
    const response = await svc.check({ method: "COPY", path: "/store/up/a", token, headers: { destination } });
    if (reason === "path_invalid") expectDenied(response, { grpc: GrpcCode.INVALID_ARGUMENT, http: 400, reason, wwwAuthenticate: null });
    else expectDenied(response, { grpc: GrpcCode.PERMISSION_DENIED, http: 403, reason });
  });

  it("the same host with its default port and another letter case is the same host", async () => {
    const token = await mint(key, issuer.issuer, { scopes: ["write:/up"] });
    const response = await svc.check({ method: "MOVE", path: "/store/up/a", token, headers: { destination: "https://STORAGE.example.org:443/store/up/b" } });
    expect(reasonOf(response)).toBe("allowed");
  });
});
