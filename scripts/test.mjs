#!/usr/bin/env node
// The whole test suite (run after scripts/setup.mjs by `npm test`, and so by .ci/run):
//   0. on a Node older than package.json's engines, the pinned Node 24 runs it instead
//      (scripts/node-runtime.mjs), first on PATH for everything below;
//   1. Debian packages the tests use (scitokens-cpp's scitokens-create, libscitokens-dev and
//      gcc for the differential harness, nginx for the seed deployment end to end), installed
//      if missing;
//   2. the Rego gates, one line each: `opa fmt` (nothing to reformat), `opa check --strict`,
//      `opa test` (the Rego unit tests), their line coverage of the policy files (at least
//      REGO_COVERAGE_MIN percent), and `regal lint` (configured in .regal/config.yaml); then
//      the Prometheus alert rules: `promtool check rules` and `promtool test rules`; then
//      the Envoy files against Envoy's own API (tools/envoy-check);
//   3. Biome's format and lint check, then the TypeScript type check of src/ and test/;
//   4. a short coverage-guided fuzz of the bearer, path and scope parsers (scripts/fuzz.mjs);
//   5. vitest: unit and integration tests against real servers on loopback.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureDebianPackages } from "./debian-packages.mjs";
import { useSupportedNode } from "./node-runtime.mjs";

await useSupportedNode();

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const tools = join(root, ".tools", "bin");
/** The least line coverage (percent) of the policy files by the Rego tests. */
const REGO_COVERAGE_MIN = 90;

function run(label, command, args, options = {}) {
  process.stderr.write(`\n== ${label}\n`);
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit", ...options });
  if (result.error) {
    process.stderr.write(`test: ${command} could not start: ${result.error.message}\n`);
    process.exit(1);
  }
  if (result.status !== 0) {
    process.stderr.write(`test: ${label} failed (exit ${result.status})\n`);
    process.exit(result.status ?? 1);
  }
}

/** `part` of `whole` as a percentage with two decimals. */
const percent = (part, whole) => `${whole === 0 ? "0.00" : ((100 * part) / whole).toFixed(2)}%`;

ensureDebianPackages(
  [
    { pkg: "scitokens-cpp", what: "scitokens-create" },
    { pkg: "libscitokens-dev", what: "/usr/include/scitokens/scitokens.h" }, // test/differential's C harness
    { pkg: "gcc", what: "gcc" }, // compiles that harness
    { pkg: "nginx", what: "/usr/sbin/nginx" }, // with its DAV and auth_request modules: test/integration/nginx-auth-request.test.ts
  ],
  { prefix: "test", why: "for the tests" },
);

