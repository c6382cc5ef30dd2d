/**
 * The service config's `memory` settings are V8 flags, and V8 reads the heap's sizes once,
 * when the process starts: `serve` therefore runs itself again in the same process
 * (`process.execve`, experimental in Node 24: the same pid, standard input, output and
 * error, environment and arguments), with the flags added after node's own, before it
 * opens a file or a socket or handles a signal. Workers inherit them (cluster forks with
 * the primary's node flags). Nothing is run again when the flags are already in force.
 */
import { accessSync, constants } from "node:fs";
import { isMainThread } from "node:worker_threads";
import type { ServiceConfig } from "../config/service-config.js";

/** The node flags `memory` asks for: what V8 would do without them is in force for a null setting. */
export function heapFlags(memory: ServiceConfig["memory"]): string[] {
  const flags: string[] = [];
  if (memory.maxSemiSpaceMb !== null) flags.push(`--max-semi-space-size=${memory.maxSemiSpaceMb}`);
  if (memory.heapGrowingPercent !== null) flags.push(`--heap-growing-percent=${memory.heapGrowingPercent}`);
  return flags;
}

/**
 * Whether `flags` are in force for a process started with `execArgv`: they come last (after
 * any the operator gave node, and after NODE_OPTIONS, which node reads first), so theirs win.
 */
export function heapFlagsInForce(flags: readonly string[], execArgv: readonly string[]): boolean {
  if (flags.length === 0) return true;
  const tail = execArgv.slice(-flags.length);
  return tail.length === flags.length && tail.every((flag, i) => flag === flags[i]);
}

/** Set in the environment of the process `serve` runs again: the flags it was run again with, so that it never does so twice for them. */
export const HEAP_FLAGS_VARIABLE = "SCITOKENS_AUTHZ_HEAP_FLAGS";

export type HeapRestart =
  /** The flags are in force: serve goes on. */
  | { readonly kind: "in-force"; readonly flags: readonly string[] }
  /** They cannot be applied (`reason`): serve goes on with V8's sizing, and says so. */
  | { readonly kind: "unsupported"; readonly flags: readonly string[]; readonly reason: string };

/** Why this process cannot run itself again with node flags, or null when it can. */
function cannotRunAgain(flags: readonly string[], proc: NodeJS.Process, mainThread: boolean): string | null {
  if (typeof proc.execve !== "function" || ["win32", "os400"].includes(proc.platform)) {
    return "this Node cannot replace its process (process.execve: Node 22.15 or later, not on Windows)";
  }
  if (!mainThread) return "serve runs in a worker thread";
  // A parent's IPC channel (node's fork, process managers) does not survive the exec.
  if (proc.channel !== undefined) return "this process has an IPC channel to its parent, which running again would close";
  if (proc.env[HEAP_FLAGS_VARIABLE] === flags.join(" ")) return "node was run again with them once already and they are still not its last flags";
  try {
    accessSync(proc.execPath, constants.X_OK);
  } catch {
    return `node's executable ${proc.execPath} cannot be run any more`;
  }
  return null;
}

/**
 * Makes the `memory` flags take effect: returns when they are in force (or cannot be
 * applied, see {@link HeapRestart}), else replaces this process with node started again
 * with them and never returns.
 */
export function applyHeapFlags(memory: ServiceConfig["memory"], proc: NodeJS.Process = process, mainThread: boolean = isMainThread): HeapRestart {
  const flags = heapFlags(memory);
  if (heapFlagsInForce(flags, proc.execArgv)) return { kind: "in-force", flags };
  const reason = cannotRunAgain(flags, proc, mainThread);
  if (reason !== null) return { kind: "unsupported", flags, reason };
  const env = { ...proc.env, [HEAP_FLAGS_VARIABLE]: flags.join(" ") };
  return proc.execve!(proc.execPath, [proc.execPath, ...proc.execArgv, ...flags, ...proc.argv.slice(1)], env);
}
