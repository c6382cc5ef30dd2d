import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CheckRequest } from "../src/gen/envoy/service/auth/v3/external_auth.js";
import { type Agreement, compare, decide } from "./decisions.js";
import { type LoadResult, runLoad } from "./ghz.js";
import { CLOCK_TICKS_PER_SECOND, cpuTicks, machineTicks, peakRssBytes, processTree, rssBytes, selfTicks } from "./proc-stats.js";
import { ghzCallData } from "./requests.js";
import { type RunningServer, type ServerKind, httpText } from "./servers.js";
import type { Workload } from "./workloads.js";

const MB = 1024 * 1024;

/** How long each kind of run lasts, and the load generator's settings. */
export interface Schedule {
  readonly warmupSeconds: number;
  readonly saturationSeconds: number;
  readonly rateSeconds: number;
  /** Fixed rates besides 80 % of our saturation, in Checks per second. */
  readonly fixedRates: readonly number[];
  readonly concurrency: number;
  readonly connections: number;
}

export interface RunResult extends LoadResult {
  readonly phase: "saturation" | "rate";
  /** For a fixed-rate run: the rate asked for. */
  readonly targetRps?: number;
  /** utime + stime of the server (all its processes) over the run, per Check answered. */
  readonly cpuUsPerCheck: number;
  readonly rssPeakMb: number;
  readonly rssEndMb: number;
  /** CPU used by processes other than the servers and ghz meanwhile, in % of the machine: how noisy the figures are. */
  readonly foreignCpuPct: number;
  /** scitokens-authz only: the share of Checks whose token was in the verified-token cache. */
  readonly tokenCacheHitRatio?: number;
}

export interface ServerResult {
  readonly kind: ServerKind;
  readonly label: string;
  readonly runs: RunResult[];
  /** The largest resident memory of the server over its life (VmHWM of each process, summed). */
  readonly rssPeakLifetimeMb: number;
  readonly rssEndMb: number;
}

export interface ModeResult {
  readonly mode: "pinned" | "unpinned";
  readonly agreement: Agreement;
  readonly servers: ServerResult[];
}

export interface MeasureContext {
  readonly ghz: string;
  readonly protoset: string;
  readonly dir: string;
  readonly cores: number;
  readonly schedule: Schedule;
  readonly log: (line: string) => void;
}

interface Subject {
  readonly server: RunningServer;
  readonly label: string;
  /** Where its next run starts in a cyclic sequence. */
  offset: number;
  readonly runs: RunResult[];
  peakMb: number;
}

