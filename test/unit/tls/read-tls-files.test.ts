import { X509Certificate, createPrivateKey } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../../src/config/config-error.js";
import type { TlsSettings } from "../../../src/config/service-config.js";
import { MAX_TLS_FILE_BYTES, readTlsFiles } from "../../../src/tls/index.js";
import { type CertificateFiles, type TestCa, issueCertificate, makeCa } from "../../helpers/certificates.js";

// The checks of the gRPC listener's TLS files, made before they are used at start-up and
// on every reload: each problem names the key and the file, says what was expected and
// what was found, and all of them are reported at once.

const CONFIG = "/etc/scitokens-authz/service.yaml";
const DAY = 86_400_000;

let dir: string;
let ca: TestCa;
let otherCa: TestCa;
let server: CertificateFiles;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-authz-tls-files-"));
  ca = makeCa("Test CA");
  otherCa = makeCa("Other CA");
  server = issueCertificate(ca, { commonName: "authz.example", usage: "server" });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let counter = 0;
/** Writes `contents` to a new file in the test folder and returns its path. */
async function file(contents: string | Buffer): Promise<string> {
  const path = join(dir, `f${counter++}.pem`);
  await writeFile(path, contents);
  return path;
}

async function settings(o: { cert?: string | Buffer; key?: string | Buffer; ca?: string | Buffer } = {}): Promise<TlsSettings> {
  return {
    certFile: await file(o.cert ?? server.cert),
    keyFile: await file(o.key ?? server.key),
    clientCaFile: o.ca !== undefined ? await file(o.ca) : null,
  };
}

async function problemsOf(s: TlsSettings, now?: number): Promise<readonly string[]> {
  const error = await readTlsFiles(s, CONFIG, now).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, "expected a ConfigError").toBeInstanceOf(ConfigError);
  expect((error as ConfigError).file).toBe(CONFIG);
  return (error as ConfigError).problems;
}

