import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Series, barChart } from "./chart.js";
import type { Machine } from "./machine.js";
import type { ModeResult, RunResult, Schedule, ServerResult } from "./measure.js";
import { MEMORY_SETTINGS, type MemoryResult } from "./memory.js";
import { type SoakResult, median } from "./soak.js";

export interface WorkloadResult {
  readonly name: string;
  readonly description: string;
  readonly alg: string;
  readonly distinctRequests: number;
  readonly sequenceLength: number;
  readonly modes: ModeResult[];
}

export interface BenchResults {
  readonly format: 1;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly quick: boolean;
  readonly note: string | null;
  readonly machine: Machine;
  readonly schedule: Schedule;
  /** Workers measured (unpinned), or null when the build had no --workers. */
  readonly workers: number | null;
  readonly workloads: WorkloadResult[];
}

const DOC = join("docs", "benchmarks.md");
const CHART = "benchmarks-throughput.svg";
const RESULTS = ["<!-- bench:results:begin -->", "<!-- bench:results:end -->"] as const;
const SOAK = ["<!-- bench:soak:begin -->", "<!-- bench:soak:end -->"] as const;
const MEMORY = ["<!-- bench:memory:begin -->", "<!-- bench:memory:end -->"] as const;
/** A run during which other processes used at least this much of the machine's CPU counts as noisy. */
const NOISY_PCT = 5;
/** A fixed-rate run that reached less than this share of its rate ran the server past saturation. */
const REACHED = 0.95;

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en") : "–");
const ms = (n: number) => (!Number.isFinite(n) ? "–" : n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? `${(a / b).toFixed(2)}×` : "–");
const day = (iso: string) => iso.slice(0, 10);

function saturation(server: ServerResult | undefined): RunResult | undefined {
  return server?.runs.find((r) => r.phase === "saturation");
}

function find(mode: ModeResult | undefined, kind: ServerResult["kind"]): ServerResult | undefined {
  return mode?.servers.find((s) => s.kind === kind);
}

function modeOf(w: WorkloadResult, mode: "pinned" | "unpinned"): ModeResult | undefined {
  return w.modes.find((m) => m.mode === mode);
}

function allRuns(results: BenchResults): RunResult[] {
  return results.workloads.flatMap((w) => w.modes.flatMap((m) => m.servers.flatMap((s) => s.runs)));
}

function noiseLine(results: BenchResults): string[] {
  const foreign = allRuns(results)
    .map((r) => r.foreignCpuPct)
    .sort((a, b) => a - b);
  if (foreign.length === 0) return [];
  const median = foreign[Math.floor(foreign.length / 2)]!;
  const max = foreign[foreign.length - 1]!;
  const noisy = foreign.filter((f) => f >= NOISY_PCT).length;
  if (noisy === 0) return [`Other processes used under ${NOISY_PCT} % of the machine's CPU during every measurement (largest ${max.toFixed(1)} %).`, ""];
  return [
    `> **Noisy figures, not final.** Other processes used ${NOISY_PCT} % or more of this machine's CPU during ${noisy} of the ${foreign.length} measurements ` +
      `(median ${median.toFixed(0)} %, largest ${max.toFixed(0)} %). The servers and ghz competed with them for the cores, so throughput is lower and ` +
      "latency higher than on a quiet machine, and the ratios are uncertain. Rerun `npm run bench` on a quiet machine before quoting them.",
    "",
  ];
}

function machineTable(m: Machine): string[] {
  return [
    "| CPU | cores | memory | kernel | Node.js | OPA-Envoy | ghz | scitokens-authz |",
    "|---|---|---|---|---|---|---|---|",
    `| ${m.cpuModel} | ${m.cores} | ${m.memoryGb} GB | ${m.kernel} | ${m.node} | ${m.opaEnvoy} | ${m.ghz} | ${m.commit} |`,
    "",
  ];
}

