#!/usr/bin/env node
// The whole test suite (run after scripts/setup.mjs by `npm test`, and so by .ci/run):
//   1. Debian packages the tests use (scitokens-cpp's scitokens-create, libscitokens-dev and
//      gcc for the differential harness), installed if missing;
//   2. `opa test` over policies/ (the Rego unit tests);
//   3. the TypeScript type check of src/ and test/;
//   4. a short coverage-guided fuzz of the bearer, path and scope parsers (scripts/fuzz.mjs);
//   5. vitest: unit and integration tests against real servers on loopback.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

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

function onPath(name) {
  return spawnSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" }).status === 0;
}

// A command on PATH, or (given as an absolute path) a file such as a header.
const present = (what) => (what.startsWith("/") ? existsSync(what) : onPath(what));

function ensureDebianPackage(binary, pkg) {
  if (present(binary)) return;
  const asRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!onPath("apt-get")) {
    process.stderr.write(`test: ${binary} is needed (Debian package ${pkg}) and apt-get is not available: install ${pkg}\n`);
    process.exit(1);
  }
  const sudo = asRoot ? [] : ["sudo", "-n"];
  const install = () =>
    spawnSync(sudo[0] ?? "apt-get", [...sudo.slice(1), ...(asRoot ? [] : ["apt-get"]), "install", "-y", "-q", pkg], {
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    }).status === 0;
  process.stderr.write(`test: installing Debian package ${pkg} (for ${binary})\n`);
  if (!install()) {
    spawnSync(sudo[0] ?? "apt-get", [...sudo.slice(1), ...(asRoot ? [] : ["apt-get"]), "update", "-q"], { stdio: ["ignore", "ignore", "inherit"] });
    if (!install() || !present(binary)) {
      process.stderr.write(`test: could not install ${pkg}; install it (apt-get install ${pkg}) and run again\n`);
      process.exit(1);
    }
  }
}

ensureDebianPackage("scitokens-create", "scitokens-cpp");
ensureDebianPackage("/usr/include/scitokens/scitokens.h", "libscitokens-dev"); // test/differential's C harness
ensureDebianPackage("gcc", "gcc"); // compiles that harness

const policies = join(root, "policies");
const rego = readdirSync(policies).filter((f) => f.endsWith(".rego")).map((f) => join("policies", f));
run("opa test (policies/*.rego)", join(root, ".tools", "bin", "opa"), ["test", ...rego]);
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
