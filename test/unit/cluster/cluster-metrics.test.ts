import { describe, expect, it } from "vitest";
import { ClusterMetrics } from "../../../src/cluster/cluster-metrics.js";
import { type MetricsSnapshot, ServiceMetrics } from "../../../src/observability/metrics.js";
import type { IssuerKeyStatus } from "../../../src/token/keys/index.js";

// Issue 11, metrics across workers: the primary's /metrics merges every worker's registry
// (real ServiceMetrics here, as each worker has one): counters add up, the histogram
// merges bucket by bucket, gauges are combined as each says, and the counts of a worker
// that exited stay counted.

const NOW = Date.parse("2026-06-01T12:00:00Z");
const ISSUER = "https://tokens.example.org";

function keys(fetchedAt: number, usable: boolean): IssuerKeyStatus {
  return { issuer: ISSUER, source: "discovery", from: `${ISSUER}/jwks`, keys: 1, fetchedAt, usable, lastError: null, fetching: false };
}

function worker(slot: number, revision: string, key: IssuerKeyStatus): ServiceMetrics {
  return new ServiceMetrics({
    worker: slot,
    maxStaleSeconds: 345_600,
    refreshIntervalSeconds: 600,
    state: () => ({ revision, keys: [key], ready: true, nowMs: NOW }),
  });
}

function decide(metrics: ServiceMetrics, reason: "allowed" | "token_missing", seconds: number): void {
  const allowed = reason === "allowed";
  metrics.decided({
    response: allowed ? { okResponse: {} } : { deniedResponse: {} },
    decision: { reason },
    durationSeconds: seconds,
  } as unknown as Parameters<ServiceMetrics["decided"]>[0]);
}

/** The sample lines of `name` (with labels), from a text exposition. */
function samples(body: string, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of body.split("\n")) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) {
      const at = line.lastIndexOf(" ");
      out[line.slice(0, at)] = Number(line.slice(at + 1));
    }
  }
  return out;
}

describe("ClusterMetrics", () => {
  it("adds counters and histogram buckets, and combines gauges as each metric says", async () => {
    const one = worker(1, "0123456789ab", keys(NOW - 60_000, true));
    const two = worker(2, "ba9876543210", keys(NOW - 600_000, false));
    for (let i = 0; i < 3; i++) decide(one, "allowed", 0.0002);
    decide(two, "allowed", 0.003);
    decide(two, "token_missing", 0.0002);
    const cluster = new ClusterMetrics({ workers: 2, state: () => ({ ready: false, readyWorkers: 1 }) });
    const { body } = await cluster.exposition(
      new Map<number, MetricsSnapshot | null>([
        [1, await one.snapshot()],
        [2, await two.snapshot()],
      ]),
    );
    expect(samples(body, "scitokens_authz_checks_total")).toMatchObject({
      'scitokens_authz_checks_total{decision="allow",reason="allowed"}': 4,
      'scitokens_authz_checks_total{decision="deny",reason="token_missing"}': 1,
    });
    expect(samples(body, "scitokens_authz_worker_checks_total")).toEqual({
      'scitokens_authz_worker_checks_total{worker="1"}': 3,
      'scitokens_authz_worker_checks_total{worker="2"}': 2,
    });
    expect(samples(body, "scitokens_authz_check_duration_seconds_bucket")).toMatchObject({
      'scitokens_authz_check_duration_seconds_bucket{le="0.00025"}': 4,
      'scitokens_authz_check_duration_seconds_bucket{le="0.0025"}': 4,
      'scitokens_authz_check_duration_seconds_bucket{le="0.005"}': 5,
      'scitokens_authz_check_duration_seconds_bucket{le="+Inf"}': 5,
    });
    expect(samples(body, "scitokens_authz_check_duration_seconds_count")).toEqual({ scitokens_authz_check_duration_seconds_count: 5 });
    // The oldest keys, usable only if usable in every worker, both revisions while they differ.
    expect(samples(body, "scitokens_authz_key_age_seconds")).toEqual({ [`scitokens_authz_key_age_seconds{issuer="${ISSUER}"}`]: 600 });
    expect(samples(body, "scitokens_authz_issuer_keys_usable")).toEqual({ [`scitokens_authz_issuer_keys_usable{issuer="${ISSUER}"}`]: 0 });
    expect(samples(body, "scitokens_authz_policy_info")).toEqual({
      'scitokens_authz_policy_info{revision="0123456789ab"}': 1,
      'scitokens_authz_policy_info{revision="ba9876543210"}': 1,
    });
    expect(samples(body, "scitokens_authz_key_max_stale_seconds")).toEqual({ scitokens_authz_key_max_stale_seconds: 345600 });
    // Readiness is the primary's (every worker ready), not a worker's own.
    expect(samples(body, "scitokens_authz_ready")).toEqual({ scitokens_authz_ready: 0 });
    expect(samples(body, "scitokens_authz_workers")).toEqual({ scitokens_authz_workers: 2 });
    expect(samples(body, "scitokens_authz_workers_ready")).toEqual({ scitokens_authz_workers_ready: 1 });
    expect(Object.keys(samples(body, "process_start_time_seconds"))).toEqual(["process_start_time_seconds"]);
    expect(samples(body, "process_cpu_seconds_total").process_cpu_seconds_total).toBeGreaterThan(0);
  });

  it("keeps counting what a worker counted until the last scrape after it exits", async () => {
    const first = worker(2, "0123456789ab", keys(NOW, true));
    const other = worker(1, "0123456789ab", keys(NOW, true));
    for (let i = 0; i < 5; i++) decide(first, "allowed", 0.0002);
    decide(other, "allowed", 0.0002);
    const cluster = new ClusterMetrics({ workers: 2, state: () => ({ ready: true, readyWorkers: 2 }) });
    const scrape = async (answers: Array<[number, ServiceMetrics | null]>) => {
      const snapshots = new Map<number, MetricsSnapshot | null>();
      for (const [slot, metrics] of answers) snapshots.set(slot, metrics === null ? null : await metrics.snapshot());
      const { body } = await cluster.exposition(snapshots);
      return samples(body, "scitokens_authz_worker_checks_total");
    };
    expect(
      await scrape([
        [1, other],
        [2, first],
      ]),
    ).toEqual({
      'scitokens_authz_worker_checks_total{worker="1"}': 1,
      'scitokens_authz_worker_checks_total{worker="2"}': 5,
    });
    // Slot 2's process exits and a new one takes its place, counting from 0.
    await cluster.retire(2);
    const restarted = worker(2, "0123456789ab", keys(NOW, true));
    decide(restarted, "allowed", 0.0002);
    expect(
      await scrape([
        [1, other],
        [2, restarted],
      ]),
    ).toEqual({
      'scitokens_authz_worker_checks_total{worker="1"}': 1,
      'scitokens_authz_worker_checks_total{worker="2"}': 6,
    });
    // A worker that does not answer in time: its last answer stands in.
    decide(other, "allowed", 0.0002);
    expect(
      await scrape([
        [1, null],
        [2, restarted],
      ]),
    ).toEqual({
      'scitokens_authz_worker_checks_total{worker="1"}': 1,
      'scitokens_authz_worker_checks_total{worker="2"}': 6,
    });
  });
});
