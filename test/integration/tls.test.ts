import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BUILT_POLICY_FILE, parseServiceConfig } from "../../src/config/service-config.js";
import { createLogger } from "../../src/observability/logger.js";
import { type RunningService, type TlsReloadEvent, startService } from "../../src/server/service.js";
import { type CertificateFiles, type TestCa, issueCertificate, makeCa } from "../helpers/certificates.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { reasonOf } from "../helpers/service.js";
import { checkOnce, replaceFiles, servedFingerprint, tlsClient } from "../helpers/tls-service.js";
import { mint } from "../helpers/tokens.js";

// Issue 8: TLS and mutual TLS on the gRPC listener, with certificates made here. A client
// that trusts the CA gets decisions, a plaintext one or one that does not trust it gets
// none; under mutual TLS only a client certificate of the configured CAs gets in. The
// files are reloaded without a restart: new connections get the new certificate, open
// ones keep theirs, and a broken replacement is refused while the old one serves on.
// Tests wait for reload events, never for time.

const DEBOUNCE = { quietMs: 50, maxDelayMs: 1_000 };

let dir: string;
let key: TestKey;
let issuer: OidcServer;
let ca: TestCa;
let otherCa: TestCa;
let client: CertificateFiles;
let strangerClient: CertificateFiles;
let token: string;
let running: RunningService | undefined;
let served = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-authz-tls-"));
  key = await makeKey("ES256");
  issuer = await startOidcServer({ keys: [key] });
  ca = makeCa("Test CA");
  otherCa = makeCa("Other CA");
  client = issueCertificate(ca, { commonName: "envoy", usage: "client" });
  strangerClient = issueCertificate(otherCa, { commonName: "stranger", usage: "client" });
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

/** Writes a server certificate (and the client CAs) into a folder of their own, and serves with them. */
async function serve(o: { server?: CertificateFiles; clientCas?: string } = {}): Promise<{ service: RunningService; target: string; certs: string }> {
  const certs = await mkdtemp(join(dir, `certs-${served++}-`));
  const server = o.server ?? issueCertificate(ca, { commonName: "authz", usage: "server" });
  await writeFile(join(certs, "server.pem"), server.cert);
  await writeFile(join(certs, "server.key"), server.key);
  if (o.clientCas !== undefined) await writeFile(join(certs, "clients.pem"), o.clientCas);
  const config = parseServiceConfig(join(certs, "service.yaml"), {
    grpc: {
      listen: "127.0.0.1:0",
      // Relative: resolved against the configuration file's folder.
      tls: { cert_file: "server.pem", key_file: "server.key", ...(o.clientCas !== undefined ? { client_ca_file: "clients.pem" } : {}) },
    },
    policy: { data: join(dir, "data.yaml"), wasm: BUILT_POLICY_FILE },
    log: { level: "silent" },
  });
  running = await startService(config, { logger: createLogger("silent"), watchDebounce: DEBOUNCE });
  return { service: running, target: `localhost:${running.port}`, certs };
}

/** The gRPC status code a Check ends with when no decision comes back. */
async function failureOf(promise: Promise<unknown>): Promise<number> {
  const error = await promise.then(
    () => null,
    (e: { code?: number }) => e,
  );
  expect(error, "expected the Check to fail without a decision").not.toBeNull();
  return error!.code!;
}

describe("TLS", () => {
  it("gives a client that trusts the CA decisions", async () => {
    const { target } = await serve();
    expect(reasonOf(await checkOnce(target, ca, undefined, token))).toBe("allowed");
    expect(reasonOf(await checkOnce(target, ca))).toBe("token_missing");
  });

  it("gives no decision to a plaintext client, nor to one that does not trust the CA", async () => {
    const { target } = await serve();
    expect(await failureOf(checkOnce(target, null))).toBe(status.UNAVAILABLE);
    expect(await failureOf(checkOnce(target, otherCa))).toBe(status.UNAVAILABLE);
  });

  it("refuses to start with a broken certificate, naming the file and the key", async () => {
    const expired = issueCertificate(ca, { commonName: "authz", usage: "server", notBefore: new Date(Date.now() - 9e8), notAfter: new Date(Date.now() - 1e8) });
    await expect(serve({ server: expired })).rejects.toThrow(
      /service\.yaml: grpc\.tls\.cert_file: expected a certificate valid now, found .*server\.pem \(CN=authz\) expired on /,
    );
  });
});

