import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { policyBuildCommand } from "./policy-build.js";
import { DiffInputError, type PolicySide, loadPolicySide } from "./policy-side.js";
import { policyTestCommand } from "./policy-test.js";
import { type Outcome, decide } from "./replay-decide.js";
import { type ReplayCase, readReplayRequests } from "./replay-requests.js";

/** `policy diff` exit codes: nothing changed, something did, bad input. */
export const DIFF_EXIT = { unchanged: 0, changed: 1, badInput: 2 } as const;

const EXAMPLES_PER_CHANGE = 3;
const DEFAULT_DATA = "policies/demo.yaml";

export interface ChangeGroup {
  readonly from: Outcome;
  readonly to: Outcome;
  readonly count: number;
  readonly examples: ReadonlyArray<{
    readonly name: string;
    readonly method: string;
    readonly path: string;
    readonly route: string | null;
    readonly token: string;
  }>;
}

export interface DiffReport {
  readonly base: { readonly spec: string; readonly commit: string | null; readonly data: string };
  readonly head: { readonly spec: string; readonly commit: string | null; readonly data: string };
  readonly requests: number;
  /** Log lines decided by the service before the policy: not re-evaluated. */
  readonly notEvaluated: number;
  readonly changed: number;
  readonly changes: readonly ChangeGroup[];
  /** Table entries whose `expect` the head policy does not meet. */
  readonly unmetExpectations: ReadonlyArray<{ readonly name: string; readonly expected: string; readonly got: string }>;
}

export interface DiffOptions {
  readonly base: string;
  readonly head: string;
  readonly requests: string;
  readonly data?: string | undefined;
  /** The policy folder relative to each side's root (default `policies`). */
  readonly policyDir?: string | undefined;
}

/**
 * Re-evaluates every request of a decision log or a decision table under two policies
 * (each a git revision or a folder, compiled with the pinned OPA) and reports the
 * decisions that change. Offline: the token state is taken as given, nothing is fetched.
 * Throws DiffInputError on bad input.
 */
