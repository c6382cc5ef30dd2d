import { type KeyObject, randomBytes, sign } from "node:crypto";

/**
 * A real self-signed X.509 v3 certificate (RFC 5280 §4.1) for a P-256 key, DER-encoded:
 * what an attacker puts in a token's `x5c` header to offer its own key. Built here with
 * a few lines of DER because node:crypto parses certificates but does not make them.
 */
export function selfSignedP256Certificate(privateKey: KeyObject, publicKey: KeyObject, commonName: string, now = new Date()): Buffer {
  const ecdsaWithSha256 = sequence(objectId("1.2.840.10045.4.3.2"));
  const name = sequence(set(sequence(objectId("2.5.4.3"), utf8String(commonName))));
  const serial = randomBytes(8);
  serial[0]! &= 0x7f;
  const tbs = sequence(
    tagged(0xa0, integer(Buffer.from([2]))), // [0] EXPLICIT version v3
    integer(serial),
    ecdsaWithSha256,
    name,
    sequence(utcTime(new Date(now.getTime() - 3600_000)), utcTime(new Date(now.getTime() + 86_400_000))),
    name,
    publicKey.export({ type: "spki", format: "der" }),
  );
  return sequence(tbs, ecdsaWithSha256, bitString(sign("sha256", tbs, privateKey)));
}

function tagged(tag: number, ...content: Uint8Array[]): Buffer {
  const body = Buffer.concat(content);
  const length: number[] = [];
  for (let n = body.length; n > 0; n >>= 8) length.unshift(n & 0xff);
  const header = body.length < 0x80 ? [tag, body.length] : [tag, 0x80 | length.length, ...length];
  return Buffer.concat([Buffer.from(header), body]);
}

const sequence = (...content: Uint8Array[]) => tagged(0x30, ...content);
const set = (...content: Uint8Array[]) => tagged(0x31, ...content);
const integer = (bigEndian: Uint8Array) => tagged(0x02, bigEndian);
const utf8String = (text: string) => tagged(0x0c, Buffer.from(text, "utf8"));
const bitString = (bytes: Uint8Array) => tagged(0x03, Buffer.from([0]), bytes);

function utcTime(date: Date): Buffer {
  const iso = date.toISOString(); // 2025-01-31T12:34:56.789Z
  const text = `${iso.slice(2, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return tagged(0x17, Buffer.from(text, "ascii"));
}

function objectId(dotted: string): Buffer {
  const [first, second, ...rest] = dotted.split(".").map(Number);
  const bytes = [40 * first! + second!];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let n = arc >>> 7; n > 0; n >>>= 7) chunk.unshift(0x80 | (n & 0x7f));
    bytes.push(...chunk);
  }
  return tagged(0x06, Buffer.from(bytes));
}
