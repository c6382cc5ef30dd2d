import { describe, expect, it } from "vitest";
import { HEAP_FLAGS_VARIABLE, applyHeapFlags, heapFlags, heapFlagsInForce } from "../../../src/cli/heap-flags.js";

// The service config's `memory` settings become node flags (issue 11, memory). What
// `serve` does with them in a real process is test/integration/heap-flags.test.ts; here,
// which flags, when they count as in force, and the command line `serve` runs again.

describe("heapFlags", () => {
  it("gives node one flag per setting, none for V8's own sizing", () => {
    expect(heapFlags({ maxSemiSpaceMb: 8, heapGrowingPercent: null })).toEqual(["--max-semi-space-size=8"]);
    expect(heapFlags({ maxSemiSpaceMb: 4, heapGrowingPercent: 30 })).toEqual(["--max-semi-space-size=4", "--heap-growing-percent=30"]);
    expect(heapFlags({ maxSemiSpaceMb: null, heapGrowingPercent: null })).toEqual([]);
  });
});

describe("heapFlagsInForce", () => {
  const flags = ["--max-semi-space-size=8", "--heap-growing-percent=30"];

  it("holds when the flags come last, after the operator's own", () => {
    expect(heapFlagsInForce(flags, flags)).toBe(true);
    expect(heapFlagsInForce(flags, ["--max-semi-space-size=64", "--enable-source-maps", ...flags])).toBe(true);
    expect(heapFlagsInForce([], [])).toBe(true);
  });

  it("does not hold when a flag is missing, has another value, or is overridden by a later one", () => {
    expect(heapFlagsInForce(flags, [])).toBe(false);
    expect(heapFlagsInForce(flags, ["--heap-growing-percent=30"])).toBe(false);
    expect(heapFlagsInForce(flags, ["--max-semi-space-size=16", "--heap-growing-percent=30"])).toBe(false);
    expect(heapFlagsInForce(flags, [...flags, "--max-semi-space-size=64"])).toBe(false);
  });
});

const NODE = process.execPath;

/** A process whose execve records the command line instead of replacing anything. */
function processWith(execArgv: string[], more: Record<string, unknown> = {}): { proc: NodeJS.Process; ran: unknown[][] } {
  const ran: unknown[][] = [];
  const proc = {
    execPath: NODE,
    execArgv,
    argv: [NODE, "/srv/scitokens-authz/dist/cli/main.js", "serve", "--config", "service.yaml"],
    env: { SCITOKENS_AUTHZ_WORKERS: "2" },
    platform: "linux",
    execve: (...args: unknown[]) => {
      ran.push(args);
      throw new Error("replaced");
    },
    ...more,
  } as unknown as NodeJS.Process;
  return { proc, ran };
}

describe("applyHeapFlags", () => {
  const memory = { maxSemiSpaceMb: 8, heapGrowingPercent: null };

  it("runs serve again with the node flags given, then the memory flags, then the same arguments, and says so in the environment", () => {
    const { proc, ran } = processWith(["--enable-source-maps"]);
    expect(() => applyHeapFlags(memory, proc, true)).toThrow("replaced");
    expect(ran).toEqual([
      [
        NODE,
        [NODE, "--enable-source-maps", "--max-semi-space-size=8", "/srv/scitokens-authz/dist/cli/main.js", "serve", "--config", "service.yaml"],
        { SCITOKENS_AUTHZ_WORKERS: "2", [HEAP_FLAGS_VARIABLE]: "--max-semi-space-size=8" },
      ],
    ]);
  });

  it("goes on without running again once the flags are in force, or when nothing is asked", () => {
    const started = processWith(["--enable-source-maps", "--max-semi-space-size=8"]);
    expect(applyHeapFlags(memory, started.proc, true)).toEqual({ kind: "in-force", flags: ["--max-semi-space-size=8"] });
    const own = processWith([]);
    expect(applyHeapFlags({ maxSemiSpaceMb: null, heapGrowingPercent: null }, own.proc, true)).toEqual({ kind: "in-force", flags: [] });
    expect([...started.ran, ...own.ran]).toEqual([]);
  });

  it.each([
    ["a Node without process.execve", { execve: undefined }, true, "this Node cannot replace its process"],
    ["Windows, where execve throws", { platform: "win32" }, true, "this Node cannot replace its process"],
    ["a worker thread", {}, false, "serve runs in a worker thread"],
    ["a parent's IPC channel", { channel: {} }, true, "this process has an IPC channel to its parent"],
    ["a second time for the same flags", { env: { [HEAP_FLAGS_VARIABLE]: "--max-semi-space-size=8" } }, true, "node was run again with them once already"],
    ["node's executable gone", { execPath: "/nonexistent/node" }, true, "node's executable /nonexistent/node cannot be run any more"],
  ])("goes on with V8's sizing, and says why, with %s", (_what, more, mainThread, reason) => {
    const { proc, ran } = processWith([], more);
    const result = applyHeapFlags(memory, proc, mainThread);
    expect(result).toMatchObject({ kind: "unsupported", flags: ["--max-semi-space-size=8"] });
    expect(result.kind === "unsupported" ? result.reason : "").toContain(reason);
    expect(ran).toEqual([]);
  });
});
