import { type ChildProcess, execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { PACKAGE_ROOT } from "../../src/config/service-config.js";

/** The built command line, as an operator runs it. */
export const CLI = join(PACKAGE_ROOT, "dist", "cli", "main.js");

/** `scitokens-authz serve …` in a child process, its stdout read line by line. */
export interface ServedProcess {
  readonly child: ChildProcess;
  /** Every stdout line so far. */
  readonly lines: string[];
  /**
   * Resolves with the first stdout line matching `pattern` (from line `after` on, 0 by
   * default); rejects if the process exits first.
   */
  waitFor(pattern: RegExp, after?: number): Promise<RegExpMatchArray>;
  /** Exit code and signal, once the process has exited and its output is read. */
  readonly closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends SIGTERM (if still running) and resolves with the exit code. */
  stop(): Promise<number | null>;
}

// Every child started, so that a test file can make sure none outlives it.
const running = new Set<ChildProcess>();

/**
 * Starts `serve` with `args` (and `nodeArgs` given to node before the script); with `ipc`,
 * an IPC channel to this process as node's fork has. See {@link killAllServed} for cleanup.
 */
export function spawnServe(args: readonly string[], o: { readonly nodeArgs?: readonly string[]; readonly ipc?: boolean } = {}): ServedProcess {
  const child = spawn(process.execPath, [...(o.nodeArgs ?? []), CLI, "serve", ...args], {
    cwd: PACKAGE_ROOT,
    stdio: o.ipc ? ["ignore", "pipe", "pipe", "ipc"] : ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  const lines: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve: (m: RegExpMatchArray) => void }> = [];
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  createInterface({ input: child.stdout! }).on("line", (line) => {
    lines.push(line);
    for (const waiter of [...waiters]) {
      const m = line.match(waiter.pattern);
      if (m) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(m);
      }
    }
  });
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("close", (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    lines,
    closed,
    waitFor(pattern, after = 0) {
      for (const line of lines.slice(after)) {
        const m = line.match(pattern);
        if (m) return Promise.resolve(m);
      }
      return new Promise((resolve, reject) => {
        waiters.push({ pattern, resolve });
        void closed.then(({ code }) => reject(new Error(`serve exited (${code}) before printing ${pattern}: ${stderr}`)));
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return (await closed).code;
    },
  };
}

/** Kills every `serve` child still running (for afterAll, when a test failed midway). */
export function killAllServed(): void {
  for (const child of running) child.kill("SIGKILL");
}

/** What a finished CLI run printed, and its exit code. */
export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The built CLI in a child process, in `cwd`, as an operator runs `npx scitokens-authz …`. */
export async function runCli(cwd: string, ...args: string[]): Promise<CliRun> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { cwd });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof e.code !== "number") throw error;
    return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}
