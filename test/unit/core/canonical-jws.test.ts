import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isCanonicalBase64url } from "../../../src/token/canonical-jws.js";
import { runs } from "../../properties/harness.js";

// RFC 7515 §2 / RFC 4648 §3.5: a segment is canonical when decoding and encoding it again
// gives it back. The check does not decode; the round trip is its oracle here.

const roundTrips = (segment: string) => /^[A-Za-z0-9_-]*$/.test(segment) && Buffer.from(segment, "base64url").toString("base64url") === segment;

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const nearBase64url = fc.string({ unit: fc.constantFrom(...BASE64URL, "=", "+", "/", ".", " "), maxLength: 24 });

describe("isCanonicalBase64url", () => {
  it.each([
    ["empty", "", true],
    ["3 bytes", "YWJj", true],
    ["1 byte", "YQ", true],
    ["1 byte, unused bits set", "YR", false],
    ["2 bytes", "YWI", true],
    ["2 bytes, unused bits set", "YWJ", false],
    ["padded", "YQ==", false],
    ["a length no bytes encode to", "YWJjZ", false],
    ["the standard alphabet", "+/8", false],
  ])("%s: %s", (_name, segment, canonical) => {
    expect(isCanonicalBase64url(segment)).toBe(canonical);
    expect(roundTrips(segment)).toBe(canonical);
  });

  it("agrees with a decode and encode round trip", () => {
    fc.assert(
      fc.property(nearBase64url, (segment) => {
        expect(isCanonicalBase64url(segment)).toBe(roundTrips(segment));
      }),
      runs(5000),
    );
  });

  it("accepts the encoding of any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        expect(isCanonicalBase64url(Buffer.from(bytes).toString("base64url"))).toBe(true);
      }),
      runs(2000),
    );
  });
});
