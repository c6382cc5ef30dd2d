#!/usr/bin/env node
// The Node.js that runs this project. scitokens-authz needs the Node named by package.json's
// "engines" (>= 22.12). Where the Node that started a script is older, the Node pinned as
// package.json's config.nodeVersion (24 LTS) is installed into .tools/node from the npm
// registry's node-<platform>-<arch> package (`npm pack`, then unpacked: bin/node), and the
// script runs again with it, its folder first on PATH so that npm, tsc and vitest use it too.
// setup.mjs, test.mjs and fuzz.mjs start with `await useSupportedNode(import.meta.url)`;
// the `scitokens-authz` command (src/cli/bin.ts) does the same with the Node setup installed.
//
//   node scripts/node-runtime.mjs path [--major N]
//       prints the folder to put first on PATH so that `node` is supported (and of major
//       version N, as .ci/run asks for 24), installing the pinned Node when needed; prints
//       nothing when the running Node will do;
//   node scripts/node-runtime.mjs exec COMMAND [ARG…]
//       runs COMMAND with that folder first on PATH (npm run test:paths runs vitest so).
//
// Plain JavaScript without dependencies that still runs on old Node (it has to say, or fix,
// that the Node is too old).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync } from "node:fs";
import { constants } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
/** Where setup installs the pinned Node: bin/node as in Node's own release archives. */
export const toolsNode = join(root, ".tools", "node");
export const toolsNodeBin = join(toolsNode, "bin");

/** "22.12.0" from ">=22.12" (the one form package.json's engines uses here). */
export function floorOf(range) {
  const match = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(String(range).trim());
  if (!match) throw new Error(`package.json engines.node: expected ">=MAJOR.MINOR", got ${JSON.stringify(range)}`);
  return `${match[1]}.${match[2] ?? 0}.${match[3] ?? 0}`;
}

/** True when version `a` ("24.1.0" or "v24.1.0") is `b` or later. */
export function atLeast(a, b) {
  const parse = (v) => String(v).replace(/^v/, "").split(".").map(Number);
  const [x, y] = [parse(a), parse(b)];
  for (let i = 0; i < 3; i += 1) {
    if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
  }
  return true;
}

export const NODE_FLOOR = floorOf(pkg.engines.node);
/** The Node installed where the machine's is too old (and for CI where it is not this major). */
export const PINNED_NODE = pkg.config.nodeVersion;

const major = (version) => Number(String(version).replace(/^v/, "").split(".")[0]);

/** Whether `version` (default: the running Node) may run the project, and is of `wantMajor` if given. */
export function suits(version = process.versions.node, wantMajor = null) {
  return atLeast(version, NODE_FLOOR) && (wantMajor === null || major(version) === wantMajor);
}

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

/** The version of the Node in .tools/node, or null. */
function installedVersion() {
  try {
    if (!existsSync(join(toolsNodeBin, "node"))) return null;
    return JSON.parse(readFileSync(join(toolsNode, "package.json"), "utf8")).version ?? null;
  } catch {
    return null;
  }
}

/**
 * Makes .tools/node the pinned Node (nothing to do when it already is) and returns its bin
 * folder. The package is fetched with `npm pack` (npm checks its integrity) and unpacked
 * beside .tools/node, which is replaced only once the new one runs.
 */
