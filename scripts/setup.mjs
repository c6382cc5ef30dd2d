#!/usr/bin/env node
// Brings a checkout to a runnable state, doing only what is missing or stale:
//   0. a supported Node: on a Node older than package.json's engines (22.12), the pinned
//      Node 24 is installed into .tools/node and this script runs again with it
//      (scripts/node-runtime.mjs);
//   1. Node packages, exactly as package-lock.json pins them (npm ci, which never writes the
//      lock), when the lock or package.json's dependencies changed;
//   2. the pinned OPA CLI and Regal (the Rego linter) in .tools/bin (a PATH copy if it is the
//      pinned version, else built with Go), and envoy-check (tools/envoy-check) built with Go;
//      with --for-tests also Prometheus's promtool, which only `npm test` uses (it checks
//      deploy/observability/alerts.yaml), and a Python virtual environment with the pinned
//      `scitokens` library in .tools/python-scitokens (the differential test's second
//      reference implementation; needs python3 with its venv module);
//   3. ts-proto stubs for Envoy's ext_authz API in src/gen/ (buf generate), and a descriptor set
//      of that API and gRPC health in build/ for gRPC server reflection (buf build);
//   4. the policy: policies/*.rego compiled to build/policy.wasm (opa build -t wasm);
//   5. TypeScript compiled to dist/ (tsc, incremental).
// With --for-differential, only the Python virtual environment of --for-tests is added:
// what `npm run diff:scitokens-cpp` needs, without promtool's long build.
// With --no-test-tools, Regal and envoy-check are left out: only `npm test` uses them (the
// container image's build stage runs setup this way, with the pinned OPA already in place).
// Plain Node with no dependencies, because it runs before node_modules exists, and on
// whatever Node the machine has.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { NODE_FLOOR, toolsNodeBin, useSupportedNode } from "./node-runtime.mjs";

await useSupportedNode();

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const OPA_VERSION = pkg.config.opaVersion;
const OPA_MODULE = "github.com/open-policy-agent/opa";
const REGAL_VERSION = pkg.config.regalVersion;
const REGAL_MODULE = "github.com/open-policy-agent/regal";
const toolsBin = join(root, ".tools", "bin");
const opaPath = join(toolsBin, "opa");
const regalPath = join(toolsBin, "regal");
// promtool comes from the Prometheus Go module, whose versions are v0.3XX.Y for Prometheus
// 3.XX.Y: config.promtoolVersion is that module version.
const PROMTOOL_VERSION = pkg.config.promtoolVersion;
const PROMETHEUS_MODULE = "github.com/prometheus/prometheus";
// The Python SciTokens library the differential test asks (test/differential/oracles/
// python-scitokens.ts), with its dependencies pinned by python-constraints.txt next to it.
const PYTHON_SCITOKENS_VERSION = pkg.config.pythonScitokensVersion;
const PYTHON_CONSTRAINTS = join(root, "test", "differential", "oracles", "python-constraints.txt");
const pythonVenv = join(root, ".tools", "python-scitokens");
const DESCRIPTOR_SET = join(root, "build", "grpc-descriptors.binpb");
/** Changes whenever what goes into DESCRIPTOR_SET does, so that setup writes it again. */
const DESCRIPTOR_SET_FORMAT = "envoy ext_authz + grpc.health.v1, no source info";
const quiet = process.argv.includes("--quiet");
const forTests = process.argv.includes("--for-tests");
const forDifferential = process.argv.includes("--for-differential");
const testTools = !process.argv.includes("--no-test-tools");

function say(message) {
  if (!quiet) process.stderr.write(`setup: ${message}\n`);
}

function fail(message) {
  process.stderr.write(`setup: error: ${message}\n`);
  process.exit(1);
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: ["ignore", "inherit", "inherit"], ...options });
  if (result.error) fail(`${command} could not start: ${result.error.message}`);
  if (result.status !== 0) fail(`${command} ${args.join(" ")} exited with ${result.status}`);
}

function hashOf(parts) {
  const h = createHash("sha256");
  for (const part of parts) h.update(part).update("\0");
  return h.digest("hex");
}

function readStamp(file) {
  return existsSync(file) ? readFileSync(file, "utf8") : "";
}

/** What `npm ci` installs from: the lock, and the dependency fields of package.json it must agree with. */
function packageInputs() {
  const fields = ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies", "overrides", "bundleDependencies"];
  return [readFileSync(join(root, "package-lock.json")), JSON.stringify(fields.map((field) => pkg[field] ?? null))];
}

