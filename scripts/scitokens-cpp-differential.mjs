#!/usr/bin/env node
// The differential test (test/differential/) against a scitokens-cpp built from a source
// archive, beside Debian's 0.7.3: Debian ships only 0.7.3, and the newer releases behave
// differently (docs/semantics.md). Not part of `npm test`: building takes minutes, and the
// archive is the user's to give.
//
//   npm run diff:scitokens-cpp -- ARCHIVE [VITEST_ARG…]
//   node scripts/scitokens-cpp-differential.mjs ARCHIVE [--build-only] [VITEST_ARG…]
//
// ARCHIVE is a scitokens-cpp release source archive (.tar.gz, one top folder holding
// CMakeLists.txt and src/scitokens.h), e.g. scitokens-cpp-1.4.1.tar.gz. The script
//   1. installs the Debian packages the build needs when they are missing (cmake, g++,
//      pkg-config, libcurl4-openssl-dev, libssl-dev, libsqlite3-dev, uuid-dev), and those
//      the differential test needs (gcc, libscitokens-dev), as scripts/test.mjs does;
//   2. unpacks the archive into a temporary folder, builds it with cmake and installs it
//      into .tools/scitokens-cpp/VERSION-HASH (HASH: the start of the archive's SHA-256),
//      which later runs reuse: the same archive is built once;
//   3. runs `vitest run test/differential` with SCITOKENS_CPP_PREFIX naming that folder,
//      so the run adds the oracle of that build (include/ and lib/ of the prefix) to the
//      default ones (Debian's 0.7.3, the Python scitokens library, whose virtual
//      environment `npm run diff:scitokens-cpp` has setup create first with
//      --for-differential). DIFF_SEED chooses the seed as for the test itself.
// --build-only stops after step 2 and prints the prefix. Nothing is written into the
// checkout outside .tools/.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureDebianPackages } from "./debian-packages.mjs";
import { useSupportedNode } from "./node-runtime.mjs";

await useSupportedNode();

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const installs = join(root, ".tools", "scitokens-cpp");
const PREFIX_ENV = "SCITOKENS_CPP_PREFIX";
/** Written last into a finished install: its presence means the prefix is complete. */
const BUILD_INFO = "build-info.json";

function fail(message, code = 1) {
  process.stderr.write(`scitokens-cpp-differential: ${message}\n`);
  process.exit(code);
}

function usage(message) {
  if (message) process.stderr.write(`scitokens-cpp-differential: ${message}\n`);
  process.stderr.write(
    "usage: npm run diff:scitokens-cpp -- ARCHIVE [VITEST_ARG…]\n" +
      "       node scripts/scitokens-cpp-differential.mjs ARCHIVE [--build-only] [VITEST_ARG…]\n" +
      "ARCHIVE: a scitokens-cpp release source archive (.tar.gz), e.g. scitokens-cpp-1.4.1.tar.gz\n",
  );
  process.exit(2);
}

function parseArgs(argv) {
  const rest = argv.filter((arg) => arg !== "--build-only");
  const [archive, ...vitestArgs] = rest;
  if (archive === undefined || archive === "--help" || archive === "-h") usage(archive === undefined ? "no archive given" : undefined);
  return { archive: resolve(archive), buildOnly: rest.length !== argv.length, vitestArgs };
}

async function sha256(file) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk);
  return hash.digest("hex");
}

/** The finished install of this archive, if an earlier run made one. */
function existingInstall(hash) {
  if (!existsSync(installs)) return undefined;
  for (const name of readdirSync(installs)) {
    const prefix = join(installs, name);
    if (!name.endsWith(`-${hash.slice(0, 16)}`) || !existsSync(join(prefix, BUILD_INFO))) continue;
    try {
      if (JSON.parse(readFileSync(join(prefix, BUILD_INFO), "utf8")).sha256 === hash) return prefix;
    } catch {
      // An unreadable build-info: build again.
    }
  }
  return undefined;
}

/**
 * Unpacks `archive` into `dir` and returns the source folder and the version its
 * CMakeLists.txt declares, or fails saying what the archive lacks.
 */
async function unpack(archive, dir) {
  const { x } = await import("tar");
  try {
    await x({ file: archive, cwd: dir, strict: true });
  } catch (error) {
    fail(`${archive}: not a readable .tar.gz archive: ${error.message}`);
  }
  const top = readdirSync(dir);
  if (top.length !== 1 || !statSync(join(dir, top[0])).isDirectory()) {
    fail(`${archive}: expected one top folder (a release source archive such as scitokens-cpp-1.4.1/), found ${JSON.stringify(top.slice(0, 5))}`);
  }
  const source = join(dir, top[0]);
  const cmakeLists = join(source, "CMakeLists.txt");
  if (!existsSync(cmakeLists) || !existsSync(join(source, "src", "scitokens.h"))) {
    fail(`${archive}: ${top[0]}/ has no CMakeLists.txt and src/scitokens.h: not a scitokens-cpp source archive`);
  }
  const project = /project\s*\(\s*scitokens-cpp\b[^)]*?\bVERSION\s+(\d+\.\d+\.\d+)/s.exec(readFileSync(cmakeLists, "utf8"));
  if (project === null) fail(`${archive}: ${top[0]}/CMakeLists.txt declares no "project( scitokens-cpp … VERSION X.Y.Z )": not a scitokens-cpp source archive`);
  return { source, version: project[1] };
}

