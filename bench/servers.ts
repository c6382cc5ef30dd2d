import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";

/**
 * The two servers under test, each a real process listening on loopback only, on ports
 * chosen free when it starts: scitokens-authz started as users start it (`node
 * dist/cli/bin.js serve --config FILE`) and OPA-Envoy (`opa-envoy-plugin run --server`).
 * Every process started here is stopped when the benchmark ends, however it ends.
 */

export type ServerKind = "ours" | "ours-workers" | "opa-envoy";

export interface RunningServer {
  readonly kind: ServerKind;
  /** host:port of the gRPC Check service. */
  readonly target: string;
  readonly pid: number;
  /** Its admin HTTP listener (ours: /metrics), host:port. */
  readonly admin: string;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();

function killAll(): void {
  for (const child of live) child.kill("SIGKILL");
}
process.once("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

/** A TCP port free on 127.0.0.1 now (the server binds it a moment later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** `taskset -c CORE` before a command when pinned; whether taskset exists is checked once. */
export function pinned(core: number | undefined, command: string, args: readonly string[]): [string, string[]] {
  return core === undefined ? [command, [...args]] : ["taskset", ["-c", String(core), command, ...args]];
}

export function hasTaskset(): boolean {
  try {
    execFileSync("taskset", ["-p", String(process.pid)], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function httpStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", () => resolve(0));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

/** Text over HTTP (a /metrics page), or null. */
export function httpText(url: string): Promise<string | null> {
  return new Promise((resolve) => {
    const req = request(url, { timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve(res.statusCode === 200 ? Buffer.concat(chunks).toString("utf8") : null));
    });
    req.on("error", () => resolve(null));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").trim().split("\n").slice(-15).join("\n");
  } catch {
    return "(no output)";
  }
}

interface Launch {
  readonly kind: ServerKind;
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly logFile: string;
  /** Where the process's stdout goes: scitokens-authz logs each decision there at info, so /dev/null. */
  readonly stdoutFile: string;
  readonly target: string;
  readonly admin: string;
  readonly readyUrl: string;
  readonly core: number | undefined;
}

async function launch(l: Launch): Promise<RunningServer> {
  const [command, args] = pinned(l.core, l.command, l.args);
  const out = openSync(l.stdoutFile, "a");
  const err = openSync(l.logFile, "a");
  const child = spawn(command, args, { cwd: l.cwd, stdio: ["ignore", out, err] });
  closeSync(out);
  closeSync(err);
  live.add(child);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.once("exit", () => live.delete(child));
  const started = Date.now();
  for (;;) {
    const gone = await Promise.race([exited, new Promise<undefined>((resolve) => setTimeout(resolve, 100, undefined))]);
    if (gone !== undefined) throw new Error(`${l.kind} exited with ${gone} before it was ready (${command} ${args.join(" ")}):\n${tail(l.logFile)}`);
    if ((await httpStatus(l.readyUrl)) === 200) break;
    if (Date.now() - started > 60_000) {
      child.kill("SIGKILL");
      throw new Error(`${l.kind} not ready after 60 s (${l.readyUrl}):\n${tail(l.logFile)}`);
    }
  }
  return {
    kind: l.kind,
    target: l.target,
    pid: child.pid!,
    admin: l.admin,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface OursOptions {
  readonly root: string;
  readonly dir: string;
  readonly dataFile: string;
  readonly core: number | undefined;
  /** Worker processes when the build has `--workers`: 1 for the single process, else the cores. */
  readonly workers: number | undefined;
  readonly name: string;
  /** The service config's `memory` settings; absent: its defaults. */
  readonly memory?: Readonly<Record<string, number | null>>;
}

/**
 * scitokens-authz with the workload's data and the defaults otherwise: log level info
 * (one line per decision, to /dev/null here), the token cache of 10,000, metrics on (the
 * admin listener, which also tells when it is ready).
 */
export async function startOurs(o: OursOptions): Promise<RunningServer> {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const config = join(o.dir, `${o.name}.service.yaml`);
  writeFileSync(
    config,
    [
      "# Written by the benchmark (npm run bench): the defaults, the workload's data.",
      `grpc:\n  listen: 127.0.0.1:${grpcPort}`,
      `http:\n  listen: 127.0.0.1:${httpPort}`,
      `policy:\n  data: ${JSON.stringify(o.dataFile)}`,
      ...(o.memory !== undefined && Object.keys(o.memory).length > 0
        ? [
            `memory:\n${Object.entries(o.memory)
              .map(([key, value]) => `  ${key}: ${JSON.stringify(value)}`)
              .join("\n")}`,
          ]
        : []),
      "",
    ].join("\n"),
  );
  const args = [join(o.root, "dist", "cli", "bin.js"), "serve", "--config", config];
  if (o.workers !== undefined) args.push("--workers", String(o.workers));
  return launch({
    kind: o.workers !== undefined && o.workers > 1 ? "ours-workers" : "ours",
    command: process.execPath,
    args,
    cwd: o.dir,
    logFile: join(o.dir, `${o.name}.stderr.log`),
    stdoutFile: "/dev/null",
    target: `127.0.0.1:${grpcPort}`,
    admin: `127.0.0.1:${httpPort}`,
    readyUrl: `http://127.0.0.1:${httpPort}/readyz`,
    core: o.core,
  });
}

export interface OpaEnvoyOptions {
  readonly binary: string;
  readonly dir: string;
  readonly policyFile: string;
  readonly dataFile: string;
  readonly core: number | undefined;
  readonly name: string;
}

/**
 * OPA-Envoy as its documentation runs it, with the benchmark's policy and data, its
 * version check off (no traffic off this machine), its inter-query value cache for
 * io.jwt switched on as a user would switch it on (v1.19.1 never uses it: see
 * docs/benchmarks.md), and decision logs off (their default).
 */
export async function startOpaEnvoy(o: OpaEnvoyOptions): Promise<RunningServer> {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const config = join(o.dir, `${o.name}.config.yaml`);
  writeFileSync(
    config,
    [
      "# Written by the benchmark (npm run bench).",
      "plugins:",
      "  envoy_ext_authz_grpc:",
      `    addr: 127.0.0.1:${grpcPort}`,
      "    path: scitokens/bench/result",
      "caching:",
      "  inter_query_builtin_value_cache:",
      "    named:",
      "      io_jwt:",
      "        max_num_entries: 10000",
      "",
    ].join("\n"),
  );
  const args = ["run", "--server", "--addr", `127.0.0.1:${httpPort}`, "--config-file", config, "--skip-version-check", o.policyFile, o.dataFile];
  return launch({
    kind: "opa-envoy",
    command: o.binary,
    args,
    cwd: o.dir,
    logFile: join(o.dir, `${o.name}.log`),
    stdoutFile: join(o.dir, `${o.name}.log`),
    target: `127.0.0.1:${grpcPort}`,
    admin: `127.0.0.1:${httpPort}`,
    readyUrl: `http://127.0.0.1:${httpPort}/health?plugins`,
    core: o.core,
  });
}