function installPackages() {
  const installed = join(root, "node_modules", ".package-lock.json");
  const stamp = join(root, "node_modules", ".setup-stamp");
  const want = hashOf(packageInputs());
  if (existsSync(installed) && readStamp(stamp) === want) return;
  // `npm ci` installs exactly what package-lock.json pins and never writes it; a lock that
  // does not match package.json stops here with npm's message saying what is missing.
  say("installing Node packages (npm ci, as pinned by package-lock.json)");
  run("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
  writeFileSync(stamp, want);
}

/**
 * The version a Go tool reports: by default on the `Version:` line of `NAME version` (opa,
 * regal); `probe` names other arguments and the pattern whose first group is the version.
 */
function versionOf(binary, probe = { args: ["version"], pattern: /^Version:\s*v?(\S+)/m }) {
  try {
    const out = execFileSync(binary, probe.args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    return probe.pattern.exec(out)?.[1] ?? null;
  } catch {
    return null;
  }
}

function findOnPath(name) {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return null;
}

const goEnv = () => ({ ...process.env, GOBIN: toolsBin, GOFLAGS: "-mod=mod", CGO_ENABLED: "0" });

/**
 * Puts the pinned version of a Go tool at .tools/bin/NAME: nothing to do when it is there,
 * a link to a PATH copy of that version, else `build(go)`. Without Go, `fail(why)`.
 */
function installGoTool({ name, version, module, why, build, probe, takes = "a minute or two" }) {
  const target = join(toolsBin, name);
  if (versionOf(target, probe) === version) return;
  mkdirSync(toolsBin, { recursive: true });
  rmSync(target, { force: true });
  const onPath = findOnPath(name);
  if (onPath && versionOf(onPath, probe) === version) {
    say(`using ${name} ${version} found at ${onPath}`);
    symlinkSync(onPath, target);
    return;
  }
  const go = findOnPath("go");
  if (!go) {
    fail(
      `${name} ${version} is needed ${why}. Put ${name} ${version} on PATH, or install Go (>= 1.25) ` +
        `so that setup can build ${module}@v${version} into .tools/bin.`,
    );
  }
  say(`installing ${name} ${version} with Go (once; takes ${takes})`);
  build(go);
  const got = versionOf(target, probe);
  if (got !== version) fail(`Go produced ${target} reporting version ${got ?? "nothing"}, expected ${version}`);
}

function installOpa() {
  installGoTool({
    name: "opa",
    version: OPA_VERSION,
    module: OPA_MODULE,
    why: "to test policies/ and compile it to WebAssembly",
    build: (go) => run(go, ["install", `${OPA_MODULE}@v${OPA_VERSION}`], { env: goEnv() }),
  });
}

function installRegal() {
  installGoTool({
    name: "regal",
    version: REGAL_VERSION,
    module: REGAL_MODULE,
    why: "to lint policies/ (npm test)",
    build: (go) => {
      // `go install regal@vX` asks the module proxy for Regal's version list (to warn of a
      // deprecation) and the proxy here refuses that list, so build the pinned version from a
      // throwaway module that requires it. Tag and -X flags as Regal's own release builds.
      const dir = join(root, ".tools", "regal-build");
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "go.mod"), `module scitokens-authz/tools\n\ngo 1.25\n\nrequire ${REGAL_MODULE} v${REGAL_VERSION}\n`);
      const ldflags = `-s -w -X ${REGAL_MODULE}/pkg/version.Version=${REGAL_VERSION}`;
      run(go, ["build", "-buildvcs=false", "-tags", "regal_standalone", "-ldflags", ldflags, "-o", regalPath, REGAL_MODULE], {
        cwd: dir,
        env: goEnv(),
      });
      rmSync(dir, { recursive: true, force: true });
    },
  });
}

function installPromtool() {
  installGoTool({
    name: "promtool",
    version: PROMTOOL_VERSION,
    module: PROMETHEUS_MODULE,
    why: "to check the Prometheus alert rules in deploy/observability (npm test)",
    takes: "up to 15 minutes on 2 cores: Prometheus is a large module",
    // `promtool --version` prints "promtool, version X"; a `go install` build leaves X empty,
    // so the build stamps the module version into it as Prometheus's own builds do.
    probe: { args: ["--version"], pattern: /^promtool, version v?(\S+)/m },
    build: (go) => {
      const ldflags = `-s -w -X github.com/prometheus/common/version.Version=${PROMTOOL_VERSION}`;
      run(go, ["install", "-ldflags", ldflags, `${PROMETHEUS_MODULE}/cmd/promtool@v${PROMTOOL_VERSION}`], { env: goEnv() });
    },
  });
}

/**
 * Creates .tools/python-scitokens, a virtual environment holding the pinned Python
 * `scitokens` and the dependencies python-constraints.txt pins, unless its stamp says it is
 * already there. Built from scratch each time (about half a minute, mostly pip), so that a
 * half-finished environment is never taken for a good one: the stamp is written last.
 */
