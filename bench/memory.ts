import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { compare, decide } from "./decisions.js";
import { unpinnedLoad } from "./ghz.js";
import type { Machine } from "./machine.js";
import { CLOCK_TICKS_PER_SECOND, cpuTicks, machineTicks, processTree, rssBytes, selfTicks } from "./proc-stats.js";
import { checkRequestOf, encodeRequests, ghzCallData } from "./requests.js";
import { writeServerData } from "./server-files.js";
import { type RunningServer, startOurs } from "./servers.js";
import { OUR_TOKEN_CACHE_ENTRIES, buildWorkload } from "./workloads.js";

const MB = 1024 * 1024;

/** The `memory` settings compared: V8's own sizing, the default, and the default with a bounded old generation. */
export const MEMORY_SETTINGS = [
  { id: "v8", label: "V8's own sizing (`max_semi_space_mb: null`)", memory: { max_semi_space_mb: null } },
  { id: "default", label: "`max_semi_space_mb: 8` (the default)", memory: {} },
  { id: "growing-20", label: "`8` and `heap_growing_percent: 20`", memory: { heap_growing_percent: 20 } },
] as const;

export interface MemoryRun {
  readonly setting: string;
  readonly round: number;
  readonly checks: number;
  readonly rps: number;
  readonly cpuUsPerCheck: number;
  /** Time the collector stopped the main thread (nodejs_gc_duration_seconds), per Check. */
  readonly gcUsPerCheck: number;
  /** Resident memory once the measured Checks are answered. */
  readonly rssMb: number;
}

export interface MemoryResult {
  readonly kind: "memory";
  readonly format: 1;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly machine: Machine;
  readonly workload: string;
  readonly warmupChecks: number;
  readonly checks: number;
  readonly runs: MemoryRun[];
  /** CPU used by other processes during the runs, in % of the machine. */
  readonly foreignCpuPct: number;
}

export interface MemoryOptions {
  readonly root: string;
  readonly ghz: string;
  readonly out: string;
  readonly machine: Machine;
  readonly rounds: number;
  readonly quick: boolean;
  readonly seed: number;
  readonly log: (line: string) => void;
}

/** The sum of the collector's pause time so far, in seconds, from the server's /metrics. */
async function gcSeconds(server: RunningServer): Promise<number> {
  const response = await fetch(`http://${server.admin}/metrics`);
  if (!response.ok) throw new Error(`memory: GET http://${server.admin}/metrics answered ${response.status}`);
  let sum = 0;
  for (const line of (await response.text()).split("\n")) {
    if (line.startsWith("nodejs_gc_duration_seconds_sum{")) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/**
 * Runs one process of scitokens-authz under each `memory` setting in turn, `rounds` times
 * (the order turning each round, so slow drifts of the machine touch every setting), on
 * the soak workload at saturation: its resident memory, CPU and collector time per Check.
 */
export async function runMemory(o: MemoryOptions): Promise<MemoryResult> {
  const startedAt = new Date().toISOString();
  const [warmupChecks, checks] = o.quick ? [5_000, 20_000] : [20_000, 80_000];
  o.log("bench: memory: minting tokens");
  const workload = await buildWorkload("soak", { distinctTokens: Math.ceil(OUR_TOKEN_CACHE_ENTRIES * 1.2), seed: o.seed });
  const dir = join(o.out, "memory");
  mkdirSync(dir, { recursive: true });
  const data = writeServerData(workload, dir);
  const dataFile = join(dir, "calldata.bin");
  writeFileSync(dataFile, ghzCallData(encodeRequests(workload.requests), workload.sequence));
  const load = (server: RunningServer, total: number) =>
    unpinnedLoad({ ghz: o.ghz, root: o.root, cores: o.machine.cores, dataFile, dir }, server.target, total);
  const runs: MemoryRun[] = [];
  const [self0, machine0] = [selfTicks(), machineTicks()];
  try {
    for (let round = 1; round <= o.rounds; round++) {
      const order = MEMORY_SETTINGS.map((_, i) => MEMORY_SETTINGS[(i + round - 1) % MEMORY_SETTINGS.length]!);
      for (const setting of order) {
        const server = await startOurs({
          root: o.root,
          dir,
          dataFile: data.ours,
          core: undefined,
          workers: 1,
          name: `ours-${setting.id}`,
          memory: setting.memory,
        });
        try {
          if (round === 1 && setting === order[0]) {
            const requests = workload.requests.map((r, n) => checkRequestOf(r, n));
            o.log(`bench: memory: checking the decisions on ${requests.length.toLocaleString("en")} requests`);
            const outcomes = await decide(server.target, requests);
            const agreement = compare(workload.requests, outcomes, outcomes);
            if (agreement.problems.length > 0) throw new Error(`memory: scitokens-authz does not decide as expected:\n  ${agreement.problems.join("\n  ")}`);
          }
          await load(server, warmupChecks);
          const tree = processTree(server.pid);
          const [cpu0, gc0] = [cpuTicks(tree), await gcSeconds(server)];
          const measured = await load(server, checks);
          const [cpu1, gc1] = [cpuTicks(processTree(server.pid)), await gcSeconds(server)];
          const run: MemoryRun = {
            setting: setting.id,
            round,
            checks,
            rps: measured.rps,
            cpuUsPerCheck: ((cpu1 - cpu0) / CLOCK_TICKS_PER_SECOND / checks) * 1e6,
            gcUsPerCheck: ((gc1 - gc0) / checks) * 1e6,
            rssMb: rssBytes(processTree(server.pid)) / MB,
          };
          runs.push(run);
          o.log(
            `  round ${round}, ${setting.id.padEnd(10)} ${Math.round(run.rps)} Checks/s, ${Math.round(run.cpuUsPerCheck)} µs CPU/Check, ` +
              `${run.gcUsPerCheck.toFixed(1)} µs collector/Check, RSS ${run.rssMb.toFixed(0)} MB`,
          );
        } finally {
          await server.stop();
        }
      }
    }
  } finally {
    rmSync(dataFile, { force: true });
  }
  const [self1, machine1] = [selfTicks(), machineTicks()];
  // The servers and ghz are this process's children, waited for: their CPU is in selfTicks.
  const foreignCpuPct = Math.max(0, (100 * (machine1.busy - machine0.busy - (self1 - self0))) / Math.max(1, machine1.total - machine0.total));
  return {
    kind: "memory",
    format: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: o.machine,
    workload: workload.description,
    warmupChecks,
    checks,
    runs,
    foreignCpuPct,
  };
}