describe("mutual TLS", () => {
  it("gives decisions to a client with a certificate of a configured CA", async () => {
    const { target } = await serve({ clientCas: ca.cert });
    expect(reasonOf(await checkOnce(target, ca, client, token))).toBe("allowed");
  });

  it.each([
    { name: "without a client certificate", identity: () => undefined },
    { name: "with a certificate of another CA", identity: () => strangerClient },
  ])("refuses a client $name", async ({ identity }) => {
    const { target } = await serve({ clientCas: ca.cert });
    expect(await failureOf(checkOnce(target, ca, identity()))).toBe(status.UNAVAILABLE);
  });
});

describe("reloading the certificate without a restart", () => {
  const reloaded = (event: TlsReloadEvent) => event.outcome === "reloaded";

  it("shows new connections the certificate replaced on disk; open connections keep theirs", async () => {
    const first = issueCertificate(ca, { commonName: "authz-1", usage: "server" });
    const { service, target, certs } = await serve({ server: first });
    const firstFingerprint = await servedFingerprint(service.port, ca);
    const open = tlsClient(target, ca);
    try {
      expect(reasonOf(await open.check("/data/x", token))).toBe("allowed");
      // The new certificate comes from another CA: only a client trusting it can connect.
      const next = issueCertificate(otherCa, { commonName: "authz-2", usage: "server" });
      const done = service.nextTlsReload(reloaded)!;
      await replaceFiles(certs, { "server.pem": next.cert, "server.key": next.key });
      const event = await done;
      expect(event).toMatchObject({ outcome: "reloaded", certificate: { subject: "CN=authz-2" }, previous: { subject: "CN=authz-1" } });
      const nextFingerprint = await servedFingerprint(service.port, otherCa);
      expect(nextFingerprint).not.toBe(firstFingerprint);
      expect(event.certificate.fingerprint).toBe(nextFingerprint);
      expect(reasonOf(await checkOnce(target, otherCa, undefined, token))).toBe("allowed");
      expect(await failureOf(checkOnce(target, ca))).toBe(status.UNAVAILABLE);
      // The connection opened before the swap still answers.
      expect(reasonOf(await open.check("/data/x", token))).toBe("allowed");
    } finally {
      open.close();
    }
  });

  it.each([
    {
      name: "the key of another certificate",
      files: () => ({ "server.key": issueCertificate(ca, { commonName: "x", usage: "server" }).key }),
      problem: /grpc\.tls\.key_file: expected the private key of the certificate/,
    },
    {
      name: "a certificate file that is not PEM",
      files: () => ({ "server.pem": "not a certificate\n" }),
      problem: /grpc\.tls\.cert_file: .*found text without any PEM block/,
    },
  ])("refuses a replacement with $name and keeps the certificate in use", async ({ files, problem }) => {
    const { service, target, certs } = await serve();
    const before = await servedFingerprint(service.port, ca);
    const done = service.nextTlsReload()!;
    await replaceFiles(certs, files());
    const event = await done;
    expect(event.outcome).toBe("refused");
    expect(event.outcome === "refused" && event.problems.join("\n")).toMatch(problem);
    expect(event.certificate.fingerprint).toBe(before);
    expect(await servedFingerprint(service.port, ca)).toBe(before);
    expect(reasonOf(await checkOnce(target, ca, undefined, token))).toBe("allowed");
  });

  it("reloads the client CAs: a client of a newly trusted CA gets in on its next connection", async () => {
    const { service, target, certs } = await serve({ clientCas: ca.cert });
    expect(await failureOf(checkOnce(target, ca, strangerClient))).toBe(status.UNAVAILABLE);
    const done = service.nextTlsReload(reloaded)!;
    await replaceFiles(certs, { "clients.pem": ca.cert + otherCa.cert });
    await done;
    expect(reasonOf(await checkOnce(target, ca, strangerClient, token))).toBe("allowed");
    expect(reasonOf(await checkOnce(target, ca, client, token))).toBe("allowed");
  });

  it("reloads on request (what SIGHUP does): unchanged files change nothing", async () => {
    const { service } = await serve();
    const before = await servedFingerprint(service.port, ca);
    expect(await service.reloadTls("SIGHUP")).toMatchObject({ outcome: "unchanged", trigger: "SIGHUP", certificate: { fingerprint: before } });
  });

  it("has no TLS reload without grpc.tls", async () => {
    const config = parseServiceConfig(join(dir, "plain.yaml"), {
      grpc: { listen: "127.0.0.1:0" },
      policy: { data: join(dir, "data.yaml"), wasm: BUILT_POLICY_FILE },
    });
    running = await startService(config, { logger: createLogger("silent") });
    expect(running.reloadTls()).toBeNull();
    expect(reasonOf(await checkOnce(`127.0.0.1:${running.port}`, null, undefined, token))).toBe("allowed");
  });
});
