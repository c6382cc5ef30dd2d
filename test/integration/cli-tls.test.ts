import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BUILT_POLICY_FILE, parseServiceConfig } from "../../src/config/service-config.js";
import { createLogger } from "../../src/observability/logger.js";
import { type RunningService, startService } from "../../src/server/service.js";
import { type CertificateFiles, type TestCa, issueCertificate, makeCa } from "../helpers/certificates.js";
import { CLI, type ServedProcess, killAllServed, spawnServe } from "../helpers/cli-process.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { mint } from "../helpers/tokens.js";

// Issue 8, as an operator tries it: `serve` on a TLS or mutual TLS listener or a Unix
// socket, `check` with --tls-ca/--tls-cert/--tls-key and unix: targets, `validate` of the
// TLS files. The built dist/cli/main.js in child processes.

const run = promisify(execFile);

// Each test starts one to three Node processes; on a loaded machine that takes seconds.
const SPAWNING = { timeout: 30_000 };

let dir: string;
let key: TestKey;
let issuer: OidcServer;
let token: string;
let ca: TestCa;
let client: CertificateFiles;
let files: { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string };
let service: RunningService | undefined;
let served: ServedProcess | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-authz-cli-tls-"));
  key = await makeKey("ES256");
  issuer = await startOidcServer({ keys: [key] });
  token = await mint(key, issuer.issuer, { scopes: ["read:/"] });
  ca = makeCa("CLI CA");
  const server = issueCertificate(ca, { commonName: "authz", usage: "server", altNames: ["localhost", "127.0.0.1", "authz.internal"] });
  client = issueCertificate(ca, { commonName: "envoy", usage: "client" });
  files = { ca: "ca.pem", serverCert: "server.pem", serverKey: "server.key", clientCert: "client.pem", clientKey: "client.key" };
  const contents = { ca: ca.cert, serverCert: server.cert, serverKey: server.key, clientCert: client.cert, clientKey: client.key };
  for (const [name, file] of Object.entries(files)) {
    files[name as keyof typeof files] = join(dir, file);
    await writeFile(join(dir, file), contents[name as keyof typeof contents]);
  }
  await writeFile(
    join(dir, "data.yaml"),
    JSON.stringify({ audiences: ["https://storage.example.org"], issuers: [{ issuer: issuer.issuer, base_path: "/data" }] }),
  );
});

afterEach(async () => {
  await service?.close();
  service = undefined;
  await served?.stop();
  served = undefined;
});

afterAll(async () => {
  killAllServed();
  await issuer?.close();
  await rm(dir, { recursive: true, force: true });
});

function serviceDocument(grpc: Record<string, unknown>): object {
  return { grpc, policy: { data: join(dir, "data.yaml"), wasm: BUILT_POLICY_FILE } };
}

async function startInProcess(grpc: Record<string, unknown>): Promise<RunningService> {
  service = await startService(parseServiceConfig(join(dir, "service.yaml"), serviceDocument(grpc)), { logger: createLogger("silent") });
  return service;
}

const mutualTls = () => ({ cert_file: files.serverCert, key_file: files.serverKey, client_ca_file: files.ca });

async function check(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, "check", "--path", "/data/x", ...args]).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

describe("scitokens-authz check over TLS and Unix sockets", SPAWNING, () => {
  it("gets a decision over mutual TLS with --tls-ca, --tls-cert and --tls-key", async () => {
    const { port } = await startInProcess({ listen: "127.0.0.1:0", tls: mutualTls() });
    const tls = ["--tls-ca", files.ca, "--tls-cert", files.clientCert, "--tls-key", files.clientKey];
    const allowed = await check(["--target", `127.0.0.1:${port}`, "--token", token, ...tls]);
    expect(allowed).toMatchObject({ code: 0, stdout: expect.stringMatching(/^ALLOWED {2}reason=allowed/) });
    const denied = await check(["--target", `localhost:${port}`, ...tls]);
    expect(denied).toMatchObject({ code: 1, stdout: expect.stringMatching(/^DENIED {3}http=401 grpc=16 reason=token_missing/) });
    // Without a client certificate the handshake fails: no decision (exit 3), not a denial.
    const refused = await check(["--target", `127.0.0.1:${port}`, "--token", token, "--tls-ca", files.ca]);
    expect(refused).toMatchObject({
      code: 3,
      stdout: "",
      stderr: expect.stringMatching(/^scitokens-authz check: no decision from 127\.0\.0\.1:\d+: UNAVAILABLE .*certificate required/m),
    });
  });

  it("checks the server certificate for the name given with --tls-server-name", async () => {
    const { port } = await startInProcess({ listen: "127.0.0.1:0", tls: { cert_file: files.serverCert, key_file: files.serverKey } });
    const allowed = await check(["--target", `127.0.0.1:${port}`, "--token", token, "--tls-ca", files.ca, "--tls-server-name", "authz.internal"]);
    expect(allowed).toMatchObject({ code: 0, stdout: expect.stringMatching(/^ALLOWED/) });
  });

  it("gets a decision through a Unix socket (unix: target)", async () => {
    const socket = join(dir, "check.sock");
    await startInProcess({ listen: `unix:${socket}` });
    expect(await check(["--target", `unix:${socket}`, "--token", token])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^ALLOWED/) });
  });

  it.each([
    { name: "--tls-cert without --tls-key", args: ["--tls-cert", "client.pem"], code: 64, stderr: /--tls-cert and --tls-key go together/ },
    { name: "--tls-key without --tls-cert", args: ["--tls-key", "client.key"], code: 64, stderr: /--tls-cert and --tls-key go together/ },
    {
      name: "a --tls-ca file that is not there",
      args: ["--tls-ca", "/nonexistent/ca.pem"],
      code: 2,
      stderr: /^scitokens-authz: configuration error: --tls-ca: expected CA certificates \(PEM\), found nothing at \/nonexistent\/ca\.pem$/m,
    },
  ])("refuses $name", async ({ args, code, stderr }) => {
    const result = await check(["--target", "127.0.0.1:1", ...args]);
    expect(result.code).toBe(code);
    expect(result.stderr).toMatch(stderr);
  });
});

