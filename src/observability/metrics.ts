import { Counter, Gauge, Histogram, type MetricObjectWithValues, type MetricValue, Registry, collectDefaultMetrics } from "prom-client";
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

/** Every metric of a registry as prom-client's JSON (`getMetricsAsJSON`), which the cluster primary merges. */
export type MetricsSnapshot = MetricObjectWithValues<MetricValue<string>>[];

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
 * own. With several workers, the primary merges every worker's registry (src/cluster/):
 * each metric says how (`aggregator`): counters and the histogram add up, a key's age is
 * the oldest worker's, an issuer is usable when it is in every worker, settings are the
 * same everywhere. Counting on the Check path is two increments of plain numbers (the Check's
 * decision and reason, a token's cache lookup) and one histogram observation;
 * everything else (key ages, readiness, the revision) is read from the service's state
 * when scraped. Label values are bounded: decisions, reason codes, reload outcomes, and
 * issuers of the trusted data only (never a token's `iss`).
 */
export class ServiceMetrics {
  readonly registry = new Registry();
  // The Check path only adds to plain numbers (prom-client's labelled increment hashes its
  // labels every time); the counters read them when scraped.
  readonly #checkCounts: Record<Decided, Map<string, { count: number }>> = { allow: new Map(), deny: new Map() };
  #reasons = 0;
  #cacheHits = 0;
  #cacheMisses = 0;
  #negativeHits = 0;
  #negativeMisses = 0;
  readonly #duration: Histogram;
  readonly #keyFetches: Counter<"issuer">;
  readonly #keyFailures: Counter<"issuer">;
  readonly #reloads: Counter<"outcome">;

  constructor(options: {
    readonly state: () => ObservedState;
    readonly maxStaleSeconds: number;
    readonly refreshIntervalSeconds: number;
    /** In a cluster worker: its slot (1…N), the `worker` label of `worker_checks_total`. */
    readonly worker?: number;
  }) {
    const registers = [this.registry];
    const { state } = options;
    collectDefaultMetrics({ register: this.registry });
    const checkCounts = this.#checkCounts;
    new Counter({
      name: `${METRIC_PREFIX}checks_total`,
      help: "Checks answered, by decision (allow, deny) and reason code",
      labelNames: ["decision", "reason"],
      registers,
      collect() {
        this.reset();
        for (const decision of ["allow", "deny"] as const) {
          for (const [reason, { count }] of checkCounts[decision]) this.inc({ decision, reason }, count);
        }
      },
    });
    if (options.worker !== undefined) {
      const worker = String(options.worker);
      new Counter({
        name: `${METRIC_PREFIX}worker_checks_total`,
        help: "Checks answered by each worker process (label worker: 1 to the number of workers; a restarted worker keeps its number)",
        labelNames: ["worker"],
        registers,
        collect() {
          let total = 0;
          for (const decision of ["allow", "deny"] as const) for (const { count } of checkCounts[decision].values()) total += count;
          this.reset();
          this.inc({ worker }, total);
        },
      });
    }
    // Every reason code from the start (at 0), so rates and alerts see each series at once.
    for (const reason of REASON_CODES) this.#entry(reason === "allowed" || reason === "passthrough" ? "allow" : "deny", reason);
    this.#duration = new Histogram({
      name: `${METRIC_PREFIX}check_duration_seconds`,
      help: "Time to decide a Check, from the request read to the response built",
      buckets: [...CHECK_DURATION_BUCKETS],
      registers,
    });
    const cache = () => ({ hits: this.#cacheHits, misses: this.#cacheMisses });
    new Counter({
      name: `${METRIC_PREFIX}token_cache_hits_total`,
      help: "Bearer tokens found in the verified-token cache",
      registers,
      collect() {
        this.reset();
        this.inc(cache().hits);
      },
    });
    new Counter({
      name: `${METRIC_PREFIX}token_cache_misses_total`,
      help: "Bearer tokens not in the verified-token cache (then looked up in the negative cache, else verified in full)",
      registers,
      collect() {
        this.reset();
        this.inc(cache().misses);
      },
    });
    const negative = () => ({ hits: this.#negativeHits, misses: this.#negativeMisses });
    new Counter({
      name: `${METRIC_PREFIX}token_negative_cache_hits_total`,
      help: "Bearer tokens refused again from the negative cache, without verifying them",
      registers,
      collect() {
        this.reset();
        this.inc(negative().hits);
      },
    });
    new Counter({
      name: `${METRIC_PREFIX}token_negative_cache_misses_total`,
      help: "Bearer tokens in neither token cache (verified in full)",
      registers,
      collect() {
        this.reset();
        this.inc(negative().misses);
      },
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
      aggregator: "max",
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
      aggregator: "min",
      collect() {
        this.reset();
        for (const status of state().keys) this.set({ issuer: status.issuer }, status.usable ? 1 : 0);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}key_max_stale_seconds`,
      help: "How long after their fetch keys may still be used (keys.max_stale_seconds)",
      registers,
      aggregator: "first",
    }).set(options.maxStaleSeconds);
    new Gauge({
      name: `${METRIC_PREFIX}key_refresh_interval_seconds`,
      help: "How often every issuer's keys are fetched again (keys.refresh_interval_seconds)",
      registers,
      aggregator: "first",
    }).set(options.refreshIntervalSeconds);
    new Gauge({
      name: `${METRIC_PREFIX}ready`,
      help: "1 when the service is ready (/readyz 200, gRPC health SERVING), else 0",
      registers,
      aggregator: "min",
      collect() {
        this.set(state().ready ? 1 : 0);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}policy_info`,
      help: "The policy revision in force (value 1, the revision as a label)",
      labelNames: ["revision"],
      registers,
      // Workers on two revisions (a reload under way) show both, each at 1.
      aggregator: "max",
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
    const reason = event.decision.reason;
    (this.#checkCounts[decision].get(reason) ?? this.#entry(decision, reason)).count++;
    this.#duration.observe(event.durationSeconds);
  }

  /** One lookup in the verified-token cache. */
  tokenCacheLookup(hit: boolean): void {
    if (hit) this.#cacheHits++;
    else this.#cacheMisses++;
  }

  /** One lookup in the negative cache. */
  negativeCacheLookup(hit: boolean): void {
    if (hit) this.#negativeHits++;
    else this.#negativeMisses++;
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

  /** Every metric as prom-client's JSON, read now (the cluster primary merges the workers'). */
  snapshot(): Promise<MetricsSnapshot> {
    return this.registry.getMetricsAsJSON();
  }

  /** The Prometheus text exposition of every metric, and its content type. */
  async exposition(): Promise<{ readonly contentType: string; readonly body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** The count of a (decision, reason) pair, created at 0; past MAX_REASONS reasons, the one of "other". */
  #entry(decision: Decided, reason: string): { count: number } {
    const counts = this.#checkCounts[decision];
    const label = this.#reasons < MAX_REASONS ? reason : "other";
    let entry = counts.get(label);
    if (entry === undefined) {
      entry = { count: 0 };
      counts.set(label, entry);
      this.#reasons++;
    }
    return entry;
  }
}
