import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, normalize, resolve } from "node:path";
import { promisify } from "node:util";
import { type AuthzData, loadAuthzData } from "../config/authz-data.js";
import { ConfigError } from "../config/config-error.js";
import { PACKAGE_ROOT } from "../config/service-config.js";
import { ENTRYPOINT, PolicyEngine } from "../policy/engine.js";

const run = promisify(execFile);

/** The pinned OPA and the capabilities file `scripts/setup.mjs` builds the policy with. */
export const OPA = join(PACKAGE_ROOT, ".tools", "bin", "opa");
export const CAPABILITIES = join(PACKAGE_ROOT, "build", "capabilities.json");
const POLICY_DIR = "policies";
const MAX_GIT_OUTPUT = 64 * 1024 * 1024;

/** Input `policy diff` cannot work with (exit 2): a bad side, data, request file or option. */
export class DiffInputError extends Error {
  override readonly name = "DiffInputError";
}

/** One side of a comparison: a policy compiled and loaded with its data. */
export interface PolicySide {
  /** What the operator named: a git revision or a folder. */
  readonly spec: string;
  /** For a revision, the commit it names. */
  readonly commit: string | null;
  readonly regoFiles: readonly string[];
  readonly dataFile: string;
  /** The data file as the operator knows it: its path, or `REV:path` for a revision. */
  readonly dataName: string;
  readonly data: AuthzData;
  readonly engine: PolicyEngine;
}

/**
 * Loads one side of `policy diff`: `spec` is a folder (a policy folder holding `*.rego`,
 * or a checkout holding `policies/`) or a git revision of the repository around the
 * current directory (its `policies/*.rego` and data file read with `git show`). The data
 * file is `dataPath` relative to the side's root: the checkout at that revision, the
 * folder holding `policies/`, or the policy folder's parent. The Rego (tests left out) is
 * compiled into `work` with the pinned OPA as setup does, then loaded with the data.
 */
export async function loadPolicySide(spec: string, dataPath: string, work: string, policyDir: string = POLICY_DIR): Promise<PolicySide> {
  await mkdir(work, { recursive: true });
  const folder = await isFolder(spec);
  const { regoFiles, dataFile, dataName, commit } = folder ? await fromFolder(spec, dataPath, policyDir) : await fromRevision(spec, dataPath, work, policyDir);
  if (regoFiles.length === 0) throw new DiffInputError(`${spec}: no policy (*.rego) found`);
  let data: AuthzData;
  try {
    data = await loadAuthzData(dataFile);
  } catch (error) {
    if (error instanceof ConfigError) throw new DiffInputError(`${spec}: ${error.message}`);
    throw error;
  }
  const wasm = await compile(spec, regoFiles, work);
  try {
    const engine = await PolicyEngine.load(wasm, data.policyData);
    return { spec, commit, regoFiles, dataFile, dataName, data, engine };
  } catch (error) {
    if (error instanceof ConfigError) throw new DiffInputError(`${spec}: ${error.message}`);
    throw error;
  }
}

async function isFolder(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

function isRego(name: string): boolean {
  return name.endsWith(".rego") && !name.endsWith("_test.rego");
}

interface SideFiles {
  readonly regoFiles: string[];
  readonly dataFile: string;
  readonly dataName: string;
  readonly commit: string | null;
}

async function fromFolder(spec: string, dataPath: string, policyFolder: string): Promise<SideFiles> {
  const absolute = resolve(spec);
  const nested = join(absolute, policyFolder);
  const policyDir = existsSync(nested) ? nested : absolute;
  const root = policyDir === nested ? absolute : dirname(absolute);
  const names = (await readdir(policyDir)).filter(isRego).sort();
  const dataFile = resolve(root, dataPath);
  return { regoFiles: names.map((name) => join(policyDir, name)), dataFile, dataName: dataFile, commit: null };
}

async function git(args: readonly string[], cwd?: string): Promise<string> {
  const { stdout } = await run("git", [...args], { encoding: "utf8", maxBuffer: MAX_GIT_OUTPUT, ...(cwd ? { cwd } : {}) });
  return stdout;
}

async function fromRevision(spec: string, dataPath: string, work: string, policyFolder: string): Promise<SideFiles> {
  let commit: string;
  let top: string;
  try {
    top = (await git(["rev-parse", "--show-toplevel"])).trim();
    commit = (await git(["rev-parse", "--verify", "--quiet", `${spec}^{commit}`], top)).trim();
  } catch {
    throw new DiffInputError(`${spec}: neither a folder nor a git revision of the repository here`);
  }
  const tree = join(work, "tree");
  const folder = normalize(policyFolder).replace(/\/+$/, "");
  if (isAbsolute(folder) || folder.startsWith("..")) throw new DiffInputError(`--policy-dir ${policyFolder}: expected a folder inside the repository`);
  const listed = (await git(["ls-tree", "--name-only", commit, `${folder}/`], top)).split("\n").filter((p) => isRego(p));
  const regoFiles: string[] = [];
  await mkdir(join(tree, folder), { recursive: true });
  for (const path of listed) {
    const target = join(tree, path);
    await writeFile(target, await git(["show", `${commit}:${path}`], top));
    regoFiles.push(target);
  }
  if (isAbsolute(dataPath)) return { regoFiles, dataFile: dataPath, dataName: dataPath, commit };
  const relative = normalize(dataPath);
  if (relative.startsWith("..")) throw new DiffInputError(`--data ${dataPath}: expected a path inside the repository`);
  let text: string;
  try {
    text = await git(["show", `${commit}:${relative}`], top);
  } catch {
    throw new DiffInputError(`${spec}: ${relative} does not exist at ${commit.slice(0, 12)}`);
  }
  const dataFile = join(tree, relative);
  await mkdir(dirname(dataFile), { recursive: true });
  await writeFile(dataFile, text);
  return { regoFiles, dataFile, dataName: `${spec}:${relative}`, commit };
}

/** `opa build -t wasm` as scripts/setup.mjs runs it; returns the policy.wasm path. */
async function compile(spec: string, regoFiles: readonly string[], work: string): Promise<string> {
  for (const needed of [OPA, CAPABILITIES]) {
    if (!existsSync(needed)) throw new DiffInputError(`${needed} is missing: run \`npm run build\` first`);
  }
  const bundle = join(work, "policy.tar.gz");
  try {
    await run(OPA, ["build", "--target", "wasm", "--entrypoint", ENTRYPOINT, "--capabilities", CAPABILITIES, "--output", bundle, ...regoFiles], {
      encoding: "utf8",
      maxBuffer: MAX_GIT_OUTPUT,
    });
  } catch (error) {
    // OPA reports a compile error on stdout or stderr.
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    const said = `${stderr ?? ""}\n${stdout ?? ""}`.trim();
    throw new DiffInputError(`${spec}: the policy does not compile: ${said || (error as Error).message}`);
  }
  // Bundle members carry a leading "/" that tar strips (and mentions on stderr).
  await run("tar", ["-xzf", bundle, "-C", work, "/policy.wasm"]);
  return join(work, "policy.wasm");
}
