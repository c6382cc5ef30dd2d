#!/usr/bin/env node
// The benchmark against OPA-Envoy (docs/benchmarks.md). Not a test: `npm test` never runs it.
//
//   npm run bench [-- run] [--quick] [--workloads A,B] [--modes pinned,unpinned] [--out DIR] [--write-docs] [--note TEXT]
//   npm run bench -- soak [--checks N] [--server ours|opa-envoy] [--out DIR] [--write-docs]
//   npm run bench -- report --from RESULTS.json [--write-docs]
//   npm run bench -- install
//
// First it brings the checkout up to date (scripts/setup.mjs: packages, OPA, the policy,
// dist/) and installs, into .tools/bin, only what is missing of the pinned load generator
// and the pinned server to compare with (package.json config.ghzVersion and
// config.opaEnvoyVersion):
//   - ghz, with `go install`;
//   - OPA-Envoy, with `go install` of its release; when the Go module proxy refuses that
//     module version, from a source archive of the release given as
//     `--opa-envoy-source FILE` or OPA_ENVOY_SOURCE=FILE, unpacked into .tools and built
//     with `go build ./cmd/opa-envoy-plugin`.
// Then it transpiles bench/**/*.ts into .tools/bench (Vite's Oxc transform; tsc checks
// their types with the tests') and runs bench/main.ts. Results and the report go to a new
// folder in the system's temporary folder (or --out); docs/benchmarks.md and its chart are
// updated only with --write-docs, so a run leaves `git status` clean.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { useSupportedNode } from "./node-runtime.mjs";
import { transpileTree } from "./transpile.mjs";

await useSupportedNode();

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const GHZ_VERSION = pkg.config.ghzVersion;
const GHZ_MODULE = "github.com/bojand/ghz";
const OPA_ENVOY_VERSION = pkg.config.opaEnvoyVersion;
const OPA_ENVOY_MODULE = "github.com/open-policy-agent/opa-envoy-plugin";
const toolsBin = join(root, ".tools", "bin");
const ghzPath = join(toolsBin, "ghz");
const opaEnvoyPath = join(toolsBin, "opa-envoy-plugin");

function say(message) {
  process.stderr.write(`bench: ${message}\n`);
}

function fail(message) {
  process.stderr.write(`bench: error: ${message}\n`);
  process.exit(1);
}

