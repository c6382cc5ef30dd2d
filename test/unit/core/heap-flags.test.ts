import { describe, expect, it } from "vitest";
import { applyHeapFlags, heapFlags, heapFlagsInForce } from "../../../src/cli/heap-flags.js";

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

/** A process whose execve records the command line instead of replacing anything. */
function processWith(execArgv: string[], execve: boolean): { proc: NodeJS.Process; ran: unknown[][] } {
  const ran: unknown[][] = [];
  const proc = {
    execPath: "/opt/node/bin/node",
    execArgv,
    argv: ["/opt/node/bin/node", "/srv/scitokens-authz/dist/cli/main.js", "serve", "--config", "service.yaml"],
    env: { SCITOKENS_AUTHZ_WORKERS: "2" },
    ...(execve
      ? {
          execve: (...args: unknown[]) => {
            ran.push(args);
            throw new Error("replaced");
          },
        }
      : {}),
  } as unknown as NodeJS.Process;
  return { proc, ran };
}

describe("applyHeapFlags", () => {
  const memory = { maxSemiSpaceMb: 8, heapGrowingPercent: null };

  it("runs serve again with the node flags given, then the memory flags, then the same arguments and environment", () => {
    const { proc, ran } = processWith(["--enable-source-maps"], true);
    expect(() => applyHeapFlags(memory, proc)).toThrow("replaced");
    expect(ran).toEqual([
      [
        "/opt/node/bin/node",
        ["/opt/node/bin/node", "--enable-source-maps", "--max-semi-space-size=8", "/srv/scitokens-authz/dist/cli/main.js", "serve", "--config", "service.yaml"],
        { SCITOKENS_AUTHZ_WORKERS: "2" },
      ],
    ]);
  });

  it("goes on without running again once the flags are in force, or when nothing is asked", () => {
    const started = processWith(["--enable-source-maps", "--max-semi-space-size=8"], true);
    expect(applyHeapFlags(memory, started.proc)).toEqual({ kind: "in-force", flags: ["--max-semi-space-size=8"] });
    const own = processWith([], true);
    expect(applyHeapFlags({ maxSemiSpaceMb: null, heapGrowingPercent: null }, own.proc)).toEqual({ kind: "in-force", flags: [] });
    expect([...started.ran, ...own.ran]).toEqual([]);
  });

  it("says so when this Node cannot run itself again", () => {
    const { proc } = processWith([], false);
    expect(applyHeapFlags(memory, proc)).toEqual({ kind: "unsupported", flags: ["--max-semi-space-size=8"] });
  });
});
