import type { CryptoKey, JWSHeaderParameters } from "jose";
import type { Logger } from "pino";
import { DenyError } from "../../reasons/index.js";
import { discoverJwksUri } from "./discover-jwks-uri.js";
import { readCachedJwks, writeCachedJwks } from "./disk-cache.js";
import { type FetchLimits, fetchJsonObject } from "./fetch-json.js";
import { keyUrlProblem } from "./key-url.js";
import { type PreparedKeySet, prepareKeySet } from "./prepared-key-set.js";
import { readJwksFile } from "./read-jwks-file.js";
import { settlesWithin } from "./settles-within.js";

/**
 * Where one trusted issuer's keys come from. With neither `jwksUri` nor `jwksFile`,
 * the keys are found by discovery from `issuer` (docs/semantics.md §3). Keys never
 * come from the token (`jku`, `x5u`, `jwk`, `x5c` are ignored).
 */
export interface IssuerKeySource {
  /** The exact `iss` value tokens carry (no trailing-slash folding). */
  readonly issuer: string;
  /** Fetch keys from this URL instead of discovering it (https, or http to loopback). */
  readonly jwksUri?: string;
  /** Read keys from this JWKS file instead; no network traffic ever (air-gapped sites). */
  readonly jwksFile?: string;
}

/** Tuning and seams; every member has a default in {@link KEY_STORE_DEFAULTS}. */
export interface KeyStoreOptions {
  /** Seam for tests; default `globalThis.fetch`. */
  readonly fetch?: typeof globalThis.fetch;
  /** Clock in ms since the epoch, for staleness and cooldowns; default `Date.now`. */
  readonly now?: () => number;
  /** Directory for the disk cache of last good key sets; none by default. */
  readonly cacheDir?: string;
  /** How often every issuer's keys are fetched again. */
  readonly refreshIntervalMs?: number;
  /** How long after their fetch the last good keys may still be used. */
  readonly maxStaleMs?: number;
  /** Least time between two fetches caused by requests (unknown `kid`, no keys). */
  readonly unknownKidCooldownMs?: number;
  /** Timeout of one document fetch, redirects and body included. */
  readonly fetchTimeoutMs?: number;
  /** Largest discovery document, JWKS, JWKS file or cache entry accepted. */
  readonly maxResponseBytes?: number;
  /**
   * Longest time {@link KeyStore.start} waits for the first fetch of issuers that have
   * no usable keys after the disk cache is loaded; 0 does not wait. Issuers with usable
   * keys are never waited for. The fetch goes on after the wait.
   */
  readonly startupWaitMs?: number;
  /**
   * Longest time a request waits for a key fetch it needs (no usable keys, unknown
   * `kid`, a `kid`-less retry) before it is denied `key_unavailable`; 0 never waits. The
   * fetch goes on after the wait. Keep it below the proxy's own deadline for the Check
   * (Envoy's ext_authz `timeout`, 200 ms by default), so the deny reaches the client.
   */
  readonly checkWaitMs?: number;
  /** Receives fetch outcomes (issuer, URL, error); never token material. */
  readonly logger?: Logger;
  /**
   * Called when a fetch (or file read) of an issuer's keys has ended, with its outcome,
   * after the keys held were updated (metrics and readiness); must not throw.
   */
  readonly onAttempt?: (issuer: string, ok: boolean) => void;
}

/** The defaults of {@link KeyStoreOptions}. */
export const KEY_STORE_DEFAULTS = Object.freeze({
  refreshIntervalMs: 10 * 60_000,
  maxStaleMs: 4 * 24 * 3_600_000,
  unknownKidCooldownMs: 30_000,
  fetchTimeoutMs: 5_000,
  maxResponseBytes: 1024 * 1024,
  startupWaitMs: 5_000,
  checkWaitMs: 150,
});

/** What a caller of {@link KeyStore.getKey} asks beyond the key for a header. */
export interface KeyLookupOptions {
  /**
   * A key this store returned for the same header, with which the token's signature
   * did not verify. Meant for tokens without `kid`: they name no key, so after a key
   * rotation the only sign of the new key is a bad signature. See {@link KeyStore.getKey}.
   */
  readonly rejected?: CryptoKey | Uint8Array;
  /**
   * The most this lookup may wait for a fetch, when less than `checkWaitMs`: what is left
   * of the caller's own deadline (Envoy's timeout) for waiting.
   */
  readonly maxWaitMs?: number;
}

