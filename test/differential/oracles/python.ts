import { existsSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { LineHarness } from "../oracle.js";

const here = dirname(fileURLToPath(import.meta.url));

/** The driver, next to this file: python-harness.py. */
export const PYTHON_HARNESS = join(here, "python-harness.py");

const packageJson = JSON.parse(readFileSync(resolve(here, "..", "..", "..", "package.json"), "utf8")) as { config: Record<string, string> };

/** The release of the Python scitokens library the test's virtual environment holds (package.json's config). */
export const PYTHON_SCITOKENS_VERSION: string = (() => {
  const version = packageJson.config["pythonScitokensVersion"];
  if (version === undefined) throw new Error("package.json: config.pythonScitokensVersion is missing");
  return version;
})();

/** The virtual environment `scripts/setup.mjs --for-tests` makes, with the pinned `scitokens`. */
export const PYTHON_VENV = resolve(here, "..", "..", "..", ".tools", "python-scitokens");

export interface PythonStart {
  id: string;
  label: string;
  /** The test's temporary folder: the driver's home and key cache live in a subfolder. */
  dir: string;
  issuer: string;
  kid: string;
  publicKeyPem: string;
}

/**
 * Starts python-harness.py with the virtual environment's interpreter. It puts the
 * issuer's key in the library's key cache (`$XDG_CACHE_HOME/scitokens`, pointed into `dir`
 * with `$HOME`), so the library makes no network request and nothing outside the test's
 * temporary folder is touched: Python runs isolated (`-I`: no user site, no PYTHON*
 * variables, not the script's folder on sys.path) and writes no bytecode (`-B`). Fails
 * (never skips) without the environment: CI must run this oracle too.
 */
export async function startPythonHarness(start: PythonStart): Promise<LineHarness> {
  const python = join(PYTHON_VENV, "bin", "python");
  if (!existsSync(python)) {
    throw new Error(
      `${start.label}: ${python} is missing; \`node scripts/setup.mjs --for-tests\` creates it (npm test does), which needs python3 with its venv module`,
    );
  }
  const own = join(start.dir, start.id);
  const home = join(own, "home");
  const cache = join(own, "cache");
  await Promise.all([mkdir(home, { recursive: true }), mkdir(cache, { recursive: true })]);
  const pemFile = join(own, "issuer.pub.pem");
  await writeFile(pemFile, start.publicKeyPem);
  return LineHarness.start(start.id, start.label, {
    command: python,
    args: ["-I", "-B", PYTHON_HARNESS, start.issuer, start.kid, pemFile],
    cwd: own,
    env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: home, XDG_CACHE_HOME: cache, LC_ALL: "C.UTF-8" },
  });
}
