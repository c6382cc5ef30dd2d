import type { TestKey } from "../helpers/keys.js";
import type { CppHarness, CppResult } from "./cpp-harness.js";
import { AUDIENCE_CONFIGS, type DiffCase } from "./generate-cases.js";
import { type OurResult, type OurSide, mintCase } from "./our-side.js";

/** One case run on both sides. */
export interface Outcome {
  case: DiffCase;
  ours: OurResult;
  cpp: CppResult;
}

/** Both sides' decisions agree: allowed by both, or denied by both (a crash never agrees). */
export function agree(o: Pick<Outcome, "ours" | "cpp">): boolean {
  if (o.cpp.kind === "crash") return false;
  return o.ours.allowed === (o.cpp.kind === "allow");
}

export interface Sides {
  key: TestKey;
  issuer: string;
  harness: CppHarness;
  ours: OurSide;
}

/** Mints the case's token now and asks both sides, concurrently. */
export async function runCase(sides: Sides, c: DiffCase): Promise<Outcome> {
  const token = await mintCase(c, sides.key, sides.issuer, Math.floor(Date.now() / 1000));
  const [ours, cpp] = await Promise.all([
    sides.ours.check(c, token),
    sides.harness.test({ token, authz: c.authz, path: c.path, audiences: AUDIENCE_CONFIGS[c.audienceConfig] }),
  ]);
  return { case: c, ours, cpp };
}

/** Runs every case, `concurrency` at a time (the harness answers in order, one by one). */
export async function runCases(sides: Sides, cases: readonly DiffCase[], concurrency = 32): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  for (let start = 0; start < cases.length; start += concurrency) {
    outcomes.push(...(await Promise.all(cases.slice(start, start + concurrency).map((c) => runCase(sides, c)))));
  }
  return outcomes;
}