function throughputTable(results: BenchResults): string[] {
  const modes = (["pinned", "unpinned"] as const).filter((mode) => results.workloads.some((w) => modeOf(w, mode)));
  const workers = results.workers !== null && modes.includes("unpinned");
  const head = ["workload", ...modes.flatMap((mode) => [`${mode}: scitokens-authz`, `${mode}: OPA-Envoy`, "ratio"])];
  if (workers) head.push(`scitokens-authz ×${results.workers} workers`, "ratio");
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  for (const wl of results.workloads) {
    const cells = [`\`${wl.name}\``];
    for (const mode of modes) {
      const ours = saturation(find(modeOf(wl, mode), "ours"))?.rps;
      const opa = saturation(find(modeOf(wl, mode), "opa-envoy"))?.rps;
      cells.push(int(ours ?? Number.NaN), int(opa ?? Number.NaN), ratio(ours, opa));
    }
    if (workers) {
      const x = saturation(find(modeOf(wl, "unpinned"), "ours-workers"))?.rps;
      cells.push(int(x ?? Number.NaN), ratio(x, saturation(find(modeOf(wl, "unpinned"), "opa-envoy"))?.rps));
    }
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return [...lines, ""];
}

function latencyCell(run: RunResult | undefined): string {
  if (!run) return "–";
  const l = run.latencyMs;
  const cell = `${ms(l.p50)} / ${ms(l.p99)} / ${ms(l.p999)}`;
  const target = run.targetRps ?? 0;
  return run.rps < REACHED * target ? `${cell} (saturated: ${int(run.rps)}/s)` : cell;
}

function latencyTables(results: BenchResults): string[] {
  const lines: string[] = [];
  for (const mode of ["pinned", "unpinned"] as const) {
    if (!results.workloads.some((w) => modeOf(w, mode))) continue;
    const workers = mode === "unpinned" && results.workers !== null;
    const head = ["workload", "rate (Checks/s)", "scitokens-authz", "OPA-Envoy"];
    if (workers) head.push(`scitokens-authz ×${results.workers}`);
    lines.push(
      `**${mode === "pinned" ? "Pinned" : "Unpinned"}** (p50 / p99 / p99.9, ms):`,
      "",
      `| ${head.join(" | ")} |`,
      `|${head.map(() => "---").join("|")}|`,
    );
    for (const wl of results.workloads) {
      const m = modeOf(wl, mode);
      if (!m) continue;
      const rates = (find(m, "ours")?.runs ?? []).filter((r) => r.phase === "rate").map((r) => r.targetRps ?? 0);
      rates.forEach((rate, i) => {
        const at = (kind: ServerResult["kind"]) => find(m, kind)?.runs.filter((r) => r.phase === "rate")[i];
        const label = i === rates.length - 1 ? `${int(rate)} (80 % of ours)` : int(rate);
        const cells = [`\`${wl.name}\``, label, latencyCell(at("ours")), latencyCell(at("opa-envoy"))];
        if (workers) cells.push(latencyCell(at("ours-workers")));
        lines.push(`| ${cells.join(" | ")} |`);
      });
    }
    lines.push("");
  }
  return lines;
}

function resourceTable(results: BenchResults): string[] {
  const lines = [
    "| workload | mode | server | CPU µs per Check at saturation | at 1,000/s | RSS peak (MB) | RSS at the end (MB) | our token cache hits at saturation |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const wl of results.workloads) {
    for (const m of wl.modes) {
      for (const s of m.servers) {
        const sat = saturation(s);
        const low = s.runs.find((r) => r.phase === "rate" && r.targetRps === 1000);
        const hits = sat?.tokenCacheHitRatio !== undefined ? `${(100 * sat.tokenCacheHitRatio).toFixed(1)} %` : "–";
        lines.push(
          `| \`${wl.name}\` | ${m.mode} | ${s.label} | ${int(sat?.cpuUsPerCheck ?? Number.NaN)} | ${int(low?.cpuUsPerCheck ?? Number.NaN)} | ${int(s.rssPeakLifetimeMb)} | ${int(s.rssEndMb)} | ${hits} |`,
        );
      }
    }
  }
  return [...lines, ""];
}

/** Every figure where OPA-Envoy does better than scitokens-authz (one process, same mode), said plainly. */
function whereWeLose(results: BenchResults): string[] {
  const losses: string[] = [];
  for (const wl of results.workloads) {
    for (const m of wl.modes) {
      const ours = find(m, "ours");
      const opa = find(m, "opa-envoy");
      if (!ours || !opa) continue;
      const where = `\`${wl.name}\`, ${m.mode}`;
      const a = saturation(ours);
      const b = saturation(opa);
      if (a && b && a.rps < b.rps) losses.push(`${where}: throughput ${int(a.rps)}/s against OPA-Envoy's ${int(b.rps)}/s (${ratio(a.rps, b.rps)}).`);
      if (a && b && a.cpuUsPerCheck > b.cpuUsPerCheck)
        losses.push(`${where}: ${int(a.cpuUsPerCheck)} µs of CPU per Check at saturation against ${int(b.cpuUsPerCheck)} µs.`);
      ours.runs.forEach((r, i) => {
        const o = opa.runs[i];
        if (r.phase !== "rate" || !o || o.rps < REACHED * (o.targetRps ?? 0)) return;
        if (r.latencyMs.p99 > o.latencyMs.p99)
          losses.push(`${where}: p99 at ${int(r.targetRps ?? 0)}/s ${ms(r.latencyMs.p99)} ms against ${ms(o.latencyMs.p99)} ms.`);
      });
      if (ours.rssPeakLifetimeMb > opa.rssPeakLifetimeMb)
        losses.push(`${where}: peak RSS ${int(ours.rssPeakLifetimeMb)} MB against ${int(opa.rssPeakLifetimeMb)} MB.`);
    }
  }
  if (losses.length === 0) return ["In this run no figure of scitokens-authz (one process) is worse than OPA-Envoy's in the same mode.", ""];
  return [...losses.map((l) => `- ${l}`), ""];
}

function decisionsTable(results: BenchResults): string[] {
  const lines = ["| workload | distinct requests | sent in a cycle of | outcomes (each checked on both servers) |", "|---|---|---|---|"];
  for (const wl of results.workloads) {
    const agreement = wl.modes[0]?.agreement;
    if (!agreement) continue;
    const counts = new Map<string, number>();
    for (const byOutcome of Object.values(agreement.outcomes))
      for (const [outcome, n] of Object.entries(byOutcome)) counts.set(outcome, (counts.get(outcome) ?? 0) + n);
    const outcomes = [...counts].map(([outcome, n]) => `${outcome}: ${int(n)}`).join(", ");
    lines.push(`| \`${wl.name}\` | ${int(wl.distinctRequests)} | ${int(wl.sequenceLength)} | ${outcomes} |`);
  }
  return [...lines, ""];
}

function throughputChart(results: BenchResults): string {
  const series: Series[] = [
    { name: "scitokens-authz, pinned", color: "#1f77b4" },
    { name: "OPA-Envoy, pinned", color: "#ff7f0e" },
    { name: "scitokens-authz, unpinned", color: "#6baed6" },
    { name: "OPA-Envoy, unpinned", color: "#fdae6b" },
  ];
  if (results.workers !== null) series.push({ name: `scitokens-authz ×${results.workers}`, color: "#2ca02c" });
  return barChart({
    title: `Throughput at saturation${results.quick ? " (quick run)" : ""}${allRuns(results).some((r) => r.foreignCpuPct >= NOISY_PCT) ? " — noisy: other load on the machine" : ""}`,
    unit: "Checks per second",
    series,
    groups: results.workloads.map((wl) => {
      const values = [
        saturation(find(modeOf(wl, "pinned"), "ours"))?.rps ?? null,
        saturation(find(modeOf(wl, "pinned"), "opa-envoy"))?.rps ?? null,
        saturation(find(modeOf(wl, "unpinned"), "ours"))?.rps ?? null,
        saturation(find(modeOf(wl, "unpinned"), "opa-envoy"))?.rps ?? null,
      ];
      if (results.workers !== null) values.push(saturation(find(modeOf(wl, "unpinned"), "ours-workers"))?.rps ?? null);
      return { label: wl.name, values };
    }),
  });
}

function resultsSection(results: BenchResults, note: string | undefined): string[] {
  const s = results.schedule;
  const kind = results.quick
    ? `a quick run (\`--quick\`: ${s.saturationSeconds} s at saturation, ${s.rateSeconds} s per fixed rate): indicative only`
    : `a full run (${s.saturationSeconds} s at saturation, ${s.rateSeconds} s per fixed rate, after ${s.warmupSeconds} s of warm-up)`;
  const notes = [...new Set([results.note, note].filter((n): n is string => typeof n === "string" && n !== ""))];
  return [
    `_Measured ${day(results.startedAt)} by \`npm run bench\`, ${kind}; ghz with ${s.concurrency} concurrent Checks over ${s.connections} connections._`,
    "",
    ...notes.flatMap((n) => [`> ${n}`, ""]),
    ...(results.quick ? ["> **Quick run.** A few seconds per measurement: the figures show the shape, not the values to quote.", ""] : []),
    ...noiseLine(results),
    "#### Machine",
    "",
    ...machineTable(results.machine),
    "#### Throughput at saturation (Checks per second)",
    "",
    "Ratio: scitokens-authz ÷ OPA-Envoy, in the same mode.",
    "",
    ...throughputTable(results),
    `![Throughput at saturation, per workload and server](${CHART})`,
    "",
    "#### Latency at fixed rates",
    "",
    "A rate above what a server reaches is marked _saturated_ with the rate it reached; its latency is then the queue's.",
    "",
    ...latencyTables(results),
    "#### CPU and memory",
    "",
    ...resourceTable(results),
    "#### Where OPA-Envoy does better",
    "",
    ...whereWeLose(results),
    "#### Decisions checked before measuring",
    "",
    ...decisionsTable(results),
  ];
}

function soakSection(soak: SoakResult, note: string | undefined): string[] {
  const every = Math.max(1, Math.floor(soak.steps.length / 10));
  const rows = soak.steps.filter((_, i) => i % every === every - 1 || i === soak.steps.length - 1);
  const noisy = (soak.foreignCpuPct ?? 0) >= NOISY_PCT;
  return [
    `_Measured ${day(soak.startedAt)} by \`npm run bench -- soak\`: ${int(soak.checks)} Checks to ${soak.server} (commit ${soak.machine.commit}, ${soak.machine.cores} cores), ${soak.workload}._`,
    "",
    ...(note ? [`> ${note}`, ""] : []),
    ...(noisy
      ? [
          `> **Noisy figures, not final.** Other processes used ${Math.round(soak.foreignCpuPct ?? 0)} % of the machine's CPU during the soak: throughput is lower than on a quiet machine (memory figures are less affected).`,
          "",
        ]
      : []),
    "| Checks sent | Checks/s | p99 (ms) | RSS (MB, median of the step) |",
    "|---|---|---|---|",
    ...rows.map((s) => `| ${int(s.checks)} | ${int(s.rps)} | ${ms(s.p99Ms)} | ${s.rssMb.toFixed(1)} |`),
    "",
    `Resident memory ${soak.baselineMb.toFixed(1)} MB once warm (after 10 % of the Checks), ${soak.endMb.toFixed(1)} MB at the end: ` +
      `**${soak.growthPct >= 0 ? "+" : ""}${soak.growthPct.toFixed(1)} %** (${soak.slopeMbPerMillion.toFixed(2)} MB per million Checks after the warm-up); peak ${soak.peakMb.toFixed(1)} MB. ` +
      `Target: under 5 % growth — ${Math.abs(soak.growthPct) < 5 ? "met" : "not met"}.`,
    "",
  ];
}

/** "median [least–most]" of the values, each formatted by `f`; the value alone for one. */
function spread(values: readonly number[], f: (n: number) => string): string {
  if (values.length === 0) return "–";
  const middle = f(median(values));
  return values.length === 1 ? middle : `${middle} [${f(Math.min(...values))}–${f(Math.max(...values))}]`;
}

function memorySection(memory: MemoryResult, note: string | undefined): string[] {
  const rounds = Math.max(0, ...memory.runs.map((r) => r.round));
  const noisy = memory.foreignCpuPct >= NOISY_PCT;
  return [
    `_Measured ${day(memory.startedAt)} by \`npm run bench -- memory\` (commit ${memory.machine.commit}, ${memory.machine.cores} cores): one process (\`--workers 1\`) per setting, ${memory.workload}; ` +
      `${int(memory.warmupChecks)} Checks of warm-up, then ${int(memory.checks)} at saturation (64 in flight over 4 connections); ${rounds} ${rounds === 1 ? "round" : "rounds"}, the settings in turn. Median [least–most] of the rounds._`,
    "",
    ...(note ? [`> ${note}`, ""] : []),
    ...(noisy ? [`> **Noisy figures, not final.** Other processes used ${Math.round(memory.foreignCpuPct)} % of the machine's CPU during the runs.`, ""] : []),
    "| setting | RSS after the Checks (MB) | CPU µs per Check | Checks/s | collector pauses, µs per Check |",
    "|---|---|---|---|---|",
    ...MEMORY_SETTINGS.map((setting) => {
      const runs = memory.runs.filter((r) => r.setting === setting.id);
      return `| ${setting.label} | ${spread(
        runs.map((r) => r.rssMb),
        int,
      )} | ${spread(
        runs.map((r) => r.cpuUsPerCheck),
        int,
      )} | ${spread(
        runs.map((r) => r.rps),
        int,
      )} | ${spread(
        runs.map((r) => r.gcUsPerCheck),
        (n) => n.toFixed(1),
      )} |`;
    }),
    "",
  ];
}

function replaceBetween(text: string, [begin, end]: readonly [string, string], body: string[], file: string): string {
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a === -1 || b === -1 || b < a) throw new Error(`${file}: expected the markers ${begin} and ${end} around the generated part`);
  return `${text.slice(0, a + begin.length)}\n${body.join("\n")}\n${text.slice(b)}`;
}