export function installPinnedNode({ say = (m) => process.stderr.write(`${m}\n`), why = "" } = {}) {
  if (installedVersion() === PINNED_NODE) return toolsNodeBin;
  if (!atLeast(PINNED_NODE, NODE_FLOOR)) fail(`node-runtime: package.json config.nodeVersion ${PINNED_NODE} is older than engines.node (${NODE_FLOOR})`);
  const spec = `node-${process.platform}-${process.arch}@${PINNED_NODE}`;
  say(`node-runtime: ${why}installing Node ${PINNED_NODE} into .tools/node (npm package ${spec}; once, about 50 MB)`);
  mkdirSync(dirname(toolsNode), { recursive: true });
  const work = mkdtempSync(join(dirname(toolsNode), "node-download-"));
  let problem = null;
  try {
    unpackPinnedNode(spec, work);
  } catch (error) {
    problem = error;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (problem) {
    fail(
      `node-runtime: ${why}Node ${PINNED_NODE} could not be installed into .tools/node: ${problem.message}.\n` +
        `node-runtime: install Node.js ${NODE_FLOOR} or later (24 LTS recommended) and run the command again.`,
    );
  }
  return toolsNodeBin;
}

/** `npm pack SPEC` into `work`, unpacked there, checked to run, then moved to .tools/node. */
function unpackPinnedNode(spec, work) {
  const pack = spawnSync("npm", ["pack", spec, "--pack-destination", work, "--silent", "--no-audit", "--no-fund"], {
    cwd: work,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (pack.error) throw new Error(`npm could not start (${pack.error.message})`);
  if (pack.status !== 0) throw new Error(`npm pack ${spec} exited with ${pack.status}: ${pack.stderr.trim().split("\n").slice(-3).join(" ")}`);
  const tarball = readdirSync(work).find((f) => f.endsWith(".tgz"));
  if (!tarball) throw new Error(`npm pack ${spec} left no package`);
  const unpacked = join(work, "node");
  mkdirSync(unpacked);
  const tar = spawnSync("tar", ["-xzf", join(work, tarball), "-C", unpacked, "--strip-components=1"], {
    encoding: "utf8",
    stdio: ["ignore", "ignore", "pipe"],
  });
  if (tar.status !== 0) throw new Error(`tar could not unpack ${tarball}: ${tar.error?.message ?? tar.stderr.trim()}`);
  const runs = spawnSync(join(unpacked, "bin", "node"), ["--version"], { encoding: "utf8" });
  if (runs.stdout?.trim() !== `v${PINNED_NODE}`)
    throw new Error(`its bin/node does not run here (${runs.error?.message ?? (runs.stderr?.trim() || "no output")})`);
  rmSync(toolsNode, { recursive: true, force: true });
  renameSync(unpacked, toolsNode);
}

/** PATH with `dir` first (once). */
export function pathWith(dir, path = process.env.PATH ?? "") {
  return [dir, ...path.split(delimiter).filter((entry) => entry && resolve(entry) !== dir)].join(delimiter);
}

/**
 * Runs `command` with `args` and `bin` first on PATH, then exits as it did. The child shares
 * the terminal, so Ctrl-C reaches it directly (and is ignored here); SIGTERM and SIGHUP sent
 * to this process are passed on.
 */
function runAndExit(bin, command, args) {
  return new Promise(() => {
    const child = spawn(command, args, { stdio: "inherit", env: { ...process.env, PATH: bin ? pathWith(bin) : process.env.PATH } });
    process.on("SIGINT", () => {});
    for (const signal of ["SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
    child.on("error", (error) => fail(`node-runtime: ${command} could not start: ${error.message}`));
    // A child ended by a signal exits as a shell reports it: 128 + the signal's number.
    child.on("exit", (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 0)));
  });
}

const tooOld = () => `Node ${process.versions.node} is older than ${NODE_FLOOR}, which scitokens-authz needs: `;

/**
 * Returns at once when the running Node suits. Otherwise runs this script (`process.argv[1]`,
 * same arguments) again with the pinned Node, installing it first, and exits as it does.
 */
export async function useSupportedNode() {
  if (suits()) return;
  const bin = installPinnedNode({ why: tooOld() });
  await runAndExit(bin, join(bin, "node"), [...process.execArgv, ...process.argv.slice(1)]);
}

function usage() {
  fail("usage: node scripts/node-runtime.mjs path [--major N]\n       node scripts/node-runtime.mjs exec COMMAND [ARG…]");
}

async function main(argv) {
  const [command, ...rest] = argv;
  if (command === "exec") {
    if (rest.length === 0) usage();
    await runAndExit(suits() ? null : installPinnedNode({ why: tooOld() }), rest[0], rest.slice(1));
  }
  const at = rest.indexOf("--major");
  const wantMajor = at === -1 ? null : Number(rest[at + 1]);
  if (command !== "path" || (at !== -1 && !Number.isInteger(wantMajor))) usage();
  if (suits(process.versions.node, wantMajor)) return;
  if (wantMajor !== null && major(PINNED_NODE) !== wantMajor)
    fail(`node-runtime: the pinned Node ${PINNED_NODE} (config.nodeVersion) is not Node ${wantMajor}`);
  const why = wantMajor === null ? tooOld() : `Node ${process.versions.node} is not Node ${wantMajor}: `;
  process.stdout.write(`${installPinnedNode({ why })}\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main(process.argv.slice(2));
