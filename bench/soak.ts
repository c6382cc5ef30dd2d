import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { compare, decide } from "./decisions.js";
import { unpinnedLoad } from "./ghz.js";
import type { Machine } from "./machine.js";
import { cpuTicks, machineTicks, processTree, rssBytes, selfTicks } from "./proc-stats.js";
import { checkRequestOf, encodeRequests, ghzCallData } from "./requests.js";
import { writeServerData } from "./server-files.js";
import { type RunningServer, startOpaEnvoy, startOurs } from "./servers.js";
import { OUR_TOKEN_CACHE_ENTRIES, buildWorkload } from "./workloads.js";

const MB = 1024 * 1024;
/** Checks per ghz run: ghz keeps every Check's latency in memory, so the soak goes in steps. */
const STEP = 100_000;
/** The resident memory after this share of the Checks is the baseline: the process is warm and its caches full. */
const WARM_SHARE = 0.1;

export interface SoakStep {
  readonly checks: number;
  readonly rps: number;
  readonly p99Ms: number;
  readonly errors: number;
  /** The median of the resident-memory samples taken during the step. */
  readonly rssMb: number;
}

export interface SoakResult {
  readonly kind: "soak";
  readonly format: 1;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly machine: Machine;
  readonly server: string;
  readonly workload: string;
  readonly checks: number;
  readonly steps: SoakStep[];
  /** Every sample: Checks sent so far and resident memory. */
  readonly samples: Array<{ readonly checks: number; readonly rssMb: number }>;
  readonly baselineMb: number;
  readonly endMb: number;
  readonly peakMb: number;
  /** From the baseline (after the warm-up share) to the end, in %. */
  readonly growthPct: number;
  /** Least-squares slope of the samples after the baseline, in MB per million Checks. */
  readonly slopeMbPerMillion: number;
  /** CPU used by other processes during the load, in % of the machine: how noisy the throughput is. */
  readonly foreignCpuPct?: number;
}

export interface SoakOptions {
  readonly root: string;
  readonly ghz: string;
  readonly opaEnvoy: string;
  readonly out: string;
  readonly machine: Machine;
  readonly checks: number;
  readonly server: "ours" | "opa-envoy";
  readonly seed: number;
  readonly workers: boolean;
  readonly log: (line: string) => void;
}

/** The middle value (of an even number, the upper of the two middle ones); NaN for none. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : sorted[Math.floor(sorted.length / 2)]!;
}

function slope(points: ReadonlyArray<{ checks: number; rssMb: number }>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p.checks, 0) / n;
  const my = points.reduce((s, p) => s + p.rssMb, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.checks - mx) * (p.rssMb - my);
    den += (p.checks - mx) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 1e6;
}

/**
 * Sends `checks` Checks of the soak workload (mixed, with a stream of distinct tokens that
 * keeps the token cache evicting) to one server as fast as it answers, sampling its
 * resident memory every second, and reports how much it grew after the warm-up.
 */