describe("readTlsFiles: good files", () => {
  it("reads a certificate and its key (TLS)", async () => {
    const material = await readTlsFiles(await settings(), CONFIG);
    expect(material.ca).toBeUndefined();
    expect(material.clientCas).toBe(0);
    expect(material.certificate).toMatchObject({ subject: "CN=authz.example", issuer: "CN=Test CA", serial: new X509Certificate(server.cert).serialNumber });
    expect(material.certificate.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  it("reads client CAs (mutual TLS), several in one file", async () => {
    const material = await readTlsFiles(await settings({ ca: ca.cert + otherCa.cert }), CONFIG);
    expect(material.clientCas).toBe(2);
    expect(material.ca?.toString()).toBe(ca.cert + otherCa.cert);
  });

  it("accepts a chain with an intermediate after the server certificate, and a key in another PEM form", async () => {
    const sec1 = createPrivateKey(server.key).export({ type: "sec1", format: "pem" }).toString();
    const material = await readTlsFiles(await settings({ cert: server.cert + ca.cert, key: sec1 }), CONFIG);
    expect(material.certificate.subject).toBe("CN=authz.example");
  });

  it("gives the same digest for the same files, another for another certificate", async () => {
    const a = await readTlsFiles(await settings(), CONFIG);
    const b = await readTlsFiles(await settings(), CONFIG);
    const renewed = issueCertificate(ca, { commonName: "authz.example", usage: "server" });
    const c = await readTlsFiles(await settings(renewed), CONFIG);
    expect(b.digest).toBe(a.digest);
    expect(c.digest).not.toBe(a.digest);
  });
});

describe("readTlsFiles: refused files", () => {
  const encrypted = () => createPrivateKey(server.key).export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "secret" }).toString();
  const der = () => new X509Certificate(server.cert).raw;

  it.each([
    {
      name: "a missing certificate file",
      make: async () => ({ ...(await settings()), certFile: join(dir, "missing.pem") }),
      expected: [/^grpc\.tls\.cert_file: expected the server certificate chain \(PEM\), found nothing at .*missing\.pem$/],
    },
    {
      name: "a folder as the key file",
      make: async () => ({ ...(await settings()), keyFile: dir }),
      expected: [/^grpc\.tls\.key_file: expected the server's private key \(PEM\), found a folder at /],
    },
    {
      name: "an empty certificate file",
      make: () => settings({ cert: "" }),
      expected: [/^grpc\.tls\.cert_file: expected the server certificate chain as PEM \(CERTIFICATE blocks\), found an empty file in /],
    },
    { name: "text that is not PEM", make: () => settings({ cert: "hello\n" }), expected: [/cert_file: .*found text without any PEM block/] },
    { name: "a DER certificate", make: () => settings({ cert: der() }), expected: [/cert_file: .*found binary data that looks like DER \(convert it to PEM/] },
    {
      name: "the key in the certificate file and the certificate in the key file",
      make: () => settings({ cert: server.key, key: server.cert }),
      expected: [
        /^grpc\.tls\.cert_file: .*another kind \(PRIVATE KEY\).*are cert_file and key_file swapped\?/,
        /^grpc\.tls\.key_file: .*another kind \(CERTIFICATE\).*are cert_file and key_file swapped\?/,
      ],
    },
    {
      name: "a certificate block that does not parse",
      make: () => settings({ cert: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" }),
      expected: [/^grpc\.tls\.cert_file: expected the server certificate chain as PEM, found certificate 1 of 1 in .* does not parse/],
    },
    {
      name: "an encrypted key",
      make: () => settings({ key: encrypted() }),
      expected: [/^grpc\.tls\.key_file: expected an unencrypted private key .*found an encrypted one in /],
    },
    {
      name: "the key of another certificate",
      make: () => settings({ key: issueCertificate(ca, { commonName: "other", usage: "server" }).key }),
      expected: [/^grpc\.tls\.key_file: expected the private key of the certificate in .* \(CN=authz\.example\), found the key of another certificate in /],
    },
    {
      name: "an expired certificate",
      make: () =>
        settings(
          issueCertificate(ca, { commonName: "old", usage: "server", notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) }),
        ),
      expected: [/^grpc\.tls\.cert_file: expected a certificate valid now, found .* \(CN=old\) expired on \d{4}-\d\d-\d\dT/],
    },
    {
      name: "a certificate not valid yet",
      make: () =>
        settings(
          issueCertificate(ca, { commonName: "early", usage: "server", notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 10 * DAY) }),
        ),
      expected: [/^grpc\.tls\.cert_file: expected a certificate valid now, found .* \(CN=early\) is not valid before /],
    },
    {
      name: "a client CA file without a CA certificate",
      make: () => settings({ ca: server.key }),
      expected: [/^grpc\.tls\.client_ca_file: expected CA certificates as PEM \(CERTIFICATE blocks\), found PEM blocks of another kind/],
    },
    {
      name: "a client CA file whose only CA expired",
      make: () => settings({ ca: makeCa("Old CA", Date.now() - 60 * DAY).cert }),
      expected: [/^grpc\.tls\.client_ca_file: expected at least one CA certificate valid now, found its only one in .* expired or not yet valid/],
    },
    {
      name: "a file over the size limit",
      make: () => settings({ ca: Buffer.alloc(MAX_TLS_FILE_BYTES + 1, 0x41) }),
      expected: [new RegExp(`^grpc\\.tls\\.client_ca_file: expected .* of at most ${MAX_TLS_FILE_BYTES} bytes, found`)],
    },
  ])("refuses $name", async ({ make, expected }) => {
    const problems = await problemsOf(await make());
    expect(problems).toHaveLength(expected.length);
    for (const [index, pattern] of expected.entries()) expect(problems[index]).toMatch(pattern);
  });

  it("reports every problem at once", async () => {
    const problems = await problemsOf({ certFile: join(dir, "missing.pem"), keyFile: await file(encrypted()), clientCaFile: await file("") });
    expect(problems.map((p) => p.slice(0, p.indexOf(":")))).toEqual(["grpc.tls.cert_file", "grpc.tls.key_file", "grpc.tls.client_ca_file"]);
  });

  it("says what is found where a key file should be (a folder)", async () => {
    const s = await settings();
    const folder = join(dir, `not-a-key-${Date.now()}`);
    await mkdir(folder);
    expect(await problemsOf({ ...s, keyFile: folder })).toEqual([
      expect.stringMatching(/^grpc\.tls\.key_file: expected the server's private key \(PEM\), found a folder at .*not-a-key-\d+$/),
    ]);
  });

  it("checks validity at the time given", async () => {
    const s = await settings();
    expect(await problemsOf(s, Date.now() + 60 * DAY)).toEqual([expect.stringMatching(/cert_file: expected a certificate valid now, .* expired on /)]);
  });
});
