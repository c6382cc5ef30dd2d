import { type CryptoKey, type JSONWebKeySet, type JWK, type JWSHeaderParameters, type LocalJWKSet, createLocalJWKSet, importJWK } from "jose";
import { fromJoseError } from "../jose-errors.js";
import { KeySourceError } from "./key-source-error.js";

/**
 * One issuer's keys as fetched once and prepared for the hot path: parsed, filtered,
 * imported and indexed by `kid`. Built at each fetch, never per request.
 */
export interface PreparedKeySet {
  /** The usable keys, as a JWKS document (what the disk cache stores). */
  readonly jwks: JSONWebKeySet;
  /** Every `kid` in the set, to tell an unknown `kid` from a known one without jose. */
  readonly kids: ReadonlySet<string>;
  /**
   * The key for a JWS protected header. Throws `DenyError` `key_not_found` when no key
   * or more than one key fits (a token without `kid` needs exactly one key usable for
   * its `alg`), `alg_not_allowed` when `alg` is not an asymmetric JWS algorithm.
   */
  resolve(header: JWSHeaderParameters): Promise<CryptoKey>;
}

/** Members that only private or symmetric JWKs carry (RFC 7518 §6, draft ML-DSA `priv`). */
const SECRET_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"] as const;

const EC_ALG_BY_CURVE: Readonly<Record<string, string>> = { "P-256": "ES256", "P-384": "ES384", "P-521": "ES512" };

/**
 * Check a JWKS document and prepare it. The document must be an object with a `keys`
 * array (RFC 7517 §5), else this throws `KeySourceError` and the caller keeps its last
 * good keys. Individual keys that are private or symmetric, not for signatures
 * (`use` ≠ `sig`), or that the runtime cannot import, are left out and reported through
 * `onSkip`; a set may end up empty, and then every token of the issuer is denied.
 */
export async function prepareKeySet(document: Readonly<Record<string, unknown>>, onSkip: (reason: string) => void = () => {}): Promise<PreparedKeySet> {
  const { keys } = document;
  if (!Array.isArray(keys)) throw new KeySourceError('JWKS has no "keys" array');
  const usable: JWK[] = [];
  const warm: Array<{ kid: string; alg: string }> = [];
  for (const [index, candidate] of keys.entries()) {
    const problem = await keyProblem(candidate);
    if (problem !== null) {
      onSkip(`key ${index}${describeKid(candidate)}: ${problem}`);
      continue;
    }
    const jwk = candidate as JWK;
    usable.push(jwk);
    const alg = verificationAlg(jwk);
    if (typeof jwk.kid === "string" && alg !== undefined) warm.push({ kid: jwk.kid, alg });
  }
  const jwks: JSONWebKeySet = { keys: usable };
  const local = createLocalJWKSet(jwks);
  // Import each key once now (jose caches the CryptoKey per JWK and alg), so the first
  // request after a fetch does not pay for the import.
  await Promise.all(warm.map((header) => local(header).catch(() => undefined)));
  const kids = new Set(usable.flatMap((jwk) => (typeof jwk.kid === "string" ? [jwk.kid] : [])));
  return { jwks, kids, resolve: (header) => resolveWith(local, header) };
}

async function resolveWith(local: LocalJWKSet, header: JWSHeaderParameters): Promise<CryptoKey> {
  try {
    return await local(header);
  } catch (err) {
    throw fromJoseError(err, "key-selection");
  }
}

async function keyProblem(candidate: unknown): Promise<string | null> {
  if (typeof candidate !== "object" || candidate === null || Array.isArray(candidate)) return "not a JSON object";
  const jwk = candidate as Record<string, unknown>;
  if (typeof jwk.kty !== "string") return "no kty";
  if (jwk.kty === "oct" || SECRET_MEMBERS.some((member) => member in jwk)) return "private or symmetric key";
  if (jwk.use !== undefined && jwk.use !== "sig") return "not a signature key (use)";
  if (jwk.kid !== undefined && typeof jwk.kid !== "string") return "kid is not a string";
  const alg = verificationAlg(jwk as JWK);
  if (alg === undefined) return `no alg and none implied by kty ${jwk.kty}`;
  let key: Awaited<ReturnType<typeof importJWK>>;
  try {
    key = await importJWK(jwk as JWK, alg);
  } catch (err) {
    return `cannot import for ${alg}: ${err instanceof Error ? err.message : String(err)}`;
  }
  const bits = rsaModulusBits(key);
  if (bits !== undefined && bits < MIN_RSA_BITS) return `RSA key of ${bits} bits, below the ${MIN_RSA_BITS} bits RS*/PS* verification needs`;
  return null;
}

/** jose refuses to verify with shorter RSA keys (RFC 7518 §3.3); such keys are left out at load. */
const MIN_RSA_BITS = 2048;

function rsaModulusBits(key: unknown): number | undefined {
  const algorithm = (key as { algorithm?: { modulusLength?: unknown } } | null)?.algorithm;
  return typeof algorithm?.modulusLength === "number" ? algorithm.modulusLength : undefined;
}

/** The key's `alg`, or the usual one for its type when it declares none. */
function verificationAlg(jwk: JWK): string | undefined {
  if (typeof jwk.alg === "string") return jwk.alg;
  if (jwk.kty === "RSA") return "RS256";
  if (jwk.kty === "EC" && typeof jwk.crv === "string") return EC_ALG_BY_CURVE[jwk.crv];
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return "Ed25519";
  return undefined;
}

function describeKid(candidate: unknown): string {
  const kid = (candidate as { kid?: unknown } | null)?.kid;
  return typeof kid === "string" ? ` (kid ${JSON.stringify(kid.slice(0, 100))})` : "";
}