/** One issuer's key state, as {@link KeyStore.status} reports it. */
export interface IssuerKeyStatus {
  readonly issuer: string;
  readonly source: "discovery" | "jwks_uri" | "jwks_file";
  /** Where the current keys came from: a URL, the file path, or `null` without keys. */
  readonly from: string | null;
  /** Number of usable keys held (possibly stale). */
  readonly keys: number;
  /** When the current keys were fetched (ms since the epoch), `null` if never. */
  readonly fetchedAt: number | null;
  /** Whether tokens of this issuer can be checked now (keys held and not too stale). */
  readonly usable: boolean;
  /** Why the latest attempt failed, `null` after a success. */
  readonly lastError: string | null;
  /** Whether a fetch (or file read) for this issuer is running now. */
  readonly fetching: boolean;
}

interface IssuerState {
  readonly source: IssuerKeySource;
  readonly kind: IssuerKeyStatus["source"];
  keys: PreparedKeySet | undefined;
  from: string | null;
  fetchedAt: number;
  lastError: string | null;
  inflight: Promise<void> | undefined;
  lastOnDemandAt: number;
}

/**
 * Per trusted issuer, the last good JSON Web Key Set, and the key a token header
 * names (docs/semantics.md §2–§3).
 *
 * - Keys are fetched at {@link KeyStore.start}, then every `refreshIntervalMs`. A failed
 *   fetch keeps the last good keys until `maxStaleMs` after they were fetched.
 * - A request that cannot be answered from memory (unknown `kid`, no usable keys, a
 *   `kid`-less token whose signature failed) causes at most one fetch per issuer per
 *   `unknownKidCooldownMs`, successful or not; concurrent requests share one in-flight
 *   fetch, and a fetch never starts while another for the same issuer runs.
 * - No fetch holds a request or the start-up hostage: a request waits for a fetch at
 *   most `checkWaitMs`, then is denied `key_unavailable` while the fetch goes on;
 *   `start()` waits at most `startupWaitMs`, and only for issuers without usable keys.
 * - With `cacheDir`, every good fetch is written to disk and `start()` loads entries
 *   that are not yet too stale, so a restart can serve at once while an issuer is down.
 * - The hot path (known `kid`, fresh keys) does no I/O. A fetch that brings the same
 *   keys again keeps the prepared set, so the keys handed out stay the same objects.
 */
export class KeyStore {
  readonly #issuers = new Map<string, IssuerState>();
  readonly #now: () => number;
  readonly #cacheDir: string | undefined;
  readonly #refreshIntervalMs: number;
  readonly #maxStaleMs: number;
  readonly #cooldownMs: number;
  readonly #startupWaitMs: number;
  readonly #checkWaitMs: number;
  readonly #limits: FetchLimits;
  readonly #logger: Logger | undefined;
  readonly #onAttempt: ((issuer: string, ok: boolean) => void) | undefined;
  readonly #closing = new AbortController();
  #timer: NodeJS.Timeout | undefined;

