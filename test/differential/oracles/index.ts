import { CPP_073 } from "./cpp-0.7.3.js";
import { cpp141 } from "./cpp-1.4.1.js";
import { PYTHON_SCITOKENS } from "./python-scitokens.js";
import type { OracleSpec } from "./spec.js";

/** The reference implementations every run of the differential test (and CI) asks. */
export const DEFAULT_ORACLES: readonly OracleSpec[] = [CPP_073, PYTHON_SCITOKENS];

/**
 * The oracles of this run: the default ones, plus those that environment variables
 * switch on (a scitokens-cpp built from source: `SCITOKENS_CPP_PREFIX`, set by
 * `npm run diff:scitokens-cpp`).
 */
export function oraclesOfRun(env: NodeJS.ProcessEnv = process.env): OracleSpec[] {
  const prefix = env["SCITOKENS_CPP_PREFIX"];
  return [...DEFAULT_ORACLES, ...(prefix !== undefined && prefix !== "" ? [cpp141(prefix)] : [])];
}
