import { type KeyObject, randomBytes, sign } from "node:crypto";
import { bitString, explicit, integer, objectId, sequence, set, time, utf8String } from "../helpers/der.js";

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
    explicit(0, integer(Buffer.from([2]))), // [0] EXPLICIT version v3
    integer(serial),
    ecdsaWithSha256,
    name,
    sequence(time(new Date(now.getTime() - 3600_000)), time(new Date(now.getTime() + 86_400_000))),
    name,
    publicKey.export({ type: "spki", format: "der" }),
  );
  return sequence(tbs, ecdsaWithSha256, bitString(sign("sha256", tbs, privateKey)));
}
