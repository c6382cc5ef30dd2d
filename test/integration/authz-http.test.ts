import { execFile } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { Agent } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateConfig } from "../../src/cli/validate.js";
import { BUILT_POLICY_FILE, DEMO_DATA_FILE } from "../../src/config/service-config.js";
import type { CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth.js";
import { CLI, spawnServe } from "../helpers/cli-process.js";
import { type HttpResult, headerValues, httpCall } from "../helpers/http-client.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type TestService, reasonOf, startTestService } from "../helpers/service.js";
import { TEST_AUDIENCE, mint } from "../helpers/tokens.js";

// Issue 9: the HTTP authorization endpoint (authz_http.listen) decides as the gRPC path
// does. The same request, as a gRPC Check, as nginx's auth_request subrequest (/nginx)
// and as Envoy's http_service request (/envoy + path), gets the same reason, status,
// challenge and identity headers; nothing a client sends makes it answer 5xx but the
// documented denials.

let key: TestKey;
let issuer: OidcServer;
let svc: TestService;
let port: number;
const agent = new Agent({ keepAlive: true, maxSockets: 4 });

beforeAll(async () => {
  key = await makeKey("ES256");
  issuer = await startOidcServer({ keys: [key] });
  svc = await startTestService(
    {
      audiences: [TEST_AUDIENCE],
      issuers: [{ issuer: issuer.issuer, base_path: "/protected" }],
      routes: { public: { on_missing: "passthrough" } },
    },
    { authz_http: { listen: "127.0.0.1:0" } },
  );
  port = svc.service.authzHttp!.port;
});

afterAll(async () => {
  agent.destroy();
  await svc?.close();
  await issuer?.close();
});

interface Case {
  name: string;
  method: string;
  path: string;
  /** Scopes of a token minted for the request; none: no token. */
  scopes?: string[];
  token?: string;
  headers?: Array<[string, string]>;
  route?: string;
  status: number;
  reason: string;
}

const CASES: Case[] = [
  { name: "a read under the granted path", method: "GET", path: "/protected/stuff/a.txt", scopes: ["read:/stuff"], status: 200, reason: "allowed" },
  { name: "a write with a read scope", method: "PUT", path: "/protected/stuff/a.txt", scopes: ["read:/stuff"], status: 403, reason: "scope_insufficient" },
  { name: "no token", method: "GET", path: "/protected/stuff/a.txt", status: 401, reason: "token_missing" },
  { name: "a token that is not a JWT", method: "GET", path: "/protected/x", token: "not-a-jwt", status: 401, reason: "token_malformed" },
  { name: "outside the base path", method: "GET", path: "/elsewhere/x", scopes: ["read:/"], status: 403, reason: "path_outside_base" },
  { name: "an encoded dot segment", method: "GET", path: "/protected/stuff/%2e%2e/secret", scopes: ["read:/stuff"], status: 400, reason: "path_invalid" },
  {
    name: "MOVE within the grant",
    method: "MOVE",
    path: "/protected/stuff/a",
    scopes: ["write:/stuff"],
    headers: [["Destination", "https://storage.example.org/protected/stuff/b"]],
    status: 200,
    reason: "allowed",
  },
  {
    name: "MOVE out of the grant",
    method: "MOVE",
    path: "/protected/stuff/a",
    scopes: ["write:/stuff"],
    headers: [["Destination", "/protected/other/b"]],
    status: 403,
    reason: "scope_insufficient",
  },
  {
    name: "two Destination headers",
    method: "COPY",
    path: "/protected/stuff/a",
    scopes: ["write:/stuff"],
    headers: [
      ["Destination", "/protected/stuff/b"],
      ["Destination", "/protected/stuff/c"],
    ],
    status: 400,
    reason: "request_malformed",
  },
  { name: "a create-only PUT", method: "PUT", path: "/protected/new/f", scopes: ["storage.create:/new"], status: 200, reason: "allowed" },
  { name: "a route section (nginx /nginx/ROUTE)", method: "GET", path: "/protected/x", route: "public", status: 200, reason: "passthrough" },
  { name: "a route the data does not define", method: "GET", path: "/protected/x", route: "nosuch", status: 500, reason: "route_unknown" },
];

async function tokenOf(c: Case): Promise<string | undefined> {
  if (c.token !== undefined) return c.token;
  return c.scopes === undefined
    ? undefined
    : mint(key, issuer.issuer, { scopes: c.scopes, profile: c.scopes[0]!.startsWith("storage.") ? "wlcg1" : "scitokens2", groups: ["/a", "/b"] });
}

function clientHeaders(c: Case, token: string | undefined): string[] {
  return [
    ...(token !== undefined ? ["Authorization", `Bearer ${token}`] : []),
    ...(c.headers ?? []).flat(),
    // A client's own identity header, which the decision must replace or remove.
    "X-Scitokens-Subject",
    "root",
  ];
}

function nginxCall(c: Case, token: string | undefined): Promise<HttpResult> {
  return httpCall(
    { port },
    {
      path: c.route !== undefined ? `/nginx/${c.route}` : "/nginx",
      headers: ["Host", "storage.example.org", "X-Original-Method", c.method, "X-Original-URI", c.path, ...clientHeaders(c, token)],
      agent,
    },
  );
}

function envoyCall(c: Case, token: string | undefined): Promise<HttpResult> {
  return httpCall({ port }, { method: c.method, path: `/envoy${c.path}`, headers: ["Host", "storage.example.org", ...clientHeaders(c, token)], agent });
}

/** Headers as Envoy's `headers` map holds them: lower case, repeats joined with ",". */
function grpcHeaders(pairs: ReadonlyArray<[string, string]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of pairs) {
    const key = name.toLowerCase();
    out[key] = out[key] === undefined ? value : `${out[key]},${value}`;
  }
  return out;
}

