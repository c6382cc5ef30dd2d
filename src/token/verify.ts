import { createHash } from "node:crypto";
import { type CryptoKey, type JWSHeaderParameters, compactVerify, decodeJwt, decodeProtectedHeader } from "jose";
import { LRUCache } from "lru-cache";
import type { IssuerPolicy } from "../config/authz-data.js";
import { DenyError } from "../reasons/index.js";
import { splitCanonicalJws } from "./canonical-jws.js";
import { type VerifiedToken, checkTime, readClaims } from "./claims.js";
import { fromJoseError } from "./jose-errors.js";

/**
 * Returns the verification key for a token header; throws DenyError (key_not_found, key_unavailable, ...).
 * With `lookup.rejected` (a key it returned for this header that did not verify the
 * token), it returns the key to try once more, or `rejected` itself when there is none;
 * `lookup.maxWaitMs` caps its wait for a key fetch (see KeyStore.getKey).
 */
export type KeyResolver = (
  issuer: string,
  header: JWSHeaderParameters,
  lookup?: { readonly rejected?: CryptoKey | Uint8Array; readonly maxWaitMs?: number },
) => Promise<CryptoKey | Uint8Array>;

/** Per-call limits of {@link TokenVerifier.verify}. */
export interface VerifyOptions {
  /** The most a key lookup may wait for a fetch (from the caller's deadline). */
  readonly maxKeyWaitMs?: number;
}

/**
 * For a cached verification: throws the DenyError a fresh key lookup would throw now
 * (keys too stale, `kid` withdrawn), synchronously and without I/O.
 */
export type KeyRecheck = (issuer: string, kid: string | undefined) => void;

export interface TokenVerifierOptions {
  readonly issuers: ReadonlyMap<string, IssuerPolicy>;
  readonly keys: KeyResolver;
  readonly recheckKey: KeyRecheck;
  readonly leewaySeconds: number;
  /** Verified tokens kept (keyed by a SHA-256 of the token); 0 disables the cache. */
  readonly cacheEntries: number;
  /** Clock seam, milliseconds since the epoch. */
  readonly now?: () => number;
  /** Told of every lookup in the verified-token cache, when there is one (metrics); must not throw. */
  readonly onCacheLookup?: (hit: boolean) => void;
}

/** A verified token and the `kid` its key was found by, to recheck the key on a cache hit. */
interface CachedVerification {
  readonly token: VerifiedToken;
  readonly kid: string | undefined;
}

// A cached verification lives at most this long, so keys removed by the issuer stop
// being honoured within the key refresh interval even for long-lived tokens.
const MAX_CACHE_MS = 10 * 60 * 1000;
const HMAC_OR_NONE = /^(none|HS\d+)$/i;

/**
 * Verifies bearer JWTs for the trusted issuers (SEMANTICS §2–§4). The issuer is checked
 * before any key lookup, so an untrusted issuer causes no network traffic; keys only come
 * from the KeyResolver (never from jku/x5u/jwk/x5c). Successful verifications are cached
 * by token hash; time is checked again on every call.
 */
export class TokenVerifier {
  readonly #issuers: ReadonlyMap<string, IssuerPolicy>;
  readonly #keys: KeyResolver;
  readonly #recheckKey: KeyRecheck;
  readonly #leeway: number;
  readonly #now: () => number;
  readonly #cache: LRUCache<string, CachedVerification> | null;
  readonly #onCacheLookup: ((hit: boolean) => void) | undefined;
  readonly #decoder = new TextDecoder();

  constructor(options: TokenVerifierOptions) {
    this.#issuers = options.issuers;
    this.#keys = options.keys;
    this.#recheckKey = options.recheckKey;
    this.#leeway = options.leewaySeconds;
    this.#now = options.now ?? Date.now;
    this.#cache = options.cacheEntries > 0 ? new LRUCache({ max: options.cacheEntries }) : null;
    this.#onCacheLookup = this.#cache ? options.onCacheLookup : undefined;
  }

