import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { Agent } from "node:http";
import { type Server, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Metadata, type ServiceError, credentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCheckRequest } from "../../src/cli/check.js";
import { PACKAGE_ROOT } from "../../src/config/service-config.js";
import { AuthorizationClient, type CheckRequest, type CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth.js";
import { type ServedProcess, killAllServed, runCli, spawnServe } from "../helpers/cli-process.js";
import { healthClient } from "../helpers/grpc-clients.js";
import { httpCall } from "../helpers/http-client.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { mint } from "../helpers/tokens.js";

// Issue 11, all cores: `serve --workers 2` runs a primary and two worker processes. The
// real command line in a child process, real loopback issuers and gRPC clients: Checks
// are answered by both workers (each decision line names its worker), /metrics adds up
// the workers' counts, /readyz and gRPC health are ready only when both are, reloads
// reach both, a worker that dies is restarted, SIGTERM drains and exits 0, a bad
// configuration stops it with exit 2 and one message, and the Unix sockets and the
// connection age work across workers.

const AUDIENCE = "https://storage.example.org";
const CALL_DEADLINE_MS = 15_000;
const START_TIMEOUT_MS = 60_000;

let dir: string;
let keyA: TestKey;
let lateKey: TestKey;
let issuer: OidcServer;
let slow: OidcServer;
let token: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-workers-"));
  [keyA, lateKey] = await Promise.all([makeKey("ES256", "key-a"), makeKey("ES256", "key-late")]);
  issuer = await startOidcServer({ keys: [keyA] });
  slow = await startOidcServer({ keys: [keyA] });
  token = await mint(keyA, issuer.issuer, { scopes: ["read:/"] });
});