  /**
   * Checks every source at once and throws a `TypeError` listing all problems:
   * duplicate issuers, both `jwksUri` and `jwksFile`, and URLs that
   * {@link keyUrlProblem} refuses (the issuer when discovery is used). Does no I/O.
   */
  constructor(sources: readonly IssuerKeySource[], options: KeyStoreOptions = {}) {
    const problems = sourceProblems(sources);
    if (problems.length > 0) throw new TypeError(`invalid issuer key sources:\n- ${problems.join("\n- ")}`);
    this.#now = options.now ?? Date.now;
    this.#cacheDir = options.cacheDir;
    this.#refreshIntervalMs = options.refreshIntervalMs ?? KEY_STORE_DEFAULTS.refreshIntervalMs;
    this.#maxStaleMs = options.maxStaleMs ?? KEY_STORE_DEFAULTS.maxStaleMs;
    this.#cooldownMs = options.unknownKidCooldownMs ?? KEY_STORE_DEFAULTS.unknownKidCooldownMs;
    this.#startupWaitMs = options.startupWaitMs ?? KEY_STORE_DEFAULTS.startupWaitMs;
    this.#checkWaitMs = options.checkWaitMs ?? KEY_STORE_DEFAULTS.checkWaitMs;
    this.#logger = options.logger;
    this.#onAttempt = options.onAttempt;
    this.#limits = {
      fetch: options.fetch ?? ((input, init) => globalThis.fetch(input, init)),
      timeoutMs: options.fetchTimeoutMs ?? KEY_STORE_DEFAULTS.fetchTimeoutMs,
      maxBytes: options.maxResponseBytes ?? KEY_STORE_DEFAULTS.maxResponseBytes,
      signal: this.#closing.signal,
    };
    for (const source of sources) {
      this.#issuers.set(source.issuer, {
        source,
        kind: source.jwksFile !== undefined ? "jwks_file" : source.jwksUri !== undefined ? "jwks_uri" : "discovery",
        keys: undefined,
        from: null,
        fetchedAt: Number.NEGATIVE_INFINITY,
        lastError: null,
        inflight: undefined,
        lastOnDemandAt: Number.NEGATIVE_INFINITY,
      });
    }
  }

  /**
   * Load disk cache entries, start the first fetch (or file read) for every issuer, and
   * start the periodic refresh. Resolves once every issuer that had no usable keys from
   * the disk cache has ended its first attempt, whatever its outcome (see
   * {@link KeyStore.status}), or after `startupWaitMs`, whichever comes first; issuers
   * with usable keys are refreshed in the background. Fetches still running go on. An
   * unreachable issuer is not an error. Calling it again does nothing.
   */
  async start(): Promise<void> {
    if (this.#timer !== undefined || this.#closing.signal.aborted) return;
    this.#timer = setInterval(() => this.#refreshAll(), this.#refreshIntervalMs);
    this.#timer.unref();
    const states = [...this.#issuers.values()];
    await Promise.all(states.map((state) => this.#loadDiskCache(state)));
    const waitFor: IssuerState[] = [];
    const firstFetches: Promise<void>[] = [];
    for (const state of states) {
      const first = this.#fetch(state);
      if (this.#usableKeys(state) === undefined) {
        waitFor.push(state);
        firstFetches.push(first);
      }
    }
    if (waitFor.length === 0) return;
    if (await settlesWithin(Promise.all(firstFetches), this.#startupWaitMs)) return;
    const pending = waitFor.filter((state) => state.inflight !== undefined).map((state) => state.source.issuer);
    this.#logger?.warn(
      { issuers: pending, waitedMs: this.#startupWaitMs },
      "serving before the first key fetch of these issuers ended; their tokens get key_unavailable until it does",
    );
  }

  /**
   * The verification key for a token of `issuer` with this protected header; pass it to
   * jose as the key function: `jwtVerify(jwt, (header) => store.getKey(iss, header))`.
   * When the keys held cannot answer (no usable keys, unknown `kid`), it causes the
   * cooldown-limited fetch and waits for it at most `checkWaitMs`.
   *
   * With `options.rejected` (the token's signature did not verify with that key, which
   * this store returned for the same header), it resolves with the key to try once more:
   * the one the issuer's set yields now when the set has changed since, else the one it
   * yields after the cooldown-limited refetch (same bounded wait). That is `rejected`
   * itself when the set did not change, or the refetch was not allowed or failed: then
   * the token's signature is simply invalid. A flood of such tokens causes at most one
   * fetch per issuer per cooldown, like unknown `kid`s.
   *
   * Rejects with `DenyError`: `issuer_untrusted` for an issuer not configured (no
   * traffic); `key_unavailable` when the issuer has no keys or only keys older than
   * `maxStaleMs`, or when a fetch the request needs is still running after
   * `checkWaitMs`; `key_not_found` when the `kid` is unknown even after the
   * cooldown-limited refetch, or when the token has no `kid` and not exactly one key
   * suits its `alg`; `alg_not_allowed` when `alg` is not an asymmetric JWS algorithm.
   */
  async getKey(issuer: string, header: JWSHeaderParameters, options: KeyLookupOptions = {}): Promise<CryptoKey> {
    const state = this.#issuers.get(issuer);
    if (state === undefined) throw new DenyError("issuer_untrusted");
    const { kid } = header;
    if (kid !== undefined && typeof kid !== "string") throw new DenyError("key_not_found", "kid is not a string");
    const waitMs = Math.min(this.#checkWaitMs, options.maxWaitMs ?? Number.POSITIVE_INFINITY);
    if (options.rejected !== undefined) return this.#keyAfterRejection(state, header, options.rejected, waitMs);
    let keys = this.#usableKeys(state);
    if (keys === undefined || (kid !== undefined && !keys.kids.has(kid))) {
      await this.#waitForOnDemandFetch(state, waitMs);
      keys = this.#usableKeys(state);
      if (keys === undefined) throw new DenyError("key_unavailable", state.lastError ?? "no keys");
      if (kid !== undefined && !keys.kids.has(kid)) throw new DenyError("key_not_found", "unknown kid");
    }
    return keys.resolve(header);
  }

  /**
   * For a token verified earlier (the verified-token cache): throws the `DenyError`
   * {@link KeyStore.getKey} would throw now without fetching: `key_unavailable` when the
   * issuer's keys are too stale or gone, `key_not_found` when `kid` is no longer
   * published. Synchronous, no I/O.
   */
  assertStillUsable(issuer: string, kid: string | undefined): void {
    const state = this.#issuers.get(issuer);
    if (state === undefined) throw new DenyError("issuer_untrusted");
    const keys = this.#usableKeys(state);
    if (keys === undefined) throw new DenyError("key_unavailable", state.lastError ?? "no keys");
    if (kid !== undefined && !keys.kids.has(kid)) throw new DenyError("key_not_found", "kid no longer published");
  }

  /**
   * The keys a lookup for `issuer` would use now without I/O, as an object that stays
   * the same (by identity) while those keys do: a verdict reached with them, for a token
   * of this issuer, is reached again while it is unchanged (the negative cache).
   * `undefined` when a lookup now could fetch or fail: no usable keys (none, or too
   * stale), or, with `afterRejection` (a `kid`-less token whose signature did not verify,
   * see {@link KeyStore.getKey}), a fetch running or one the cooldown would allow.
   * Synchronous, no I/O.
   */
  keyVersion(issuer: string, afterRejection = false): object | undefined {
    const state = this.#issuers.get(issuer);
    if (state === undefined) return undefined;
    const keys = this.#usableKeys(state);
    if (keys === undefined) return undefined;
    if (afterRejection && (state.inflight !== undefined || this.#mayStartOnDemand(state, this.#now()))) return undefined;
    return keys;
  }

  /**
   * Fetch `issuer`'s keys now (joining a fetch already running), outside any cooldown.
   * Resolves when the attempt has ended; a failure is reported by
   * {@link KeyStore.status} and the log, not by rejecting. Rejects with `DenyError`
   * `issuer_untrusted` for an issuer not configured.
   */
  async refresh(issuer: string): Promise<void> {
    const state = this.#issuers.get(issuer);
    if (state === undefined) throw new DenyError("issuer_untrusted");
    await this.#fetch(state);
  }

  /** Every issuer's key state, for readiness checks and diagnostics. */
  status(): IssuerKeyStatus[] {
    const now = this.#now();
    return [...this.#issuers.values()].map((state) => ({
      issuer: state.source.issuer,
      source: state.kind,
      from: state.from,
      keys: state.keys?.jwks.keys.length ?? 0,
      fetchedAt: state.keys === undefined ? null : state.fetchedAt,
      usable: state.keys !== undefined && now - state.fetchedAt <= this.#maxStaleMs,
      lastError: state.lastError,
      fetching: state.inflight !== undefined,
    }));
  }

  /**
   * Stop the periodic refresh and abort fetches in flight; later requests are answered
   * from the keys held, and no fetch starts again.
   */
  close(): void {
    clearInterval(this.#timer);
    this.#closing.abort();
  }

  #usableKeys(state: IssuerState): PreparedKeySet | undefined {
    if (state.keys === undefined || this.#now() - state.fetchedAt > this.#maxStaleMs) return undefined;
    return state.keys;
  }

  async #keyAfterRejection(state: IssuerState, header: JWSHeaderParameters, rejected: CryptoKey | Uint8Array, waitMs: number): Promise<CryptoKey> {
    const held = this.#usableKeys(state);
    if (held !== undefined) {
      const current = await held.resolve(header);
      if (current !== rejected) return current;
    }
    await this.#waitForOnDemandFetch(state, waitMs);
    const keys = this.#usableKeys(state);
    if (keys === undefined) throw new DenyError("key_unavailable", state.lastError ?? "no keys");
    return keys.resolve(header);
  }

  /**
   * Start or join the fetch a request may cause and wait for it at most `waitMs`;
   * throws `key_unavailable` when it is still running then (it goes on). Returns at once
   * when no fetch runs and the cooldown forbids a new one.
   */
  async #waitForOnDemandFetch(state: IssuerState, waitMs: number): Promise<void> {
    const fetch = this.#fetchOnDemand(state);
    if (fetch === undefined) return;
    if (!(await settlesWithin(fetch, waitMs))) {
      throw new DenyError("key_unavailable", "the key fetch this request needs is still running");
    }
  }

  /** The cooldown-limited fetch a request may cause, or `undefined` when none may start. */
  #fetchOnDemand(state: IssuerState): Promise<void> | undefined {
    if (state.inflight !== undefined) return state.inflight;
    const now = this.#now();
    if (!this.#mayStartOnDemand(state, now)) return undefined;
    state.lastOnDemandAt = now;
    return this.#fetch(state);
  }

  /** Whether {@link #fetchOnDemand} would start a fetch at `now` (none running). */
  #mayStartOnDemand(state: IssuerState, now: number): boolean {
    return !this.#closing.signal.aborted && now - state.lastOnDemandAt >= this.#cooldownMs;
  }

  #refreshAll(): void {
    for (const state of this.#issuers.values()) void this.#fetch(state);
  }

  /** Single flight: one attempt per issuer at a time; never rejects. */
  #fetch(state: IssuerState): Promise<void> {
    if (state.inflight !== undefined) return state.inflight;
    if (this.#closing.signal.aborted) return Promise.resolve();
    const attempt = this.#attempt(state).finally(() => {
      state.inflight = undefined;
    });
    state.inflight = attempt;
    return attempt;
  }

  async #attempt(state: IssuerState): Promise<void> {
    const { issuer } = state.source;
    let from: string | undefined;
    let ok = false;
    try {
      let document: Record<string, unknown>;
      if (state.source.jwksFile !== undefined) {
        from = state.source.jwksFile;
        document = await readJwksFile(from, this.#limits.maxBytes);
      } else {
        from = state.source.jwksUri ?? (await discoverJwksUri(issuer, this.#limits));
        document = await fetchJsonObject(from, this.#limits);
      }
      const prepared = await prepareKeySet(document, (reason) => this.#logger?.warn({ issuer, url: from, reason }, "jwks key skipped"));
      // The same keys again keep the prepared set, and so the key objects handed out.
      const keys = state.keys !== undefined && sameKeys(state.keys, prepared) ? state.keys : prepared;
      const fetchedAt = this.#now();
      state.keys = keys;
      state.from = from;
      state.fetchedAt = fetchedAt;
      state.lastError = null;
      this.#logger?.info({ issuer, url: from, keys: keys.jwks.keys.length }, "jwks fetch ok");
      ok = true;
      if (this.#cacheDir !== undefined && state.kind !== "jwks_file") {
        await writeCachedJwks(this.#cacheDir, { issuer, jwksUri: from, fetchedAt, jwks: keys.jwks }).catch((err: unknown) =>
          this.#logger?.warn({ issuer, err: messageOf(err) }, "jwks disk cache write failed"),
        );
      }
    } catch (err) {
      state.lastError = messageOf(err);
      this.#logger?.warn({ issuer, url: from ?? null, err: state.lastError }, "jwks fetch failed");
    }
    // A fetch cut short by close() (a retired key store) is no outcome of the issuer's.
    if (!this.#closing.signal.aborted) this.#onAttempt?.(issuer, ok);
  }

  async #loadDiskCache(state: IssuerState): Promise<void> {
    if (this.#cacheDir === undefined || state.kind === "jwks_file") return;
    const { issuer } = state.source;
    try {
      const entry = await readCachedJwks(this.#cacheDir, issuer, this.#limits.maxBytes);
      if (entry === null) return;
      const age = this.#now() - entry.fetchedAt;
      // An entry from another configured jwks_uri, from the future or too stale is ignored.
      if (state.kind === "jwks_uri" && entry.jwksUri !== state.source.jwksUri) return;
      if (age < 0 || age > this.#maxStaleMs) return;
      const keys = await prepareKeySet(entry.jwks);
      if (state.keys !== undefined) return;
      state.keys = keys;
      state.from = entry.jwksUri;
      state.fetchedAt = entry.fetchedAt;
      this.#logger?.info({ issuer, url: entry.jwksUri, fetchedAt: entry.fetchedAt }, "jwks loaded from disk cache");
    } catch (err) {
      this.#logger?.warn({ issuer, err: messageOf(err) }, "jwks disk cache entry unusable");
    }
  }
}

function sourceProblems(sources: readonly IssuerKeySource[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const { issuer, jwksUri, jwksFile } of sources) {
    if (typeof issuer !== "string" || issuer === "") {
      problems.push("an issuer is empty");
      continue;
    }
    if (seen.has(issuer)) problems.push(`${issuer}: configured twice`);
    seen.add(issuer);
    if (jwksUri !== undefined && jwksFile !== undefined) {
      problems.push(`${issuer}: set jwks_uri or jwks_file, not both`);
    } else if (jwksFile !== undefined) {
      if (jwksFile === "") problems.push(`${issuer}: jwks_file is empty`);
    } else {
      const [what, url] = jwksUri === undefined ? ["issuer (for discovery)", issuer] : ["jwks_uri", jwksUri];
      const problem = keyUrlProblem(url);
      if (problem !== null) problems.push(`${issuer}: ${what} ${url} ${problem}`);
    }
  }
  return problems;
}

function sameKeys(a: PreparedKeySet, b: PreparedKeySet): boolean {
  return JSON.stringify(a.jwks) === JSON.stringify(b.jwks);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
