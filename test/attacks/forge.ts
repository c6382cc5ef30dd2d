import { KeyObject, createHmac, sign as cryptoSign, type webcrypto } from "node:crypto";
import type { CryptoKey } from "jose";

/**
 * Hand-made compact JWS for attack fixtures: every byte of the header, the payload and
 * the signature is the test's choice, including what jose refuses to produce (alg
 * `none`, HMAC with a public key, duplicate members, non-canonical base64url, psychic
 * signatures). Nothing here validates; that is the service's job.
 */

/** Makes a signature from the JWS signing input (the ASCII of `header.payload`). */
export type Signer = (signingInput: Uint8Array) => Uint8Array;

type AnyKey = KeyObject | webcrypto.CryptoKey | CryptoKey;

function keyObject(key: AnyKey): KeyObject {
  return key instanceof KeyObject ? key : KeyObject.from(key as webcrypto.CryptoKey);
}

/** Canonical base64url (RFC 7515 §2: RFC 4648 §5, no padding) of bytes or of a UTF-8 string. */
export function b64u(data: string | Uint8Array): string {
  return Buffer.from(data).toString("base64url");
}

/**
 * One segment: an object is serialized with JSON.stringify; a string is taken as the
 * JSON text itself (for duplicate members, `1e400`, bare `none`, truncation...); bytes
 * are encoded as they are.
 */
export function segment(value: object | string | Uint8Array): string {
  if (value instanceof Uint8Array) return b64u(value);
  return b64u(typeof value === "string" ? value : JSON.stringify(value));
}

/**
 * JSON object text from a list of members, duplicates allowed and kept in order:
 * `jsonText([["iss", a], ["iss", b]])` is `{"iss":a,"iss":b}`.
 */
export function jsonText(members: ReadonlyArray<readonly [string, unknown]>): string {
  return `{${members.map(([name, value]) => `${JSON.stringify(name)}:${JSON.stringify(value)}`).join(",")}}`;
}

/** The members of `value` in order, to splice into {@link jsonText}. */
export const membersOf = (value: Record<string, unknown>): Array<[string, unknown]> => Object.entries(value);

/**
 * `header.payload.signature` from already-encoded segments. `signature` is a signer
 * (run over the segments exactly as given, canonical or not), raw bytes, or the encoded
 * signature segment itself.
 */
export function compact(header: string, payload: string, signature: Signer | Uint8Array | string): string {
  const input = `${header}.${payload}`;
  if (typeof signature === "string") return `${input}.${signature}`;
  const bytes = signature instanceof Uint8Array ? signature : signature(Buffer.from(input, "latin1"));
  return `${input}.${b64u(bytes)}`;
}

/** {@link compact} of a header and a payload given as for {@link segment}. */
export function forge(header: object | string | Uint8Array, payload: object | string | Uint8Array, signature: Signer | Uint8Array | string): string {
  return compact(segment(header), segment(payload), signature);
}

/** ES256 as JWS wants it: raw r‖s, 64 bytes (RFC 7518 §3.4). */
export const es256 =
  (key: AnyKey): Signer =>
  (input) =>
    cryptoSign("sha256", input, { key: keyObject(key), dsaEncoding: "ieee-p1363" });

/** ES256 with the signature DER-encoded (ASN.1 SEQUENCE of two INTEGERs), as X.509 does it. */
export const es256Der =
  (key: AnyKey): Signer =>
  (input) =>
    cryptoSign("sha256", input, { key: keyObject(key), dsaEncoding: "der" });

/** RS256: RSASSA-PKCS1-v1_5 with SHA-256, for any modulus length (jose refuses < 2048). */
export const rs256 =
  (key: AnyKey): Signer =>
  (input) =>
    cryptoSign("sha256", input, keyObject(key));

/** HS256/384/512 with `secret` as the MAC key (the key-confusion attack's signer). */
export const hmac =
  (bits: 256 | 384 | 512, secret: string | Uint8Array): Signer =>
  (input) =>
    createHmac(`sha${bits}`, secret).update(input).digest();

/** Splits a compact token into its three segments (throws if it has not three). */
export function segmentsOf(token: string): [header: string, payload: string, signature: string] {
  const parts = token.split(".");
  if (parts.length !== 3) throw new Error(`expected three segments, got ${parts.length}`);
  return parts as [string, string, string];
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * The same bytes spelled non-canonically: the unused low bits of the last character set
 * (a segment whose byte count is not a multiple of 3 has 2 or 4 of them). Lenient
 * decoders read it as the same bytes; RFC 4648 §3.5 lets a decoder reject it.
 */
export function withTrailingBitsSet(encoded: string): string {
  if (encoded.length % 4 === 0) throw new Error("a segment of 3n bytes has no unused bits");
  const last = ALPHABET.indexOf(encoded.at(-1)!);
  const spare = encoded.length % 4 === 2 ? 0b1111 : 0b11;
  return encoded.slice(0, -1) + ALPHABET[last | spare]!;
}

/** The same segment in the base64 (not base64url) alphabet: `-` → `+`, `_` → `/`. */
export function withStandardAlphabet(encoded: string): string {
  if (!/[-_]/.test(encoded)) throw new Error("segment has no - or _ to respell");
  return encoded.replaceAll("-", "+").replaceAll("_", "/");
}

/** `=` padding as base64 (RFC 4648 §4) would have it. */
export function withPadding(encoded: string): string {
  if (encoded.length % 4 === 0) throw new Error("segment needs no padding");
  return encoded + "=".repeat(4 - (encoded.length % 4));
}

/** The order n of the P-256 group (FIPS 186-4 D.1.2.3), for psychic-signature fixtures. */
export const P256_ORDER = Buffer.from("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", "hex");

/** A 32-byte big-endian scalar: n − x mod n (the other half of an ECDSA signature pair). */
export function negateModOrder(scalar: Uint8Array): Buffer {
  const n = BigInt(`0x${P256_ORDER.toString("hex")}`);
  const x = BigInt(`0x${Buffer.from(scalar).toString("hex")}`);
  return Buffer.from(((n - x) % n).toString(16).padStart(64, "0"), "hex");
}