afterAll(async () => {
  killAllServed();
  await Promise.all([issuer, slow].filter(Boolean).map((s) => s.close()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The JSON log lines printed so far. */
function logged(served: ServedProcess): Array<Record<string, unknown>> {
  return served.lines.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** A client with a connection of its own (node:cluster gives each new connection to the next worker). */
function newClient(target: string): AuthorizationClient {
  return new AuthorizationClient(target, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
}

function call(client: AuthorizationClient, request: CheckRequest): Promise<CheckResponse | ServiceError> {
  return new Promise((resolve) => {
    client.check(request, new Metadata(), { deadline: Date.now() + CALL_DEADLINE_MS }, (error, response) => resolve(error ?? response));
  });
}

function isError(result: CheckResponse | ServiceError): result is ServiceError {
  return result instanceof Error;
}

function decisionId(response: CheckResponse): string {
  return String((response.dynamicMetadata as Record<string, unknown> | undefined)?.["decision_id"]);
}

function readRequest(bearer?: string): CheckRequest {
  return buildCheckRequest({ target: "", host: "storage.example.org", method: "GET", path: "/data/file", token: bearer });
}

/** The worker that logged the decision `id` (waiting for its line). */
async function workerOf(served: ServedProcess, id: string): Promise<number> {
  await served.waitFor(new RegExp(`"decision_id":"${id}"`));
  return Number(logged(served).find((line) => line["decision_id"] === id)?.["worker"]);
}

/** Each of `clients` sends `perClient` allowed Checks; resolves with the workers that answered, per answer. */
async function checksFrom(served: ServedProcess, target: string, clients: number, perClient: number): Promise<number[]> {
  const workers: number[] = [];
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const client = newClient(target);
      try {
        for (let i = 0; i < perClient; i++) {
          const result = await call(client, readRequest(token));
          if (isError(result)) throw result;
          expect((result.dynamicMetadata as Record<string, unknown>)["reason"]).toBe("allowed");
          workers.push(await workerOf(served, decisionId(result)));
        }
      } finally {
        client.close();
      }
    }),
  );
  return workers;
}

async function adminGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const result = await httpCall({ port }, { path, headers: ["host", `127.0.0.1:${port}`], agent: new Agent({ keepAlive: false }) });
  return { status: result.status, body: result.body.toString() };
}

/** The value of one series (name and labels exactly as exposed), or undefined. */
function sample(body: string, series: string): number | undefined {
  const line = body.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Polls `probe` until it returns true (state another process reaches in its own time). */
async function until(probe: () => Promise<boolean>, what: string, limitMs = 30_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`still not so after ${limitMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function writeService(name: string, service: Record<string, unknown>, data?: object): Promise<{ configFile: string; dataFile: string }> {
  const dataFile = join(dir, `${name}-data.yaml`);
  await writeFile(
    dataFile,
    JSON.stringify(
      data ?? {
        audiences: [AUDIENCE],
        issuers: [issuer, slow].map((s) => ({ issuer: s.issuer, base_path: "/data" })),
      },
    ),
  );
  const configFile = join(dir, `${name}-service.yaml`);
  const policy = { data: dataFile, ...(service["policy"] as object | undefined) };
  await writeFile(configFile, JSON.stringify({ grpc: { listen: "127.0.0.1:0" }, log: { level: "info" }, ...service, policy }));
  return { configFile, dataFile };
}

describe("serve --workers 2", () => {
  let served: ServedProcess;
  let target: string;
  let httpPort: number;
  let dataFile: string;
  let allowedChecks = 0;

  beforeAll(async () => {
    const files = await writeService("cluster", {
      http: { listen: "127.0.0.1:0" },
      keys: { cache_dir: join(dir, "keys-cache"), startup_wait_seconds: 30, check_wait_seconds: 10 },
    });
    dataFile = files.dataFile;
    // The first JWKS request is held: the other worker's request for it reaches the
    // primary meanwhile, and shares it.
    let release = () => {};
    issuer.hold("jwks", new Promise<void>((resolve) => (release = resolve)));
    try {
      served = spawnServe(["--config", files.configFile, "--workers", "2"]);
      const [, admin] = await served.waitFor(/"msg":"admin HTTP listening on 127\.0\.0\.1:(\d+)/);
      httpPort = Number(admin);
      // Each worker asks for each issuer's discovery document and JWKS: 8 requests.
      const relayed = async () => {
        const { status, body } = await adminGet(httpPort, "/metrics");
        expect(status).toBe(200);
        return (
          (sample(body, 'scitokens_authz_relayed_fetches_total{outcome="fetched"}') ?? 0) +
          (sample(body, 'scitokens_authz_relayed_fetches_total{outcome="joined"}') ?? 0)
        );
      };
      await until(async () => (await relayed()) >= 8, "every worker's key requests reached the primary");
    } finally {
      release();
      issuer.hold("jwks", undefined);
    }
    const [, port] = await served.waitFor(/"msg":"listening on 127\.0\.0\.1:(\d+)"/);
    target = `127.0.0.1:${port}`;
    await served.waitFor(/"msg":"ready \(gRPC health SERVING\)"/);
  }, START_TIMEOUT_MS);

  afterAll(async () => {
    if (served && served.child.exitCode === null) await served.stop();
  });

  it("fetches an issuer's keys once for both workers, and logs where it listens once", () => {
    expect(issuer.requests.filter((r) => r.endsWith("/jwks"))).toHaveLength(1);
    expect(issuer.requests.filter((r) => r.includes("openid-configuration")).length).toBeLessThanOrEqual(2);
    const lines = logged(served);
    const listening = lines.filter((l) => typeof l["msg"] === "string" && (l["msg"] as string).startsWith("listening on"));
    expect(listening).toHaveLength(1);
    expect(listening[0]).toMatchObject({ workers: 2, http_port: httpPort, issuers: 2 });
    expect(new Set(lines.filter((l) => l["msg"] === "worker ready").map((l) => l["worker"]))).toEqual(new Set([1, 2]));
  });

  it("answers Checks from both workers, each decision line naming its worker", async () => {
    const workers = await checksFrom(served, target, 6, 5);
    allowedChecks += workers.length;
    expect(workers).toHaveLength(30);
    expect(new Set(workers)).toEqual(new Set([1, 2]));
  });

  it("adds up the workers' metrics on the primary's /metrics", async () => {
    const { status, body } = await adminGet(httpPort, "/metrics");
    expect(status).toBe(200);
    const one = sample(body, 'scitokens_authz_worker_checks_total{worker="1"}') ?? 0;
    const two = sample(body, 'scitokens_authz_worker_checks_total{worker="2"}') ?? 0;
    expect(one).toBeGreaterThan(0);
    expect(two).toBeGreaterThan(0);
    expect(one + two).toBe(allowedChecks);
    expect(sample(body, 'scitokens_authz_checks_total{decision="allow",reason="allowed"}')).toBe(allowedChecks);
    expect(sample(body, "scitokens_authz_check_duration_seconds_count")).toBe(allowedChecks);
    expect(sample(body, 'scitokens_authz_check_duration_seconds_bucket{le="+Inf"}')).toBe(allowedChecks);
    expect(sample(body, "scitokens_authz_workers")).toBe(2);
    expect(sample(body, "scitokens_authz_workers_ready")).toBe(2);
    expect(sample(body, "scitokens_authz_ready")).toBe(1);
    expect(sample(body, `scitokens_authz_issuer_keys_usable{issuer="${issuer.issuer}"}`)).toBe(1);
    expect(sample(body, "scitokens_authz_key_refresh_interval_seconds")).toBe(600);
    expect(body.match(/^scitokens_authz_policy_info\{/gm)).toHaveLength(1);
    // Each worker counted its own attempt at the issuer's keys; the primary fetched them once.
    expect(sample(body, `scitokens_authz_key_fetches_total{issuer="${issuer.issuer}"}`)).toBe(2);
    expect(sample(body, 'scitokens_authz_relayed_fetches_total{outcome="joined"}')).toBeGreaterThanOrEqual(1);
    expect(body.match(/^process_start_time_seconds /gm)).toHaveLength(1);
    // The README lists them: those of one process ("Health and metrics", held to a single
    // process by deploy-observability.test.ts) and those the workers add.
    const readme = await readFile(join(PACKAGE_ROOT, "README.md"), "utf8");
    const listed = (heading: string) => {
      const start = readme.indexOf(heading);
      const section = readme.slice(start, readme.indexOf("\n### ", start + 1));
      return [...section.matchAll(/^ *\| `(scitokens_authz_[a-z0-9_]+)` \| ([a-z]+) \|/gm)].map((m) => [m[1]!, m[2]!] as const);
    };
    const exposed = [...body.matchAll(/^# TYPE (scitokens_authz_\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!] as const);
    expect(new Map(exposed)).toEqual(new Map([...listed("### Health and metrics"), ...listed("### Using every core: workers")]));
  });

  it("is ready when both workers are: /readyz gives each one, gRPC health says SERVING on each", async () => {
    const { status, body } = await adminGet(httpPort, "/readyz");
    expect(status).toBe(200);
    const readiness = JSON.parse(body) as { status: string; workers: Array<{ worker: number; pid: number; ready: boolean; issuers: unknown[] }> };
    expect(readiness.status).toBe("ready");
    expect(readiness.workers.map((w) => [w.worker, w.ready, w.issuers.length])).toEqual([
      [1, true, 2],
      [2, true, 2],
    ]);
    expect(new Set(readiness.workers.map((w) => w.pid)).size).toBe(2);
    const health = [healthClient(target, { ownConnection: true }), healthClient(target, { ownConnection: true })];
    try {
      expect(await Promise.all(health.map((h) => h.check("envoy.service.auth.v3.Authorization")))).toEqual([{ status: "SERVING" }, { status: "SERVING" }]);
    } finally {
      for (const h of health) h.close();
    }
  });

  it("passes SIGHUP and a changed policy file on to both workers", async () => {
    let after = served.lines.length;
    served.child.kill("SIGHUP");
    await served.waitFor(/"signal":"SIGHUP".*"msg":"reload requested"/, after);
    for (const worker of [1, 2]) await served.waitFor(new RegExp(`"worker":${worker},.*"trigger":"SIGHUP".*"msg":"policy unchanged`), after);
    after = served.lines.length;
    await writeFile(
      dataFile,
      JSON.stringify({ audiences: [AUDIENCE, "https://other.example.org"], issuers: [issuer, slow].map((s) => ({ issuer: s.issuer, base_path: "/data" })) }),
    );
    const revisions = [];
    for (const worker of [1, 2]) {
      const [, revision] = await served.waitFor(new RegExp(`"worker":${worker},.*"trigger":"changed: [^"]*".*"msg":"policy loaded: revision (\\w+)"`), after);
      revisions.push(revision);
    }
    expect(revisions[0]).toBe(revisions[1]);
    expect(JSON.parse((await adminGet(httpPort, "/readyz")).body)).toMatchObject({ ready: true, policy_revision: revisions[0] });
  });

  it("restarts a worker that dies; the other stays SERVING in gRPC health meanwhile, and counters do not go down", async () => {
    const before = (await adminGet(httpPort, "/metrics")).body;
    const pids = (JSON.parse((await adminGet(httpPort, "/readyz")).body) as { workers: Array<{ pid: number }> }).workers.map((w) => w.pid);
    // Two Watch streams on two connections: one on each worker.
    const health = [healthClient(target, { ownConnection: true }), healthClient(target, { ownConnection: true })];
    try {
      const watches = health.map((h) => h.watch("envoy.service.auth.v3.Authorization"));
      expect(await Promise.all(watches.map((w) => w.next()))).toEqual(["SERVING", "SERVING"]);
      const after = served.lines.length;
      process.kill(pids[1]!, "SIGKILL");
      await served.waitFor(new RegExp(`"msg":"worker 2 \\(pid ${pids[1]}\\) exited unexpectedly \\(signal SIGKILL\\): restarting it in 500 ms"`), after);
      // The stream on the worker that died ends; the survivor's stream stays open.
      const dead = await Promise.race(watches.map((w, index) => w.ended().then((code) => ({ index, code }))));
      expect(dead.code).toBe(14);
      const survivor = 1 - dead.index;
      const [, newPid] = await served.waitFor(/"msg":"worker 2 is serving again \(pid (\d+)\)"/, after);
      expect(Number(newPid)).not.toBe(pids[1]);
      expect(JSON.parse((await adminGet(httpPort, "/readyz")).body)).toMatchObject({ ready: true });
      // A Check on the survivor's connection, answered after anything its Watch was sent:
      // it never heard NOT_SERVING while worker 2 was down and restarting.
      expect(await health[survivor]!.check("envoy.service.auth.v3.Authorization")).toEqual({ status: "SERVING" });
      expect(watches[survivor]!.unread()).toEqual([]);
      expect(served.lines.slice(after).filter((line) => line.includes("not ready (gRPC health NOT_SERVING)"))).toEqual([]);
      for (const w of watches) w.cancel();
    } finally {
      for (const h of health) h.close();
    }
    const workers = await checksFrom(served, target, 4, 2);
    allowedChecks += workers.length;
    expect(new Set(workers)).toEqual(new Set([1, 2]));
    const { body } = await adminGet(httpPort, "/metrics");
    expect(sample(body, "scitokens_authz_worker_restarts_total")).toBe(1);
    const allowed = 'scitokens_authz_checks_total{decision="allow",reason="allowed"}';
    expect(sample(body, allowed)).toBeGreaterThanOrEqual(sample(before, allowed)! + workers.length);
    expect(sample(body, 'scitokens_authz_worker_checks_total{worker="2"}')).toBeGreaterThan(sample(before, 'scitokens_authz_worker_checks_total{worker="2"}')!);
    expect(JSON.parse((await adminGet(httpPort, "/readyz")).body)).toMatchObject({ ready: true });
  }, 60_000);

  it("on SIGTERM answers the Checks in flight, stops every worker and exits 0", async () => {
    let release = () => {};
    slow.hold("jwks", new Promise<void>((resolve) => (release = resolve)));
    slow.setKeys([keyA, lateKey]);
    // Signed with a key the slow issuer publishes only now: an unknown kid, so a key fetch.
    const held = readRequest(await mint(lateKey, slow.issuer, { scopes: ["read:/"] }));
    const arrived = slow.nextRequest("jwks");
    const client = newClient(target);
    try {
      const answer = call(client, held);
      await Promise.race([arrived, answer.then(() => Promise.reject(new Error("the held Check ended before its key fetch reached the issuer")))]);
      const after = served.lines.length;
      served.child.kill("SIGTERM");
      await served.waitFor(/"signal":"SIGTERM".*"msg":"shutting down"/, after);
      for (const worker of [1, 2]) await served.waitFor(new RegExp(`"worker":${worker},.*"msg":"worker draining"`), after);
      release();
      const result = await answer;
      expect(isError(result) ? result.message : (result.dynamicMetadata as Record<string, unknown>)["reason"]).toBe("allowed");
      expect(await served.closed).toEqual({ code: 0, signal: null });
      const lines = logged(served);
      expect(lines.filter((l) => l["msg"] === "shutting down")).toHaveLength(1);
      // The only error lines: the worker killed above.
      expect(lines.filter((l) => Number(l["level"]) >= 50).map((l) => l["msg"])).toEqual([expect.stringMatching(/^worker 2 \(pid \d+\) exited unexpectedly/)]);
    } finally {
      release();
      slow.hold("jwks", undefined);
      client.close();
    }
  }, 60_000);
});

