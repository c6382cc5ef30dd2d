import type { CryptoKey, JWK } from "jose";
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from "jose";

/** A signing key pair for tests, with its public half as a JWKS entry. */
export interface TestKey {
  alg: "ES256" | "RS256";
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** The public key with `kid`, `alg` and `use: "sig"`, ready for a JWKS. */
  publicJwk: JWK;
}

/** Generates a fresh key pair; `kid` defaults to the RFC 7638 thumbprint. */
export async function makeKey(alg: "ES256" | "RS256", kid?: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  const keyId = kid ?? (await calculateJwkThumbprint(jwk));
  return { alg, kid: keyId, privateKey, publicKey, publicJwk: { ...jwk, kid: keyId, alg, use: "sig" } };
}

/** A JWKS holding the public halves of `keys`. */
export function jwksOf(...keys: ReadonlyArray<Pick<TestKey, "publicJwk">>): { keys: JWK[] } {
  return { keys: keys.map((key) => ({ ...key.publicJwk })) };
}
