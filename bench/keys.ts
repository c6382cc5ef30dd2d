import { type KeyObject, generateKeyPairSync } from "node:crypto";
import type { JWK } from "jose";

/** The signature algorithms the benchmark measures: the two scitokens-authz accepts by default. */
export type BenchAlg = "ES256" | "RS256";

/** An issuer's signing key, with its public half as published in a JWKS. */
export interface BenchKey {
  readonly alg: BenchAlg;
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicJwk: JWK;
}

/** A fresh key pair (P-256 for ES256, 2048-bit RSA for RS256, as issuers use). */
export function makeKey(alg: BenchAlg, kid: string): BenchKey {
  const { privateKey, publicKey } = alg === "ES256" ? generateKeyPairSync("ec", { namedCurve: "P-256" }) : generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = publicKey.export({ format: "jwk" }) as JWK;
  return { alg, kid, privateKey, publicJwk: { ...jwk, kid, alg, use: "sig" } };
}

/** The JWKS document of `keys`, as an issuer serves it and a jwks_file holds it. */
export function jwksOf(...keys: readonly BenchKey[]): string {
  return JSON.stringify({ keys: keys.map((key) => key.publicJwk) });
}