function installPythonScitokens() {
  const stamp = join(root, ".tools", "python-scitokens.stamp");
  const venvPython = join(pythonVenv, "bin", "python");
  const want = hashOf([PYTHON_SCITOKENS_VERSION, readFileSync(PYTHON_CONSTRAINTS)]);
  // existsSync follows the venv's link to the interpreter it was made from: gone, it is rebuilt.
  if (existsSync(venvPython) && readStamp(stamp) === want) return;
  const python3 = findOnPath("python3");
  const probe = python3 ? spawnSync(python3, ["-c", "import sys, venv, ensurepip; print(sys.version_info >= (3, 9))"], { encoding: "utf8" }) : null;
  if (!python3 || probe?.status !== 0 || probe.stdout.trim() !== "True") {
    fail(
      "python3 (3.9 or newer) with its venv module is needed for the differential test's Python scitokens oracle " +
        `(${python3 ? `${python3} has no usable venv/ensurepip, or is older` : "no python3 on PATH"}). ` +
        "On Debian: apt-get install python3 python3-venv",
    );
  }
  say(`creating .tools/python-scitokens: Python scitokens ${PYTHON_SCITOKENS_VERSION} in a virtual environment (once; about half a minute)`);
  rmSync(stamp, { force: true });
  rmSync(pythonVenv, { recursive: true, force: true });
  run(python3, ["-m", "venv", pythonVenv]);
  const pip = ["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet", "--prefer-binary"];
  run(venvPython, [...pip, "--constraint", PYTHON_CONSTRAINTS, `scitokens==${PYTHON_SCITOKENS_VERSION}`]);
  const got = spawnSync(venvPython, ["-I", "-c", "import scitokens; print(scitokens.__version__)"], { encoding: "utf8" });
  if (got.stdout?.trim() !== PYTHON_SCITOKENS_VERSION) {
    fail(`.tools/python-scitokens holds scitokens ${got.stdout?.trim() || "(none)"}, expected ${PYTHON_SCITOKENS_VERSION}: ${got.stderr ?? ""}`);
  }
  writeFileSync(stamp, want);
}

/**
 * Builds tools/envoy-check (the Envoy configuration checker, run by the Envoy gate of npm
 * test) into .tools/bin when its Go sources changed. It needs Go >= 1.26 (go-control-plane
 * does); without it setup says so and goes on, since only that gate needs the checker.
 */
function buildEnvoyCheck() {
  const dir = join(root, "tools", "envoy-check");
  const target = join(toolsBin, "envoy-check");
  const stamp = join(root, ".tools", "envoy-check.stamp");
  const sources = readdirSync(dir)
    .filter((f) => f.endsWith(".go") || f === "go.mod" || f === "go.sum")
    .sort();
  const want = hashOf(sources.flatMap((f) => [f, readFileSync(join(dir, f))]));
  if (existsSync(target) && readStamp(stamp) === want) return;
  const go = findOnPath("go");
  const version = go ? /^go(\d+)\.(\d+)/.exec(execFileSync(go, ["env", "GOVERSION"], { encoding: "utf8" })) : null;
  if (!version || Number(version[1]) * 1000 + Number(version[2]) < 1026) {
    say("not building envoy-check (npm test's Envoy gate): it needs Go >= 1.26 on PATH");
    return;
  }
  say("building envoy-check with Go (the first build takes a few minutes)");
  mkdirSync(toolsBin, { recursive: true });
  const env = { ...process.env, CGO_ENABLED: "0", GOFLAGS: "-mod=readonly -buildvcs=false", GOTOOLCHAIN: "local" };
  run(go, ["build", "-trimpath", "-o", target, "."], { cwd: dir, env });
  writeFileSync(stamp, want);
}

function generateProtos() {
  const xds = JSON.parse(readFileSync(join(root, "node_modules/@grpc/grpc-js-xds/package.json"), "utf8"));
  const tsProto = JSON.parse(readFileSync(join(root, "node_modules/ts-proto/package.json"), "utf8"));
  const health = JSON.parse(readFileSync(join(root, "node_modules/grpc-health-check/package.json"), "utf8"));
  const stamp = join(root, "src", "gen", ".stamp");
  const inputs = [readFileSync(join(root, "buf.yaml")), readFileSync(join(root, "proto", "buf.gen.yaml")), xds.version, tsProto.version, health.version];
  const want = hashOf([...inputs, DESCRIPTOR_SET, DESCRIPTOR_SET_FORMAT]);
  if (readStamp(stamp) === want && existsSync(DESCRIPTOR_SET)) return;
  say("generating Envoy ext_authz stubs into src/gen (buf generate + ts-proto) and the descriptor set for gRPC reflection (buf build)");
  const buf = join(root, "node_modules", ".bin", "buf");
  run(buf, ["generate", "--template", "proto/buf.gen.yaml"]);
  // The services the service speaks, as a FileDescriptorSet (their imports included), which
  // its gRPC reflection serves so that grpcurl needs no proto files: the Envoy API, and
  // grpc.health.v1 from the proto file grpc-health-check ships. Two builds, one file: a
  // FileDescriptorSet is one repeated field, so the two encodings concatenated are the set
  // of both. Without comments: @grpc/reflection does not serve them.
  mkdirSync(dirname(DESCRIPTOR_SET), { recursive: true });
  const envoy = `${DESCRIPTOR_SET}.envoy`;
  const healthSet = `${DESCRIPTOR_SET}.health`;
  run(buf, [
    "build",
    "--exclude-source-info",
    "--output",
    envoy,
    "--path",
    "node_modules/@grpc/grpc-js-xds/deps/envoy-api/envoy/service/auth/v3/external_auth.proto",
  ]);
  run(buf, ["build", "node_modules/grpc-health-check/proto", "--exclude-source-info", "--output", healthSet]);
  writeFileSync(DESCRIPTOR_SET, Buffer.concat([readFileSync(envoy), readFileSync(healthSet)]));
  rmSync(envoy);
  rmSync(healthSet);
  writeFileSync(stamp, want);
}

