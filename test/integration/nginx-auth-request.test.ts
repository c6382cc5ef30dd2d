import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, watch, writeFile } from "node:fs/promises";
import { type IncomingMessage, type Server, createServer } from "node:http";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUILT_POLICY_FILE, PACKAGE_ROOT } from "../../src/config/service-config.js";
import { type ServedProcess, killAllServed, spawnServe } from "../helpers/cli-process.js";
import { type HttpResult, headerValues, httpCall } from "../helpers/http-client.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { TEST_AUDIENCE, mint } from "../helpers/tokens.js";
import { markdownSection } from "../unit/docs/markdown-section.js";

// Issue 9, the seed deployment end to end: nginx (Debian's, with its DAV and auth_request
// modules; scripts/test.mjs installs it) runs deploy/nginx/nginx.conf as shipped, its
// placeholders filled in, in front of WebDAV storage in a temporary folder and of a small
// application that records the headers it gets; every request is decided by the built
// `scitokens-authz serve` through its HTTP authorization endpoint. Everything listens on
// Unix sockets in that folder: no ports.

const TEMPLATE = join(PACKAGE_ROOT, "deploy", "nginx", "nginx.conf");
const NGINX = existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : "nginx";
const HOST = "storage.example.org";
const CHALLENGE = 'Bearer realm="scitokens-authz"';

let dir: string;
let issuer: OidcServer;
/** An issuer the data trusts whose keys never come: key_unavailable. */
let silentIssuer: OidcServer;
let key: TestKey;
let served: ServedProcess;
let nginx: ChildProcess;
let nginxExited: Promise<unknown>;
const nginxLog: string[] = [];
let app: Server;
/** The requests the application received: method, URL and headers as received. */
const appRequests: Array<{ method: string; url: string; rawHeaders: string[] }> = [];
const tokens: Record<string, string> = {};

const storage = { socketPath: "" };
const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

function lineWaiter(lines: string[], stream: NodeJS.ReadableStream) {
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  createInterface({ input: stream }).on("line", (line) => {
    lines.push(line);
    for (const waiter of [...waiters]) {
      if (waiter.pattern.test(line)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  return (pattern: RegExp) =>
    new Promise<string>((resolve) => {
      const seen = lines.find((line) => pattern.test(line));
      if (seen !== undefined) resolve(seen);
      else waiters.push({ pattern, resolve });
    });
}

function listenOn(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ path }, () => resolve());
  });
}

/** A request to nginx, as a client sends it. */
function request(method: string, path: string, options: { token?: string; headers?: string[]; body?: Buffer } = {}): Promise<HttpResult> {
  return httpCall(storage, {
    method,
    path,
    headers: [
      "Host",
      HOST,
      ...(options.token !== undefined ? ["Authorization", `Bearer ${options.token}`] : []),
      ...(options.body !== undefined ? ["Content-Length", String(options.body.length)] : []),
      ...(options.headers ?? []),
    ],
    ...(options.body !== undefined ? { body: options.body } : {}),
  });
}

/** Resolves with the first line of `file` matching `pattern`, once it is written (nginx logs a request after answering it). */
async function lineOf(file: string, pattern: RegExp): Promise<string> {
  const find = async () => (await readFile(file, "utf8").catch(() => "")).split("\n").find((line) => pattern.test(line));
  const stop = new AbortController();
  const changes = watch(file, { signal: stop.signal })[Symbol.asyncIterator]();
  // Watching starts with the first next(), before the file is read: no write is missed.
  let change = changes.next();
  try {
    for (;;) {
      const line = await find();
      if (line !== undefined) return line;
      if ((await change).done) throw new Error(`${file}: no line matched ${pattern}`);
      change = changes.next();
    }
  } finally {
    stop.abort();
    change.catch(() => undefined);
  }
}

const bodyOf = (result: HttpResult) => JSON.parse(result.body.toString()) as { error: string; reason: string; decision_id: string };

