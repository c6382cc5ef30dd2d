import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ENVOY_PATH_PREFIX } from "../../src/authz-http/index.js";
import { PACKAGE_ROOT } from "../../src/config/service-config.js";
import { httpCall } from "../helpers/http-client.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type TestService, startTestService } from "../helpers/service.js";
import { TEST_AUDIENCE, mint } from "../helpers/tokens.js";
import { markdownSection } from "../unit/docs/markdown-section.js";

// Issue 9: envoy/envoy-http-service.yaml (Envoy's ext_authz in HTTP service mode) against
// the service's HTTP endpoint. No Envoy binary installs here, so this test does what
// Envoy's ext_authz HTTP client does with the file's settings (the rules are those of
// source/extensions/filters/common/ext_authz/ext_authz_http_impl.cc): it sends the
// method, path_prefix + path, Host, Authorization and the allowed_headers; takes 200 as
// an allow (allowed_upstream_headers set on the upstream request,
// x-envoy-auth-headers-to-remove removed), a 5xx as an error (status_on_error), and any
// other status as a denial (status, body, allowed_client_headers and WWW-Authenticate).

const FILE = join(PACKAGE_ROOT, "envoy", "envoy-http-service.yaml");

interface Matchers {
  patterns: Array<{ exact: string }>;
}
interface ExtAuthz {
  transport_api_version: string;
  http_service: {
    server_uri: { uri: string; cluster: string; timeout: string };
    path_prefix: string;
    authorization_response: { allowed_upstream_headers: Matchers; allowed_client_headers: Matchers; dynamic_metadata_from_headers: Matchers };
  };
  failure_mode_allow: boolean;
  status_on_error: { code: string };
  allowed_headers: Matchers;
  encode_raw_headers?: boolean;
}

let extAuthz: ExtAuthz;
let key: TestKey;
let issuer: OidcServer;
let silentIssuer: OidcServer;
let svc: TestService;

const names = (m: Matchers) => m.patterns.map((p) => p.exact);

beforeAll(async () => {
  const bootstrap = parse(await readFile(FILE, "utf8")) as {
    static_resources: {
      listeners: Array<{ filter_chains: Array<{ filters: Array<{ typed_config: { http_filters: Array<{ name: string; typed_config: unknown }> } }> }> }>;
    };
  };
  const filters = bootstrap.static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config.http_filters;
  extAuthz = filters.find((f) => f.name === "envoy.filters.http.ext_authz")!.typed_config as ExtAuthz;
  key = await makeKey("ES256");
  issuer = await startOidcServer({ keys: [key] });
  // A second issuer whose keys never come: key_unavailable, a 5xx.
  silentIssuer = await startOidcServer({ keys: [key], path: "/silent" });
  silentIssuer.respond("openid-configuration", { hang: true });
  svc = await startTestService(
    {
      audiences: [TEST_AUDIENCE],
      issuers: [
        { issuer: issuer.issuer, base_path: "/protected" },
        { issuer: silentIssuer.issuer, base_path: "/protected" },
      ],
    },
    { authz_http: { listen: "127.0.0.1:0" }, keys: { startup_wait_seconds: 0, check_wait_seconds: 1 } },
  );
});

afterAll(async () => {
  await svc?.close();
  await issuer?.close();
  await silentIssuer?.close();
});

interface Original {
  method: string;
  path: string;
  headers: Record<string, string>;
}

type Outcome =
  | { kind: "allowed"; upstreamHeaders: Record<string, string> }
  | { kind: "denied"; status: number; headers: Record<string, string>; body: string }
  | { kind: "error"; status: string };

/** What Envoy does with one request under the file's ext_authz settings. */
async function throughEnvoy(original: Original): Promise<Outcome> {
  const sent = new Set(["authorization", ...names(extAuthz.allowed_headers)]);
  const headers = ["Host", "storage.example.org"];
  for (const [name, value] of Object.entries(original.headers)) if (sent.has(name)) headers.push(name, value);
  const answer = await httpCall(
    { port: svc.service.authzHttp!.port },
    { method: original.method, path: `${extAuthz.http_service.path_prefix}${original.path}`, headers: [...headers, "Content-Length", "0"] },
  );
  if (answer.status >= 500) return { kind: "error", status: extAuthz.status_on_error.code };
  const received = Object.fromEntries(Object.entries(answer.headers).map(([name, value]) => [name, String(value)]));
  if (answer.status === 200) {
    const upstream = { ...original.headers };
    for (const name of (received["x-envoy-auth-headers-to-remove"] ?? "").split(",").filter(Boolean)) delete upstream[name.trim()];
    for (const name of names(extAuthz.http_service.authorization_response.allowed_upstream_headers)) {
      if (received[name] !== undefined) upstream[name] = received[name];
    }
    return { kind: "allowed", upstreamHeaders: upstream };
  }
  const client = new Set([...names(extAuthz.http_service.authorization_response.allowed_client_headers), "www-authenticate", "location"]);
  return {
    kind: "denied",
    status: answer.status,
    headers: Object.fromEntries(Object.entries(received).filter(([name]) => client.has(name))),
    body: answer.body.toString(),
  };
}

