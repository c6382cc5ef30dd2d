import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCheckRequest, sendCheck } from "../../src/cli/check.js";
import { CONFIG_VARIABLE } from "../../src/config/environment.js";
import { PACKAGE_ROOT } from "../../src/config/service-config.js";
import { CLI, type ServedProcess, killAllServed, spawnServe } from "../helpers/cli-process.js";
import { contextRoutes, hostFile, mounts, readDocuments, service } from "../helpers/deploy-files.js";

// Issue 9: the compose demo's own parts, run here without containers (no image can be built
// on this machine): the demo issuer's key maker as the `demo-issuer` service runs it, the
// service on the compose configuration (its mounts mapped onto a temporary folder, listening
// on loopback instead of the compose network), tokens from the `token` service's command,
// Checks shaped as Envoy sends them for the README's curl examples, and the image's
// HEALTHCHECK script against it.

const execFileAsync = promisify(execFile);

let dir: string;
let volume: string;
let served: ServedProcess;
let target: string;
let configFile: string;
const HEALTHCHECK = join(PACKAGE_ROOT, "deploy", "docker", "healthcheck.mjs");

/** A TCP port free on loopback now (for http.listen, which takes no override). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The image's HEALTHCHECK command, with SCITOKENS_AUTHZ_CONFIG as given. */
async function healthcheck(config: string | undefined): Promise<{ code: number; stdout: string }> {
  const env = { ...process.env, [CONFIG_VARIABLE]: config ?? "" };
  try {
    const { stdout } = await execFileAsync(process.execPath, [HEALTHCHECK], { env });
    return { code: 0, stdout };
  } catch (error) {
    const e = error as { code?: number; stdout?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? "" };
  }
}

/** A command of a compose service, its container paths replaced by the host paths they map to here. */
function hostCommand(name: string, words: readonly string[]): string[] {
  const s = service(name);
  return words.map((word) => {
    const m = mounts(s).find((m) => word === m.target || word.startsWith(`${m.target}/`));
    if (!m) return word;
    const rest = posix.relative(m.target, word);
    return m.bind ? hostFile(s, word) : join(volume, rest);
  });
}

async function node(args: readonly string[]): Promise<{ stdout: string; stderr: string }> {
  return execFileAsync(process.execPath, args, { cwd: PACKAGE_ROOT });
}

/** `docker compose run --rm token ARGS…`, here. */
async function mint(...args: string[]): Promise<string> {
  const [, ...cli] = hostCommand("token", service("token").entrypoint!);
  const { stdout } = await node([...cli.map((w) => (w === "/app/dist/cli/main.js" ? CLI : w)), ...args]);
  return stdout.trim();
}

/** A Check as Envoy sends it for `curl http://127.0.0.1:8080PATH` (the route its context_extensions name). */
async function curl(method: string, path: string, token?: string) {
  const [route] = contextRoutes(readDocuments(hostFile(service("envoy"), "/etc/envoy/envoy.yaml"))[0]);
  const request = buildCheckRequest({ target, method, path, host: "127.0.0.1:8080", token, route });
  const response = await sendCheck(target, request);
  const metadata = (response.dynamicMetadata ?? {}) as Record<string, unknown>;
  return { allowed: response.status?.code === 0, status: response.deniedResponse?.status?.code, reason: metadata["reason"] };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "compose-demo-"));
  volume = join(dir, "demo-issuer-volume");
  await mkdir(volume);
  // The authz service's configuration folder, with the container paths of its other mounts
  // (the demo-issuer volume) written as the host paths they map to here.
  const authz = service("authz");
  const config = authz.environment![CONFIG_VARIABLE]!;
  const configMount = mounts(authz).find((m) => config.startsWith(`${m.target}/`))!;
  const etc = join(dir, "etc");
  await mkdir(etc);
  // The admin listener is inside the container on 127.0.0.1:9090: here on a free port.
  const adminPort = await freePort();
  for (const f of await readdir(configMount.source)) {
    let text = (await readFile(join(configMount.source, f), "utf8")).replaceAll('"127.0.0.1:9090"', `"127.0.0.1:${adminPort}"`);
    for (const m of mounts(authz).filter((m) => !m.bind)) text = text.replaceAll(m.target, volume);
    await writeFile(join(etc, f), text);
  }
  configFile = join(etc, posix.relative(configMount.target, config));
  await node(hostCommand("demo-issuer", service("demo-issuer").entrypoint!).slice(1));
  served = spawnServe(["--config", configFile, "--listen", "127.0.0.1:0"]);
  const [, port] = await served.waitFor(/"msg":"listening on 127\.0\.0\.1:(\d+)"/);
  target = `127.0.0.1:${port}`;
});

