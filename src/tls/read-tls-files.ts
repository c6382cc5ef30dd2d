import { type KeyObject, X509Certificate, createHash, createPrivateKey } from "node:crypto";
import { open } from "node:fs/promises";
import { createSecureContext } from "node:tls";
import { ConfigError } from "../config/config-error.js";
import type { TlsSettings } from "../config/service-config.js";

/** Largest certificate, key or CA file read (a full public CA bundle is about 250 KiB). */
export const MAX_TLS_FILE_BYTES = 1024 * 1024;

/** What the logs say about a certificate: never the key. */
export interface CertificateSummary {
  readonly subject: string;
  readonly issuer: string;
  readonly serial: string;
  /** SHA-256 fingerprint, as `openssl x509 -fingerprint -sha256` prints it. */
  readonly fingerprint: string;
  readonly notBefore: string;
  readonly notAfter: string;
}

/** Checked TLS files, ready for `tls.createSecureContext`. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** The client CA certificates (mutual TLS); absent without `client_ca_file`. */
  readonly ca?: Buffer;
  readonly certificate: CertificateSummary;
  /** How many CA certificates sign client certificates (0 without mutual TLS). */
  readonly clientCas: number;
  /** SHA-256 over the three files: equal digests mean nothing changed. Never logged. */
  readonly digest: string;
}

/**
 * Reads and checks the gRPC listener's TLS files (`grpc.tls`) the way `serve` needs them,
 * and throws one ConfigError for `configFile` listing every problem, each as
 * `key: what was expected, what was found` and naming the file: unreadable, not PEM, an
 * encrypted key, a key that is not the certificate's, a server certificate not valid at
 * `now` (expired or not yet valid: clients would refuse it, so it is refused here), a
 * client CA file without a certificate valid at `now`. Last, OpenSSL itself must accept
 * them as a secure context, which is what the listener will build.
 */
export async function readTlsFiles(settings: TlsSettings, configFile: string, now: number = Date.now()): Promise<TlsMaterial> {
  const problems: string[] = [];
  const [certBytes, keyBytes, caBytes] = await Promise.all([
    readTlsFile(settings.certFile, "grpc.tls.cert_file", "the server certificate chain (PEM)", problems),
    readTlsFile(settings.keyFile, "grpc.tls.key_file", "the server's private key (PEM)", problems),
    settings.clientCaFile !== null
      ? readTlsFile(settings.clientCaFile, "grpc.tls.client_ca_file", "the client CA certificates (PEM)", problems)
      : Promise.resolve(undefined),
  ]);

  const chain = certBytes !== null ? certificatesIn(certBytes, settings.certFile, "grpc.tls.cert_file", "the server certificate chain", problems) : null;
  const leaf = chain?.[0] ?? null;
  if (leaf !== null) {
    const validity = validityProblem(leaf, now);
    if (validity !== null)
      problems.push(`grpc.tls.cert_file: expected a certificate valid now, found ${settings.certFile} (${oneLine(leaf.subject)}) ${validity}`);
  }

  const key = keyBytes !== null ? privateKeyIn(keyBytes, settings.keyFile, problems) : null;
  if (leaf !== null && key !== null && !leaf.checkPrivateKey(key)) {
    problems.push(
      `grpc.tls.key_file: expected the private key of the certificate in ${settings.certFile} (${oneLine(leaf.subject)}), found the key of another certificate in ${settings.keyFile}`,
    );
  }

  let clientCas = 0;
  if (caBytes !== undefined && caBytes !== null && settings.clientCaFile !== null) {
    const cas = certificatesIn(caBytes, settings.clientCaFile, "grpc.tls.client_ca_file", "CA certificates", problems);
    if (cas !== null) {
      clientCas = cas.length;
      if (cas.every((ca) => validityProblem(ca, now) !== null)) {
        problems.push(
          `grpc.tls.client_ca_file: expected at least one CA certificate valid now, found ${cas.length === 1 ? "its only one" : `all ${cas.length}`} in ${settings.clientCaFile} expired or not yet valid: every client certificate would be refused`,
        );
      }
    }
  }

  if (problems.length > 0 || certBytes === null || keyBytes === null || leaf === null) throw new ConfigError(configFile, problems);
  const ca = caBytes ?? undefined;
  try {
    createSecureContext({ cert: certBytes, key: keyBytes, ...(ca !== undefined ? { ca } : {}) });
  } catch (error) {
    throw new ConfigError(configFile, [`grpc.tls: expected files OpenSSL accepts as a server's credentials, found it refuses them: ${messageOf(error)}`]);
  }
  const digest = createHash("sha256");
  for (const bytes of [certBytes, keyBytes, ca ?? Buffer.alloc(0)]) digest.update(String(bytes.length)).update(":").update(bytes);
  return {
    cert: certBytes,
    key: keyBytes,
    ...(ca !== undefined ? { ca } : {}),
    certificate: summarize(leaf),
    clientCas,
    digest: digest.digest("hex"),
  };
}

/** The files `settings` names, to watch. */
export function tlsFiles(settings: TlsSettings): string[] {
  return [settings.certFile, settings.keyFile, ...(settings.clientCaFile !== null ? [settings.clientCaFile] : [])];
}

