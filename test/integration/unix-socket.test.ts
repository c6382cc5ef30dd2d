import { spawn } from "node:child_process";
import { lstat, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../src/config/config-error.js";
import { BUILT_POLICY_FILE, parseServiceConfig } from "../../src/config/service-config.js";
import { createLogger } from "../../src/observability/logger.js";
import { type RunningService, startService } from "../../src/server/service.js";
import { issueCertificate, makeCa } from "../helpers/certificates.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { reasonOf } from "../helpers/service.js";
import { checkOnce } from "../helpers/tls-service.js";
import { mint } from "../helpers/tokens.js";

// Issue 8: the gRPC listener on a Unix domain socket (`grpc.listen: "unix:PATH"`), the
// usual sidecar arrangement, reached by a real gRPC client through the socket file. A
// socket file left by a crashed run is replaced (with a warning); anything else at the
// path, or a socket another process serves on, stops the start-up and is left alone.

let dir: string;
let key: TestKey;
let issuer: OidcServer;
let token: string;
let running: RunningService | undefined;
let count = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-authz-uds-"));
  key = await makeKey("ES256");
  issuer = await startOidcServer({ keys: [key] });
  await writeFile(
    join(dir, "data.yaml"),
    JSON.stringify({ audiences: ["https://storage.example.org"], issuers: [{ issuer: issuer.issuer, base_path: "/data" }] }),
  );
  token = await mint(key, issuer.issuer, { scopes: ["read:/"] });
});

afterEach(async () => {
  await running?.close();
  running = undefined;
});

afterAll(async () => {
  await issuer?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Starts the service on `listen`, its warnings and errors collected as JSON lines. */
async function serveOn(listen: string, grpc: Record<string, unknown> = {}): Promise<{ service: RunningService; logs: Array<Record<string, unknown>> }> {
  const logs: Array<Record<string, unknown>> = [];
  const stream = new PassThrough();
  stream.on("data", (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) if (line.trim() !== "") logs.push(JSON.parse(line) as Record<string, unknown>);
  });
  const config = parseServiceConfig(join(dir, "service.yaml"), {
    grpc: { listen, ...grpc },
    policy: { data: join(dir, "data.yaml"), wasm: BUILT_POLICY_FILE },
  });
  running = await startService(config, { logger: createLogger("warn", stream) });
  return { service: running, logs };
}

const socketPath = () => join(dir, `authz-${count++}.sock`);

/** Leaves a socket file nobody listens on, as a process killed while serving does. */
async function staleSocket(path: string): Promise<void> {
  const script = "require('node:net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))";
  const child = spawn(process.execPath, ["-e", script, path], { stdio: "ignore" });
  await new Promise((resolve) => child.once("exit", resolve));
  expect((await lstat(path)).isSocket()).toBe(true);
}

describe("a Unix domain socket listener", () => {
  it("answers Checks through the socket and removes the socket file when it stops", async () => {
    const path = socketPath();
    const { service } = await serveOn(`unix:${path}`);
    expect(service.address).toBe(`unix:${path}`);
    expect((await lstat(path)).isSocket()).toBe(true);
    expect(reasonOf(await checkOnce(`unix:${path}`, null, undefined, token))).toBe("allowed");
    expect(reasonOf(await checkOnce(`unix:${path}`, null))).toBe("token_missing");
    await service.close();
    running = undefined;
    await expect(lstat(path)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("resolves a relative socket path against the configuration file's folder", async () => {
    const name = `relative-${count++}.sock`;
    const { service } = await serveOn(`unix:${name}`);
    expect(service.address).toBe(`unix:${join(dir, name)}`);
    expect(reasonOf(await checkOnce(`unix:${join(dir, name)}`, null, undefined, token))).toBe("allowed");
  });

  it("serves TLS on a socket too", async () => {
    const ca = makeCa("Socket CA");
    const server = issueCertificate(ca, { commonName: "authz", usage: "server" });
    await writeFile(join(dir, "socket-server.pem"), server.cert);
    await writeFile(join(dir, "socket-server.key"), server.key);
    const path = socketPath();
    await serveOn(`unix:${path}`, { tls: { cert_file: "socket-server.pem", key_file: "socket-server.key" } });
    // Over a socket, grpc-js checks the certificate for the name "localhost".
    expect(reasonOf(await checkOnce(`unix:${path}`, ca, undefined, token))).toBe("allowed");
    await expect(checkOnce(`unix:${path}`, null)).rejects.toMatchObject({ code: 14 });
  });

  it("replaces a stale socket file left by a crashed run, saying so", async () => {
    const path = socketPath();
    await staleSocket(path);
    const { logs } = await serveOn(`unix:${path}`);
    expect(logs).toContainEqual(
      expect.objectContaining({ level: 40, socket: path, msg: expect.stringMatching(/^removed the stale socket file .* nothing was listening on it/) }),
    );
    expect(reasonOf(await checkOnce(`unix:${path}`, null, undefined, token))).toBe("allowed");
  });

  it("does not take over a socket another process serves on", async () => {
    const path = socketPath();
    const other = createServer();
    await new Promise<void>((resolve) => other.listen(path, resolve));
    try {
      await expect(serveOn(`unix:${path}`)).rejects.toThrow(
        new ConfigError(join(dir, "service.yaml"), [
          `grpc.listen: cannot listen on unix:${path}: another process is serving on this socket (is the service already running?)`,
        ]),
      );
      expect((await lstat(path)).isSocket()).toBe(true);
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
  });

  it.each([
    {
      name: "a file that is not a socket",
      prepare: async (path: string) => writeFile(path, "precious"),
      message: "a file that is not a socket is there (remove it, or listen elsewhere)",
    },
    { name: "a missing folder", prepare: async () => undefined, message: "the folder", folder: "missing" },
  ])("refuses $name at the path, touching nothing", async ({ prepare, message, folder }) => {
    const path = folder !== undefined ? join(dir, folder, "authz.sock") : socketPath();
    await prepare(path);
    const error = await serveOn(`unix:${path}`).then(
      () => null,
      (e: unknown) => e,
    );
    // A configuration error of grpc.listen: serve exits 2 with this line.
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain(`service.yaml: grpc.listen: cannot listen on unix:${path}: ${message}`);
    if (folder === undefined) expect(await readFile(path, "utf8")).toBe("precious");
  });
});