export async function policyDiff(options: DiffOptions): Promise<DiffReport> {
  const requests = await readReplayRequests(options.requests);
  const work = await mkdtemp(join(tmpdir(), "scitokens-authz-diff-"));
  try {
    const data = options.data ?? DEFAULT_DATA;
    // Both sides settle before the work folder is removed, even when one fails.
    const policyDir = options.policyDir ?? "policies";
    const sides = await Promise.allSettled([
      loadPolicySide(options.base, data, join(work, "base"), policyDir),
      loadPolicySide(options.head, data, join(work, "head"), policyDir),
    ]);
    const failed = sides.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed) throw failed.reason;
    const [base, head] = sides.map((s) => (s as PromiseFulfilledResult<PolicySide>).value) as [PolicySide, PolicySide];
    const groups = new Map<string, { from: Outcome; to: Outcome; count: number; examples: ChangeGroup["examples"][number][] }>();
    const unmet: Array<{ name: string; expected: string; got: string }> = [];
    let changed = 0;
    for (const c of requests.cases) {
      const from = decide(base, c);
      const to = decide(head, c);
      if (c.expect !== undefined && c.expect !== to.reason) unmet.push({ name: c.name, expected: c.expect, got: to.reason });
      if (same(from, to)) continue;
      changed++;
      const key = `${describe(from)} → ${describe(to)}`;
      let group = groups.get(key);
      if (group === undefined) {
        group = { from, to, count: 0, examples: [] };
        groups.set(key, group);
      }
      group.count++;
      if (group.examples.length < EXAMPLES_PER_CHANGE) {
        group.examples.push({ name: c.name, method: c.method, path: c.path, route: c.route, token: describeToken(c) });
      }
    }
    const changes = [...groups.values()].sort((a, b) => b.count - a.count);
    const side = (s: PolicySide) => ({ spec: s.spec, commit: s.commit, data: s.dataName });
    return {
      base: side(base),
      head: side(head),
      requests: requests.cases.length,
      notEvaluated: requests.notReplayable,
      changed,
      changes,
      unmetExpectations: unmet,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function same(a: Outcome, b: Outcome): boolean {
  return a.decision === b.decision && a.reason === b.reason && a.status === b.status;
}

function describe(o: Outcome): string {
  return o.decision === "allow" ? `allow ${o.reason}` : `deny ${o.reason} (${o.status})`;
}

function describeToken(c: ReplayCase): string {
  const t = c.token;
  if (t.state === "absent") return "no token";
  if (t.state === "invalid") return `invalid token (${t.reason})`;
  return `iss=${t.iss} sub=${t.sub ?? "-"} scope="${t.scopes.map((s) => s.raw).join(" ")}"`;
}

/** The text report: one block per change (old → new), with its count and examples. */
export function formatDiffText(report: DiffReport): string {
  const name = (s: DiffReport["base"]) => (s.commit ? `${s.spec} (${s.commit.slice(0, 12)})` : s.spec);
  const lines = [`policy diff: base ${name(report.base)} → head ${name(report.head)}`];
  const skipped = report.notEvaluated > 0 ? `; ${report.notEvaluated} not re-evaluated (decided by the service before the policy)` : "";
  lines.push(`  ${report.requests} requests re-evaluated${skipped}; ${report.changed} decisions change`);
  for (const group of report.changes) {
    lines.push("", `${describe(group.from)} → ${describe(group.to)}: ${group.count}`);
    for (const e of group.examples) lines.push(`    ${e.method} ${e.path}${e.route !== null ? ` (route ${e.route})` : ""}, ${e.token}  [${e.name}]`);
  }
  if (report.unmetExpectations.length > 0) {
    lines.push("", `expectations the head policy does not meet: ${report.unmetExpectations.length}`);
    for (const u of report.unmetExpectations) lines.push(`    ${u.name}: expected ${u.expected}, got ${u.got}`);
  }
  return `${lines.join("\n")}\n`;
}

export function formatDiffJson(report: DiffReport): string {
  return `${JSON.stringify({
    base: report.base,
    head: report.head,
    requests: report.requests,
    not_evaluated: report.notEvaluated,
    changed: report.changed,
    changes: report.changes,
    unmet_expectations: report.unmetExpectations,
  })}\n`;
}

export function diffExitCode(report: DiffReport): number {
  return report.changed > 0 || report.unmetExpectations.length > 0 ? DIFF_EXIT.changed : DIFF_EXIT.unchanged;
}

const POLICY_USAGE = "usage: scitokens-authz policy diff --base REV|DIR --head REV|DIR --requests FILE [--data FILE] [--policy-dir DIR] [--json]";

/** `scitokens-authz policy …`: parses its own options; returns the exit code (2 on bad input). */
export async function policyCommand(
  args: readonly string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  try {
    const [sub, ...rest] = args;
    if (sub === "test") return await policyTestCommand(rest, out, err);
    if (sub === "build") return await policyBuildCommand(rest, out, err);
    if (sub === "diff" && (rest.includes("--help") || rest.includes("-h"))) {
      out.write(`${POLICY_USAGE}\n`);
      return DIFF_EXIT.unchanged;
    }
    if (sub !== "diff")
      throw new DiffInputError(`unknown policy subcommand ${JSON.stringify(sub ?? "")}: expected "policy diff", "policy test" or "policy build"`);
    const { values } = parseArgs({
      args: rest,
      options: {
        base: { type: "string" },
        head: { type: "string" },
        requests: { type: "string" },
        data: { type: "string" },
        "policy-dir": { type: "string" },
        json: { type: "boolean", default: false },
      },
      strict: true,
    });
    for (const required of ["base", "head", "requests"] as const) if (values[required] === undefined) throw new DiffInputError(`--${required} is required`);
    const report = await policyDiff({ base: values.base!, head: values.head!, requests: values.requests!, data: values.data, policyDir: values["policy-dir"] });
    out.write(values.json ? formatDiffJson(report) : formatDiffText(report));
    return diffExitCode(report);
  } catch (error) {
    if (!(error instanceof DiffInputError) && !(error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) throw error;
    err.write(`scitokens-authz policy diff: ${(error as Error).message}\n${POLICY_USAGE}\n`);
    return DIFF_EXIT.badInput;
  }
}
