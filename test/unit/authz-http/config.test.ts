import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../src/config/config-error.js";
import { DEFAULT_AUTHZ_HTTP_MAX_HEADER_BYTES, parseServiceConfig } from "../../../src/config/service-config.js";

// Issue 9: `authz_http` in the service configuration: off when absent, a listen address
// like grpc.listen's (host:port or unix:PATH), and a limit on the request head.

const FILE = "/etc/scitokens-authz/service.yaml";
const parse = (extra: object) => parseServiceConfig(FILE, { grpc: { listen: "127.0.0.1:9292" }, ...extra });

function problemsOf(extra: object): readonly string[] {
  try {
    parse(extra);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error("expected a ConfigError");
}

describe("authz_http", () => {
  it("is off when absent", () => {
    expect(parse({}).authzHttp).toBeUndefined();
  });

  it.each([
    ["host:port", "127.0.0.1:9393", { host: "127.0.0.1", port: 9393 }],
    ["port 0 (a free port)", "127.0.0.1:0", { host: "127.0.0.1", port: 0 }],
    ["a socket, relative to the config's folder", "unix:run/http.sock", { socketPath: join(dirname(FILE), "run", "http.sock") }],
  ])("listens on %s, with the default head limit", (_name, listen, expected) => {
    expect(parse({ authz_http: { listen } }).authzHttp).toEqual({ listen: expected, maxHeaderBytes: DEFAULT_AUTHZ_HTTP_MAX_HEADER_BYTES });
  });

  it("takes max_header_bytes", () => {
    expect(parse({ authz_http: { listen: "127.0.0.1:9393", max_header_bytes: 131072 } }).authzHttp?.maxHeaderBytes).toBe(131072);
  });

  it.each([
    ["no listen", { authz_http: {} }, 'authz_http.listen: required: expected "host:port"'],
    ["a bad address", { authz_http: { listen: "9393" } }, 'authz_http.listen: expected "host:port"'],
    ["a typo", { authz_http: { listen: "127.0.0.1:9393", max_headers_bytes: 1 } }, 'did you mean "max_header_bytes"'],
    ["not a mapping", { authz_http: "127.0.0.1:9393" }, "authz_http: expected a mapping {listen, max_header_bytes (optional)}"],
    [
      "a head limit of 0",
      { authz_http: { listen: "127.0.0.1:9393", max_header_bytes: 0 } },
      "authz_http.max_header_bytes: expected the largest request head in bytes above 0",
    ],
    [
      "the gRPC listener's address",
      { authz_http: { listen: "127.0.0.1:9292" } },
      "authz_http.listen: expected another address than grpc.listen, got 127.0.0.1:9292 for both",
    ],
    [
      "a socket path over the system's limit",
      { authz_http: { listen: `unix:/${"s".repeat(120)}` } },
      "authz_http.listen: expected a socket path of at most 107 bytes",
    ],
  ])("refuses %s", (_name, extra, problem) => {
    expect(
      problemsOf(extra).some((p) => p.includes(problem)),
      problemsOf(extra).join("\n"),
    ).toBe(true);
  });

  it("port 0 on both listeners is two free ports, not one address", () => {
    expect(parseServiceConfig(FILE, { grpc: { listen: "127.0.0.1:0" }, authz_http: { listen: "127.0.0.1:0" } }).authzHttp?.listen).toEqual({
      host: "127.0.0.1",
      port: 0,
    });
  });
});
