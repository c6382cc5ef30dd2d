import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative, resolve } from "node:path";
import { parseArgs, promisify } from "node:util";
import { BUNDLE_DATA_PATH, readBundle } from "../bundle/read-bundle.js";
import { BUNDLE_SIGNING_ALGORITHMS } from "../bundle/signatures.js";
import { bundleRevision } from "../bundle/snapshot.js";
import { parseAuthzData } from "../config/authz-data.js";
import { ConfigError } from "../config/config-error.js";
import { readYamlFile } from "../config/read-yaml.js";
import { DEFAULT_BUNDLE_MAX_BYTES } from "../config/service-config.js";
import { ENTRYPOINT } from "../policy/engine.js";
import { CAPABILITIES, DiffInputError, OPA } from "./policy-side.js";
import { dataFileOf } from "./policy-test.js";

const run = promisify(execFile);

export const POLICY_BUILD_USAGE =
  "usage: scitokens-authz policy build [DIR] [--data FILE] [--output FILE] [--revision REV] [--signing-key PEM] [--signing-alg ALG]";

export const BUILD_EXIT = { built: 0, badInput: 2 } as const;

export interface BuildOptions {
  /** The policy folder (default policies/ of the current directory). */
  readonly dir?: string | undefined;
  readonly data?: string | undefined;
  /** Default build/bundle.tar.gz of the current directory. */
  readonly output?: string | undefined;
  /** Default: the git commit of DIR ("-dirty" appended when DIR or the data has uncommitted changes). */
  readonly revision?: string | undefined;
  readonly signingKey?: string | undefined;
  readonly signingAlg?: string | undefined;
}

export interface BuildReport {
  readonly output: string;
  /** The `.manifest` revision. */
  readonly revision: string;
  /** What the service will call it: the SHA-256 of the bundle (`policy_revision`). */
  readonly policyRevision: string;
  readonly regoFiles: readonly string[];
  readonly dataFile: string;
  readonly signedWith: string | null;
}

/**
 * `scitokens-authz policy build`: an OPA bundle of a policy folder for `policy.bundle`:
 * the Rego compiled to WebAssembly with the pinned OPA (as setup compiles the shipped
 * policy), the Rego sources for review, the authorization data (checked first, as the
 * service checks it) at scitokens/data/data.json, and a `.manifest` whose revision is
 * the git commit. With --signing-key, OPA signs it (`.signatures.json`, key id
 * "default"). The written bundle is read back as the service reads it before it is
 * reported. Throws DiffInputError (exit 2) on bad input.
 */
