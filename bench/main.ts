import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describeMachine } from "./machine.js";
import { type ModeResult, type Schedule, measureMode } from "./measure.js";
import { type MemoryResult, runMemory } from "./memory.js";
import { type BenchOptions, USAGE, UsageError, parseOptions } from "./options.js";
import { type BenchResults, type WorkloadResult, writeReport } from "./report.js";
import { checkRequestOf, encodeRequests } from "./requests.js";
import { writeServerData } from "./server-files.js";
import { type RunningServer, hasTaskset, startOpaEnvoy, startOurs } from "./servers.js";
import { type SoakResult, runSoak } from "./soak.js";
import { OUR_TOKEN_CACHE_ENTRIES, buildWorkload } from "./workloads.js";

/** What scripts/bench.mjs hands over once the tools are installed. */
export interface BenchEnvironment {
  readonly root: string;
  readonly ghz: string;
  readonly opaEnvoy: string;
  readonly versions: { readonly opaEnvoy: string; readonly ghz: string };
}

const FULL: Schedule = { warmupSeconds: 3, saturationSeconds: 10, rateSeconds: 8, fixedRates: [1000, 5000], concurrency: 64, connections: 4 };
const QUICK: Schedule = { warmupSeconds: 1, saturationSeconds: 2, rateSeconds: 1, fixedRates: [1000, 5000], concurrency: 64, connections: 4 };

const log = (line: string) => process.stderr.write(`${line}\n`);