function regoSources() {
  const dir = join(root, "policies");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".rego") && !f.endsWith("_test.rego"))
    .sort()
    .map((f) => join("policies", f));
}

function buildPolicy() {
  const buildDir = join(root, "build");
  const wasm = join(buildDir, "policy.wasm");
  const stamp = join(buildDir, "policy.stamp");
  const sources = regoSources();
  const sdkCaps = readFileSync(join(root, "node_modules/@open-policy-agent/opa-wasm/capabilities.json"));
  const want = hashOf([OPA_VERSION, sdkCaps, ...sources.flatMap((s) => [s, readFileSync(join(root, s))])]);
  if (existsSync(wasm) && readStamp(stamp) === want) return;
  say("compiling policies/*.rego to build/policy.wasm (opa build -t wasm)");
  mkdirSync(buildDir, { recursive: true });
  // The SDK's capabilities file lists the builtins its WASM runtime implements, so a policy
  // using any other builtin fails here rather than on a request. It predates Rego v1, so the
  // CLI's own parser features are added to it.
  const caps = JSON.parse(sdkCaps.toString("utf8"));
  const current = JSON.parse(execFileSync(opaPath, ["capabilities", "--current"], { encoding: "utf8" }));
  caps.features = current.features;
  caps.future_keywords = current.future_keywords;
  const capsFile = join(buildDir, "capabilities.json");
  writeFileSync(capsFile, JSON.stringify(caps));
  const bundle = join(buildDir, "policy.tar.gz");
  run(opaPath, ["build", "--target", "wasm", "--entrypoint", "scitokens/authz/decision", "--capabilities", capsFile, "--output", bundle, ...sources]);
  rmSync(wasm, { force: true });
  // Bundle members carry a leading "/" that tar strips (and mentions on stderr).
  run("tar", ["-xzf", bundle, "-C", buildDir, "/policy.wasm"], { stdio: ["ignore", "inherit", "ignore"] });
  if (!existsSync(wasm)) fail(`opa build wrote ${bundle} without a policy.wasm`);
  writeFileSync(stamp, want);
}

/** The newest modification time in a tree, folders included (a deleted file changes its folder). */
function newestMtime(dir) {
  let newest = statSync(dir).mtimeMs;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function compileTypeScript() {
  // tsc leaves its build info untouched when nothing changed, so a stamp of our own
  // records when dist/ was last brought up to date.
  const stamp = join(root, "dist", ".setup-stamp");
  const inputs = Math.max(newestMtime(join(root, "src")), statSync(join(root, "tsconfig.json")).mtimeMs);
  if (existsSync(stamp) && statSync(stamp).mtimeMs >= inputs) return;
  say("compiling TypeScript (tsc)");
  const started = Date.now();
  run(join(root, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.json"]);
  // Commands run by their #! line (package.json's "bin", through npx) need the executable
  // bit, which tsc 7 does not set.
  const cli = join(root, "dist", "cli");
  for (const file of readdirSync(cli).filter((f) => f.endsWith(".js"))) {
    if (readFileSync(join(cli, file)).subarray(0, 2).toString() === "#!") chmodSync(join(cli, file), 0o755);
  }
  writeFileSync(stamp, "");
  // Date the stamp at the start of the compile: a source edited during it is seen next time.
  utimesSync(stamp, new Date(started), new Date(started));
}

if (dirname(process.execPath) === toolsNodeBin) say(`using Node ${process.versions.node} from .tools/node (the machine's Node is older than ${NODE_FLOOR})`);
installPackages();
installOpa();
if (testTools) {
  installRegal();
  buildEnvoyCheck();
}
if (forTests) installPromtool();
if (forTests || forDifferential) installPythonScitokens();
generateProtos();
buildPolicy();
compileTypeScript();
say("ready");