/** Runs a tool with its output captured; the seconds it took come back with it. */
function capture(command, args) {
  const started = performance.now();
  const result = spawnSync(command, args, { cwd: root, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (result.error) {
    process.stderr.write(`test: ${command} could not start: ${result.error.message} (run \`npm run setup\`)\n`);
    process.exit(1);
  }
  return { ...result, seconds: (performance.now() - started) / 1000 };
}

/**
 * One gate: `check()` runs its tool and says what it found. Prints one line (ok or FAIL, what
 * was checked, seconds); a failing gate then prints its details and stops the suite.
 */
function gate(label, check) {
  const { ok, summary, details = "", seconds } = check();
  process.stderr.write(`${ok ? "ok  " : "FAIL"} ${label}: ${summary} (${seconds.toFixed(1)} s)\n`);
  if (ok) return;
  if (details) process.stderr.write(`${details.trimEnd()}\n`);
  process.stderr.write(`test: ${label} failed\n`);
  process.exit(1);
}

const opa = join(tools, "opa");
const policies = join(root, "policies");
// The Rego files only: demo.yaml is data for the demo, not for the tests.
const rego = readdirSync(policies)
  .filter((f) => f.endsWith(".rego"))
  .sort()
  .map((f) => join("policies", f));
const isTest = (file) => file.endsWith("_test.rego");

/** What `opa fmt` would change in a file, as a unified diff (`opa fmt --diff` prints the whole file). */
function fmtDiff(file) {
  const formatted = capture(opa, ["fmt", file]).stdout;
  const labels = ["--label", file, "--label", `${file} (opa fmt)`];
  const diff = spawnSync("diff", ["-u", ...labels, file, "-"], { cwd: root, input: formatted, encoding: "utf8" });
  return diff.stdout ?? "";
}

process.stderr.write("\n== Rego gates (policies/)\n");
gate("opa fmt", () => {
  const r = capture(opa, ["fmt", "--list", "--fail", "policies/"]);
  const unformatted = r.stdout.split("\n").filter(Boolean);
  if (r.status === 0) return { ok: true, summary: `${rego.length} files formatted`, seconds: r.seconds };
  return {
    ok: false,
    summary: unformatted.length > 0 ? `${unformatted.join(", ")} not formatted (.tools/bin/opa fmt -w policies/ fixes it)` : `exit ${r.status}`,
    details: unformatted.map(fmtDiff).join(""),
    seconds: r.seconds,
  };
});
gate("opa check --strict", () => {
  const r = capture(opa, ["check", "--strict", "policies/"]);
  return r.status === 0
    ? { ok: true, summary: "no errors", seconds: r.seconds }
    : { ok: false, summary: `exit ${r.status}`, details: r.stdout + r.stderr, seconds: r.seconds };
});
gate("opa test", () => {
  const r = capture(opa, ["test", ...rego]);
  const counts = /^PASS:\s*(\d+)\/(\d+)/m.exec(r.stdout);
  return r.status === 0
    ? { ok: true, summary: counts ? `${counts[1]}/${counts[2]} tests passed` : "passed", seconds: r.seconds }
    : { ok: false, summary: `exit ${r.status}`, details: r.stdout + r.stderr, seconds: r.seconds };
});
gate("rego coverage", () => {
  const r = capture(opa, ["test", "--coverage", ...rego]);
  if (r.status !== 0) return { ok: false, summary: `opa test --coverage exit ${r.status}`, details: r.stderr, seconds: r.seconds };
  const report = JSON.parse(r.stdout);
  let covered = 0;
  let total = 0;
  const perFile = [];
  const uncovered = [];
  for (const file of rego.filter((f) => !isTest(f))) {
    // A policy file that no test evaluates is absent from the report: all its lines count as uncovered.
    const entry = report.files?.[file] ?? { covered_lines: 0, not_covered_lines: 1, not_covered: [] };
    const lines = entry.covered_lines + entry.not_covered_lines;
    covered += entry.covered_lines;
    total += lines;
    perFile.push(`${relative("policies", file)} ${percent(entry.covered_lines, lines)} (${entry.covered_lines}/${lines} lines)`);
    const rows = [...new Set((entry.not_covered ?? []).map((range) => range.start.row))];
    if (rows.length > 0) uncovered.push(`  ${file}: lines not covered: ${rows.join(", ")}`);
  }
  const ok = total > 0 && (100 * covered) / total >= REGO_COVERAGE_MIN;
  return {
    ok,
    summary: `${perFile.join(", ")}; total ${percent(covered, total)} (minimum ${REGO_COVERAGE_MIN}%)`,
    details: uncovered.join("\n"),
    seconds: r.seconds,
  };
});
gate("regal lint", () => {
  const r = capture(join(tools, "regal"), ["lint", "--format", "json", "policies/"]);
  let report;
  try {
    report = JSON.parse(r.stdout);
  } catch {
    return { ok: false, summary: `exit ${r.status}, no report`, details: r.stdout + r.stderr, seconds: r.seconds };
  }
  const violations = report.violations ?? [];
  const where = (v) => `${v.location?.file ?? ""}:${v.location?.row ?? 0}:${v.location?.col ?? 0}`;
  return {
    ok: r.status === 0 && violations.length === 0,
    summary: `${report.summary?.files_scanned ?? "?"} files, ${violations.length} violations (rules: .regal/config.yaml)`,
    details: `${violations.map((v) => `  ${where(v)} ${v.category}/${v.title}: ${v.description}`).join("\n")}\n${r.stderr}`,
    seconds: r.seconds,
  };
});

// The Prometheus alert rules shipped in deploy/observability: valid rules and PromQL (and
// promtool's lint), then their unit tests (each alert fires when it should, not otherwise).
// test/integration/deploy-observability.test.ts checks that the metrics they query exist.
process.stderr.write("\n== Prometheus rules (deploy/observability/)\n");
const promtool = join(tools, "promtool");
if (!existsSync(promtool)) {
  process.stderr.write("test: .tools/bin/promtool is missing: run `node scripts/setup.mjs --for-tests` (npm test does)\n");
  process.exit(1);
}
gate("promtool check rules", () => {
  const r = capture(promtool, ["check", "rules", "--lint=all", "--lint-fatal", "deploy/observability/alerts.yaml"]);
  const found = /SUCCESS: (\d+) rules found/.exec(r.stdout);
  return r.status === 0
    ? { ok: true, summary: `alerts.yaml: ${found ? found[1] : "?"} rules valid`, seconds: r.seconds }
    : { ok: false, summary: `exit ${r.status}`, details: r.stdout + r.stderr, seconds: r.seconds };
});
gate("promtool test rules", () => {
  const r = capture(promtool, ["test", "rules", "deploy/observability/alerts.test.yaml"]);
  const tests = (readFileSync(join(root, "deploy", "observability", "alerts.test.yaml"), "utf8").match(/^\s+- eval_time:/gm) ?? []).length;
  return r.status === 0
    ? { ok: true, summary: `alerts.test.yaml: ${tests} alert evaluations as expected`, seconds: r.seconds }
    : { ok: false, summary: `exit ${r.status}`, details: r.stdout + r.stderr, seconds: r.seconds };
});

/**
 * The Envoy gate: every Envoy bootstrap (each YAML under envoy/, and each under deploy/ with
 * a top-level static_resources) against Envoy's own v3 API, with tools/envoy-check.
 */
function checkEnvoyFiles() {
  process.stderr.write("\n== Envoy files\n");
  const yamlUnder = (dir) =>
    existsSync(join(root, dir))
      ? readdirSync(join(root, dir), { recursive: true })
          .filter((f) => /\.ya?ml$/.test(f))
          .sort()
          .map((f) => join(dir, f))
      : [];
  const files = [...yamlUnder("envoy"), ...yamlUnder("deploy").filter((f) => /^static_resources:/m.test(readFileSync(join(root, f), "utf8")))];
  const checker = join(tools, "envoy-check");
  if (!existsSync(checker)) return { ok: false, summary: `${relative(root, checker)} is missing: setup builds it with Go >= 1.26`, seconds: 0 };
  const r = capture(checker, files);
  const lines = r.stdout.trimEnd().split("\n");
  const last = lines.at(-1)?.replace(/^envoy-check: /, "") || `exit ${r.status}`;
  return r.status === 0
    ? { ok: true, summary: `${files.join(", ")}: ${last}`, seconds: r.seconds }
    : { ok: false, summary: last, details: lines.slice(0, -1).join("\n") + r.stderr, seconds: r.seconds };
}
gate("envoy-check", checkEnvoyFiles);

// Biome (biome.json): formatting, lint and import order of every TypeScript, JavaScript and
// JSON file; warnings fail too. `npm run format` applies its fixes.
run("lint and format (biome ci)", join(root, "node_modules", ".bin", "biome"), ["ci", "--error-on-warnings"]);
run("type check (src/ and test/)", join(root, "node_modules", ".bin", "tsc"), ["-p", "test/tsconfig.json"]);
// Bounded (about 25 s), seeded; scripts/fuzz.mjs runs it longer.
run("fuzz (bearer, path and scope parsers)", process.execPath, [join(root, "scripts", "fuzz.mjs"), "--quick"]);
if (!existsSync(join(root, "build", "policy.wasm"))) {
  process.stderr.write("test: build/policy.wasm is missing: run `npm run build` first\n");
  process.exit(1);
}
const report = join(root, "build", "vitest-report.json");
rmSync(report, { force: true });
process.stderr.write("\n== vitest\n");
const vitest = spawnSync(
  join(root, "node_modules", ".bin", "vitest"),
  ["run", "--testTimeout=30000", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...process.argv.slice(2)],
  { cwd: root, stdio: "inherit" },
);
if (!existsSync(report)) {
  process.stderr.write("test: vitest wrote no report\n");
  process.exit(vitest.status || 1);
}
const summary = JSON.parse(readFileSync(report, "utf8"));
// A plain closing line that CI and people can read at a glance.
process.stdout.write(`vitest: ${summary.numPassedTests} passed, ${summary.numFailedTests} failed\n`);
if (vitest.status !== 0 || summary.numFailedTests > 0 || summary.numTotalTests === 0) process.exit(vitest.status || 1);
