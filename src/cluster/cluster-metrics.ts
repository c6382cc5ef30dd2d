import { AggregatorRegistry, Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import { METRIC_PREFIX, type MetricsSnapshot } from "../observability/metrics.js";

/** What the primary's own gauges read when scraped. */
export interface ClusterState {
  /** Whether every worker is ready (what /readyz and gRPC health answer). */
  readonly ready: boolean;
  /** Workers listening and ready now. */
  readonly readyWorkers: number;
}

/** prom-client leaves a process start time out of a merge; the primary's is the service's. */
const PROCESS_START_TIME = "process_start_time_seconds";

/**
 * /metrics of a service running several workers, served by the primary: every worker's
 * metrics (asked for at each scrape) merged with the primary's own, as each metric's
 * `aggregator` says (src/observability/metrics.ts): counters and histograms add up
 * bucket by bucket, gauges take the sum, the oldest age, the least usable, the first.
 * Process metrics add up too (CPU seconds and memory of all the processes).
 *
 * Counters never go down when a worker is restarted: the counts of a worker that exited
 * are kept as they were at the last scrape (the last values Prometheus saw) and added to
 * every later exposition. What it counted after that scrape is lost.
 */
export class ClusterMetrics {
  readonly #registry = new Registry();
  readonly #own = new Set<string>();
  readonly #last = new Map<number, MetricsSnapshot>();
  #retired: MetricsSnapshot = [];
  readonly #restarts: Counter;
  readonly #relayed: Counter<"outcome">;

  constructor(options: { readonly workers: number; readonly state: () => ClusterState }) {
    const registers = [this.#registry];
    const { state } = options;
    collectDefaultMetrics({ register: this.#registry });
    new Gauge({
      name: `${METRIC_PREFIX}ready`,
      help: "1 when the service is ready (/readyz 200, gRPC health SERVING): every worker is, else 0",
      registers,
      aggregator: "first",
      collect() {
        this.set(state().ready ? 1 : 0);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}workers`,
      help: "Worker processes the service runs (workers)",
      registers,
      aggregator: "first",
    }).set(options.workers);
    new Gauge({
      name: `${METRIC_PREFIX}workers_ready`,
      help: "Worker processes listening and ready now",
      registers,
      aggregator: "first",
      collect() {
        this.set(state().readyWorkers);
      },
    });
    this.#restarts = new Counter({
      name: `${METRIC_PREFIX}worker_restarts_total`,
      help: "Worker processes started again after an unexpected exit",
      registers,
      aggregator: "first",
    });
    this.#relayed = new Counter({
      name: `${METRIC_PREFIX}relayed_fetches_total`,
      help: "Key (and bundle) requests of the workers made by the primary: fetched (a request to the server) or joined (shared one in flight)",
      labelNames: ["outcome"],
      registers,
      aggregator: "first",
    });
    for (const outcome of ["fetched", "joined"]) this.#relayed.inc({ outcome }, 0);
    for (const metric of this.#registry.getMetricsAsArray()) {
      if (metric.name.startsWith(METRIC_PREFIX)) this.#own.add(metric.name);
    }
    this.#own.add(PROCESS_START_TIME);
  }

  /** A worker was started again after an unexpected exit. */
  workerRestarted(): void {
    this.#restarts.inc();
  }

  /** A worker's request went through the fetch relay. */
  relayed(outcome: "fetched" | "joined"): void {
    this.#relayed.inc({ outcome });
  }

  /**
   * A worker slot's process exited: its counters and histograms as last scraped go on
   * being counted. Its gauges go with it.
   */
  async retire(slot: number): Promise<void> {
    const last = this.#last.get(slot);
    this.#last.delete(slot);
    if (last === undefined) return;
    const counts = last.filter((metric) => (metric.type as unknown) === "counter" || (metric.type as unknown) === "histogram");
    this.#retired = await AggregatorRegistry.aggregate([this.#retired, counts]).getMetricsAsJSON();
  }

  /**
   * The exposition, from the workers' answers to this scrape (slot → metrics; null when
   * one did not answer in time: its previous answer stands in).
   */
  async exposition(answers: ReadonlyMap<number, MetricsSnapshot | null>): Promise<{ readonly contentType: string; readonly body: string }> {
    for (const [slot, snapshot] of answers) if (snapshot !== null) this.#last.set(slot, snapshot);
    const own = (await this.#registry.getMetricsAsJSON()).map((metric) =>
      metric.name === PROCESS_START_TIME ? { ...metric, aggregator: "first" as const } : metric,
    );
    const workers = [...answers.keys()].flatMap((slot) => {
      const snapshot = this.#last.get(slot);
      return snapshot === undefined ? [] : [snapshot.filter((metric) => !this.#own.has(metric.name))];
    });
    const merged = AggregatorRegistry.aggregate([own, this.#retired, ...workers]);
    return { contentType: this.#registry.contentType, body: await merged.metrics() };
  }
}
