import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { DiffInputError, loadPolicySide } from "./policy-side.js";
import { type Outcome, decide } from "./replay-decide.js";
import { type ReplayCase, readReplayRequests } from "./replay-requests.js";

/** `policy test` exit codes: every case passes, some case fails, bad input. */
export const TEST_EXIT = { passed: 0, failed: 1, badInput: 2 } as const;

const DEFAULT_DIR = "policies";
/** Data looked for in DIR when `--data` is not given, first found wins. */
const DATA_CANDIDATES = ["data.yaml", "demo.yaml"] as const;
const TABLE_SUFFIX = ".tests.yaml";

export interface TestOptions {
  /** The policy folder; default `policies` of the current directory. */
  readonly dir?: string | undefined;
  readonly data?: string | undefined;
  /** Table files or globs (`*` and `?` in the file name only); default DIR/*.tests.yaml. */
  readonly tables?: readonly string[] | undefined;
}

export interface TestFailure {
  readonly table: string;
  readonly name: string;
  readonly expected: { readonly decision: "allow" | "deny" | null; readonly reason: string; readonly status: number | null };
  readonly got: Outcome;
}

export interface TestReport {
  readonly dir: string;
  readonly regoFiles: readonly string[];
  readonly data: string;
  readonly tables: readonly string[];
  readonly passed: number;
  readonly failed: number;
  readonly failures: readonly TestFailure[];
}

/**
 * Runs decision tables (policies/README.md, "Decision tables") against the policy in a
 * folder: its Rego (tests left out) compiled with the pinned OPA as `policy diff` does,
 * loaded with its data, every case decided offline and held to its `expect`. Throws
 * DiffInputError on bad input, including a case without `expect`.
 */
