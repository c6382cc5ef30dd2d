import { execFile, spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync, realpathSync } from "node:fs";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { PACKAGE_ROOT } from "../../src/config/service-config.js";

// The runtime: Node >= 22.12 (package.json engines), tested on Node 24; on an older Node the
// project's scripts and the `scitokens-authz` command use the Node 24 that setup puts in
// .tools/node (scripts/node-runtime.mjs).

const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as {
  version: string;
  engines: { node: string };
  config: { nodeVersion: string };
  devDependencies: Record<string, string>;
};
const BIN = join(PACKAGE_ROOT, "dist", "cli", "bin.js");
const FLOOR = [22, 12];
const TOOLS_NODE = join(PACKAGE_ROOT, ".tools", "node");

const olderThanFloor = (version: string) => {
  const [major = 0, minor = 0] = version.replace(/^v/, "").split(".").map(Number);
  return major < FLOOR[0]! || (major === FLOOR[0] && minor < FLOOR[1]!);
};

/** A `node` on PATH older than the floor, if the machine has one (this one's system Node is 20). */
function olderNodeOnPath(): string | undefined {
  const self = realpathSync(process.execPath);
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const candidate = join(dir, "node");
    try {
      accessSync(candidate, constants.X_OK);
    } catch {
      continue;
    }
    if (realpathSync(candidate) === self) continue;
    const version = spawnSync(candidate, ["--version"], { encoding: "utf8" }).stdout?.trim() ?? "";
    if (/^v\d+\./.test(version) && olderThanFloor(version)) return candidate;
  }
  return undefined;
}

const pinnedInstalled =
  existsSync(join(TOOLS_NODE, "bin", "node")) && readFileSync(join(TOOLS_NODE, "package.json"), "utf8").includes(`"${pkg.config.nodeVersion}"`);
const older = pinnedInstalled ? olderNodeOnPath() : undefined;

describe("the Node runtime", () => {
  it("package.json, the README and the pinned Node agree: Node >= 22.12, Node 24 installed where older, types of the floor", () => {
    expect(pkg.engines.node).toBe(`>=${FLOOR.join(".")}`);
    expect(readFileSync(join(PACKAGE_ROOT, "README.md"), "utf8")).toContain(`Node.js ≥ ${FLOOR.join(".")}`);
    expect(pkg.config.nodeVersion).toMatch(/^24\.\d+\.\d+$/);
    expect(pkg.devDependencies["@types/node"]).toMatch(new RegExp(`^\\^${FLOOR[0]}\\.`));
  });

  it("runs the tests on a supported Node", () => {
    expect(olderThanFloor(process.version)).toBe(false);
  });

  it("scitokens-authz runs in this process on a supported Node", async () => {
    const { stdout } = await run(process.execPath, [BIN, "version"]);
    expect(stdout).toBe(`scitokens-authz ${pkg.version} (Node ${process.versions.node})\n`);
  });

  it("scitokens-authz started by a Node older than the floor runs on the Node setup installed in .tools/node", async () => {
    // A machine whose only Node is supported has no older one to start it with: there the
    // command must simply run on the Node that started it.
    const { stdout } = await run(older ?? process.execPath, [BIN, "version"]);
    expect(stdout).toBe(`scitokens-authz ${pkg.version} (Node ${older !== undefined ? pkg.config.nodeVersion : process.versions.node})\n`);
  });

  it("node-runtime.mjs path prints nothing where the running Node will do", async () => {
    const { stdout } = await run(process.execPath, [join(PACKAGE_ROOT, "scripts", "node-runtime.mjs"), "path"]);
    expect(stdout).toBe("");
  });
});