export async function policyBuild(options: BuildOptions): Promise<BuildReport> {
  const dir = resolve(options.dir ?? "policies");
  if (!existsSync(dir)) throw new DiffInputError(`${options.dir ?? "policies"}: no such folder`);
  const regoFiles = (await readdir(dir)).filter((name) => name.endsWith(".rego") && !name.endsWith("_test.rego")).sort();
  if (regoFiles.length === 0) throw new DiffInputError(`${dir}: no policy (*.rego) found`);
  const dataFile = dataFileOf(dir, options.data);
  let raw: unknown;
  try {
    raw = await readYamlFile(dataFile);
    parseAuthzData(dataFile, raw);
  } catch (error) {
    if (error instanceof ConfigError) throw new DiffInputError(error.message);
    throw error;
  }
  if (options.signingAlg !== undefined && !(BUNDLE_SIGNING_ALGORITHMS as readonly string[]).includes(options.signingAlg)) {
    throw new DiffInputError(`--signing-alg: expected one of ${BUNDLE_SIGNING_ALGORITHMS.join(", ")}, got ${JSON.stringify(options.signingAlg)}`);
  }
  if (options.signingAlg !== undefined && options.signingKey === undefined) throw new DiffInputError("--signing-alg needs --signing-key");
  const revision = options.revision ?? (await gitRevision(dir, dataFile));
  const output = resolve(options.output ?? join("build", "bundle.tar.gz"));
  for (const needed of [OPA, CAPABILITIES]) {
    if (!existsSync(needed)) throw new DiffInputError(`${needed} is missing: run \`npm run build\` first`);
  }

  const stage = await mkdtemp(join(tmpdir(), "scitokens-authz-bundle-"));
  try {
    await mkdir(join(stage, "policy"));
    for (const name of regoFiles) await copyFile(join(dir, name), join(stage, "policy", name));
    const dataDir = join(stage, ...BUNDLE_DATA_PATH);
    await mkdir(dataDir, { recursive: true });
    await writeFile(join(dataDir, "data.json"), JSON.stringify(raw));
    await writeFile(join(stage, ".manifest"), JSON.stringify({ roots: ["scitokens"] }));
    await mkdir(dirname(output), { recursive: true });
    const signing = options.signingKey !== undefined ? ["--signing-key", resolve(options.signingKey), "--signing-alg", options.signingAlg ?? "RS256"] : [];
    try {
      await run(
        OPA,
        [
          "build",
          "--bundle",
          "--target",
          "wasm",
          "--entrypoint",
          ENTRYPOINT,
          "--capabilities",
          CAPABILITIES,
          "--revision",
          revision,
          ...signing,
          "--output",
          output,
          ".",
        ],
        {
          encoding: "utf8",
          // Run inside the staging folder: the bundle names its files relative to ".".
          cwd: stage,
        },
      );
    } catch (error) {
      // OPA reports on stdout or stderr, naming the staged copies (policy/NAME.rego): name the operator's files.
      const { stdout, stderr } = error as { stdout?: string; stderr?: string };
      const said = `${stderr ?? ""}\n${stdout ?? ""}`
        .replace(/(^|[\s"])policy\/([^\s:"]+\.rego)/g, (_m, lead: string, name: string) => `${lead}${join(dir, name)}`)
        .trim();
      throw new DiffInputError(`${dir}: the policy does not build: ${said || (error as Error).message}`);
    }
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
  const bytes = await readFile(output);
  try {
    await readBundle(output, bytes, { maxBytes: DEFAULT_BUNDLE_MAX_BYTES, signing: null });
  } catch (error) {
    if (error instanceof ConfigError) throw new DiffInputError(`the bundle written is not one the service reads: ${error.message}`);
    throw error;
  }
  return {
    output,
    revision,
    policyRevision: bundleRevision(bytes),
    regoFiles,
    dataFile,
    signedWith: options.signingKey !== undefined ? (options.signingAlg ?? "RS256") : null,
  };
}

/** The commit of the repository holding `dir`; "-dirty" when DIR or the data file has changes not committed. */
async function gitRevision(dir: string, dataFile: string): Promise<string> {
  let commit: string;
  try {
    commit = (await run("git", ["-C", dir, "rev-parse", "HEAD"], { encoding: "utf8" })).stdout.trim();
  } catch {
    throw new DiffInputError(`${dir}: not in a git repository with a commit; give the bundle's revision with --revision`);
  }
  const { stdout } = await run("git", ["-C", dir, "status", "--porcelain", "--", ".", relative(dir, dataFile)], { encoding: "utf8" });
  return stdout.trim() === "" ? commit : `${commit}-dirty`;
}

export function formatBuildText(report: BuildReport): string {
  return [
    `wrote ${report.output}`,
    `  revision         ${report.revision} (.manifest)`,
    `  policy_revision  ${report.policyRevision} (what the service logs and reports for this bundle)`,
    `  policy           ${report.regoFiles.join(", ")} (compiled to policy.wasm, entrypoint ${ENTRYPOINT})`,
    `  data             ${report.dataFile} (as ${BUNDLE_DATA_PATH.join("/")}/data.json)`,
    `  signature        ${report.signedWith !== null ? `${report.signedWith}, key id "default"` : "none"}`,
    "",
  ].join("\n");
}

/** `policy build [DIR] …`: exit 0 built, 2 bad input. */
export async function policyBuildCommand(args: readonly string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: {
        data: { type: "string" },
        output: { type: "string" },
        revision: { type: "string" },
        "signing-key": { type: "string" },
        "signing-alg": { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    });
    if (values.help) {
      out.write(`${POLICY_BUILD_USAGE}\n`);
      return BUILD_EXIT.built;
    }
    if (positionals.length > 1) throw new DiffInputError(`expected at most one policy folder, got ${positionals.length}`);
    const report = await policyBuild({
      dir: positionals[0],
      data: values.data,
      output: values.output,
      revision: values.revision,
      signingKey: values["signing-key"],
      signingAlg: values["signing-alg"],
    });
    out.write(values.json ? `${JSON.stringify({ ...report, output: report.output, name: basename(report.output) })}\n` : formatBuildText(report));
    return BUILD_EXIT.built;
  } catch (error) {
    if (!(error instanceof DiffInputError) && !(error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) throw error;
    err.write(`scitokens-authz policy build: ${(error as Error).message}\n${POLICY_BUILD_USAGE}\n`);
    return BUILD_EXIT.badInput;
  }
}