async function cacheCounts(server: RunningServer): Promise<{ hits: number; misses: number } | null> {
  if (server.kind === "opa-envoy") return null;
  const text = await httpText(`http://${server.admin}/metrics`);
  if (text === null) return null;
  const read = (name: string) => Number(new RegExp(`^scitokens_authz_${name}_total(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
  return { hits: read("token_cache_hits"), misses: read("token_cache_misses") };
}

/**
 * One ghz run against one server, with the server's CPU time and resident memory read
 * from /proc before, during (every 200 ms) and after, and the machine's busy time, to
 * tell how much of the CPU other processes took meanwhile.
 */
async function measuredRun(
  ctx: MeasureContext,
  workload: Workload,
  encoded: readonly Buffer[],
  subject: Subject,
  everyone: readonly Subject[],
  pinnedMode: boolean,
  run: { phase: "saturation" | "rate" | "warmup"; rps?: number; seconds: number },
): Promise<RunResult> {
  const dataFile = workload.cyclic ? join(ctx.dir, `calldata-${subject.server.kind}.bin`) : join(ctx.dir, "calldata.bin");
  if (workload.cyclic) writeFileSync(dataFile, ghzCallData(encoded, workload.sequence, subject.offset));
  const tree = processTree(subject.server.pid);
  const servers = everyone.flatMap((s) => processTree(s.server.pid));
  const cacheBefore = await cacheCounts(subject.server);
  const [cpu0, self0, all0, machine0] = [cpuTicks(tree), selfTicks(), cpuTicks(servers), machineTicks()];
  let peak = rssBytes(tree);
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssBytes(tree));
  }, 200);
  let load: LoadResult;
  try {
    load = await runLoad({
      ghz: ctx.ghz,
      protoset: ctx.protoset,
      target: subject.server.target,
      dataFile,
      outFile: join(ctx.dir, "ghz-report.json"),
      concurrency: ctx.schedule.concurrency,
      connections: ctx.schedule.connections,
      cpus: pinnedMode ? 1 : ctx.cores,
      core: pinnedMode ? 1 : undefined,
      rps: run.rps,
      seconds: run.seconds,
    });
  } finally {
    clearInterval(sampler);
  }
  const [cpu1, self1, all1, machine1] = [cpuTicks(tree), selfTicks(), cpuTicks(servers), machineTicks()];
  const end = rssBytes(tree);
  peak = Math.max(peak, end);
  subject.peakMb = Math.max(subject.peakMb, peak / MB);
  const cacheAfter = await cacheCounts(subject.server);
  // The next run starts after the Checks answered and the ones still in flight when ghz
  // stopped (at most its concurrency): resending those would find them in our cache.
  if (workload.cyclic) subject.offset = (subject.offset + load.count + load.errors + ctx.schedule.concurrency) % workload.sequence.length;
  const foreign = machine1.busy - machine0.busy - (self1 - self0) - (all1 - all0);
  const lookups = cacheBefore && cacheAfter ? cacheAfter.hits - cacheBefore.hits + (cacheAfter.misses - cacheBefore.misses) : Number.NaN;
  const result: RunResult = {
    ...load,
    phase: run.phase === "warmup" ? "saturation" : run.phase,
    ...(run.rps !== undefined ? { targetRps: run.rps } : {}),
    cpuUsPerCheck: (((cpu1 - cpu0) / CLOCK_TICKS_PER_SECOND) * 1e6) / Math.max(1, load.count),
    rssPeakMb: peak / MB,
    rssEndMb: end / MB,
    foreignCpuPct: Math.max(0, (100 * foreign) / Math.max(1, machine1.total - machine0.total)),
    ...(lookups > 0 && cacheBefore && cacheAfter ? { tokenCacheHitRatio: (cacheAfter.hits - cacheBefore.hits) / lookups } : {}),
  };
  const rate = run.rps !== undefined ? ` at ${Math.round(run.rps)}/s` : "";
  ctx.log(
    `    ${subject.label.padEnd(24)} ${run.phase}${rate}: ${Math.round(load.rps)} Checks/s, p50 ${load.latencyMs.p50.toFixed(2)} ms, p99 ${load.latencyMs.p99.toFixed(2)} ms, ` +
      `${Math.round(result.cpuUsPerCheck)} µs CPU/Check, RSS ${Math.round(result.rssEndMb)} MB` +
      (result.tokenCacheHitRatio !== undefined ? `, token cache hits ${(100 * result.tokenCacheHitRatio).toFixed(1)} %` : "") +
      (load.errors > 0 ? `, ${load.errors} gRPC errors ${JSON.stringify(load.errorKinds)}` : "") +
      (result.foreignCpuPct >= 5 ? ` (others used ${Math.round(result.foreignCpuPct)} % of the CPU)` : ""),
  );
  if (run.phase !== "warmup") subject.runs.push(result);
  return result;
}

/**
 * Measures one workload in one mode with servers already started: every server's
 * decisions on every request are checked first (scitokens-authz's against OPA-Envoy's
 * and both against the workload's expectation; a difference stops the benchmark), then
 * a warm-up, the saturation runs, and the fixed-rate runs, each round interleaving the
 * servers (the order alternates from round to round).
 */
export async function measureMode(
  ctx: MeasureContext,
  workload: Workload,
  requests: readonly CheckRequest[],
  encoded: readonly Buffer[],
  mode: "pinned" | "unpinned",
  started: ReadonlyArray<{ server: RunningServer; label: string }>,
): Promise<ModeResult> {
  const ours = started.find((s) => s.server.kind === "ours");
  const opa = started.find((s) => s.server.kind === "opa-envoy");
  if (!ours || !opa) throw new Error("measureMode needs scitokens-authz and OPA-Envoy");
  ctx.log(`  ${mode}: checking the decisions on ${requests.length.toLocaleString("en")} requests`);
  const outcomes = new Map<RunningServer, Awaited<ReturnType<typeof decide>>>();
  for (const { server } of started) outcomes.set(server, await decide(server.target, requests));
  const agreement = compare(workload.requests, outcomes.get(ours.server)!, outcomes.get(opa.server)!);
  for (const { server, label } of started) {
    if (server.kind !== "ours-workers") continue;
    const other = compare(workload.requests, outcomes.get(server)!, outcomes.get(opa.server)!);
    if (other.disagreements > 0) agreement.problems.push(...other.problems.map((p) => `${label}: ${p}`));
  }
  if (agreement.problems.length > 0) {
    throw new Error(`${workload.name} (${mode}): the servers do not decide alike, so their figures would not compare:\n  ${agreement.problems.join("\n  ")}`);
  }
  if (!workload.cyclic) writeFileSync(join(ctx.dir, "calldata.bin"), ghzCallData(encoded, workload.sequence));
  const subjects: Subject[] = started.map(({ server, label }) => ({ server, label, offset: 0, runs: [], peakMb: 0 }));
  const pinnedMode = mode === "pinned";
  let round = 0;
  const inTurn = () => (round++ % 2 === 0 ? subjects : [...subjects].reverse());
  for (const subject of inTurn())
    await measuredRun(ctx, workload, encoded, subject, subjects, pinnedMode, { phase: "warmup", seconds: ctx.schedule.warmupSeconds });
  const saturation = new Map<Subject, RunResult>();
  for (const subject of inTurn()) {
    saturation.set(
      subject,
      await measuredRun(ctx, workload, encoded, subject, subjects, pinnedMode, { phase: "saturation", seconds: ctx.schedule.saturationSeconds }),
    );
  }
  const oursSubject = subjects.find((s) => s.server === ours.server)!;
  const eighty = Math.round(0.8 * saturation.get(oursSubject)!.rps);
  for (const rps of [...ctx.schedule.fixedRates, eighty]) {
    for (const subject of inTurn())
      await measuredRun(ctx, workload, encoded, subject, subjects, pinnedMode, { phase: "rate", rps, seconds: ctx.schedule.rateSeconds });
  }
  return {
    mode,
    agreement,
    servers: subjects.map((s) => {
      const tree = processTree(s.server.pid);
      return {
        kind: s.server.kind,
        label: s.label,
        runs: s.runs,
        rssPeakLifetimeMb: Math.max(s.peakMb, peakRssBytes(tree) / MB),
        rssEndMb: rssBytes(tree) / MB,
      };
    }),
  };
}
