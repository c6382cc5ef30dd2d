import { describe, expect, it } from "vitest";
import { type AuthzHttpRequest, readAuthzHttpRequest } from "../../../src/authz-http/index.js";
import { readHttpRequest } from "../../../src/envoy/http-request.js";
import { DenyError } from "../../../src/reasons/index.js";

// Issue 9: a request to the HTTP authorization endpoint becomes the CheckRequest the gRPC
// path would get for the original request. Asserted through readHttpRequest, the view
// the Authorizer decides on.

/** Headers as Node's rawHeaders holds them: names and values alternating, one character per byte. */
const raw = (...pairs: Array<[string, string]>): string[] => pairs.flat();
const latin1 = (utf8: string) => Buffer.from(utf8, "utf8").toString("latin1");

const nginx = (target: string, ...headers: Array<[string, string]>): AuthzHttpRequest => ({ method: "GET", target, rawHeaders: raw(...headers) });
const ORIGINAL = (method: string, uri: string): Array<[string, string]> => [
  ["X-Original-Method", method],
  ["X-Original-URI", uri],
];

describe("nginx auth_request (/nginx)", () => {
  it.each([
    {
      name: "method and URI from X-Original-*, host and headers from the subrequest",
      request: nginx("/nginx", ["Host", "storage.example.org:8443"], ...ORIGINAL("PUT", "/protected/a%20b?x=1"), ["Authorization", "Bearer t"]),
      view: { method: "PUT", rawPath: "/protected/a%20b?x=1", host: "storage.example.org:8443", authorization: "Bearer t", contextExtensions: {} },
    },
    {
      name: "a route section named in the path",
      request: nginx("/nginx/webdav", ...ORIGINAL("GET", "/protected/x")),
      view: { method: "GET", rawPath: "/protected/x", host: "", authorization: undefined, contextExtensions: { route: "webdav" } },
    },
    {
      name: "MOVE with its Destination",
      request: nginx("/nginx", ...ORIGINAL("MOVE", "/protected/a"), ["Destination", "/protected/b"]),
      view: { method: "MOVE", rawPath: "/protected/a", destination: "/protected/b" },
    },
    {
      name: "a method nginx passes on that HTTP parsers do not know",
      request: nginx("/nginx", ...ORIGINAL("FROBNICATE", "/protected/x")),
      view: { method: "FROBNICATE" },
    },
    {
      name: "header names in any case",
      request: nginx("/nginx", ["x-original-method", "HEAD"], ["X-ORIGINAL-URI", "/protected/x"], ["AUTHORIZATION", "Bearer t"]),
      view: { method: "HEAD", rawPath: "/protected/x", authorization: "Bearer t" },
    },
    {
      name: "a UTF-8 URI (bytes as Node reads them)",
      request: nginx("/nginx", ...ORIGINAL("GET", latin1("/protected/données")), ["Origin", latin1("https://é.example")]),
      view: { rawPath: "/protected/données", origin: "https://é.example" },
    },
  ])("$name", ({ request, view }) => {
    const call = readAuthzHttpRequest(request);
    expect(call.mode).toBe("nginx");
    if (call.mode === null) return;
    expect(call.misconfigured).toBeUndefined();
    expect(readHttpRequest(call.check)).toMatchObject(view);
  });

  it("does not hand the X-Original-* headers on as request headers", () => {
    const call = readAuthzHttpRequest(nginx("/nginx", ...ORIGINAL("GET", "/protected/x"), ["Accept", "*/*"]));
    if (call.mode === null) throw new Error("not an endpoint");
    const view = readHttpRequest(call.check);
    expect(view.header("x-original-uri")).toBeUndefined();
    expect(view.header("x-original-method")).toBeUndefined();
    expect(view.header("accept")).toBe("*/*");
  });

  it.each([
    ["two Authorization headers", ["Authorization", "Bearer a"], ["Authorization", "Bearer b"]],
    ["two Destination headers", ["Destination", "/protected/a"], ["Destination", "/protected/b"]],
    ["two If-None-Match headers", ["If-None-Match", "*"], ["If-None-Match", '"etag"']],
  ] as Array<[string, [string, string], [string, string]]>)("%s stay two, and are refused (request_malformed)", (_name, first, second) => {
    const call = readAuthzHttpRequest(nginx("/nginx", ...ORIGINAL("MOVE", "/protected/x"), first, second));
    if (call.mode === null) throw new Error("not an endpoint");
    expect(() => readHttpRequest(call.check)).toThrow(expect.objectContaining({ code: "request_malformed" }));
  });

  it("a header value that is not UTF-8 reaches the checks as a NUL (refused downstream)", () => {
    const call = readAuthzHttpRequest(nginx("/nginx", ...ORIGINAL("GET", "/protected/x"), ["Authorization", "Bearer \xff\xfe"]));
    if (call.mode === null) throw new Error("not an endpoint");
    expect(readHttpRequest(call.check).authorization).toBe("\u0000");
  });

  it.each([
    ["no X-Original-URI", [["X-Original-Method", "GET"]], "X-Original-URI"],
    ["no X-Original-Method", [["X-Original-URI", "/protected/x"]], "X-Original-Method"],
    ["neither", [], "X-Original-Method and X-Original-URI"],
    ["two X-Original-URI", [...ORIGINAL("GET", "/protected/x"), ["X-Original-URI", "/protected/y"]], "X-Original-URI"],
    ["an empty X-Original-Method", ORIGINAL("", "/protected/x"), "X-Original-Method"],
  ] as Array<[string, Array<[string, string]>, string]>)("%s: a Check without HTTP attributes (request_malformed), and why", (_name, headers, missing) => {
    const call = readAuthzHttpRequest(nginx("/nginx", ...headers));
    if (call.mode === null) throw new Error("not an endpoint");
    expect(call.misconfigured).toBe(`nginx sent ${missing} not exactly once: its auth_request location must set them (deploy/nginx/nginx.conf)`);
    let thrown: unknown;
    try {
      readHttpRequest(call.check);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(DenyError);
    expect((thrown as DenyError).code).toBe("request_malformed");
  });
});

describe("Envoy http_service (path_prefix /envoy)", () => {
  it.each([
    {
      name: "the original method, the path after the prefix (query kept), host and headers",
      request: { method: "PUT", target: "/envoy/protected/x?y=1", rawHeaders: raw(["Host", "storage.example.org"], ["Authorization", "Bearer t"]) },
      view: { method: "PUT", rawPath: "/protected/x?y=1", host: "storage.example.org", authorization: "Bearer t", contextExtensions: {} },
    },
    {
      name: "a path Envoy did not normalize goes on raw, for the Authorizer to refuse",
      request: { method: "GET", target: "/envoy/protected/%2e%2e/x", rawHeaders: [] },
      view: { rawPath: "/protected/%2e%2e/x" },
    },
    {
      name: "OPTIONS *",
      request: { method: "OPTIONS", target: "/envoy*", rawHeaders: [] },
      view: { method: "OPTIONS", rawPath: "*" },
    },
    {
      name: "X-Original-* mean nothing here",
      request: { method: "GET", target: "/envoy/protected/x", rawHeaders: raw(...ORIGINAL("PUT", "/protected/other")) },
      view: { method: "GET", rawPath: "/protected/x" },
    },
  ])("$name", ({ request, view }) => {
    const call = readAuthzHttpRequest(request);
    expect(call.mode).toBe("envoy");
    if (call.mode === null) return;
    expect(readHttpRequest(call.check)).toMatchObject(view);
  });
});

describe("anything else is no endpoint (404)", () => {
  it.each(["/", "/healthz", "/nginx/", "/nginx/a/b", "/nginxx", "/envoyx/protected", "/protected/x", ""])("%j", (target) => {
    expect(readAuthzHttpRequest({ method: "GET", target, rawHeaders: raw(...ORIGINAL("GET", "/protected/x")) })).toEqual({ mode: null });
  });
});
