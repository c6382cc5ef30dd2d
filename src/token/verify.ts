import { hash } from "node:crypto";
import { type CryptoKey, type JWSHeaderParameters, compactVerify, decodeJwt, decodeProtectedHeader } from "jose";
import { LRUCache } from "lru-cache";
import type { IssuerPolicy } from "../config/authz-data.js";
import { DenyError } from "../reasons/index.js";
import { splitCanonicalJws } from "./canonical-jws.js";
import { type VerifiedToken, checkTime, readClaims } from "./claims.js";
import { fromJoseError, isRepeatableRefusal } from "./jose-errors.js";
import { type KeyVersion, NegativeCache, type Standing, type Verification } from "./negative-cache.js";

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
  /** Refused tokens kept (the negative cache, keyed the same way); 0 or absent disables it. */
  readonly negativeCacheEntries?: number;
  /**
   * The issuer's keys as the negative cache sees them (`KeyStore.keyVersion`); without
   * it, refusals that rest on the keys (signature, claims, time) are not kept.
   */
  readonly keyVersion?: KeyVersion;
  /** Clock seam, milliseconds since the epoch. */
  readonly now?: () => number;
  /** Told of every lookup in the verified-token cache, when there is one (metrics); must not throw. */
  readonly onCacheLookup?: (hit: boolean) => void;
  /** Told of every lookup in the negative cache, when there is one (metrics); must not throw. */
  readonly onNegativeCacheLookup?: (hit: boolean) => void;
}

/** A verification and what a refusal by time rests on (null: not to be kept). */
interface Verified {
  readonly verification: Verification;
  readonly standing: KeysStanding | null;
}

type KeysStanding = Extract<Standing, { on: "keys" }>;

// A cached verification lives at most this long, so keys removed by the issuer stop
// being honoured within the key refresh interval even for long-lived tokens.
const MAX_CACHE_MS = 10 * 60 * 1000;
const HMAC_OR_NONE = /^(none|HS\d+)$/i;
const ON_TOKEN: Standing = Object.freeze({ on: "token" });

/**
 * Verifies bearer JWTs for the trusted issuers (SEMANTICS §2–§4). The issuer is checked
 * before any key lookup, so an untrusted issuer causes no network traffic; keys only come
 * from the KeyResolver (never from jku/x5u/jwk/x5c). Successful verifications are cached
 * by token hash, and refusals in the negative cache while what they rest on stands (see
 * NegativeCache); time is checked again on every call.
 */
export class TokenVerifier {
  readonly #issuers: ReadonlyMap<string, IssuerPolicy>;
  readonly #keys: KeyResolver;
  readonly #recheckKey: KeyRecheck;
  readonly #keyVersion: KeyVersion;
  readonly #leeway: number;
  readonly #now: () => number;
  readonly #cache: LRUCache<string, Verification> | null;
  readonly #refused: NegativeCache | null;
  readonly #onCacheLookup: ((hit: boolean) => void) | undefined;

  constructor(options: TokenVerifierOptions) {
    this.#issuers = options.issuers;
    this.#keys = options.keys;
    this.#recheckKey = options.recheckKey;
    this.#keyVersion = options.keyVersion ?? (() => undefined);
    this.#leeway = options.leewaySeconds;
    this.#now = options.now ?? Date.now;
    this.#cache = options.cacheEntries > 0 ? new LRUCache({ max: options.cacheEntries }) : null;
    this.#onCacheLookup = this.#cache ? options.onCacheLookup : undefined;
    const negative = options.negativeCacheEntries ?? 0;
    this.#refused = negative > 0 ? new NegativeCache({ entries: negative, keyVersion: this.#keyVersion, onLookup: options.onNegativeCacheLookup }) : null;
  }