  /**
   * Verifies `token`. `allowedIssuers` (a route's issuers) narrows the trusted issuers; a
   * token of any other issuer is `issuer_untrusted` before any key lookup.
   */
  async verify(token: string, allowedIssuers: ReadonlySet<string> | null = null, options: VerifyOptions = {}): Promise<VerifiedToken> {
    const nowMs = this.#now();
    const cacheKey = this.#cache ? createHash("sha256").update(token).digest("base64url") : "";
    const cached = this.#cache?.get(cacheKey);
    this.#onCacheLookup?.(cached !== undefined);
    if (cached) {
      if (allowedIssuers && !allowedIssuers.has(cached.token.iss)) throw new DenyError("issuer_untrusted", "not accepted on this route");
      this.#recheckKey(cached.token.iss, cached.kid);
      checkTime(cached.token, nowMs / 1000, this.#leeway);
      return cached.token;
    }
    const verified = await this.#verifyUncached(token, allowedIssuers, options);
    checkTime(verified.token, this.#now() / 1000, this.#leeway);
    if (this.#cache) {
      const ttl = Math.min(MAX_CACHE_MS, (verified.token.exp + this.#leeway) * 1000 - nowMs);
      if (ttl > 0) this.#cache.set(cacheKey, verified, { ttl });
    }
    return verified.token;
  }

  async #verifyUncached(token: string, allowedIssuers: ReadonlySet<string> | null, limits: VerifyOptions): Promise<CachedVerification> {
    let header: JWSHeaderParameters;
    let unverified: Record<string, unknown>;
    try {
      splitCanonicalJws(token);
      header = decodeProtectedHeader(token) as JWSHeaderParameters;
      unverified = decodeJwt(token);
    } catch (error) {
      throw error instanceof DenyError ? error : new DenyError("token_malformed", undefined, { cause: error });
    }
    const alg = header.alg;
    if (typeof alg !== "string" || HMAC_OR_NONE.test(alg)) throw new DenyError("alg_not_allowed");
    const iss = unverified["iss"];
    if (typeof iss !== "string") throw new DenyError("claim_invalid", "iss is missing or not a string");
    const issuer = this.#issuers.get(iss);
    if (!issuer) throw new DenyError("issuer_untrusted");
    if (allowedIssuers && !allowedIssuers.has(iss)) throw new DenyError("issuer_untrusted", "not accepted on this route");
    if (!issuer.algorithms.includes(alg)) throw new DenyError("alg_not_allowed");
    let payload: Uint8Array;
    try {
      const options = { algorithms: issuer.algorithms as string[] };
      const wait = limits.maxKeyWaitMs !== undefined ? { maxWaitMs: limits.maxKeyWaitMs } : {};
      const key = await this.#keys(iss, header, wait);
      try {
        ({ payload } = await compactVerify(token, key, options));
      } catch (error) {
        // A token without kid names no key, so after a key rotation the only sign of the
        // new key is a bad signature: ask once for newer keys (cooldown-limited).
        const denied = fromJoseError(error, "verification");
        if (header.kid !== undefined || !(denied instanceof DenyError) || denied.code !== "signature_invalid") throw denied;
        const newer = await this.#keys(iss, header, { ...wait, rejected: key });
        if (newer === key) throw denied;
        ({ payload } = await compactVerify(token, newer, options));
      }
    } catch (error) {
      throw fromJoseError(error, "verification");
    }
    let claims: unknown;
    try {
      claims = JSON.parse(this.#decoder.decode(payload));
    } catch (error) {
      throw new DenyError("token_malformed", "payload is not JSON", { cause: error });
    }
    if (claims === null || typeof claims !== "object" || Array.isArray(claims)) {
      throw new DenyError("token_malformed", "payload is not a JSON object");
    }
    const kid = typeof header.kid === "string" ? header.kid : undefined;
    return { token: readClaims(claims as Record<string, unknown>, issuer), kid };
  }
}
