import type { MintOptions } from "../../src/dev-issuer/mint.js";
import { mintToken } from "../../src/dev-issuer/mint.js";
import type { TestKey } from "./keys.js";

export type { MintOptions, TokenProfile } from "../../src/dev-issuer/mint.js";
export { DEFAULT_LIFETIME_SECONDS, DEFAULT_SUBJECT, mintToken } from "../../src/dev-issuer/mint.js";

/** Audience that {@link mint} puts in tokens unless told otherwise. */
export const TEST_AUDIENCE = "https://storage.example.org";

/** Scopes that {@link mint} grants unless told otherwise. */
export const TEST_SCOPES: readonly string[] = ["read:/"];

/** Everything of {@link MintOptions} except the key, its algorithm and the issuer. */
export type MintOverrides = Partial<Omit<MintOptions, "privateKey" | "alg" | "issuer">>;

/**
 * Mints a token signed by `key` for `issuer`: SciTokens 2, audience {@link TEST_AUDIENCE},
 * scopes {@link TEST_SCOPES}, `kid` = `key.kid`, valid for 10 minutes from now. Any
 * {@link MintOptions} field can be overridden; `{ kid: undefined }` leaves the header
 * without `kid`, `{ audience: undefined }` the token without `aud`, and
 * `extraClaims`/`extraHeader` reach any claim or header parameter.
 */
export function mint(key: Pick<TestKey, "alg" | "kid" | "privateKey">, issuer: string, overrides: MintOverrides = {}): Promise<string> {
  return mintToken({
    privateKey: key.privateKey,
    alg: key.alg,
    issuer,
    audience: TEST_AUDIENCE,
    ...overrides,
    scopes: overrides.scopes ?? [...TEST_SCOPES],
    kid: "kid" in overrides ? overrides.kid : key.kid,
  });
}
