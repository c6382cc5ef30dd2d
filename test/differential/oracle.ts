import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { createInterface } from "node:readline";

// A reference implementation the differential test asks for its decisions (an "oracle"):
// scitokens-cpp through a small C harness, the Python scitokens library through a Python
// driver. Every oracle is a long-running child process speaking one line protocol:
//
//   first line out: READY
//   in:  TOKEN \t AUTHZ \t PATH \t N \t AUD_1 \t ... \t AUD_N
//   out: ALLOW
//        DENY \t STAGE \t MESSAGE     (STAGE: the library call that refused, e.g. deserialize)
//        CRASH \t SIGNAL              (the library crashed on this case; the harness survives)

/** What a reference implementation decided for one case. */
export type RefResult =
  | { kind: "allow" }
  /** `stage`: the library call that refused; `message` as the library wrote it. */
  | { kind: "deny"; stage: string; message: string }
  /** The library crashed (a signal) on this case; the harness survives it (one fork per case). */
  | { kind: "crash"; signal: string };

/** One question to a reference implementation: may this token do `authz` on `path`? */
export interface HarnessCase {
  token: string;
  authz: string;
  path: string;
  /** The accepted audiences given to the library's enforcer. */
  audiences: readonly string[];
}

/** A running reference implementation. */
export interface Oracle {
  /** Stable id, also the name of its divergence file: `cpp-0.7.3`, `python-scitokens`, … */
  readonly id: string;
  /** For people: `scitokens-cpp 0.7.3 (Debian)`. */
  readonly label: string;
  test(c: HarnessCase): Promise<RefResult>;
  close(): Promise<void>;
}

export interface LineHarnessOptions {
  command: string;
  args: readonly string[];
  cwd: string;
  env: Readonly<Record<string, string>>;
}

/**
 * A reference implementation's process: one case per line in, one result per line out,
 * in order. The environment is exactly `env` (no inherited variables), so that the
 * library's caches and home point into the test's temporary folder.
 */
export class LineHarness implements Oracle {
  private readonly pending: Array<(line: string) => void> = [];
  private failure: Error | undefined;

  private constructor(
    readonly id: string,
    readonly label: string,
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly stderr: string[],
  ) {
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => this.pending.shift()?.(line));
    child.on("exit", (code, signal) => {
      this.failure = new Error(`${label} harness exited (code ${code}, signal ${signal}): ${this.stderr.join("").trim()}`);
      for (const waiter of this.pending.splice(0)) waiter(`EXIT\t${this.failure.message}`);
    });
  }

  /** Starts the process and waits for its READY line. */
  static async start(id: string, label: string, options: LineHarnessOptions): Promise<LineHarness> {
    const stderr: string[] = [];
    const child = spawn(options.command, [...options.args], { cwd: options.cwd, env: { ...options.env }, stdio: ["pipe", "pipe", "pipe"] });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => stderr.push(chunk));
    const harness = new LineHarness(id, label, child, stderr);
    const spawned = new Promise<Error | undefined>((resolve) => {
      child.once("spawn", () => resolve(undefined));
      child.once("error", resolve);
    });
    const startError = await spawned;
    if (startError !== undefined) throw new Error(`${label} harness could not start (${options.command}): ${startError.message}`);
    const ready = await harness.nextLine();
    if (ready !== "READY") throw new Error(`${label} harness did not start: ${ready} ${stderr.join("")}`);
    return harness;
  }

  private nextLine(): Promise<string> {
    if (this.failure) return Promise.resolve(`EXIT\t${this.failure.message}`);
    return new Promise((resolve) => this.pending.push(resolve));
  }

  /** Sends one case; results come back in the order cases were sent. */
  async test(c: HarnessCase): Promise<RefResult> {
    for (const field of [c.token, c.authz, c.path, ...c.audiences]) {
      if (/[\t\r\n]/.test(field)) throw new Error(`a harness field cannot hold a tab or line break: ${JSON.stringify(field)}`);
    }
    const answer = this.nextLine();
    this.child.stdin.write(`${[c.token, c.authz, c.path, String(c.audiences.length), ...c.audiences].join("\t")}\n`);
    return parseResult(this.label, await answer);
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.stdin.end();
    await exited;
  }
}

function parseResult(label: string, line: string): RefResult {
  const [kind, first = "", ...rest] = line.split("\t");
  switch (kind) {
    case "ALLOW":
      return { kind: "allow" };
    case "DENY":
      return { kind: "deny", stage: first, message: rest.join("\t") };
    case "CRASH":
      return { kind: "crash", signal: first };
    default:
      throw new Error(`unexpected answer from the ${label} harness: ${line}`);
  }
}

/** One line for a report: `ALLOW`, `DENY at deserialize: …`, `CRASH (signal 11)`. */
export function describeRef(result: RefResult): string {
  return result.kind === "allow" ? "ALLOW" : result.kind === "deny" ? `DENY at ${result.stage}: ${result.message}` : `CRASH (signal ${result.signal})`;
}