function findOnPath(name) {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

function needGo(what) {
  const go = findOnPath("go");
  if (!go) fail(`${what} is built with Go, which is not on PATH: install Go (>= 1.25) and run again.`);
  return go;
}

/** What `ghz --version` prints (kingpin writes it to stderr), or null. */
function ghzVersion(binary) {
  if (!existsSync(binary)) return null;
  const result = spawnSync(binary, ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return result.status === 0 ? `${result.stdout}${result.stderr}`.trim() || null : null;
}

/** What `opa-envoy-plugin version` reports on its Version line, or null. */
function opaEnvoyVersion(binary) {
  if (!existsSync(binary)) return null;
  try {
    const out = execFileSync(binary, ["version"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    return /^Version:\s*(\S+)/m.exec(out)?.[1] ?? null;
  } catch {
    return null;
  }
}

function timed(what, action) {
  const started = Date.now();
  action();
  say(`${what} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

const goEnv = (extra = {}) => ({ ...process.env, GOBIN: toolsBin, CGO_ENABLED: "0", GOTOOLCHAIN: "local", ...extra });

function installGhz() {
  if (ghzVersion(ghzPath) === GHZ_VERSION) return;
  const go = needGo(`ghz ${GHZ_VERSION} (the load generator)`);
  mkdirSync(toolsBin, { recursive: true });
  rmSync(ghzPath, { force: true });
  // The version stamped as ghz's release builds stamp it, so that `ghz --version` names it.
  const ldflags = `-s -w -X main.version=${GHZ_VERSION}`;
  timed(`installed ghz ${GHZ_VERSION} into .tools/bin (go install)`, () => {
    const result = spawnSync(go, ["install", "-trimpath", "-ldflags", ldflags, `${GHZ_MODULE}/cmd/ghz@v${GHZ_VERSION}`], {
      cwd: root,
      env: goEnv(),
      stdio: ["ignore", "inherit", "inherit"],
    });
    if (result.status !== 0) fail(`go install ${GHZ_MODULE}/cmd/ghz@v${GHZ_VERSION} failed (exit ${result.status}); see above`);
  });
  const got = ghzVersion(ghzPath);
  if (got !== GHZ_VERSION) fail(`go install produced ${ghzPath} reporting version ${got ?? "nothing"}, expected ${GHZ_VERSION}`);
}

// The release's version stamped as OPA-Envoy's release builds stamp it (its Makefile), so
// that `opa-envoy-plugin version` names the release whichever way it was built.
const opaEnvoyLdflags = `-s -w -X github.com/open-policy-agent/opa/v1/version.Version=${OPA_ENVOY_VERSION}`;

/** The OPA version of an OPA-Envoy release: "1.19.1" of "1.19.1-envoy" (or of "1.19.1-envoy-2"). */
const opaOf = (release) => release.replace(/-envoy.*$/, "");

/** The single top folder of an unpacked archive that holds go.mod, or null. */
function sourceFolder(dir) {
  if (existsSync(join(dir, "go.mod"))) return dir;
  const entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory());
  return entries.length === 1 && existsSync(join(dir, entries[0].name, "go.mod")) ? join(dir, entries[0].name) : null;
}

function buildOpaEnvoyFromArchive(go, archive) {
  const file = resolve(archive);
  if (!existsSync(file))
    fail(`--opa-envoy-source / OPA_ENVOY_SOURCE: expected a source archive (.tar.gz) of OPA-Envoy v${OPA_ENVOY_VERSION}, found nothing at ${file}`);
  const work = join(root, ".tools", "opa-envoy-build");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  // fail() exits at once: the unpacked source goes first.
  const stop = (message) => {
    rmSync(work, { recursive: true, force: true });
    fail(message);
  };
  try {
    const untar = spawnSync("tar", ["-xzf", file, "-C", work], { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
    if (untar.status !== 0) {
      const says = untar.stderr.trim().split("\n").join("; ") || `exit ${untar.status}`;
      stop(`--opa-envoy-source ${file}: expected a .tar.gz source archive, tar says: ${says}`);
    }
    const source = sourceFolder(work);
    if (!source)
      stop(
        `--opa-envoy-source ${file}: expected the source of OPA-Envoy v${OPA_ENVOY_VERSION} (one folder holding go.mod), found ${readdirSync(work).join(", ") || "nothing"}`,
      );
    const gomod = readFileSync(join(source, "go.mod"), "utf8");
    const module = /^module\s+(\S+)/m.exec(gomod)?.[1];
    const opa = /^\s*github\.com\/open-policy-agent\/opa\s+v(\S+)/m.exec(gomod)?.[1];
    if (module !== OPA_ENVOY_MODULE) stop(`--opa-envoy-source ${file}: expected the module ${OPA_ENVOY_MODULE}, found ${module ?? "no module line"} in go.mod`);
    if (opa !== opaOf(OPA_ENVOY_VERSION)) {
      stop(
        `--opa-envoy-source ${file}: expected the release v${OPA_ENVOY_VERSION} (built on OPA v${opaOf(OPA_ENVOY_VERSION)}), found one built on OPA v${opa ?? "?"}`,
      );
    }
    if (!existsSync(join(source, "cmd", "opa-envoy-plugin")))
      stop(`--opa-envoy-source ${file}: expected cmd/opa-envoy-plugin in ${relative(work, source) || "."}`);
    say(`building OPA-Envoy v${OPA_ENVOY_VERSION} from ${file} (go build; the first build takes a few minutes)`);
    const env = goEnv({ GOFLAGS: "-mod=readonly -buildvcs=false" });
    const result = spawnSync(go, ["build", "-trimpath", "-ldflags", opaEnvoyLdflags, "-o", opaEnvoyPath, "./cmd/opa-envoy-plugin"], {
      cwd: source,
      env,
      stdio: ["ignore", "inherit", "inherit"],
    });
    if (result.status !== 0) stop(`go build ./cmd/opa-envoy-plugin in the archive ${file} failed (exit ${result.status}); see above`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function installOpaEnvoy(archive) {
  if (opaEnvoyVersion(opaEnvoyPath) === OPA_ENVOY_VERSION) return;
  const go = needGo(`OPA-Envoy ${OPA_ENVOY_VERSION} (the server compared with)`);
  mkdirSync(toolsBin, { recursive: true });
  rmSync(opaEnvoyPath, { force: true });
  const started = Date.now();
  const module = `${OPA_ENVOY_MODULE}/cmd/opa-envoy-plugin@v${OPA_ENVOY_VERSION}`;
  say(`installing OPA-Envoy v${OPA_ENVOY_VERSION} (go install ${module})`);
  const result = spawnSync(go, ["install", "-trimpath", "-ldflags", opaEnvoyLdflags, module], {
    cwd: root,
    env: goEnv(),
    stdio: ["ignore", "inherit", "pipe"],
    encoding: "utf8",
  });
  if (result.status !== 0) {
    const why = result.stderr.trim().split("\n").slice(-2).join(" ");
    if (!archive) {
      fail(
        `go install ${module} failed: ${why}\n` +
          `  The Go module proxy may refuse this module version. Download the source archive of the release v${OPA_ENVOY_VERSION}\n` +
          `  (OPA-Envoy's GitHub release page, "Source code (tar.gz)") and run again with --opa-envoy-source FILE or OPA_ENVOY_SOURCE=FILE:\n` +
          "  it is unpacked into .tools and built with go build ./cmd/opa-envoy-plugin.",
      );
    }
    say(`go install refused (${why}): building from the source archive instead`);
    buildOpaEnvoyFromArchive(go, archive);
  }
  const got = opaEnvoyVersion(opaEnvoyPath);
  if (got !== OPA_ENVOY_VERSION) fail(`the build produced ${opaEnvoyPath} reporting version ${got ?? "nothing"}, expected ${OPA_ENVOY_VERSION}`);
  say(`installed OPA-Envoy ${OPA_ENVOY_VERSION} into .tools/bin in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/**
 * bench/**.ts into .tools/bench/bench/*.js with .tools/bench/src linking to dist/, so that
 * `../src/x.js` imports the compiled service code and bare imports find node_modules.
 */
async function prepareBench() {
  const work = join(root, ".tools", "bench");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  await transpileTree(root, join(root, "bench"), work);
  return join(work, "bench", "main.js");
}

// Options for the installation are taken here; everything else goes to bench/main.ts.
const argv = process.argv.slice(2);
let archive = process.env.OPA_ENVOY_SOURCE || null;
const forward = [];
for (let i = 0; i < argv.length; i += 1) {
  if (argv[i] === "--opa-envoy-source") archive = argv[++i] ?? fail("--opa-envoy-source needs a FILE");
  else if (argv[i].startsWith("--opa-envoy-source=")) archive = argv[i].slice("--opa-envoy-source=".length);
  else forward.push(argv[i]);
}
const command = forward.find((a) => !a.startsWith("-"));
const needsTools = command !== "report" && !forward.includes("--help");

const setup = spawnSync(process.execPath, [join(root, "scripts", "setup.mjs"), "--quiet", "--no-test-tools"], { cwd: root, stdio: "inherit" });
if (setup.status !== 0) process.exit(setup.status ?? 1);
if (needsTools) {
  installGhz();
  installOpaEnvoy(archive);
}
const entry = await prepareBench();
const { main } = await import(pathToFileURL(entry).href);
const versions = {
  opaEnvoy: needsTools ? `OPA-Envoy ${opaEnvoyVersion(opaEnvoyPath)}` : "",
  ghz: needsTools ? (ghzVersion(ghzPath) ?? "unknown") : "",
};
if (command === "install") say(`ready: ${versions.opaEnvoy}, ghz ${versions.ghz} in .tools/bin`);
process.exitCode = await main(forward, { root, ghz: ghzPath, opaEnvoy: opaEnvoyPath, versions });