describe("envoy/envoy-http-service.yaml", () => {
  it("calls the service's Envoy endpoint, fails closed, and sends only the headers the service reads", () => {
    expect(extAuthz.http_service.path_prefix).toBe(ENVOY_PATH_PREFIX);
    expect(extAuthz.failure_mode_allow).toBe(false);
    expect(extAuthz.status_on_error.code).toBe("ServiceUnavailable");
    // Only the headers the service reads (Envoy sends Authorization in this mode anyway).
    expect(names(extAuthz.allowed_headers).sort()).toEqual(["access-control-request-method", "destination", "if-none-match", "origin"]);
    // encode_raw_headers would leave the HTTP service mode without the request's headers.
    expect(extAuthz.encode_raw_headers).toBeUndefined();
  });

  it("is the filter the README shows", async () => {
    const section = markdownSection(await readFile(join(PACKAGE_ROOT, "README.md"), "utf8"), /^### Envoy's HTTP service mode$/m);
    const block = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    expect(block).toBeDefined();
    const [filter] = parse(block!) as Array<{ name: string; typed_config: unknown }>;
    expect(filter?.name).toBe("envoy.filters.http.ext_authz");
    expect(filter?.typed_config).toEqual(extAuthz);
  });

  it("lets through every identity header the service can set, and the create-only If-None-Match", async () => {
    // A passthrough removes every identity header: that list is the full set.
    const local = await startTestService(
      { audiences: [TEST_AUDIENCE], issuers: [{ issuer: issuer.issuer, base_path: "/protected" }], on_missing: "passthrough" },
      { authz_http: { listen: "127.0.0.1:0" } },
    );
    try {
      const answer = await httpCall({ port: local.service.authzHttp!.port }, { path: "/envoy/protected/x" });
      const identity = String(answer.headers["x-envoy-auth-headers-to-remove"])
        .split(",")
        .filter((name) => name.startsWith("x-scitokens-"));
      expect(identity.length).toBeGreaterThanOrEqual(5);
      expect(names(extAuthz.http_service.authorization_response.allowed_upstream_headers).sort()).toEqual([...identity, "if-none-match"].sort());
    } finally {
      await local.close();
    }
  });

  it("allowed: the upstream gets the token's identity, never the client's", async () => {
    const token = await mint(key, issuer.issuer, { scopes: ["read:/stuff"], subject: "alice" });
    const outcome = await throughEnvoy({
      method: "GET",
      path: "/protected/stuff/a",
      headers: { authorization: `Bearer ${token}`, "x-scitokens-subject": "root", "x-scitokens-groups": "/admin", cookie: "s=1" },
    });
    expect(outcome.kind).toBe("allowed");
    if (outcome.kind !== "allowed") return;
    expect(outcome.upstreamHeaders).toMatchObject({
      "x-scitokens-subject": "alice",
      "x-scitokens-issuer": issuer.issuer,
      "x-scitokens-scope": "read:/stuff",
      cookie: "s=1",
    });
    expect(outcome.upstreamHeaders["x-scitokens-groups"]).toBeUndefined();
  });

  it("denied: the service's status, challenge and body reach the client", async () => {
    const outcome = await throughEnvoy({ method: "PUT", path: "/protected/stuff/a", headers: {} });
    expect(outcome).toMatchObject({
      kind: "denied",
      status: 401,
      headers: { "www-authenticate": 'Bearer realm="scitokens-authz"', "content-type": "application/json" },
    });
    if (outcome.kind !== "denied") return;
    expect(JSON.parse(outcome.body)).toMatchObject({ reason: "token_missing", decision_id: outcome.headers["x-scitokens-authz-decision-id"] });
  });

  it("a 400 denial reaches the client as the service answered it", async () => {
    const token = await mint(key, issuer.issuer, { scopes: ["read:/stuff"] });
    const outcome = await throughEnvoy({ method: "GET", path: "/protected/stuff/%2e%2e/x", headers: { authorization: `Bearer ${token}` } });
    expect(outcome).toMatchObject({ kind: "denied", status: 400, headers: { "x-scitokens-authz-reason": "path_invalid" } });
  });

  it("a 5xx denial (key_unavailable) is a failure to Envoy: status_on_error, 503, never an allow", async () => {
    const token = await mint(key, silentIssuer.issuer, { scopes: ["read:/stuff"] });
    expect(await throughEnvoy({ method: "GET", path: "/protected/stuff/a", headers: { authorization: `Bearer ${token}` } })).toEqual({
      kind: "error",
      status: "ServiceUnavailable",
    });
  });
});
