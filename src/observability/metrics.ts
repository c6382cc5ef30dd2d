import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { REASON_CODES } from "../reasons/index.js";
import type { IssuerKeyStatus } from "../token/keys/index.js";
import type { DecisionEvent } from "./decision-record.js";

/** The prefix of every metric of the service's own (prom-client's process metrics keep theirs). */
export const METRIC_PREFIX = "scitokens_authz_";

/**
 * Check latency buckets, in seconds: from 100 µs (a cached token) to Envoy's default
 * ext_authz timeout of 200 ms, where a slower answer no longer matters to the client.
 */
export const CHECK_DURATION_BUCKETS: readonly number[] = Object.freeze([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.5]);

/** What the gauges read at each scrape: the service's state then. */
export interface ObservedState {
  /** The policy revision in force; null before a policy is loaded. */
  readonly revision: string | null;
  /** The key state of every trusted issuer of the policy in force. */
  readonly keys: readonly IssuerKeyStatus[];
  /** Whether /readyz answers 200 now. */
  readonly ready: boolean;
  /** Now, in ms since the epoch (the service's clock). */
  readonly nowMs: number;
}

/** The outcomes of a policy reload (ReloadEvent.outcome). */
export const RELOAD_OUTCOMES = ["reloaded", "unchanged", "refused"] as const;

// Label values of `reason` beyond this many distinct ones (the reason codes and the
// operator reasons the data declares are far fewer) are counted as "other".
const MAX_REASONS = 256;

type Decided = "allow" | "deny";

/**
 * The service's Prometheus metrics (README "Health and metrics"), in a registry of their
 * own. Counting on the Check path is one counter increment (its child prepared once per
 * label set), one histogram observation and, for a token, one cache counter increment;
 * everything else (key ages, readiness, the revision) is read from the service's state
 * when scraped. Label values are bounded: decisions, reason codes, reload outcomes, and
 * issuers of the trusted data only (never a token's `iss`).
 */
export class ServiceMetrics {
  readonly registry = new Registry();
  readonly #checks: Counter<"decision" | "reason">;
  readonly #checkChildren = new Map<string, Counter.Internal>();
  readonly #duration: Histogram;
  readonly #cacheHits: Counter;
  readonly #cacheMisses: Counter;
  readonly #keyFetches: Counter<"issuer">;
  readonly #keyFailures: Counter<"issuer">;
  readonly #reloads: Counter<"outcome">;