export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const startedAt = new Date().toISOString();
  o.log("bench: soak: minting tokens");
  const workload = await buildWorkload("soak", { distinctTokens: Math.ceil(OUR_TOKEN_CACHE_ENTRIES * 1.2), seed: o.seed });
  const dir = join(o.out, "soak");
  mkdirSync(dir, { recursive: true });
  const data = writeServerData(workload, dir);
  let server: RunningServer;
  if (o.server === "ours") {
    server = await startOurs({ root: o.root, dir, dataFile: data.ours, core: undefined, workers: o.workers ? 1 : undefined, name: "ours-soak" });
  } else {
    server = await startOpaEnvoy({
      binary: o.opaEnvoy,
      dir,
      policyFile: join(o.root, "bench", "opa-envoy", "authz.rego"),
      dataFile: data.opa,
      core: undefined,
      name: "opa-envoy-soak",
    });
  }
  const label = o.server === "ours" ? "scitokens-authz" : "OPA-Envoy";
  const samples: Array<{ checks: number; rssMb: number }> = [];
  const steps: SoakStep[] = [];
  let foreignCpuPct = 0;
  try {
    const requests = workload.requests.map((r, n) => checkRequestOf(r, n));
    o.log(`bench: soak: checking ${label}'s decisions on ${requests.length.toLocaleString("en")} requests`);
    const outcomes = await decide(server.target, requests);
    const agreement = compare(workload.requests, outcomes, outcomes);
    if (agreement.problems.length > 0) throw new Error(`soak: ${label} does not decide as expected:\n  ${agreement.problems.join("\n  ")}`);
    const dataFile = join(dir, "calldata.bin");
    writeFileSync(dataFile, ghzCallData(encodeRequests(workload.requests), workload.sequence));
    let sent = 0;
    const tree0 = processTree(server.pid);
    const [server0, self0, machine0] = [cpuTicks(tree0), selfTicks(), machineTicks()];
    o.log(`bench: soak: ${o.checks.toLocaleString("en")} Checks to ${label}, ${STEP.toLocaleString("en")} at a time`);
    while (sent < o.checks) {
      const total = Math.min(STEP, o.checks - sent);
      const stepSamples: number[] = [];
      const sampler = setInterval(() => {
        const rssMb = rssBytes(processTree(server.pid)) / MB;
        stepSamples.push(rssMb);
        samples.push({ checks: sent, rssMb });
      }, 1000);
      let load: Awaited<ReturnType<typeof unpinnedLoad>>;
      try {
        load = await unpinnedLoad({ ghz: o.ghz, root: o.root, cores: o.machine.cores, dataFile, dir }, server.target, total);
      } finally {
        clearInterval(sampler);
      }
      sent += total;
      const rssMb = stepSamples.length > 0 ? median(stepSamples) : rssBytes(processTree(server.pid)) / MB;
      steps.push({ checks: sent, rps: load.rps, p99Ms: load.latencyMs.p99, errors: load.errors, rssMb });
      samples.push({ checks: sent, rssMb: rssBytes(processTree(server.pid)) / MB });
      o.log(
        `  ${sent.toLocaleString("en").padStart(10)} Checks: ${Math.round(load.rps)}/s, p99 ${load.latencyMs.p99.toFixed(2)} ms, RSS ${rssMb.toFixed(1)} MB${load.errors > 0 ? `, ${load.errors} gRPC errors` : ""}`,
      );
    }
    const [server1, self1, machine1] = [cpuTicks(processTree(server.pid)), selfTicks(), machineTicks()];
    foreignCpuPct = Math.max(0, (100 * (machine1.busy - machine0.busy - (self1 - self0) - (server1 - server0))) / Math.max(1, machine1.total - machine0.total));
    rmSync(dataFile, { force: true });
  } finally {
    await server.stop();
  }
  const warm = steps.find((s) => s.checks >= o.checks * WARM_SHARE) ?? steps[0]!;
  const end = steps[steps.length - 1]!;
  const after = samples.filter((s) => s.checks >= warm.checks);
  const result: SoakResult = {
    kind: "soak",
    format: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: o.machine,
    server: label,
    workload: workload.description,
    checks: o.checks,
    steps,
    samples,
    baselineMb: warm.rssMb,
    endMb: end.rssMb,
    peakMb: Math.max(...samples.map((s) => s.rssMb)),
    growthPct: (100 * (end.rssMb - warm.rssMb)) / warm.rssMb,
    slopeMbPerMillion: slope(after),
    foreignCpuPct,
  };
  o.log(
    `bench: soak: ${label} RSS ${result.baselineMb.toFixed(1)} MB after ${warm.checks.toLocaleString("en")} Checks, ${result.endMb.toFixed(1)} MB after ${end.checks.toLocaleString("en")}: ` +
      `growth ${result.growthPct >= 0 ? "+" : ""}${result.growthPct.toFixed(1)} % (${result.slopeMbPerMillion.toFixed(2)} MB per million Checks), peak ${result.peakMb.toFixed(1)} MB`,
  );
  return result;
}