afterAll(async () => {
  await served?.stop();
  killAllServed();
  await rm(dir, { recursive: true, force: true });
});

describe("the compose demo, without containers", () => {
  it("demo-issuer leaves a private state file and a public JWKS in the volume, and keeps them when run again", async () => {
    const state = join(volume, "demo-issuer.json");
    expect(((await stat(state)).mode & 0o777).toString(8)).toBe("600");
    const jwks = JSON.parse(await readFile(join(volume, "demo-issuer.jwks.json"), "utf8")) as { keys: Array<Record<string, unknown>> };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256", use: "sig" });
    expect(jwks.keys[0]).not.toHaveProperty("d");
    const before = await readFile(state, "utf8");
    const again = await node(hostCommand("demo-issuer", service("demo-issuer").entrypoint!).slice(1));
    expect(again.stdout).toMatch(/keeping the key/);
    expect(await readFile(state, "utf8")).toBe(before);
  });

  it.each([
    { what: "no token: 401", method: "GET", scopes: [], expected: { allowed: false, status: 401, reason: "token_missing" } },
    { what: "a read token reads", method: "GET", scopes: ["read:/data"], expected: { allowed: true, status: undefined, reason: "allowed" } },
    { what: "a read token cannot write: 403", method: "PUT", scopes: ["read:/data"], expected: { allowed: false, status: 403, reason: "scope_insufficient" } },
    { what: "a write token writes", method: "PUT", scopes: ["storage.create:/data"], expected: { allowed: true, status: undefined, reason: "allowed" } },
  ])("$what", async ({ method, scopes, expected }) => {
    const token = scopes.length > 0 ? await mint(...scopes.flatMap((s) => ["--scope", s])) : undefined;
    expect(await curl(method, "/protected/data/hello.txt", token)).toEqual(expected);
  });

  it("a PUT that only storage.create grants reaches the storage with If-None-Match: *, which webdav.conf enforces", async () => {
    const token = await mint("--scope", "storage.create:/data");
    const request = buildCheckRequest({ target, method: "PUT", path: "/protected/data/new.txt", host: "127.0.0.1:8080", token, route: "webdav" });
    const response = await sendCheck(target, request);
    const set = (response.okResponse?.headers ?? []).map((h) => [h.header?.key, h.header?.value]);
    expect(set).toContainEqual(["if-none-match", "*"]);
    const nginx = await readFile(hostFile(service("webdav"), "/etc/nginx/nginx.conf"), "utf8");
    expect(nginx).toMatch(/if \(\$put_over_existing = "PIE"\) \{\s*return 412;/);
  });

  it("a token of another issuer is refused: 401", async () => {
    const token = await mint("--scope", "read:/data", "--issuer", "https://elsewhere.example");
    expect(await curl("GET", "/protected/data/hello.txt", token)).toEqual({ allowed: false, status: 401, reason: "issuer_untrusted" });
  });

  it("the image's HEALTHCHECK finds the admin listener in the configuration and gets 200 from /readyz", async () => {
    const run = await healthcheck(configFile);
    expect(run).toEqual({ code: 0, stdout: expect.stringMatching(/\/readyz: 200\n$/) });
  });

  it.each([
    { what: "a configuration without http.listen", config: "no-admin", says: /no health endpoint: .* sets no http\.listen/ },
    { what: "no SCITOKENS_AUTHZ_CONFIG", config: undefined, says: /SCITOKENS_AUTHZ_CONFIG is not set/ },
  ])("the HEALTHCHECK fails, saying why, with $what", async ({ config, says }) => {
    let file: string | undefined;
    if (config !== undefined) {
      file = join(dir, "etc", `${config}.yaml`);
      const text = await readFile(configFile, "utf8");
      await writeFile(file, text.replace(/^http:\n(?:[ #].*\n)*/m, ""));
    }
    const run = await healthcheck(file);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(says);
  });

  it("the HEALTHCHECK fails once the service has stopped: no answer", async () => {
    await served.stop();
    const run = await healthcheck(configFile);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/no answer from http:\/\/127\.0\.0\.1:\d+\/readyz/);
  });
});
