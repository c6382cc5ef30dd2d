/**
 * The service config's `memory` settings are V8 flags, and V8 reads the heap's sizes once,
 * when the process starts: `serve` therefore runs itself again, in the same process (same
 * pid, file descriptors, environment and signals, `process.execve`), with the flags added
 * after node's own, before it opens a file or a socket. Workers inherit them (cluster forks
 * with the primary's node flags). Nothing is run again when the flags are already in force.
 */
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

export type HeapRestart =
  /** The flags are in force: serve goes on. */
  | { readonly kind: "in-force"; readonly flags: readonly string[] }
  /** This Node cannot replace its process (no `process.execve`: Node < 22.15, Windows): serve goes on with V8's sizing, and says so. */
  | { readonly kind: "unsupported"; readonly flags: readonly string[] };

/**
 * Makes the `memory` flags take effect: returns when they are in force (or cannot be
 * applied, see {@link HeapRestart}), else replaces this process with node started again
 * with them and never returns.
 */
export function applyHeapFlags(memory: ServiceConfig["memory"], proc: NodeJS.Process = process): HeapRestart {
  const flags = heapFlags(memory);
  if (heapFlagsInForce(flags, proc.execArgv)) return { kind: "in-force", flags };
  if (typeof proc.execve !== "function") return { kind: "unsupported", flags };
  return proc.execve(proc.execPath, [proc.execPath, ...proc.execArgv, ...flags, ...proc.argv.slice(1)], proc.env);
}