beforeAll(async () => {
  // nginx -V prints how it was built on stderr.
  const version = spawnSync(NGINX, ["-V"], { encoding: "utf8" });
  if (version.error) throw new Error(`${NGINX} cannot run (${version.error.message}): npm test installs Debian's nginx (apt-get install nginx)`);
  const built = version.stderr;
  for (const module of ["--with-http_dav_module", "--with-http_auth_request_module"]) {
    if (!built.includes(module)) throw new Error(`${NGINX} was built without ${module} (nginx -V): install Debian's nginx`);
  }

  dir = await mkdtemp(join(tmpdir(), "scitokens-authz-nginx-"));
  await mkdir(join(dir, "www", "protected"), { recursive: true });
  await mkdir(join(dir, "nginx"));
  storage.socketPath = join(dir, "nginx.sock");

  key = await makeKey("ES256");
  issuer = await startOidcServer({ keys: [key] });
  silentIssuer = await startOidcServer({ keys: [key], path: "/silent" });
  silentIssuer.respond("openid-configuration", { hang: true });
  const other = await makeKey("ES256");
  tokens["write"] = await mint(key, issuer.issuer, { scopes: ["write:/stuff"], subject: "alice" });
  tokens["read"] = await mint(key, issuer.issuer, { scopes: ["read:/stuff"], subject: "alice" });
  tokens["api"] = await mint(key, issuer.issuer, { scopes: ["read:/api"], subject: "alice" });
  tokens["create"] = await mint(key, issuer.issuer, { scopes: ["storage.create:/api/new"], subject: "alice", profile: "wlcg1" });
  tokens["other"] = await mint(other, "https://issuer.other.example.org", { scopes: ["write:/stuff"] });
  tokens["silent"] = await mint(key, silentIssuer.issuer, { scopes: ["read:/stuff"] });

  // The application behind /protected/api/: it answers 200 and records what it got.
  app = createServer((req: IncomingMessage, res) => {
    appRequests.push({ method: req.method ?? "", url: req.url ?? "", rawHeaders: req.rawHeaders });
    req.resume();
    res.writeHead(200, { "content-type": "text/plain" }).end("app\n");
  });
  await listenOn(app, join(dir, "app.sock"));

  await writeFile(
    join(dir, "data.yaml"),
    [
      `audiences: ["${TEST_AUDIENCE}"]`,
      "issuers:",
      `  - { issuer: "${issuer.issuer}", base_path: /protected }`,
      `  - { issuer: "${silentIssuer.issuer}", base_path: /protected }`,
      // Asked directly below, for the full set of identity headers a passthrough removes.
      "routes: { open: { on_missing: passthrough } }",
      "",
    ].join("\n"),
  );
  await writeFile(
    join(dir, "service.yaml"),
    [
      'grpc: { listen: "unix:grpc.sock" }',
      'authz_http: { listen: "unix:authz.sock" }',
      `policy: { data: data.yaml, wasm: ${BUILT_POLICY_FILE} }`,
      "keys: { startup_wait_seconds: 0, check_wait_seconds: 1 }",
      "",
    ].join("\n"),
  );
  served = spawnServe(["--config", join(dir, "service.yaml")]);
  await served.waitFor(/"msg":"listening on unix:.*; HTTP authorization endpoint on unix:/);

  const template = await readFile(TEMPLATE, "utf8");
  const config = template
    .replaceAll("@USER@", userInfo().username)
    .replaceAll("@LISTEN@", `unix:${storage.socketPath}`)
    .replaceAll("@AUTHZ@", `unix:${join(dir, "authz.sock")}`)
    .replaceAll("@ROOT@", join(dir, "www"))
    .replaceAll("@UPSTREAM@", `unix:${join(dir, "app.sock")}`);
  expect(config.match(/@[A-Z]+@/g)).toBeNull();
  await writeFile(join(dir, "nginx", "nginx.conf"), config);
  nginx = spawn(NGINX, ["-p", `${join(dir, "nginx")}/`, "-c", join(dir, "nginx", "nginx.conf"), "-e", "stderr", "-g", "daemon off;"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  nginxExited = new Promise((resolve) => nginx.once("close", resolve));
  const nginxStarted = lineWaiter(nginxLog, nginx.stderr!)(/start worker process/);
  await Promise.race([
    nginxStarted,
    nginxExited.then(() => {
      throw new Error(`nginx exited before it listened:\n${nginxLog.join("\n")}`);
    }),
  ]);
});

afterAll(async () => {
  if (nginx !== undefined && nginx.exitCode === null) {
    nginx.kill("SIGTERM");
    await nginxExited;
  }
  await served?.stop();
  killAllServed();
  await new Promise<void>((resolve) => (app?.listening ? app.close(() => resolve()) : resolve()));
  await issuer?.close();
  await silentIssuer?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe("nginx auth_request in front of WebDAV (deploy/nginx/nginx.conf)", () => {
  const file = "/protected/stuff/big.bin";
  const content = randomBytes(50 * 1024 * 1024);
  const onDisk = () => readFile(join(dir, "www", file));

  it("a write:/stuff token PUTs a 50 MB file", async () => {
    const result = await request("PUT", file, { token: tokens["write"]!, body: content });
    expect(result.status).toBe(201);
    expect(sha256(await onDisk())).toBe(sha256(content));
  });

  it("a read:/stuff token GETs it back byte-identical", async () => {
    const result = await request("GET", file, { token: tokens["read"]! });
    expect(result.status).toBe(200);
    expect(result.body.length).toBe(content.length);
    expect(sha256(result.body)).toBe(sha256(content));
  });

  it("a read-only token's PUT is 403 insufficient_scope, decided once, and the file is unchanged", async () => {
    const before = served.lines.length;
    const result = await request("PUT", file, { token: tokens["read"]!, body: randomBytes(1024 * 1024) });
    expect(result.status).toBe(403);
    expect(headerValues(result, "www-authenticate")).toEqual([`${CHALLENGE}, error="insufficient_scope"`]);
    const body = bodyOf(result);
    expect(body).toMatchObject({ error: "forbidden", reason: "scope_insufficient" });
    expect(sha256(await onDisk())).toBe(sha256(content));
    // One subrequest, one decision: once a later request's decision is logged, the log
    // holds exactly these two (the denial's named location does not ask again).
    const sentinel = bodyOf(await request("GET", "/protected/sentinel")).decision_id;
    await served.waitFor(new RegExp(`"decision_id":"${sentinel}"`));
    const decisions = served.lines
      .slice(before)
      .filter((line) => line.includes('"msg":"decision"'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(decisions.map((d) => d["decision_id"])).toEqual([body.decision_id, sentinel]);
    expect(decisions[0]).toMatchObject({ reason: "scope_insufficient", method: "PUT", path: file });
  });

  it("no token: 401 with WWW-Authenticate", async () => {
    const result = await request("GET", file);
    expect(result.status).toBe(401);
    expect(headerValues(result, "www-authenticate")).toEqual([CHALLENGE]);
    expect(bodyOf(result)).toMatchObject({ error: "unauthorized", reason: "token_missing" });
  });

  it("another issuer's token: 401 invalid_token", async () => {
    const result = await request("GET", file, { token: tokens["other"]! });
    expect(result.status).toBe(401);
    expect(headerValues(result, "www-authenticate")).toEqual([`${CHALLENGE}, error="invalid_token"`]);
    expect(bodyOf(result).reason).toBe("issuer_untrusted");
  });

  it("a path nginx would read otherwise than the service is 400 path_invalid, not 500", async () => {
    const result = await request("GET", "/protected/stuff/%2e%2e/stuff/big.bin", { token: tokens["read"]! });
    expect(result.status).toBe(400);
    expect(bodyOf(result)).toMatchObject({ error: "bad_request", reason: "path_invalid" });
  });

  it("keys that cannot be had: 503 key_unavailable with Retry-After, not 500", async () => {
    const result = await request("GET", file, { token: tokens["silent"]! });
    expect(result.status).toBe(503);
    expect(result.headers["retry-after"]).toBe("30");
    expect(bodyOf(result)).toMatchObject({ error: "unavailable", reason: "key_unavailable" });
  });

  it("nginx's access log names the service's decision", async () => {
    const result = await request("GET", file);
    const { decision_id } = bodyOf(result);
    const line = await lineOf(join(dir, "nginx", "access.log"), new RegExp(`decision=${decision_id}`));
    expect(line).toMatch(/"GET \/protected\/stuff\/big\.bin HTTP\/1\.1" 401 \d+ decision=\S+ reason=token_missing$/);
  });
});

describe("the application behind /protected/api/ and its identity headers", () => {
  const received = (index: number, name: string) => {
    const { rawHeaders } = appRequests[index]!;
    const values: string[] = [];
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) values.push(rawHeaders[i + 1]!);
    return values;
  };

  it("a client's own identity headers never reach it; the decision's do", async () => {
    const before = appRequests.length;
    const result = await request("GET", "/protected/api/whoami", {
      token: tokens["api"]!,
      headers: ["X-Scitokens-Subject", "root", "X-Scitokens-Groups", "/admin", "X_Scitokens_Subject", "root", "X-Scitokens-Issuer", "https://evil.example"],
    });
    expect(result.status).toBe(200);
    expect(appRequests.length).toBe(before + 1);
    expect(received(before, "x-scitokens-subject")).toEqual(["alice"]);
    expect(received(before, "x-scitokens-issuer")).toEqual([issuer.issuer]);
    expect(received(before, "x-scitokens-scope")).toEqual(["read:/api"]);
    expect(received(before, "x-scitokens-groups")).toEqual([]);
    expect(received(before, "x_scitokens_subject")).toEqual([]);
    expect(received(before, "authorization")).toEqual([`Bearer ${tokens["api"]}`]);
  });

  it("the shipped config copies every identity header the service can set", async () => {
    const passthrough = await httpCall(
      { socketPath: join(dir, "authz.sock") },
      { path: "/nginx/open", headers: ["X-Original-Method", "GET", "X-Original-URI", "/protected/x"] },
    );
    const identity = String(passthrough.headers["x-envoy-auth-headers-to-remove"])
      .split(",")
      .filter((name) => name.startsWith("x-scitokens-"));
    expect(identity.length).toBeGreaterThanOrEqual(5);
    const template = await readFile(TEMPLATE, "utf8");
    for (const name of identity) {
      const variable = `$scitokens_${name.slice("x-scitokens-".length)}`;
      expect(template).toContain(`auth_request_set ${variable} $upstream_http_${name.replaceAll("-", "_")};`);
      expect(template.toLowerCase()).toContain(`proxy_set_header ${name} ${variable};`);
    }
  });

  it("a token with many groups, as large as nginx takes: the service's answer fits nginx's buffer, the groups reach the application", async () => {
    const groups = Array.from({ length: 150 }, (_, i) => `/collaboration/working-group-${i}`);
    const token = await mint(key, issuer.issuer, { scopes: ["read:/api"], groups });
    // nginx takes a header line of at most 8 KiB (large_client_header_buffers 4 8k).
    expect(token.length).toBeGreaterThan(6 * 1024);
    expect(`Authorization: Bearer ${token}`.length).toBeLessThan(8 * 1024);
    const before = appRequests.length;
    const r = await request("GET", "/protected/api/whoami", { token });
    expect(r.status).toBe(200);
    expect(received(before, "x-scitokens-groups")).toEqual([groups.join(",")]);
  });

  it("a denied request does not reach it at all", async () => {
    const before = appRequests.length;
    const result = await request("GET", "/protected/api/whoami", { headers: ["X-Scitokens-Subject", "root"] });
    expect(result.status).toBe(401);
    expect(appRequests.length).toBe(before);
  });

  it("a create-only PUT carries If-None-Match: * to it; a GET keeps the client's own", async () => {
    const before = appRequests.length;
    expect((await request("PUT", "/protected/api/new/f", { token: tokens["create"]!, body: Buffer.from("x") })).status).toBe(200);
    expect(received(before, "if-none-match")).toEqual(["*"]);
    expect((await request("GET", "/protected/api/x", { token: tokens["api"]!, headers: ["If-None-Match", '"v1"'] })).status).toBe(200);
    expect(received(before + 1, "if-none-match")).toEqual(['"v1"']);
  });
});

describe("the service's side", () => {
  it("never logs a token", async () => {
    const logged = [...served.lines, ...nginxLog, await readFile(join(dir, "nginx", "access.log"), "utf8")].join("\n");
    for (const token of Object.values(tokens)) expect(logged).not.toContain(token.split(".")[2]!);
  });

  it("when the service is down, nginx answers 503 (not 500, and never an allow)", async () => {
    expect(await served.stop()).toBe(0);
    const result = await request("GET", "/protected/stuff/big.bin", { token: tokens["read"]! });
    expect(result.status).toBe(503);
  });
});

describe("the README's nginx section", () => {
  const section = async () => markdownSection(await readFile(join(PACKAGE_ROOT, "README.md"), "utf8"), /^## nginx \(auth_request\)$/m);
  /** A directive line without its comment and surrounding spaces. */
  const directive = (line: string) => line.replace(/#.*$/, "").trim();

  it("quotes the shipped file", async () => {
    const excerpt = /```nginx\n([\s\S]*?)```/.exec(await section())?.[1];
    expect(excerpt).toBeDefined();
    const shipped = new Set((await readFile(TEMPLATE, "utf8")).split("\n").map(directive));
    const quoted = excerpt!
      .split("\n")
      .map(directive)
      .filter((line) => line !== "" && line !== "}");
    expect(quoted.length).toBeGreaterThan(10);
    expect(quoted.filter((line) => !shipped.has(line))).toEqual([]);
  });

  it("fills in every placeholder of the file", async () => {
    const placeholders = (text: string) => [...new Set(text.match(/@[A-Z]+@/g))].sort();
    const run = markdownSection(await section(), /^### Running it$/m);
    expect(placeholders(run)).toEqual(placeholders(await readFile(TEMPLATE, "utf8")));
  });
});
