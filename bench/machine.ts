import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism, release, totalmem } from "node:os";

/** What the figures were taken on, for the report. */
export interface Machine {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGb: number;
  readonly kernel: string;
  readonly node: string;
  readonly opaEnvoy: string;
  readonly ghz: string;
  /** The scitokens-authz commit measured (+ "dirty" when the checkout had changes). */
  readonly commit: string;
}

export function describeMachine(root: string, versions: { opaEnvoy: string; ghz: string }): Machine {
  let cpuModel = "unknown";
  try {
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpuModel;
  } catch {
    // not Linux: the report says unknown
  }
  let commit = "unknown";
  try {
    const git = (args: string[]) => execFileSync("git", args, { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    commit = git(["rev-parse", "--short=12", "HEAD"]) + (git(["status", "--porcelain", "--untracked-files=no", "--", "src"]) === "" ? "" : " (src/ modified)");
  } catch {
    // not a git checkout
  }
  return {
    cpuModel,
    cores: availableParallelism(),
    memoryGb: Math.round(totalmem() / 1024 ** 3),
    kernel: release(),
    node: process.version,
    opaEnvoy: versions.opaEnvoy,
    ghz: versions.ghz,
    commit,
  };
}