describe("scitokens-authz serve and validate with grpc.tls", SPAWNING, () => {
  async function writeConfig(name: string, grpc: Record<string, unknown>): Promise<string> {
    const file = join(dir, `${name}.yaml`);
    await writeFile(file, JSON.stringify(serviceDocument(grpc)));
    return file;
  }

  it("serves mutual TLS, says so when it listens, and reloads the TLS files on SIGHUP", async () => {
    const config = await writeConfig("mtls", { listen: "127.0.0.1:0", tls: mutualTls() });
    served = spawnServe(["--config", config]);
    await served.waitFor(
      /"msg":"TLS credentials loaded: certificate [0-9A-F]+ \(CN=authz, valid until [^)]+\); client certificates required, signed by one of 1 CA certificate"/,
    );
    const [, port] = await served.waitFor(/"msg":"listening on 127\.0\.0\.1:(\d+) \(mutual TLS\)"/);
    const allowed = await check([
      "--target",
      `127.0.0.1:${port}`,
      "--token",
      token,
      "--tls-ca",
      files.ca,
      "--tls-cert",
      files.clientCert,
      "--tls-key",
      files.clientKey,
    ]);
    expect(allowed.stdout).toMatch(/^ALLOWED/);
    served.child.kill("SIGHUP");
    await served.waitFor(/"trigger":"SIGHUP".*"msg":"TLS files unchanged: nothing to reload"/);
    expect(await served.stop()).toBe(0);
  });

  it("refuses to start with a key that is not the certificate's: exit 2, naming the file and the key", async () => {
    const config = await writeConfig("swapped", { listen: "127.0.0.1:0", tls: { cert_file: files.serverCert, key_file: files.clientKey } });
    const result = await run(process.execPath, [CLI, "serve", "--config", config]).catch((e: { code: number; stderr: string }) => e);
    expect((result as { code: number }).code).toBe(2);
    expect((result as { stderr: string }).stderr).toContain(
      `configuration error: ${config}: grpc.tls.key_file: expected the private key of the certificate in ${files.serverCert} (CN=authz), found the key of another certificate in ${files.clientKey}`,
    );
  });

  it("validate checks the TLS files and the socket's folder", async () => {
    const good = await writeConfig("validate-good", { listen: `unix:${join(dir, "v.sock")}`, tls: mutualTls() });
    const ok = await run(process.execPath, [CLI, "validate", "--config", good]);
    expect(ok.stdout).toMatch(
      /^ {2}listener {3}unix:.*v\.sock, mutual TLS: certificate CN=authz by CN=CLI CA, valid until \S+; client certificates required \(1 CA certificate\)$/m,
    );
    const bad = await writeConfig("validate-bad", { listen: "unix:/nonexistent/authz.sock", tls: { cert_file: files.serverKey, key_file: files.serverKey } });
    const result = await run(process.execPath, [CLI, "validate", "--config", bad]).catch((e: { code: number; stdout: string }) => e);
    expect((result as { code: number }).code).toBe(2);
    const stdout = (result as { stdout: string }).stdout;
    expect(stdout).toContain(`${bad}: grpc.listen: expected an existing folder for the socket /nonexistent/authz.sock, found nothing at /nonexistent`);
    expect(stdout).toContain(`${bad}: grpc.tls.cert_file: expected the server certificate chain as PEM (CERTIFICATE blocks), found PEM blocks of another kind`);
  });
});
