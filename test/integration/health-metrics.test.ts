import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { PassThrough } from "node:stream";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { BUILT_POLICY_FILE, parseServiceConfig } from "../../src/config/service-config.js";
import { createLogger } from "../../src/observability/logger.js";
import { AUTHORIZATION_SERVICE_NAME } from "../../src/server/grpc-health.js";
import { startService } from "../../src/server/service.js";
import { healthClient, reflectionClient } from "../helpers/grpc-clients.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type TestService, startTestService, testClock } from "../helpers/service.js";
import { TEST_AUDIENCE, mint } from "../helpers/tokens.js";
import { GrpcCode, expectAllowed, expectDenied } from "./expect-decision.js";

// The admin HTTP listener (/healthz, /readyz, /metrics), the gRPC health service and
// server reflection, on the real service with a real issuer on loopback (README "Health
// and metrics").

const HTTP = { http: { listen: "127.0.0.1:0" } };
const GRPC_NOT_FOUND = 5;

let key: TestKey;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  key = await makeKey("ES256", "key-1");
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function issuer(): Promise<OidcServer> {
  const server = await startOidcServer({ keys: [key] });
  cleanups.push(() => server.close());
  return server;
}

async function service(data: object, overrides: Record<string, unknown> = {}, clock?: ReturnType<typeof testClock>): Promise<TestService> {
  const svc = await startTestService(data, { ...HTTP, ...overrides }, clock);
  cleanups.push(() => svc.close());
  return svc;
}

function admin(svc: TestService) {
  const base = `http://127.0.0.1:${svc.service.httpPort}`;
  return {
    get: (path: string, init?: RequestInit) => fetch(`${base}${path}`, init),
    async json(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
      const response = await fetch(`${base}${path}`);
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    },
    async metrics(): Promise<Map<string, number>> {
      const response = await fetch(`${base}/metrics`);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      return parseExposition(await response.text());
    },
  };
}