/** What the gRPC path answered, in the terms of an HTTP answer. */
function fromGrpc(response: CheckResponse) {
  const ok = response.okResponse;
  const denied = response.deniedResponse;
  const headers = Object.fromEntries((ok?.headers ?? denied?.headers ?? []).map((h) => [h.header!.key, h.header!.value]));
  return {
    status: ok ? 200 : denied?.status?.code,
    reason: reasonOf(response),
    headers,
    removed: ok?.headersToRemove.join(",") || undefined,
    bodyReason: denied ? (JSON.parse(denied.body) as { reason: string }).reason : undefined,
  };
}

function fromHttp(result: HttpResult, grpcHeaderNames: readonly string[]) {
  const headers = Object.fromEntries(grpcHeaderNames.map((name) => [name, result.headers[name]]));
  return {
    status: result.status,
    reason: result.headers["x-scitokens-authz-reason"],
    headers,
    removed: result.headers["x-envoy-auth-headers-to-remove"],
    bodyReason: result.status === 200 ? undefined : (JSON.parse(result.body.toString()) as { reason: string }).reason,
  };
}

describe("the same decision as the gRPC path", () => {
  it.each(CASES)("$name: $status $reason", async (c) => {
    const token = await tokenOf(c);
    const grpc = fromGrpc(
      await svc.check({
        method: c.method,
        path: c.path,
        token,
        headers: grpcHeaders([...(c.headers ?? []), ["x-scitokens-subject", "root"]]),
        route: c.route,
      }),
    );
    expect({ status: grpc.status, reason: grpc.reason }).toEqual({ status: c.status, reason: c.reason });
    const names = Object.keys(grpc.headers);
    const nginx = fromHttp(await nginxCall(c, token), names);
    expect(nginx).toEqual(grpc);
    // Envoy's http_service carries no route (context_extensions): those cases are nginx's.
    if (c.route === undefined) {
      expect(fromHttp(await envoyCall(c, token), names)).toEqual(grpc);
    }
  });

  it("an allow names the identity for the upstream and the headers it must lose", async () => {
    const token = await mint(key, issuer.issuer, { scopes: ["read:/stuff"], subject: "alice" });
    const result = await nginxCall({ name: "", method: "GET", path: "/protected/stuff/a", status: 200, reason: "allowed" }, token);
    expect(result.status).toBe(200);
    expect(result.headers["x-scitokens-subject"]).toBe("alice");
    expect(result.headers["x-scitokens-issuer"]).toBe(issuer.issuer);
    expect(result.headers["x-scitokens-scope"]).toBe("read:/stuff");
    expect(String(result.headers["x-envoy-auth-headers-to-remove"]).split(",")).toEqual(expect.arrayContaining(["x-scitokens-groups", "x_scitokens_subject"]));
    expect(result.headers["x-scitokens-authz-decision-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(result.headers["x-scitokens-authz-revision"]).toBe(svc.service.revision);
    expect(result.body.length).toBe(0);
    expect(result.headers["content-length"]).toBe("0");
  });

  it("a denial carries the gRPC path's challenge and JSON body", async () => {
    const result = await envoyCall({ name: "", method: "GET", path: "/protected/x", status: 401, reason: "token_missing" }, undefined);
    expect(result.status).toBe(401);
    expect(headerValues(result, "www-authenticate")).toEqual(['Bearer realm="scitokens-authz"']);
    expect(result.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(result.body.toString())).toEqual({
      error: "unauthorized",
      reason: "token_missing",
      decision_id: result.headers["x-scitokens-authz-decision-id"],
    });
  });
});

describe("what is not a decision", () => {
  it("nginx without X-Original-URI (a configuration fault) is denied request_malformed", async () => {
    const result = await httpCall({ port }, { path: "/nginx", headers: ["X-Original-Method", "GET"] });
    expect(result.status).toBe(400);
    expect(result.headers["x-scitokens-authz-reason"]).toBe("request_malformed");
  });

  it.each(["/", "/healthz", "/nginx/a/b"])("%s is 404, no decision", async (path) => {
    const result = await httpCall({ port }, { path });
    expect(result.status).toBe(404);
    expect(result.headers["x-scitokens-authz-reason"]).toBeUndefined();
  });

  it("a request head over authz_http.max_header_bytes is 431, refused before any decision", async () => {
    const result = await httpCall({ port }, { path: "/envoy/protected/x", headers: ["X-Big", "a".repeat(70 * 1024)] });
    expect(result.status).toBe(431);
  });
});

describe("client input never turns into a 5xx", () => {
  // Printable header values (what nginx and Envoy pass on), any method token, any target.
  const token = fc.stringMatching(/^[A-Z][A-Z-]{0,11}$/);
  const text = fc.string({ unit: fc.constantFrom(..."abc/%.;\\?#&=~-_ 2eEfF5cC:@!*'()é日"), maxLength: 40 });
  const value = fc.string({ unit: fc.constantFrom(...'abc ,;="*/:.-_eyJ0', "\u00e9"), maxLength: 60 });
  const headerName = fc.constantFrom(
    "authorization",
    "destination",
    "if-none-match",
    "origin",
    "access-control-request-method",
    "overwrite",
    "x-scitokens-subject",
  );

  it("nginx mode: only 200, 400, 401 or 403", async () => {
    await fc.assert(
      fc.asyncProperty(token, text, fc.array(fc.tuple(headerName, value), { maxLength: 4 }), async (method, uri, headers) => {
        const result = await httpCall(
          { port },
          { path: "/nginx", headers: ["X-Original-Method", method, "X-Original-URI", Buffer.from(uri).toString("latin1"), ...headers.flat()], agent },
        );
        expect([200, 400, 401, 403]).toContain(result.status);
      }),
      { numRuns: 150, seed: 9 },
    );
  });
});

describe("on a Unix socket", () => {
  it("answers there, and removes the socket file on close", async () => {
    const dir = await mkdtemp(join(tmpdir(), "scitokens-authz-http-"));
    const socketPath = join(dir, "http.sock");
    const local = await startTestService(
      { audiences: [TEST_AUDIENCE], issuers: [{ issuer: issuer.issuer, base_path: "/protected" }] },
      { authz_http: { listen: `unix:${socketPath}` } },
    );
    try {
      expect(local.service.authzHttp).toEqual({ port: 0, address: `unix:${socketPath}` });
      const result = await httpCall({ socketPath }, { path: "/nginx", headers: ["X-Original-Method", "GET", "X-Original-URI", "/protected/x"] });
      expect({ status: result.status, reason: result.headers["x-scitokens-authz-reason"] }).toEqual({ status: 401, reason: "token_missing" });
    } finally {
      await local.close();
    }
    await expect(stat(socketPath)).rejects.toMatchObject({ code: "ENOENT" });
    await rm(dir, { recursive: true, force: true });
  });
});

it("validate checks the folder of authz_http's socket as serve would", async () => {
  const dir = await mkdtemp(join(tmpdir(), "scitokens-authz-http-"));
  try {
    const file = join(dir, "service.yaml");
    await writeFile(
      file,
      `grpc: { listen: "127.0.0.1:9292" }\nauthz_http: { listen: "unix:${dir}/missing/http.sock" }\npolicy: { data: ${DEMO_DATA_FILE}, wasm: ${BUILT_POLICY_FILE} }\n`,
    );
    const report = await validateConfig(file);
    expect(report.problems).toContainEqual({
      file,
      problem: `authz_http.listen: expected an existing folder for the socket ${dir}/missing/http.sock, found nothing at ${dir}/missing`,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

describe("serve --authz-http", () => {
  let dir: string;
  let file: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "scitokens-authz-http-"));
    await writeFile(join(dir, "data.yaml"), `audiences: ["${TEST_AUDIENCE}"]\nissuers: [{ issuer: "${issuer.issuer}", base_path: /protected }]\n`);
    file = join(dir, "service.yaml");
    await writeFile(file, `grpc: { listen: "127.0.0.1:0" }\npolicy: { data: data.yaml, wasm: ${BUILT_POLICY_FILE} }\n`);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("serves the endpoint at the address given", async () => {
    const served = spawnServe(["--config", file, "--authz-http", "127.0.0.1:0"]);
    try {
      const [, httpPort] = await served.waitFor(/"msg":"listening on 127\.0\.0\.1:\d+; HTTP authorization endpoint on 127\.0\.0\.1:(\d+)"/);
      const result = await httpCall({ port: Number(httpPort) }, { path: "/nginx", headers: ["X-Original-Method", "GET", "X-Original-URI", "/protected/x"] });
      expect(result.headers["x-scitokens-authz-reason"]).toBe("token_missing");
    } finally {
      expect(await served.stop()).toBe(0);
    }
  });

  it("refuses an address that is none: exit 2 naming the flag", async () => {
    const run = await promisify(execFile)(process.execPath, [CLI, "serve", "--config", file, "--authz-http", "9393"]).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((run as { code: number }).code).toBe(2);
    expect((run as { stderr: string }).stderr).toContain('--authz-http: expected "host:port"');
  });
});
