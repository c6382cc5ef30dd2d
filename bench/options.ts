import { parseArgs } from "node:util";
import { WORKLOAD_NAMES, type WorkloadName } from "./workloads.js";

export const USAGE = `usage: npm run bench -- [run] [--quick] [--workloads A,B] [--modes pinned,unpinned] [--out DIR] [--write-docs] [--note TEXT]
       npm run bench -- soak [--checks N] [--server ours|opa-envoy] [--out DIR] [--write-docs] [--note TEXT]
       npm run bench -- memory [--rounds N] [--quick] [--out DIR] [--write-docs] [--note TEXT]
       npm run bench -- report --from RESULTS.json [--out DIR] [--write-docs] [--note TEXT]
       npm run bench -- install
  run      both servers, every workload, pinned and unpinned (about 25 minutes on 2 cores; --quick: a few seconds a run)
  soak     2,000,000 Checks against one server, its resident memory sampled; prints the growth
  memory   one process under each memory setting in turn (V8's own sizing, the default, a bounded old generation),
           --rounds times (default 3): resident memory, CPU and collector time per Check (about 10 minutes)
  report   writes the report again from a results file (results.json, soak.json or memory.json)
  install  only installs ghz and OPA-Envoy into .tools/bin
  --out DIR          where results.json and the report go (default: a new folder in the system's temporary folder)
  --write-docs       also update docs/benchmarks.md and its chart (otherwise the checkout is left as it is)
  --note TEXT        a line for the report (e.g. what else ran on the machine)
  --opa-envoy-source FILE   a source archive of OPA-Envoy's pinned release, built when the Go module proxy refuses it
                            (also OPA_ENVOY_SOURCE=FILE)
workloads: ${WORKLOAD_NAMES.join(", ")}`;

export interface BenchOptions {
  readonly command: "run" | "soak" | "memory" | "report" | "install";
  readonly quick: boolean;
  readonly workloads: readonly WorkloadName[];
  readonly modes: ReadonlyArray<"pinned" | "unpinned">;
  readonly out: string | undefined;
  readonly writeDocs: boolean;
  readonly note: string | undefined;
  readonly seed: number;
  readonly checks: number;
  readonly rounds: number;
  readonly server: "ours" | "opa-envoy";
  readonly from: string | undefined;
}

export class UsageError extends Error {}

function list<T extends string>(flag: string, value: string | undefined, allowed: readonly T[], fallback: readonly T[]): T[] {
  if (value === undefined) return [...fallback];
  const items = value.split(",").map((v) => v.trim());
  for (const item of items) {
    if (!allowed.includes(item as T))
      throw new UsageError(`${flag}: expected one or more of ${allowed.join(", ")} (comma-separated), got ${JSON.stringify(item)}`);
  }
  return items as T[];
}

function whole(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError(`${flag}: expected a whole number above 0, got ${JSON.stringify(value)}`);
  return Number(value);
}

export function parseOptions(argv: readonly string[]): BenchOptions {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      quick: { type: "boolean", default: false },
      workloads: { type: "string" },
      modes: { type: "string" },
      out: { type: "string" },
      "write-docs": { type: "boolean", default: false },
      note: { type: "string" },
      seed: { type: "string" },
      checks: { type: "string" },
      rounds: { type: "string" },
      server: { type: "string" },
      from: { type: "string" },
      "opa-envoy-source": { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) throw new UsageError("");
  const command = positionals[0] ?? "run";
  if (command !== "run" && command !== "soak" && command !== "memory" && command !== "report" && command !== "install") {
    throw new UsageError(`unknown command ${JSON.stringify(command)}: expected run, soak, memory, report or install`);
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[1])}`);
  if (values.rounds !== undefined && command !== "memory") throw new UsageError("--rounds is for memory only");
  if (command === "report" && values.from === undefined) throw new UsageError("report needs --from RESULTS.json");
  const server = values.server ?? "ours";
  if (server !== "ours" && server !== "opa-envoy") throw new UsageError(`--server: expected ours or opa-envoy, got ${JSON.stringify(server)}`);
  return {
    command,
    quick: values.quick,
    workloads: list("--workloads", values.workloads, WORKLOAD_NAMES, WORKLOAD_NAMES),
    modes: list("--modes", values.modes, ["pinned", "unpinned"] as const, ["pinned", "unpinned"]),
    out: values.out,
    writeDocs: values["write-docs"],
    note: values.note,
    seed: whole("--seed", values.seed, 20_250_611),
    checks: whole("--checks", values.checks, 2_000_000),
    rounds: whole("--rounds", values.rounds, 3),
    server,
    from: values.from,
  };
}