/**
 * Writes the report: the page docs/benchmarks.md with its generated parts replaced (the
 * results, or the soak), and its chart, into `out`; with `writeDocs` also into docs/.
 * Returns the files written.
 */
export function writeReport(
  root: string,
  parts: { readonly results?: BenchResults; readonly soak?: SoakResult; readonly memory?: MemoryResult },
  o: { readonly out: string; readonly writeDocs: boolean; readonly note: string | undefined },
): string[] {
  const { results, soak, memory } = parts;
  const docFile = join(root, DOC);
  const previewFile = join(o.out, "benchmarks.md");
  // A report of a soak alone builds on the preview of the run in the same folder, if any.
  let text = readFileSync(!o.writeDocs && existsSync(previewFile) ? previewFile : docFile, "utf8");
  const written: string[] = [];
  const chart = results ? throughputChart(results) : null;
  if (results) text = replaceBetween(text, RESULTS, resultsSection(results, o.note), DOC);
  if (soak) text = replaceBetween(text, SOAK, soakSection(soak, o.note), DOC);
  if (memory) text = replaceBetween(text, MEMORY, memorySection(memory, o.note), DOC);
  const targets = o.writeDocs ? [o.out, join(root, "docs")] : [o.out];
  for (const dir of targets) {
    const md = join(dir, "benchmarks.md");
    writeFileSync(md, text);
    written.push(md);
    if (chart) {
      writeFileSync(join(dir, CHART), chart);
      written.push(join(dir, CHART));
    }
  }
  return written;
}
