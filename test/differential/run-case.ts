import type { TestKey } from "../helpers/keys.js";
import { AUDIENCE_CONFIGS, type DiffCase } from "./generate-cases.js";
import type { Oracle, RefResult } from "./oracle.js";
import { type OurResult, type OurSide, mintCase } from "./our-side.js";

/** One case, as the service and one reference implementation decided it. */
export interface Outcome {
  case: DiffCase;
  ours: OurResult;
  ref: RefResult;
}

/** One case, as the service and every reference implementation of the run decided it. */
export interface CaseRun {
  case: DiffCase;
  ours: OurResult;
  /** By oracle id. */
  refs: ReadonlyMap<string, RefResult>;
}

/** Both sides' decisions agree: allowed by both, or denied by both (a crash never agrees). */
export function agree(o: Pick<Outcome, "ours" | "ref">): boolean {
  if (o.ref.kind === "crash") return false;
  return o.ours.allowed === (o.ref.kind === "allow");
}

export interface Sides {
  key: TestKey;
  issuer: string;
  ours: OurSide;
}

/** The run's answer of one oracle, as an {@link Outcome}. */
export function outcomeOf(run: CaseRun, oracleId: string): Outcome {
  const ref = run.refs.get(oracleId);
  if (ref === undefined) throw new Error(`case #${run.case.id} was not run through ${oracleId}`);
  return { case: run.case, ours: run.ours, ref };
}

/** Mints the case's token once, now, and asks the service and every oracle, concurrently. */
export async function runCase(sides: Sides, oracles: readonly Oracle[], c: DiffCase): Promise<CaseRun> {
  const token = await mintCase(c, sides.key, sides.issuer, Math.floor(Date.now() / 1000));
  const question = { token, authz: c.authz, path: c.path, audiences: AUDIENCE_CONFIGS[c.audienceConfig] };
  const [ours, ...refs] = await Promise.all([sides.ours.check(c, token), ...oracles.map((oracle) => oracle.test(question))]);
  return { case: c, ours, refs: new Map(oracles.map((oracle, index) => [oracle.id, refs[index] as RefResult])) };
}

/** Runs one case through the service and one oracle. */
export async function runOutcome(sides: Sides, oracle: Oracle, c: DiffCase): Promise<Outcome> {
  return outcomeOf(await runCase(sides, [oracle], c), oracle.id);
}

/** Runs every case, `concurrency` at a time (each harness answers in order, one by one). */
export async function runCases(sides: Sides, oracles: readonly Oracle[], cases: readonly DiffCase[], concurrency = 32): Promise<CaseRun[]> {
  const runs: CaseRun[] = [];
  for (let start = 0; start < cases.length; start += concurrency) {
    runs.push(...(await Promise.all(cases.slice(start, start + concurrency).map((c) => runCase(sides, oracles, c)))));
  }
  return runs;
}