function outDir(options: BenchOptions): string {
  if (options.out === undefined) return mkdtempSync(join(tmpdir(), "scitokens-authz-bench-"));
  const dir = resolve(options.out);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Whether this build of scitokens-authz has `serve --workers N` (multi-process mode; issue 11). */
function workersFlag(root: string): boolean {
  // The usage text (printed with exit 0 by this build, with exit 2 by older ones) names the flag.
  let usage: string;
  try {
    usage = execFileSync(process.execPath, [join(root, "dist", "cli", "bin.js")], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    const { stdout = "", stderr = "" } = error as { stdout?: string; stderr?: string };
    usage = `${stdout}${stderr}`;
  }
  return /--workers\b/.test(usage);
}

async function run(options: BenchOptions, env: BenchEnvironment): Promise<void> {
  const out = outDir(options);
  const schedule = options.quick ? QUICK : FULL;
  const machine = describeMachine(env.root, env.versions);
  const workers = workersFlag(env.root);
  const modes = options.modes.filter((mode) => mode !== "pinned" || machine.cores >= 2);
  if (modes.includes("pinned") && !hasTaskset()) throw new Error("pinned runs need taskset (util-linux); run with --modes unpinned, or install it");
  if (modes.length < options.modes.length) log("bench: pinned runs need 2 cores (server on one, ghz on the other): skipped");
  log(`bench: ${machine.cpuModel}, ${machine.cores} cores; scitokens-authz ${machine.commit}; ${machine.opaEnvoy}; ghz ${machine.ghz}; Node ${machine.node}`);
  log(
    workers
      ? `bench: this build has --workers: also measuring ${machine.cores} workers (unpinned)`
      : "bench: this build has no --workers (multi-process mode pending): one process only",
  );
  log(`bench: results in ${out}`);
  const results: BenchResults = {
    format: 1,
    startedAt: new Date().toISOString(),
    finishedAt: "",
    quick: options.quick,
    note: options.note ?? null,
    machine,
    schedule,
    workers: workers ? machine.cores : null,
    workloads: [],
  };
  // A cycle longer than our cache (by far more than the Checks in flight) misses it on every Check.
  const distinctTokens = options.quick ? Math.ceil(OUR_TOKEN_CACHE_ENTRIES * 1.1) : OUR_TOKEN_CACHE_ENTRIES * 2.4;
  for (const name of options.workloads) {
    log(`bench: workload ${name}: minting tokens`);
    const workload = await buildWorkload(name, { distinctTokens, seed: options.seed });
    const dir = join(out, name);
    mkdirSync(dir, { recursive: true });
    const data = writeServerData(workload, dir);
    const requests = workload.requests.map((r, n) => checkRequestOf(r, n));
    const encoded = encodeRequests(workload.requests);
    const modeResults: ModeResult[] = [];
    for (const mode of modes) {
      const core = mode === "pinned" ? 0 : undefined;
      const started: Array<{ server: RunningServer; label: string }> = [];
      try {
        started.push({
          server: await startOurs({ root: env.root, dir, dataFile: data.ours, core, workers: workers ? 1 : undefined, name: `ours-${mode}` }),
          label: "scitokens-authz",
        });
        started.push({
          server: await startOpaEnvoy({
            binary: env.opaEnvoy,
            dir,
            policyFile: join(env.root, "bench", "opa-envoy", "authz.rego"),
            dataFile: data.opa,
            core,
            name: `opa-envoy-${mode}`,
          }),
          label: "OPA-Envoy",
        });
        if (workers && mode === "unpinned") {
          started.push({
            server: await startOurs({ root: env.root, dir, dataFile: data.ours, core, workers: machine.cores, name: `ours-workers-${mode}` }),
            label: `scitokens-authz ×${machine.cores}`,
          });
        }
        modeResults.push(
          await measureMode(
            { ghz: env.ghz, protoset: join(env.root, "build", "grpc-descriptors.binpb"), dir, cores: machine.cores, schedule, log },
            workload,
            requests,
            encoded,
            mode,
            started,
          ),
        );
      } finally {
        for (const { server } of started) await server.stop();
      }
    }
    for (const file of ["calldata.bin", "calldata-ours.bin", "calldata-ours-workers.bin", "calldata-opa-envoy.bin"]) rmSync(join(dir, file), { force: true });
    const result: WorkloadResult = {
      name: workload.name,
      description: workload.description,
      alg: workload.alg,
      distinctRequests: workload.requests.length,
      sequenceLength: workload.sequence.length,
      modes: modeResults,
    };
    results.workloads.push(result);
    writeFileSync(join(out, "results.json"), `${JSON.stringify(results, null, 2)}\n`);
  }
  const finished: BenchResults = { ...results, finishedAt: new Date().toISOString() };
  writeFileSync(join(out, "results.json"), `${JSON.stringify(finished, null, 2)}\n`);
  const written = writeReport(env.root, { results: finished }, { out, writeDocs: options.writeDocs, note: options.note });
  log(`bench: results ${join(out, "results.json")}`);
  for (const file of written) log(`bench: wrote ${file}`);
}

function report(options: BenchOptions, env: BenchEnvironment): void {
  const from = resolve(options.from!);
  const parsed = JSON.parse(readFileSync(from, "utf8")) as { format?: number; kind?: string };
  const out = options.out !== undefined ? outDir(options) : resolve(from, "..");
  const parts =
    parsed.kind === "soak"
      ? { soak: parsed as SoakResult }
      : parsed.kind === "memory"
        ? { memory: parsed as MemoryResult }
        : { results: parsed as BenchResults };
  const written = writeReport(env.root, parts, { out, writeDocs: options.writeDocs, note: options.note });
  for (const file of written) log(`bench: wrote ${file}`);
}

export async function main(argv: readonly string[], env: BenchEnvironment): Promise<number> {
  let options: BenchOptions;
  try {
    options = parseOptions(argv);
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      if (error instanceof Error && error.message) log(`bench: ${error.message}`);
      log(USAGE);
      return 2;
    }
    throw error;
  }
  if (options.command === "install") return 0;
  if (options.command === "report") {
    report(options, env);
    return 0;
  }
  if (options.command === "soak") {
    const out = outDir(options);
    const machine = describeMachine(env.root, env.versions);
    const result = await runSoak({
      root: env.root,
      ghz: env.ghz,
      opaEnvoy: env.opaEnvoy,
      out,
      machine,
      checks: options.checks,
      server: options.server,
      seed: options.seed,
      workers: workersFlag(env.root),
      log,
    });
    writeFileSync(join(out, "soak.json"), `${JSON.stringify(result, null, 2)}\n`);
    const written = writeReport(env.root, { soak: result }, { out, writeDocs: options.writeDocs, note: options.note });
    log(`bench: results ${join(out, "soak.json")}`);
    for (const file of written) log(`bench: wrote ${file}`);
    return 0;
  }
  if (options.command === "memory") {
    const out = outDir(options);
    const result = await runMemory({
      root: env.root,
      ghz: env.ghz,
      out,
      machine: describeMachine(env.root, env.versions),
      rounds: options.rounds,
      quick: options.quick,
      seed: options.seed,
      log,
    });
    writeFileSync(join(out, "memory.json"), `${JSON.stringify(result, null, 2)}\n`);
    const written = writeReport(env.root, { memory: result }, { out, writeDocs: options.writeDocs, note: options.note });
    log(`bench: results ${join(out, "memory.json")}`);
    for (const file of written) log(`bench: wrote ${file}`);
    return 0;
  }
  await run(options, env);
  return 0;
}