  constructor(options: { readonly state: () => ObservedState; readonly maxStaleSeconds: number; readonly refreshIntervalSeconds: number }) {
    const registers = [this.registry];
    const { state } = options;
    collectDefaultMetrics({ register: this.registry });
    this.#checks = new Counter({
      name: `${METRIC_PREFIX}checks_total`,
      help: "Checks answered, by decision (allow, deny) and reason code",
      labelNames: ["decision", "reason"],
      registers,
    });
    // Every reason code from the start (at 0), so rates and alerts see each series at once.
    for (const reason of REASON_CODES) this.#child(reason === "allowed" || reason === "passthrough" ? "allow" : "deny", reason).inc(0);
    this.#duration = new Histogram({
      name: `${METRIC_PREFIX}check_duration_seconds`,
      help: "Time to decide a Check, from the request read to the response built",
      buckets: [...CHECK_DURATION_BUCKETS],
      registers,
    });
    this.#cacheHits = new Counter({
      name: `${METRIC_PREFIX}token_cache_hits_total`,
      help: "Bearer tokens found in the verified-token cache",
      registers,
    });
    this.#cacheMisses = new Counter({
      name: `${METRIC_PREFIX}token_cache_misses_total`,
      help: "Bearer tokens not in the verified-token cache (verified in full)",
      registers,
    });
    // The counters of each issuer of the policy in force exist from the first scrape (at 0).
    const everyIssuer = (counter: Counter<"issuer">) => {
      for (const status of state().keys) counter.inc({ issuer: status.issuer }, 0);
    };
    this.#keyFetches = new Counter({
      name: `${METRIC_PREFIX}key_fetches_total`,
      help: "Fetches (or jwks_file reads) of an issuer's keys, whatever their outcome",
      labelNames: ["issuer"],
      registers,
      collect() {
        everyIssuer(this);
      },
    });
    this.#keyFailures = new Counter({
      name: `${METRIC_PREFIX}key_fetch_failures_total`,
      help: "Fetches (or jwks_file reads) of an issuer's keys that failed (the last good keys stay in use)",
      labelNames: ["issuer"],
      registers,
      collect() {
        everyIssuer(this);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}key_age_seconds`,
      help: "Age of the keys in use for an issuer (since they were fetched); absent while it has none",
      labelNames: ["issuer"],
      registers,
      collect() {
        const { keys, nowMs } = state();
        this.reset();
        for (const status of keys) {
          if (status.fetchedAt !== null) this.set({ issuer: status.issuer }, Math.max(0, (nowMs - status.fetchedAt) / 1000));
        }
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}issuer_keys_usable`,
      help: "1 when an issuer's tokens can be verified (keys held, not older than keys.max_stale_seconds), else 0",
      labelNames: ["issuer"],
      registers,
      collect() {
        this.reset();
        for (const status of state().keys) this.set({ issuer: status.issuer }, status.usable ? 1 : 0);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}key_max_stale_seconds`,
      help: "How long after their fetch keys may still be used (keys.max_stale_seconds)",
      registers,
    }).set(options.maxStaleSeconds);
    new Gauge({
      name: `${METRIC_PREFIX}key_refresh_interval_seconds`,
      help: "How often every issuer's keys are fetched again (keys.refresh_interval_seconds)",
      registers,
    }).set(options.refreshIntervalSeconds);
    new Gauge({
      name: `${METRIC_PREFIX}ready`,
      help: "1 when the service is ready (/readyz 200, gRPC health SERVING), else 0",
      registers,
      collect() {
        this.set(state().ready ? 1 : 0);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}policy_info`,
      help: "The policy revision in force (value 1, the revision as a label)",
      labelNames: ["revision"],
      registers,
      collect() {
        const { revision } = state();
        this.reset();
        if (revision !== null) this.set({ revision }, 1);
      },
    });
    this.#reloads = new Counter({
      name: `${METRIC_PREFIX}policy_reloads_total`,
      help: "Policy reloads by outcome: reloaded (a new revision in force), unchanged, refused (the last good one goes on)",
      labelNames: ["outcome"],
      registers,
    });
    for (const outcome of RELOAD_OUTCOMES) this.#reloads.inc({ outcome }, 0);
  }

  /** One Check answered (the authorizer's onDecision). */
  decided(event: DecisionEvent): void {
    const decision: Decided = event.response.okResponse !== undefined && event.response.deniedResponse === undefined ? "allow" : "deny";
    const children = this.#checkChildren;
    (children.get(`${decision}:${event.decision.reason}`) ?? this.#child(decision, event.decision.reason)).inc();
    this.#duration.observe(event.durationSeconds);
  }

  /** One lookup in the verified-token cache. */
  tokenCacheLookup(hit: boolean): void {
    (hit ? this.#cacheHits : this.#cacheMisses).inc();
  }

  /** One fetch (or file read) of a trusted issuer's keys has ended. */
  keyAttempt(issuer: string, ok: boolean): void {
    this.#keyFetches.inc({ issuer });
    if (!ok) this.#keyFailures.inc({ issuer });
  }

  /** One policy reload has ended. */
  reloaded(outcome: (typeof RELOAD_OUTCOMES)[number]): void {
    this.#reloads.inc({ outcome });
  }

  /** The Prometheus text exposition of every metric, and its content type. */
  async exposition(): Promise<{ readonly contentType: string; readonly body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  #child(decision: Decided, reason: string): Counter.Internal {
    const key = `${decision}:${reason}`;
    const label = this.#checkChildren.size < MAX_REASONS ? reason : "other";
    const child = this.#checks.labels({ decision, reason: label });
    if (label === reason) this.#checkChildren.set(key, child);
    return child;
  }
}
