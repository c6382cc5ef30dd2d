import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { LineHarness } from "../oracle.js";

const exec = promisify(execFile);

/** The C source, next to this file; compiled by {@link compileHarness}, never committed built. */
export const HARNESS_SOURCE = join(dirname(fileURLToPath(import.meta.url)), "cpp-harness.c");
const DEBIAN_HEADER = "/usr/include/scitokens/scitokens.h";

/**
 * Compiles the harness with gcc into `dir`: against Debian's libscitokens-dev, or, with
 * `prefix`, against the scitokens-cpp installed there (its include/ and lib/, found again
 * at run time through the binary's rpath). Fails (never skips) when the header or the
 * compiler is missing: CI must run the differential test.
 */
export async function compileHarness(dir: string, prefix?: string): Promise<string> {
  const binary = join(dir, prefix === undefined ? "cpp-harness" : "cpp-harness-prefix");
  const where = prefix === undefined ? [] : [`-I${join(prefix, "include")}`, `-L${join(prefix, "lib")}`, `-Wl,-rpath,${join(prefix, "lib")}`];
  try {
    await exec("gcc", ["-std=c11", "-O1", "-Wall", "-Wextra", ...where, "-o", binary, HARNESS_SOURCE, "-lSciTokens"]);
  } catch (error) {
    const detail = (error as { stderr?: string }).stderr ?? String(error);
    const needs =
      prefix === undefined
        ? `needs gcc and ${DEBIAN_HEADER} from the Debian package libscitokens-dev, which npm test → scripts/test.mjs installs; locally: sudo apt-get install gcc libscitokens-dev`
        : `needs gcc and a scitokens-cpp installed under ${prefix} (include/scitokens/scitokens.h and lib/libSciTokens.so)`;
    throw new Error(`could not compile the scitokens-cpp harness (${needs}):\n${detail}`);
  }
  return binary;
}

export interface CppStart {
  id: string;
  label: string;
  /** The compiled harness ({@link compileHarness}). */
  binary: string;
  /** The test's temporary folder: the harness's home and key cache live there. */
  dir: string;
  issuer: string;
  kid: string;
  publicKeyPem: string;
  /**
   * One enforcer for every case, in one process (cpp-harness.c's --one-enforcer), instead of
   * a forked child with a fresh enforcer per case: for what an enforcer carries over.
   */
  oneEnforcer?: boolean;
}

/**
 * Starts the harness, storing the issuer's public key in scitokens-cpp's key cache first
 * (`$XDG_CACHE_HOME/scitokens`, pointed into `dir` with `$HOME`), so that the library makes
 * no network request and nothing outside the test's temporary folder is touched.
 *
 * 0.7.3 and 1.4.1 keep that cache alike: `scitokens/scitokens_cpp.sqllite`, table
 * `keycache` (issuer → `{jwks, next_update, expires}`), filled by
 * `scitoken_store_public_ec_key` in both. They differ in the expiry of a stored key (0.7.3:
 * 4 hours, 1.4.1: 4 days) and in that 1.4.1 would prefer a `keycache.cache_home` set through
 * its configuration API (the harness sets none). In both, `next_update` is 10 minutes after
 * the store: a run that lasted longer would fetch the keys again from the loopback issuer.
 */
export async function startCppHarness(start: CppStart): Promise<LineHarness> {
  const own = join(start.dir, start.id);
  const home = join(own, "home");
  const cache = join(own, "cache");
  await Promise.all([mkdir(home, { recursive: true }), mkdir(cache, { recursive: true })]);
  const pemFile = join(own, "issuer.pub.pem");
  await writeFile(pemFile, start.publicKeyPem);
  return LineHarness.start(start.id, start.label, {
    command: start.binary,
    args: [...(start.oneEnforcer === true ? ["--one-enforcer"] : []), start.issuer, start.kid, pemFile],
    cwd: own,
    env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: home, XDG_CACHE_HOME: cache, LC_ALL: "C" },
  });
}
