import { type ChildProcessWithoutNullStreams, execFile, spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const exec = promisify(execFile);

/** The C source, next to this file; compiled by {@link compileHarness}, never committed built. */
export const HARNESS_SOURCE = join(dirname(fileURLToPath(import.meta.url)), "cpp-harness.c");
const HEADER = "/usr/include/scitokens/scitokens.h";

/** What scitokens-cpp decided for one case. */
export type CppResult =
  | { kind: "allow" }
  /** `stage`: deserialize, enforcer_create or enforcer_test; `message` as the library wrote it. */
  | { kind: "deny"; stage: string; message: string }
  /** The library crashed (a signal) on this case; the harness survives it (one fork per case). */
  | { kind: "crash"; signal: string };

export interface HarnessCase {
  token: string;
  authz: "read" | "write";
  path: string;
  audiences: readonly string[];
}

/**
 * Compiles the harness with gcc against Debian's libscitokens-dev into `dir`. Fails (never
 * skips) when the header or the compiler is missing: CI must run the differential test.
 */
export async function compileHarness(dir: string): Promise<string> {
  const binary = join(dir, "cpp-harness");
  try {
    await exec("gcc", ["-std=c11", "-O1", "-Wall", "-Wextra", "-o", binary, HARNESS_SOURCE, "-lSciTokens"]);
  } catch (error) {
    const detail = (error as { stderr?: string }).stderr ?? String(error);
    throw new Error(
      `could not compile the scitokens-cpp harness (needs gcc and ${HEADER} from the Debian package libscitokens-dev, ` +
        `which npm test → scripts/test.mjs installs; locally: sudo apt-get install gcc libscitokens-dev):\n${detail}`,
    );
  }
  return binary;
}

/**
 * The long-running harness process: one case per line in, one result per line out, in
 * order. scitokens-cpp's key cache (`$XDG_CACHE_HOME/scitokens`) and `$HOME` point into
 * `dir`, so nothing outside the test's temporary folder is touched.
 */
export class CppHarness {
  private readonly pending: Array<(line: string) => void> = [];
  private failure: Error | undefined;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly stderr: string[],
  ) {
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => this.pending.shift()?.(line));
    child.on("exit", (code, signal) => {
      this.failure = new Error(`scitokens-cpp harness exited (code ${code}, signal ${signal}): ${this.stderr.join("").trim()}`);
      for (const waiter of this.pending.splice(0)) waiter(`EXIT\t${this.failure.message}`);
    });
  }

  /** Starts the harness, storing `publicKeyPem` for `issuer`/`kid` in its key cache. */
  static async start(binary: string, dir: string, issuer: string, kid: string, publicKeyPem: string): Promise<CppHarness> {
    const home = join(dir, "home");
    const cache = join(dir, "cache");
    await Promise.all([mkdir(home, { recursive: true }), mkdir(cache, { recursive: true })]);
    const pemFile = join(dir, "issuer.pub.pem");
    await writeFile(pemFile, publicKeyPem);
    const stderr: string[] = [];
    const child = spawn(binary, [issuer, kid, pemFile], {
      cwd: dir,
      env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: home, XDG_CACHE_HOME: cache, LC_ALL: "C" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => stderr.push(chunk));
    const harness = new CppHarness(child, stderr);
    const ready = await harness.nextLine();
    if (ready !== "READY") throw new Error(`scitokens-cpp harness did not start: ${ready} ${stderr.join("")}`);
    return harness;
  }

  private nextLine(): Promise<string> {
    if (this.failure) return Promise.resolve(`EXIT\t${this.failure.message}`);
    return new Promise((resolve) => this.pending.push(resolve));
  }

  /** Sends one case; results come back in the order cases were sent. */
  async test(c: HarnessCase): Promise<CppResult> {
    for (const field of [c.token, c.authz, c.path, ...c.audiences]) {
      if (/[\t\r\n]/.test(field)) throw new Error(`a harness field cannot hold a tab or line break: ${JSON.stringify(field)}`);
    }
    const answer = this.nextLine();
    this.child.stdin.write(`${[c.token, c.authz, c.path, String(c.audiences.length), ...c.audiences].join("\t")}\n`);
    return parseResult(await answer);
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.stdin.end();
    await exited;
  }
}

function parseResult(line: string): CppResult {
  const [kind, first = "", ...rest] = line.split("\t");
  switch (kind) {
    case "ALLOW":
      return { kind: "allow" };
    case "DENY":
      return { kind: "deny", stage: first, message: rest.join("\t") };
    case "CRASH":
      return { kind: "crash", signal: first };
    default:
      throw new Error(`unexpected answer from the scitokens-cpp harness: ${line}`);
  }
}