  /**
   * Verifies `token`. `allowedIssuers` (a route's issuers) narrows the trusted issuers; a
   * token of any other issuer is `issuer_untrusted` before any key lookup.
   */
  async verify(token: string, allowedIssuers: ReadonlySet<string> | null = null, options: VerifyOptions = {}): Promise<VerifiedToken> {
    const nowMs = this.#now();
    const cacheKey = this.#cache || this.#refused ? hash("sha256", token, "base64url") : "";
    const cached = this.#cache?.get(cacheKey);
    this.#onCacheLookup?.(cached !== undefined);
    if (cached) {
      if (allowedIssuers && !allowedIssuers.has(cached.token.iss)) throw new DenyError("issuer_untrusted", "not accepted on this route");
      this.#recheckKey(cached.token.iss, cached.kid);
      checkTime(cached.token, nowMs / 1000, this.#leeway);
      return cached.token;
    }
    // A refusal that still stands is thrown; a token only time refused comes back.
    const known = this.#refused?.recall(cacheKey, allowedIssuers);
    const { verification, standing }: Verified = known
      ? { verification: known, standing: null }
      : await this.#verifyUncached(token, cacheKey, allowedIssuers, options);
    try {
      checkTime(verification.token, (known ? nowMs : this.#now()) / 1000, this.#leeway);
    } catch (error) {
      if (standing) this.#refused?.refusedByTime(cacheKey, standing, verification);
      throw error;
    }
    if (known) this.#refused?.forget(cacheKey);
    if (this.#cache) {
      const ttl = Math.min(MAX_CACHE_MS, (verification.token.exp + this.#leeway) * 1000 - nowMs);
      if (ttl > 0) this.#cache.set(cacheKey, verification, { ttl });
    }
    return verification.token;
  }

  /**
   * Verifies in full. Each refusal is kept in the negative cache with what it rests on,
   * except those of a key lookup and of the route, and those that might not recur.
   */
  async #verifyUncached(token: string, cacheKey: string, allowedIssuers: ReadonlySet<string> | null, limits: VerifyOptions): Promise<Verified> {
    const refuse = (error: DenyError, standing: Standing | null): DenyError => {
      if (standing !== null) this.#refused?.refused(cacheKey, standing, error);
      return error;
    };
    // The header and the claims are decoded and parsed once, here: the claims are read
    // for `iss` before any key lookup and, once jose has verified the signature over
    // this same payload segment of this same string, they are the verified claims.
    let payloadSegment: string;
    let header: JWSHeaderParameters;
    let claims: Record<string, unknown>;
    try {
      [, payloadSegment] = splitCanonicalJws(token);
      header = decodeProtectedHeader(token) as JWSHeaderParameters;
      claims = decodeJwt(token);
    } catch (error) {
      throw refuse(error instanceof DenyError ? error : new DenyError("token_malformed", undefined, { cause: error }), ON_TOKEN);
    }
    const alg = header.alg;
    if (typeof alg !== "string" || HMAC_OR_NONE.test(alg)) throw refuse(new DenyError("alg_not_allowed"), ON_TOKEN);
    const iss = claims["iss"];
    if (typeof iss !== "string") throw refuse(new DenyError("claim_invalid", "iss is missing or not a string"), ON_TOKEN);
    const issuer = this.#issuers.get(iss);
    if (!issuer) throw refuse(new DenyError("issuer_untrusted"), ON_TOKEN);
    if (allowedIssuers && !allowedIssuers.has(iss)) throw new DenyError("issuer_untrusted", "not accepted on this route");
    if (!issuer.algorithms.includes(alg)) throw refuse(new DenyError("alg_not_allowed"), { on: "route", iss });
    // What the verdicts below rest on: the issuer's keys, unchanged from here to the verdict.
    const keys = this.#keyVersion(iss, false);
    let afterRejection = false;
    const standing = (): KeysStanding | null =>
      keys !== undefined && this.#keyVersion(iss, false) === keys ? { on: "keys", iss, keys, afterRejection } : null;
    const settle = (error: DenyError, repeatable: boolean): DenyError => refuse(error, repeatable ? standing() : null);
    try {
      const options = { algorithms: issuer.algorithms as string[] };
      const wait = limits.maxKeyWaitMs !== undefined ? { maxWaitMs: limits.maxKeyWaitMs } : {};
      const key = await this.#keys(iss, header, wait);
      try {
        await compactVerify(token, key, options);
      } catch (error) {
        // A token without kid names no key, so after a key rotation the only sign of the
        // new key is a bad signature: ask once for newer keys (cooldown-limited).
        const denied = fromJoseError(error, "verification");
        if (header.kid !== undefined || !(denied instanceof DenyError) || denied.code !== "signature_invalid") throw settle(denied, isRepeatableRefusal(error));
        afterRejection = true;
        const newer = await this.#keys(iss, header, { ...wait, rejected: key });
        if (newer === key) throw settle(denied, isRepeatableRefusal(error));
        try {
          await compactVerify(token, newer, options);
        } catch (retried) {
          throw settle(fromJoseError(retried, "verification"), isRepeatableRefusal(retried));
        }
      }
    } catch (error) {
      // A key lookup's refusal (or fault) lands here unsettled: it is never kept.
      throw fromJoseError(error, "verification");
    }
    // RFC 7797 §3: `b64: false`, named in `crit` (jose honours it only then), makes the
    // payload segment the payload itself rather than its encoding: no claims were signed.
    if (header.b64 === false && Array.isArray(header.crit) && header.crit.includes("b64")) throw settle(unencodedPayload(payloadSegment), true);
    const kid = typeof header.kid === "string" ? header.kid : undefined;
    let verified: VerifiedToken;
    try {
      verified = readClaims(claims, issuer);
    } catch (error) {
      throw error instanceof DenyError ? settle(error, true) : error;
    }
    return { verification: { token: verified, kid }, standing: standing() };
  }
}

/** The refusal of an unencoded payload (RFC 7797), which being base64url text is never a JSON object. */
function unencodedPayload(segment: string): DenyError {
  try {
    JSON.parse(segment);
  } catch (error) {
    return new DenyError("token_malformed", "payload is not JSON", { cause: error });
  }
  return new DenyError("token_malformed", "payload is not a JSON object");
}