/** Sample lines of the Prometheus text format: `name{labels}` → value. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

describe("admin HTTP listener", () => {
  it("is absent without http.listen", async () => {
    const idp = await issuer();
    const svc = await startTestService({ audiences: [TEST_AUDIENCE], issuers: [{ issuer: idp.issuer, base_path: "/" }] });
    cleanups.push(() => svc.close());
    expect(svc.service.httpPort).toBeNull();
  });

  it("whose port is taken stops the start with one line naming http.listen", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const { port } = taken.address() as { port: number };
    const idp = await issuer();
    await expect(
      startTestService({ audiences: [TEST_AUDIENCE], issuers: [{ issuer: idp.issuer, base_path: "/" }] }, { http: { listen: `127.0.0.1:${port}` } }),
    ).rejects.toThrow(`http.listen: cannot listen on 127.0.0.1:${port}: the address is in use (another process listens there)`);
  });

  it("answers /healthz, /readyz and /metrics; other paths 404, other methods 405", async () => {
    const idp = await issuer();
    const svc = await service({ audiences: [TEST_AUDIENCE], issuers: [{ issuer: idp.issuer, base_path: "/" }] });
    const http = admin(svc);
    expect(svc.service.httpPort).toBeGreaterThan(0);

    expect(await http.json("/healthz")).toEqual({ status: 200, body: { status: "alive" } });
    const ready = await http.json("/readyz");
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({
      ready: true,
      status: "ready",
      policy_revision: svc.service.revision,
      issuers: [{ issuer: idp.issuer, ready: true, reason: "keys_usable", source: "discovery", keys: 1, last_error: null }],
    });
    expect((await http.get("/metrics?name[]=x")).status).toBe(200);

    const cases: Array<[string, string, number]> = [
      ["GET", "/", 404],
      ["GET", "/metricsz", 404],
      ["GET", "/readyz/extra", 404],
      ["POST", "/metrics", 405],
      ["DELETE", "/readyz", 405],
    ];
    for (const [method, path, status] of cases) {
      const response = await http.get(path, { method });
      expect({ method, path, status: response.status }).toEqual({ method, path, status });
      if (status === 405) expect(response.headers.get("allow")).toBe("GET, HEAD");
    }
    const head = await http.get("/readyz", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  });

  it("counts Checks by decision and reason, their latency, the token cache and key fetches; labels only trusted issuers", async () => {
    const idp = await issuer();
    const svc = await service({ audiences: [TEST_AUDIENCE], issuers: [{ issuer: idp.issuer, base_path: "/" }] });
    const http = admin(svc);
    const token = await mint(key, idp.issuer);
    const untrusted = await mint(key, "https://untrusted.example.org/idp");

    expectAllowed(await svc.check({ method: "GET", path: "/data/a", token })); // cache miss
    expectAllowed(await svc.check({ method: "GET", path: "/data/b", token })); // hit
    expectDenied(await svc.check({ method: "PUT", path: "/data/a", token }), { grpc: GrpcCode.PERMISSION_DENIED, http: 403, reason: "scope_insufficient" }); // hit
    expectDenied(await svc.check({ method: "GET", path: "/data/a" }), { grpc: GrpcCode.UNAUTHENTICATED, http: 401, reason: "token_missing" });
    expectDenied(await svc.check({ method: "GET", path: "/data/a", token: untrusted }), {
      grpc: GrpcCode.UNAUTHENTICATED,
      http: 401,
      reason: "issuer_untrusted",
    }); // miss

    const m = await http.metrics();
    const iss = JSON.stringify(idp.issuer);
    expect({
      allowed: m.get('scitokens_authz_checks_total{decision="allow",reason="allowed"}'),
      scope: m.get('scitokens_authz_checks_total{decision="deny",reason="scope_insufficient"}'),
      missing: m.get('scitokens_authz_checks_total{decision="deny",reason="token_missing"}'),
      untrusted: m.get('scitokens_authz_checks_total{decision="deny",reason="issuer_untrusted"}'),
      internal: m.get('scitokens_authz_checks_total{decision="deny",reason="internal_error"}'),
      routeUnknown: m.get('scitokens_authz_checks_total{decision="deny",reason="route_unknown"}'),
      latencyCount: m.get("scitokens_authz_check_duration_seconds_count"),
      latencyInf: m.get('scitokens_authz_check_duration_seconds_bucket{le="+Inf"}'),
      hits: m.get("scitokens_authz_token_cache_hits_total"),
      misses: m.get("scitokens_authz_token_cache_misses_total"),
      fetches: m.get(`scitokens_authz_key_fetches_total{issuer=${iss}}`),
      failures: m.get(`scitokens_authz_key_fetch_failures_total{issuer=${iss}}`),
      usable: m.get(`scitokens_authz_issuer_keys_usable{issuer=${iss}}`),
      ready: m.get("scitokens_authz_ready"),
      revision: m.get(`scitokens_authz_policy_info{revision="${svc.service.revision}"}`),
      refused: m.get('scitokens_authz_policy_reloads_total{outcome="refused"}'),
      maxStale: m.get("scitokens_authz_key_max_stale_seconds"),
      refreshInterval: m.get("scitokens_authz_key_refresh_interval_seconds"),
    }).toEqual({
      allowed: 2,
      scope: 1,
      missing: 1,
      untrusted: 1,
      internal: 0,
      routeUnknown: 0,
      latencyCount: 5,
      latencyInf: 5,
      hits: 2,
      misses: 2,
      fetches: 1,
      failures: 0,
      usable: 1,
      ready: 1,
      revision: 1,
      refused: 0,
      maxStale: 345600,
      refreshInterval: 600,
    });
    expect(m.get(`scitokens_authz_key_age_seconds{issuer=${iss}}`)).toBeGreaterThanOrEqual(0);
    // prom-client's process and Node.js metrics.
    expect(m.has("process_cpu_user_seconds_total")).toBe(true);
    expect(m.has("nodejs_eventloop_lag_seconds")).toBe(true);
    // The token's issuer is never a label value unless the data trusts it.
    const text = await (await http.get("/metrics")).text();
    expect(text).not.toContain("untrusted.example.org");
  });

  it("reports the revision in force and reload outcomes", async () => {
    const idp = await issuer();
    const data = { audiences: [TEST_AUDIENCE], issuers: [{ issuer: idp.issuer, base_path: "/" }] };
    const svc = await service(data, { policy: { watch: false } });
    const http = admin(svc);
    const first = svc.service.revision;

    await writeFile(join(svc.dir, "data.yaml"), stringify({ ...data, issuers: [{ issuer: idp.issuer, base_path: "/other" }] }));
    expect((await svc.service.reload("test")).outcome).toBe("reloaded");
    await writeFile(join(svc.dir, "data.yaml"), "audiences: [\n");
    expect((await svc.service.reload("test")).outcome).toBe("refused");

    const m = await http.metrics();
    expect(svc.service.revision).not.toBe(first);
    expect({
      current: m.get(`scitokens_authz_policy_info{revision="${svc.service.revision}"}`),
      previous: m.get(`scitokens_authz_policy_info{revision="${first}"}`),
      reloaded: m.get('scitokens_authz_policy_reloads_total{outcome="reloaded"}'),
      unchanged: m.get('scitokens_authz_policy_reloads_total{outcome="unchanged"}'),
      refused: m.get('scitokens_authz_policy_reloads_total{outcome="refused"}'),
    }).toEqual({ current: 1, previous: undefined, reloaded: 1, unchanged: 0, refused: 1 });
  });
});

describe("readiness follows the issuers' keys (/readyz and gRPC health)", () => {
  it("listens before the policy is loaded: /healthz 200, /readyz 503 starting while the start-up waits for keys", async () => {
    const idp = await issuer();
    let release!: () => void;
    idp.hold("openid-configuration", new Promise<void>((resolve) => (release = resolve)));
    const dir = await mkdtemp(join(tmpdir(), "scitokens-authz-starting-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, "data.yaml"), stringify({ audiences: [TEST_AUDIENCE], issuers: [{ issuer: idp.issuer, base_path: "/" }] }));
    const config = parseServiceConfig(join(dir, "service.yaml"), {
      grpc: { listen: "127.0.0.1:0" },
      http: { listen: "127.0.0.1:0" },
      policy: { data: "data.yaml", wasm: BUILT_POLICY_FILE },
      keys: { startup_wait_seconds: 60 },
    });
    // The admin port is known from the log line that announces it, before startService returns.
    const log = new PassThrough();
    const adminPort = new Promise<number>((resolve) => {
      createInterface({ input: log }).on("line", (line) => {
        const entry = JSON.parse(line) as { msg: string; port?: number };
        if (entry.msg.startsWith("admin HTTP listening")) resolve(entry.port!);
      });
    });
    const starting = startService(config, { logger: createLogger("info", log) });
    const base = `http://127.0.0.1:${await adminPort}`;

    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const response = await fetch(`${base}/readyz`);
    expect({ status: response.status, body: await response.json() }).toEqual({
      status: 503,
      body: { ready: false, status: "starting", policy_revision: null, issuers: [] },
    });

    release();
    const running = await starting;
    cleanups.push(() => running.close());
    expect(running.httpPort).toBe(await adminPort);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
  });

  it("503 with a reason per issuer while an issuer has no usable keys, 200 once it has, 503 again when they are too stale", async () => {
    const clock = testClock(Date.now());
    const good = await issuer();
    const failing = await issuer();
    failing.respond("jwks", { status: 500, body: { error: "down" } });
    const svc = await service(
      {
        audiences: [TEST_AUDIENCE],
        issuers: [
          { issuer: good.issuer, base_path: "/a" },
          { issuer: failing.issuer, base_path: "/b" },
        ],
      },
      { keys: { max_stale_seconds: 60, startup_wait_seconds: 30 } },
      clock,
    );
    const http = admin(svc);
    const health = healthClient(svc.target);
    cleanups.push(() => health.close());

    // No keys for one issuer: not ready, with its reason; the other is fine.
    let ready = await http.json("/readyz");
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ ready: false, status: "issuer_keys_unusable" });
    const byIssuer = (body: Record<string, unknown>) =>
      Object.fromEntries((body["issuers"] as Array<Record<string, unknown>>).map((i) => [i["issuer"], [i["reason"], i["ready"]]]));
    expect(byIssuer(ready.body)).toEqual({ [good.issuer]: ["keys_usable", true], [failing.issuer]: ["no_keys", false] });
    const failingEntry = (ready.body["issuers"] as Array<Record<string, unknown>>).find((i) => i["issuer"] === failing.issuer)!;
    expect(failingEntry["last_error"]).toMatch(/500/);
    expect(failingEntry["detail"]).toMatch(/^no keys: the last fetch failed: .*500/);

    expect(await health.check("")).toEqual({ status: "NOT_SERVING" });
    expect(await health.check(AUTHORIZATION_SERVICE_NAME)).toEqual({ status: "NOT_SERVING" });
    expect(await health.check("some.other.Service")).toEqual({ code: GRPC_NOT_FOUND });
    const watch = health.watch("");
    expect(await watch.next()).toBe("NOT_SERVING");
    let m = await admin(svc).metrics();
    expect(m.get(`scitokens_authz_key_fetch_failures_total{issuer=${JSON.stringify(failing.issuer)}}`)).toBeGreaterThanOrEqual(1);
    expect(m.get(`scitokens_authz_issuer_keys_usable{issuer=${JSON.stringify(failing.issuer)}}`)).toBe(0);
    expect(m.get("scitokens_authz_ready")).toBe(0);

    // The issuer recovers: the fetch that succeeds makes the service ready, no poll needed.
    failing.respond("jwks", undefined);
    await svc.service.keys.refresh(failing.issuer);
    expect(await watch.next()).toBe("SERVING");
    expect((await http.json("/readyz")).status).toBe(200);
    expect(await health.check("")).toEqual({ status: "SERVING" });
    expect(await health.check(AUTHORIZATION_SERVICE_NAME)).toEqual({ status: "SERVING" });

    // It fails again and time passes beyond keys.max_stale_seconds: the held keys no longer count.
    failing.respond("jwks", { status: 503, body: "" });
    await svc.service.keys.refresh(failing.issuer);
    expect((await http.json("/readyz")).status).toBe(200); // stale but within max_stale_seconds
    clock.advance(61_000);
    await svc.service.keys.refresh(good.issuer); // the good issuer stays fresh
    ready = await http.json("/readyz");
    expect(ready.status).toBe(503);
    expect(byIssuer(ready.body)).toEqual({ [good.issuer]: ["keys_usable", true], [failing.issuer]: ["keys_too_stale", false] });
    expect(await watch.next()).toBe("NOT_SERVING");
    m = await admin(svc).metrics();
    expect(m.get(`scitokens_authz_key_age_seconds{issuer=${JSON.stringify(failing.issuer)}}`)).toBe(61);

    // And back.
    failing.respond("jwks", undefined);
    await svc.service.keys.refresh(failing.issuer);
    expect(await watch.next()).toBe("SERVING");
    expect((await http.json("/readyz")).status).toBe(200);

    // Shutting down: NOT_SERVING, then the Watch stream is ended by the server (OK).
    const closing = svc.close();
    expect(await watch.next()).toBe("NOT_SERVING");
    expect(await watch.ended()).toBe(0);
    await closing;
  });
});

describe("gRPC server reflection", () => {
  it.each(["v1", "v1alpha"] as const)("lists the services and describes Authorization without proto files (%s)", async (version) => {
    const idp = await issuer();
    const svc = await service({ audiences: [TEST_AUDIENCE], issuers: [{ issuer: idp.issuer, base_path: "/" }] });
    const reflection = reflectionClient(svc.target, version);
    cleanups.push(() => reflection.close());

    expect(await reflection.listServices()).toEqual([AUTHORIZATION_SERVICE_NAME, "grpc.health.v1.Health"].sort());
    const files = await reflection.fileContainingSymbol(AUTHORIZATION_SERVICE_NAME);
    const authz = files.find((file) => file.service.some((s) => s.name === "Authorization"));
    expect(authz?.name).toBe("envoy/service/auth/v3/external_auth.proto");
    const check = authz?.service.find((s) => s.name === "Authorization")?.method.find((m) => m.name === "Check");
    expect({ input: check?.inputType, output: check?.outputType }).toEqual({
      input: ".envoy.service.auth.v3.CheckRequest",
      output: ".envoy.service.auth.v3.CheckResponse",
    });
    // The imports come along, so a client can decode CheckRequest completely.
    const names = files.map((file) => file.name);
    expect(names).toContain("envoy/service/auth/v3/attribute_context.proto");
    expect(names).toContain("google/rpc/status.proto");
  });
});
