import { type KeyObject, X509Certificate, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { isIPv4 } from "node:net";
import { bitString, boolean, explicit, integer, objectId, octetString, sequence, set, tagged, time, utf8String } from "./der.js";

// Certificates for TLS tests, made at test time: a CA, and server and client certificates
// it signs (X.509 v3, RFC 5280 §4.1), P-256 keys, ECDSA with SHA-256. The DER structure
// is built in der.ts; keys and signatures come from node:crypto.

const ECDSA_WITH_SHA256 = sequence(objectId("1.2.840.10045.4.3.2"));
const DAY_MS = 86_400_000;

/** A PEM certificate and its PEM private key (PKCS #8). */
export interface CertificateFiles {
  readonly cert: string;
  readonly key: string;
}

export interface TestCa extends CertificateFiles {
  readonly commonName: string;
  readonly privateKey: KeyObject;
  /** The DER Name of the CA, the issuer of what it signs. */
  readonly name: Buffer;
}

export interface IssueOptions {
  readonly commonName: string;
  /** `server`: serverAuth, with SANs (DNS localhost, IP 127.0.0.1 by default); `client`: clientAuth. */
  readonly usage: "server" | "client";
  readonly altNames?: readonly string[];
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

/** A self-signed CA certificate (basicConstraints CA, keyCertSign), valid from yesterday for 30 days. */
export function makeCa(commonName: string, now = Date.now()): TestCa {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const name = nameOf(commonName);
  const extensions = [
    extension("2.5.29.19", true, sequence(boolean(true))), // basicConstraints: CA
    extension("2.5.29.15", true, keyUsage(0x06)), // keyUsage: keyCertSign, cRLSign
  ];
  const der = certificate({
    issuer: name,
    issuerKey: privateKey,
    subject: name,
    publicKey,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + 30 * DAY_MS),
    extensions,
  });
  return { commonName, privateKey, name, cert: pem(der), key: privateKey.export({ type: "pkcs8", format: "pem" }).toString() };
}

/** A certificate signed by `ca` for a new P-256 key; by default valid from yesterday for 30 days. */
export function issueCertificate(ca: TestCa, options: IssueOptions, now = Date.now()): CertificateFiles {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const altNames = options.altNames ?? (options.usage === "server" ? ["localhost", "127.0.0.1"] : []);
  const extensions = [
    extension("2.5.29.19", true, sequence()), // basicConstraints: not a CA
    extension("2.5.29.15", true, keyUsage(0x80)), // keyUsage: digitalSignature
    extension("2.5.29.37", false, sequence(objectId(options.usage === "server" ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2"))),
    ...(altNames.length > 0 ? [extension("2.5.29.17", false, sequence(...altNames.map(generalName)))] : []),
  ];
  const der = certificate({
    issuer: ca.name,
    issuerKey: ca.privateKey,
    subject: nameOf(options.commonName),
    publicKey,
    notBefore: options.notBefore ?? new Date(now - DAY_MS),
    notAfter: options.notAfter ?? new Date(now + 30 * DAY_MS),
    extensions,
  });
  return { cert: pem(der), key: privateKey.export({ type: "pkcs8", format: "pem" }).toString() };
}

/** The serial number of a PEM certificate, as X509Certificate prints it. */
export function serialOf(certPem: string): string {
  return new X509Certificate(certPem).serialNumber;
}

function certificate(o: {
  issuer: Buffer;
  issuerKey: KeyObject;
  subject: Buffer;
  publicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  extensions: Buffer[];
}): Buffer {
  const serial = randomBytes(12);
  serial[0]! &= 0x7f;
  serial[0]! |= 0x01;
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))), // version v3
    integer(serial),
    ECDSA_WITH_SHA256,
    o.issuer,
    sequence(time(o.notBefore), time(o.notAfter)),
    o.subject,
    o.publicKey.export({ type: "spki", format: "der" }),
    explicit(3, sequence(...o.extensions)),
  );
  return sequence(tbs, ECDSA_WITH_SHA256, bitString(sign("sha256", tbs, o.issuerKey)));
}

function nameOf(commonName: string): Buffer {
  return sequence(set(sequence(objectId("2.5.4.3"), utf8String(commonName))));
}

function extension(oid: string, critical: boolean, value: Buffer): Buffer {
  return sequence(objectId(oid), ...(critical ? [boolean(true)] : []), octetString(value));
}

/** keyUsage with the bits of the first byte (RFC 5280 §4.2.1.3: 0x80 digitalSignature, 0x04 keyCertSign). */
function keyUsage(firstByte: number): Buffer {
  let unused = 0;
  while (unused < 7 && (firstByte & (1 << unused)) === 0) unused++;
  return tagged(0x03, Buffer.from([unused, firstByte]));
}

/** dNSName [2] or iPAddress [7] (IPv4 only). */
function generalName(name: string): Buffer {
  return isIPv4(name) ? tagged(0x87, Buffer.from(name.split(".").map(Number))) : tagged(0x82, Buffer.from(name, "ascii"));
}

function pem(der: Buffer): string {
  const base64 = der.toString("base64").replace(/.{64}/g, "$&\n");
  return `-----BEGIN CERTIFICATE-----\n${base64}${base64.endsWith("\n") ? "" : "\n"}-----END CERTIFICATE-----\n`;
}