export function summarize(certificate: X509Certificate): CertificateSummary {
  return {
    subject: oneLine(certificate.subject),
    issuer: oneLine(certificate.issuer),
    serial: certificate.serialNumber,
    fingerprint: certificate.fingerprint256,
    notBefore: new Date(certificate.validFrom).toISOString(),
    notAfter: new Date(certificate.validTo).toISOString(),
  };
}

async function readTlsFile(file: string, key: string, what: string, problems: string[]): Promise<Buffer | null> {
  try {
    const handle = await open(file, "r");
    try {
      const { size } = await handle.stat();
      if (size > MAX_TLS_FILE_BYTES) {
        problems.push(`${key}: expected ${what} of at most ${MAX_TLS_FILE_BYTES} bytes, found ${size} bytes in ${file}`);
        return null;
      }
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const found =
      code === "ENOENT"
        ? `found nothing at ${file}`
        : code === "EISDIR"
          ? `found a folder at ${file}`
          : code === "EACCES"
            ? `cannot read ${file} (permission denied)`
            : `cannot read ${file} (${code ?? messageOf(error)})`;
    problems.push(`${key}: expected ${what}, ${found}`);
    return null;
  }
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/** The PEM blocks of `bytes` as [label, whole block] pairs. */
function pemBlocks(bytes: Buffer): Array<{ label: string; text: string }> {
  return [...bytes.toString("latin1").matchAll(PEM_BLOCK)].map((m) => ({ label: m[1]!, text: m[0] }));
}

/** What a file holds, when it is not what was expected: for `found …` in a problem. */
function describeContent(bytes: Buffer): string {
  if (bytes.length === 0) return "an empty file";
  const labels = [...new Set(pemBlocks(bytes).map((b) => b.label))];
  if (labels.length > 0) return `PEM blocks of another kind (${labels.join(", ")})`;
  if (bytes[0] === 0x30 && bytes.length > 1 && (bytes[1]! & 0x80) !== 0)
    return "binary data that looks like DER (convert it to PEM, e.g. openssl x509 -inform der)";
  if (bytes.includes(0)) return "binary data, not PEM text";
  return "text without any PEM block (a BEGIN/END armoured block)";
}

function certificatesIn(bytes: Buffer, file: string, key: string, what: string, problems: string[]): X509Certificate[] | null {
  const blocks = pemBlocks(bytes).filter((b) => b.label === "CERTIFICATE");
  if (blocks.length === 0) {
    const swapped = pemBlocks(bytes).some((b) => b.label.endsWith("PRIVATE KEY")) ? " (a private key: are cert_file and key_file swapped?)" : "";
    problems.push(`${key}: expected ${what} as PEM (CERTIFICATE blocks), found ${describeContent(bytes)}${swapped} in ${file}`);
    return null;
  }
  const certificates: X509Certificate[] = [];
  for (const [index, block] of blocks.entries()) {
    try {
      certificates.push(new X509Certificate(block.text));
    } catch (error) {
      problems.push(`${key}: expected ${what} as PEM, found certificate ${index + 1} of ${blocks.length} in ${file} does not parse (${messageOf(error)})`);
    }
  }
  return certificates.length === blocks.length ? certificates : null;
}

function privateKeyIn(bytes: Buffer, file: string, problems: string[]): KeyObject | null {
  const blocks = pemBlocks(bytes);
  const keyBlock = blocks.find((b) => b.label.endsWith("PRIVATE KEY"));
  if (keyBlock === undefined) {
    const swapped = blocks.some((b) => b.label === "CERTIFICATE") ? " (a certificate: are cert_file and key_file swapped?)" : "";
    problems.push(`grpc.tls.key_file: expected a private key as PEM (a PRIVATE KEY block), found ${describeContent(bytes)}${swapped} in ${file}`);
    return null;
  }
  if (keyBlock.label === "ENCRYPTED PRIVATE KEY" || /^Proc-Type: 4,ENCRYPTED/m.test(keyBlock.text)) {
    problems.push(
      `grpc.tls.key_file: expected an unencrypted private key (the service cannot ask for a passphrase), found an encrypted one in ${file} (decrypt it with openssl pkey, and protect the file with its permissions)`,
    );
    return null;
  }
  try {
    return createPrivateKey(keyBlock.text);
  } catch (error) {
    problems.push(`grpc.tls.key_file: expected a private key as PEM, found one that does not parse in ${file} (${messageOf(error)})`);
    return null;
  }
}

/** `expired on …` or `not valid before …`, or null when `certificate` is valid at `now`. */
function validityProblem(certificate: X509Certificate, now: number): string | null {
  const notBefore = new Date(certificate.validFrom);
  const notAfter = new Date(certificate.validTo);
  if (now < notBefore.getTime()) return `is not valid before ${notBefore.toISOString()}`;
  if (now > notAfter.getTime()) return `expired on ${notAfter.toISOString()}`;
  return null;
}

function oneLine(name: string): string {
  return name.split("\n").join(", ");
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