export async function policyTest(options: TestOptions): Promise<TestReport> {
  const dir = resolve(options.dir ?? DEFAULT_DIR);
  if (!(await isFolder(dir))) throw new DiffInputError(`${options.dir ?? DEFAULT_DIR}: not a folder`);
  const data = dataFileOf(dir, options.data);
  const tables = await tableFiles(dir, options.tables);
  const loaded = [];
  for (const table of tables) {
    const { cases } = await readReplayRequests(table);
    for (const c of cases)
      if (c.expect === undefined) throw new DiffInputError(`${table}: ${c.name}: no expect (policy test needs the decision each case must get)`);
    loaded.push({ table, cases });
  }
  const work = await mkdtemp(join(tmpdir(), "scitokens-authz-test-"));
  try {
    const side = await loadPolicySide(dir, data, work);
    const failures: TestFailure[] = [];
    let passed = 0;
    for (const { table, cases } of loaded) {
      for (const c of cases) {
        const got = decide(side, c);
        if (meets(c, got)) passed++;
        else failures.push({ table, name: c.name, expected: { decision: c.expectDecision ?? null, reason: c.expect!, status: c.expectStatus ?? null }, got });
      }
    }
    return { dir, regoFiles: side.regoFiles, data, tables, passed, failed: failures.length, failures };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function meets(c: ReplayCase, got: Outcome): boolean {
  return (
    got.reason === c.expect &&
    (c.expectDecision === undefined || got.decision === c.expectDecision) &&
    (c.expectStatus === undefined || got.status === c.expectStatus)
  );
}

async function isFolder(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** `--data` (relative to the current directory), else DIR/data.yaml, else DIR/demo.yaml. */
export function dataFileOf(dir: string, data: string | undefined): string {
  if (data !== undefined) {
    const file = resolve(data);
    if (!existsSync(file)) throw new DiffInputError(`--data ${data}: no such file`);
    return file;
  }
  const found = DATA_CANDIDATES.map((name) => join(dir, name)).find((file) => existsSync(file));
  if (found === undefined) throw new DiffInputError(`${dir}: no ${DATA_CANDIDATES.join(" or ")}; give the authorization data with --data`);
  return found;
}

async function tableFiles(dir: string, specs: readonly string[] | undefined): Promise<string[]> {
  if (specs === undefined || specs.length === 0) {
    const found = await expand(join(dir, `*${TABLE_SUFFIX}`));
    if (found.length === 0) throw new DiffInputError(`${dir}: no decision tables (*${TABLE_SUFFIX}); name them with --tables`);
    return found;
  }
  const files: string[] = [];
  for (const spec of specs) {
    const found = await expand(resolve(spec));
    if (found.length === 0) throw new DiffInputError(`--tables ${spec}: no such file`);
    files.push(...found.filter((f) => !files.includes(f)));
  }
  return files;
}

/** A file, or a glob with `*` and `?` in its last component only (Node 20 has no fs.glob). */
async function expand(pattern: string): Promise<string[]> {
  const folder = dirname(pattern);
  const name = basename(pattern);
  if (/[*?[]/.test(folder)) throw new DiffInputError(`--tables ${pattern}: wildcards are allowed in the file name only`);
  if (!/[*?]/.test(name)) return existsSync(pattern) ? [pattern] : [];
  const regex = new RegExp(
    `^${name
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replaceAll("*", "[^/]*")
      .replaceAll("?", "[^/]")}$`,
  );
  let names: string[];
  try {
    names = await readdir(folder);
  } catch {
    return [];
  }
  return names
    .filter((n) => regex.test(n))
    .sort()
    .map((n) => join(folder, n));
}

function describeOutcome(o: { readonly decision: string | null; readonly reason: string; readonly status: number | null }): string {
  const parts = [o.decision, o.reason, o.status === null || o.decision === "allow" ? null : `(${o.status})`].filter((p) => p !== null);
  return parts.join(" ");
}

/** One line per failing case, then the summary `N passed, M failed`. */
export function formatTestText(report: TestReport): string {
  const lines = report.failures.map((f) => `FAIL ${f.name} [${f.table}]: expected ${describeOutcome(f.expected)}, got ${describeOutcome(f.got)}`);
  lines.push(`${report.passed} passed, ${report.failed} failed`);
  return `${lines.join("\n")}\n`;
}

export function formatTestJson(report: TestReport): string {
  return `${JSON.stringify({
    dir: report.dir,
    rego: report.regoFiles,
    data: report.data,
    tables: report.tables,
    passed: report.passed,
    failed: report.failed,
    failures: report.failures,
  })}\n`;
}

export const POLICY_TEST_USAGE = "usage: scitokens-authz policy test [DIR] [--data FILE] [--tables GLOB|FILE]... [--json]";

/** `scitokens-authz policy test …`: returns the exit code (2 on bad input). */
export async function policyTestCommand(args: readonly string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  try {
    if (args.includes("--help") || args.includes("-h")) {
      out.write(`${POLICY_TEST_USAGE}\n`);
      return TEST_EXIT.passed;
    }
    const { values, tokens } = parseArgs({
      args: [...args],
      options: { data: { type: "string" }, tables: { type: "string", multiple: true }, json: { type: "boolean", default: false } },
      allowPositionals: true,
      strict: true,
      tokens: true,
    });
    // A shell-expanded `--tables dir/*.yaml` leaves its other files as positionals right after it.
    const tables: string[] = [];
    const dirs: string[] = [];
    let afterTables = false;
    for (const token of tokens) {
      if (token.kind === "option") {
        afterTables = token.name === "tables";
        if (afterTables && token.value !== undefined) tables.push(token.value);
      } else if (token.kind === "positional") (afterTables ? tables : dirs).push(token.value);
    }
    if (dirs.length > 1) throw new DiffInputError(`expected one DIR, got ${dirs.join(" ")}`);
    const dir = dirs[0];
    const report = await policyTest({ dir, data: values.data, tables: tables.length > 0 ? tables : undefined });
    out.write(values.json ? formatTestJson(report) : formatTestText(report));
    return report.failed > 0 ? TEST_EXIT.failed : TEST_EXIT.passed;
  } catch (error) {
    if (!(error instanceof DiffInputError) && !(error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) throw error;
    err.write(`scitokens-authz policy test: ${(error as Error).message}\n${POLICY_TEST_USAGE}\n`);
    return TEST_EXIT.badInput;
  }
}
