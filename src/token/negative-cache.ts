import { LRUCache } from "lru-cache";
import { DenyError, type DenyReason } from "../reasons/index.js";
import type { VerifiedToken } from "./claims.js";

/**
 * The keys a lookup for an issuer would use now without I/O, as an object that stays the
 * same while they do; `undefined` when a lookup could fetch or fail (see
 * `KeyStore.keyVersion`).
 */
export type KeyVersion = (issuer: string, afterRejection: boolean) => object | undefined;

/**
 * What a refusal rests on besides the token's bytes and the generation's trusted issuers
 * (fixed for a verifier), in the order verification checks them.
 * - `token`: nothing else (malformed, `alg` none or HMAC, no `iss`, an untrusted issuer).
 * - `route`: the route accepting `iss`, checked before it (`alg` not among the issuer's).
 * - `keys`: that and the issuer's keys (`keys`, from {@link KeyVersion}): the signature,
 *   the payload, the claims, and for a verified token, time. `afterRejection`: the token
 *   has no `kid` and its signature did not verify, so verifying it again would ask for
 *   newer keys whenever the key store may fetch.
 */
export type Standing =
  | { readonly on: "token" }
  | { readonly on: "route"; readonly iss: string }
  | { readonly on: "keys"; readonly iss: string; readonly keys: object; readonly afterRejection: boolean };

/** A token verified with the issuer's keys (before time is checked). */
export interface Verification {
  readonly token: VerifiedToken;
  /** The `kid` its key was found by, to recheck the key on a hit of the verified-token cache. */
  readonly kid: string | undefined;
}

/** A refusal as kept: its code and detail (a DenyError is made again at each hit). */
interface Refusal {
  readonly code: DenyReason;
  readonly detail: string | undefined;
}

interface Entry {
  readonly standing: Standing;
  /** The refusal, or the verified token that time refused. */
  readonly outcome: Refusal | Verification;
}

// Entries live at most as long as cached verifications (see TokenVerifier).
const MAX_ENTRY_MS = 10 * 60 * 1000;

export interface NegativeCacheOptions {
  /** Refused tokens kept, at least 1 (the verifier makes no cache for 0). */
  readonly entries: number;
  readonly keyVersion: KeyVersion;
  /** Told of every lookup (metrics); must not throw. */
  readonly onLookup?: ((hit: boolean) => void) | undefined;
}

/**
 * The negative cache: a token that verification refused is not verified again on every
 * retry while what the refusal rests on ({@link Standing}) is unchanged, so the answer
 * is the one a full verification would give now. Bounded (LRU), each entry kept at most
 * 10 minutes; keyed like the verified-token cache (a SHA-256 of the token). A refusal
 * by a key lookup (`key_not_found`, `key_unavailable`) is never kept: it changes with
 * the key store, and retrying it is how a new key gets fetched. A token refused only by
 * time (expired, not yet valid, issued in the future) is kept as verified, and its time
 * is checked again at each hit: it may become valid, or the clock may be set back.
 */
export class NegativeCache {
  readonly #entries: LRUCache<string, Entry>;
  readonly #keyVersion: KeyVersion;
  readonly #onLookup: ((hit: boolean) => void) | undefined;

  constructor(options: NegativeCacheOptions) {
    this.#entries = new LRUCache({ max: options.entries, ttl: MAX_ENTRY_MS });
    this.#keyVersion = options.keyVersion;
    this.#onLookup = options.onLookup;
  }

  /**
   * What is known of the token under `key`: throws the refusal a full verification would
   * give now; returns the verification of a token that only time refused (for the caller
   * to check its time); `undefined` when nothing still stands (verify in full).
   */
  recall(key: string, allowedIssuers: ReadonlySet<string> | null): Verification | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined || !this.#stands(entry.standing)) {
      if (entry !== undefined) this.#entries.delete(key);
      this.#onLookup?.(false);
      return undefined;
    }
    this.#onLookup?.(true);
    const { standing, outcome } = entry;
    // The route is checked before the issuer's algorithms and keys, as in verification.
    if (standing.on !== "token" && allowedIssuers !== null && !allowedIssuers.has(standing.iss)) {
      throw new DenyError("issuer_untrusted", "not accepted on this route");
    }
    if ("code" in outcome) throw new DenyError(outcome.code, outcome.detail);
    return outcome;
  }

  /** Keeps `refusal` (its code and detail) for the token under `key`, resting on `standing`. */
  refused(key: string, standing: Standing, refusal: DenyError): void {
    this.#entries.set(key, { standing, outcome: { code: refusal.code, detail: refusal.detail } });
  }

  /** Keeps a token that verified (with the keys `standing` names) and that time refused. */
  refusedByTime(key: string, standing: Extract<Standing, { on: "keys" }>, verification: Verification): void {
    this.#entries.set(key, { standing, outcome: verification });
  }

  forget(key: string): void {
    this.#entries.delete(key);
  }

  #stands(standing: Standing): boolean {
    return standing.on !== "keys" || this.#keyVersion(standing.iss, standing.afterRejection) === standing.keys;
  }
}