describe("serve --workers 2 with a configuration a worker refuses", () => {
  it("exits 2 with the configuration error, said once", async () => {
    const { configFile, dataFile } = await writeService("bad", {}, { audiences: [AUDIENCE], issuers: [{ issuer: issuer.issuer, base_path: "data" }] });
    const run = await runCli(dir, "serve", "--config", configFile, "--workers", "2");
    expect(run.code).toBe(2);
    expect(run.stderr.match(/configuration error/g)).toHaveLength(1);
    expect(run.stderr).toContain(`${dataFile}: issuers[0].base_path: expected an absolute path like "/data", got "data"`);
    expect(`${run.stdout}${run.stderr}`.match(/base_path/g)).toHaveLength(1);
    expect(run.stdout).not.toMatch(/"msg":"listening on/);
  }, 60_000);

  it("exits 2 when another process serves on its Unix socket, before starting a worker", async () => {
    const socketPath = join(dir, "taken.sock");
    const other: Server = createServer();
    await new Promise<void>((resolve) => other.listen(socketPath, resolve));
    try {
      const { configFile } = await writeService("taken", { grpc: { listen: `unix:${socketPath}` } });
      const run = await runCli(dir, "serve", "--config", configFile, "--workers", "2");
      expect(run.code).toBe(2);
      expect(run.stderr.match(/another process is serving on this socket/g)).toHaveLength(1);
      expect(run.stdout).not.toMatch(/"msg":"worker \d started/);
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  }, 60_000);
});

describe("serve --workers 2 when a restarted worker cannot start", () => {
  it("goes on serving with the other, tries again with a backoff, and takes it back once the file is fixed", async () => {
    // No file watch: the running worker keeps the data it started with.
    const { configFile, dataFile } = await writeService("restart", { http: { listen: "127.0.0.1:0" }, policy: { watch: false } });
    const good = await readFile(dataFile, "utf8");
    const served = spawnServe(["--config", configFile, "--workers", "2"]);
    try {
      const [, admin] = await served.waitFor(/"msg":"admin HTTP listening on 127\.0\.0\.1:(\d+)/);
      const [, port] = await served.waitFor(/"msg":"listening on 127\.0\.0\.1:(\d+)"/);
      const target = `127.0.0.1:${port}`;
      const pids = (JSON.parse((await adminGet(Number(admin), "/readyz")).body) as { workers: Array<{ pid: number }> }).workers.map((w) => w.pid);
      await writeFile(dataFile, JSON.stringify({ audiences: [AUDIENCE], issuers: [{ issuer: issuer.issuer, base_path: "data" }] }));
      const after = served.lines.length;
      process.kill(pids[1]!, "SIGKILL");
      await served.waitFor(/"msg":"worker 2 \(pid \d+\) exited unexpectedly \(signal SIGKILL\): restarting it in 500 ms"/, after);
      await served.waitFor(
        /"msg":"worker 2 cannot start: configuration error: .*issuers\[0\]\.base_path: expected an absolute path.*; trying again in 1000 ms"/,
        after,
      );
      // Meanwhile worker 1 answers every Check; /readyz says a worker is unavailable.
      expect(new Set(await checksFrom(served, target, 3, 1))).toEqual(new Set([1]));
      const readiness = JSON.parse((await adminGet(Number(admin), "/readyz")).body) as { status: string; workers: Array<{ status: string }> };
      expect([readiness.status, readiness.workers.map((w) => w.status)]).toEqual(["worker_unavailable", ["ready", "worker_unavailable"]]);
      await writeFile(dataFile, good);
      await served.waitFor(/"msg":"worker 2 is serving again \(pid \d+\)"/, after);
      expect(new Set(await checksFrom(served, target, 4, 1))).toEqual(new Set([1, 2]));
      // gRPC health stayed SERVING throughout: worker 1 was ready, and worker 2 took no connection.
      expect(served.lines.slice(after).filter((line) => line.includes("gRPC health NOT_SERVING"))).toEqual([]);
    } finally {
      served.child.kill("SIGTERM");
    }
    expect(await served.closed).toEqual({ code: 0, signal: null });
  }, 90_000);
});

describe("serve --workers 2 on Unix sockets, with a short connection age", () => {
  it("shares both sockets between the workers, moves a long-lived connection on, and removes the sockets when it stops", async () => {
    const grpcSocket = join(dir, "grpc.sock");
    const decisionLog = join(dir, "decisions.jsonl");
    const httpSocket = join(dir, "authz.sock");
    const { configFile } = await writeService("sockets", {
      grpc: { listen: `unix:${grpcSocket}`, max_connection_age_seconds: 1, max_connection_age_grace_seconds: 1 },
      authz_http: { listen: `unix:${httpSocket}` },
      log: { level: "info", decisions: { file: decisionLog } },
    });
    const served = spawnServe(["--config", configFile, "--workers", "2"]);
    try {
      await served.waitFor(/"msg":"listening on unix:.*; HTTP authorization endpoint on unix:/);
      const target = `unix:${grpcSocket}`;
      expect(new Set(await checksFrom(served, target, 4, 1))).toEqual(new Set([1, 2]));

      // The HTTP endpoint, one connection per request.
      const httpWorkers = new Set<number>();
      for (let i = 0; i < 4; i++) {
        const answer = await httpCall(
          { socketPath: httpSocket },
          {
            path: "/nginx",
            headers: ["x-original-method", "GET", "x-original-uri", "/data/file", "authorization", `Bearer ${token}`],
            agent: new Agent({ keepAlive: false }),
          },
        );
        expect(answer.status).toBe(200);
        httpWorkers.add(await workerOf(served, String(answer.headers["x-scitokens-authz-decision-id"])));
      }
      expect(httpWorkers).toEqual(new Set([1, 2]));

      // One client, one channel: past its age (1 s ± 10%) the connection is closed and the
      // next one goes to the other worker; no Check fails meanwhile.
      const client = newClient(target);
      const seen = new Set<number>();
      let checks = 0;
      try {
        while (seen.size < 2 && checks < 5_000) {
          const result = await call(client, readRequest(token));
          if (isError(result)) throw result;
          checks++;
          seen.add(await workerOf(served, decisionId(result)));
        }
      } finally {
        client.close();
      }
      expect(seen).toEqual(new Set([1, 2]));
    } finally {
      served.child.kill("SIGTERM");
    }
    expect(await served.closed).toEqual({ code: 0, signal: null });
    // Both workers appended to the one decision log: a whole line per decision.
    const decided = logged(served).filter((l) => l["msg"] === "decision");
    const records = (await readFile(decisionLog, "utf8"))
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(new Set(records.map((r) => r["decision_id"]))).toEqual(new Set(decided.map((l) => l["decision_id"])));
    expect(new Set(decided.map((l) => l["worker"]))).toEqual(new Set([1, 2]));
    await expect(stat(grpcSocket)).rejects.toMatchObject({ code: "ENOENT" });
    await expect(stat(httpSocket)).rejects.toMatchObject({ code: "ENOENT" });
  }, 90_000);
});

describe("serve --workers 1", () => {
  it("is a single process, as before there were workers", async () => {
    const { configFile } = await writeService("single", {});
    const served = spawnServe(["--config", configFile, "--workers", "1"]);
    try {
      await served.waitFor(/"msg":"listening on 127\.0\.0\.1:\d+"/);
    } finally {
      served.child.kill("SIGTERM");
    }
    expect(await served.closed).toEqual({ code: 0, signal: null });
    const lines = logged(served);
    expect(lines.filter((l) => "worker" in l || "workers" in l)).toEqual([]);
    expect(lines.filter((l) => String(l["msg"]).startsWith("listening on"))).toHaveLength(1);
  }, 60_000);
});