/** Runs one build step with its output in `log`; on failure prints the log's end and exits. */
function step(label, command, args, log) {
  const started = performance.now();
  const result = spawnSync(command, args, { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  writeFileSync(log, `$ ${command} ${args.join(" ")}\n${result.stdout ?? ""}${result.stderr ?? ""}\n`, { flag: "a" });
  if (result.error || result.status !== 0) {
    const tail = readFileSync(log, "utf8").trimEnd().split("\n").slice(-40).join("\n");
    fail(`${label} failed (${result.error ? result.error.message : `exit ${result.status}`}); the end of its output:\n${tail}`);
  }
  process.stderr.write(`scitokens-cpp-differential: ${label} (${((performance.now() - started) / 1000).toFixed(1)} s)\n`);
}

/** Builds the archive and installs it under .tools/scitokens-cpp; returns the prefix. */
async function build(archive, hash) {
  const work = mkdtempSync(join(tmpdir(), "scitokens-cpp-build-"));
  try {
    const { source, version } = await unpack(archive, work);
    ensureDebianPackages(
      [
        { pkg: "cmake", what: "cmake" },
        { pkg: "g++", what: "g++" },
        { pkg: "pkg-config", what: "pkg-config" },
        { pkg: "libcurl4-openssl-dev" },
        { pkg: "libssl-dev" },
        { pkg: "libsqlite3-dev" },
        { pkg: "uuid-dev" },
      ],
      { prefix: "scitokens-cpp-differential", why: "to build scitokens-cpp" },
    );
    const prefix = join(installs, `${version}-${hash.slice(0, 16)}`);
    const partial = `${prefix}.partial`;
    rmSync(partial, { recursive: true, force: true });
    mkdirSync(installs, { recursive: true });
    const buildDir = join(work, "build");
    const log = join(work, "build.log");
    process.stderr.write(`scitokens-cpp-differential: building scitokens-cpp ${version} from ${archive} (once; under a minute on 2 cores)\n`);
    const started = performance.now();
    step(
      "cmake configure",
      "cmake",
      ["-S", source, "-B", buildDir, `-DCMAKE_INSTALL_PREFIX=${partial}`, "-DCMAKE_INSTALL_LIBDIR=lib", "-DSCITOKENS_BUILD_UNITTESTS=OFF"],
      log,
    );
    step("cmake build", "cmake", ["--build", buildDir, "--parallel", String(availableParallelism())], log);
    step("cmake install", "cmake", ["--install", buildDir], log);
    for (const file of ["include/scitokens/scitokens.h", "lib/libSciTokens.so"]) {
      if (!existsSync(join(partial, file))) fail(`the install has no ${file} (see ${log})`);
    }
    // The prefix is baked into the harness's run path, so the finished folder keeps its name.
    rmSync(prefix, { recursive: true, force: true });
    renameSync(partial, prefix);
    const seconds = Math.round((performance.now() - started) / 1000);
    writeFileSync(
      join(prefix, BUILD_INFO),
      `${JSON.stringify({ version, sha256: hash, archive: archive.split("/").pop(), seconds, built: new Date().toISOString() }, null, 2)}\n`,
    );
    process.stderr.write(`scitokens-cpp-differential: scitokens-cpp ${version} installed in ${relative(root, prefix)} (${seconds} s)\n`);
    return prefix;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const { archive, buildOnly, vitestArgs } = parseArgs(process.argv.slice(2));
if (!existsSync(archive)) fail(`${archive}: no such file (give the path of a scitokens-cpp source archive, e.g. scitokens-cpp-1.4.1.tar.gz)`);
if (!statSync(archive).isFile()) fail(`${archive}: not a file (give the path of a scitokens-cpp source archive, e.g. scitokens-cpp-1.4.1.tar.gz)`);

const hash = await sha256(archive);
let prefix = existingInstall(hash);
if (prefix === undefined) {
  prefix = await build(archive, hash);
} else {
  process.stderr.write(`scitokens-cpp-differential: reusing ${relative(root, prefix)} (built from an archive with the same SHA-256)\n`);
}
if (buildOnly) {
  process.stdout.write(`${prefix}\n`);
  process.exit(0);
}

ensureDebianPackages(
  [
    { pkg: "libscitokens-dev", what: "/usr/include/scitokens/scitokens.h" },
    { pkg: "gcc", what: "gcc" },
  ],
  { prefix: "scitokens-cpp-differential", why: "for the differential test's harness" },
);
const vitest = spawnSync(join(root, "node_modules", ".bin", "vitest"), ["run", "test/differential", ...vitestArgs], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, [PREFIX_ENV]: prefix },
});
if (vitest.error) fail(`vitest could not start: ${vitest.error.message} (run \`npm run setup\`)`);
process.exit(vitest.status ?? 1);
