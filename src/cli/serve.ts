import { readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { pino } from "pino";
import { type RunningCluster, startCluster } from "../cluster/index.js";
import { ConfigError } from "../config/config-error.js";
import {
  BUILT_POLICY_FILE,
  DEFAULT_AUTHZ_HTTP_MAX_HEADER_BYTES,
  DEMO_DATA_FILE,
  LISTEN_FORMS,
  type ListenAddress,
  MAX_WORKERS,
  PACKAGE_ROOT,
  type ServiceConfig,
  loadServiceConfig,
  parseListen,
  parseServiceConfig,
  socketPathProblems,
} from "../config/service-config.js";
import { type DevIssuer, demoDataFor, mintToken, startDevIssuer } from "../dev-issuer/index.js";
import { createLogger } from "../observability/logger.js";
import { routeGrpcLogs } from "../server/grpc-log.js";
import { type RunningService, startService } from "../server/service.js";
import { applyHeapFlags } from "./heap-flags.js";

const DEV_ISSUER = { host: "127.0.0.1", port: 8484, path: "/dev" } as const;

/** The embedded default (no --config): the demo policy and its development issuer. */
export const DEMO = {
  listen: "127.0.0.1:9292",
  issuerHost: DEV_ISSUER.host,
  issuerPort: DEV_ISSUER.port,
  issuerPath: DEV_ISSUER.path,
  /** The issuer policies/demo.yaml trusts: the development issuer at its default address. */
  issuer: `http://${DEV_ISSUER.host}:${DEV_ISSUER.port}${DEV_ISSUER.path}`,
  audience: "https://storage.example.org",
  stateFile: resolve(PACKAGE_ROOT, ".state", "dev-issuer.json"),
} as const;

export interface ServeOptions {
  readonly config?: string | undefined;
  readonly listen?: string | undefined;
  /** Embedded default only (`--dev-issuer-port`): the development issuer's port, 0 for any free one. */
  readonly devIssuerPort?: string | undefined;
  /** Embedded default only (`--state`): where the development issuer publishes its key for `token create`. */
  readonly stateFile?: string | undefined;
  /** `--authz-http`: serve the HTTP authorization endpoint there (replaces `authz_http.listen`). */
  readonly authzHttp?: string | undefined;
  /** `--workers`: how many processes serve Checks (replaces `workers`); 1: a single process. */
  readonly workers?: string | undefined;
}

/** `--workers N`, checked like the config key it replaces. */
function flagWorkers(value: string): number {
  if (!/^\d{1,9}$/.test(value) || Number(value) < 1 || Number(value) > MAX_WORKERS) {
    throw new ConfigError("--workers", [`expected the number of worker processes, 1 to ${MAX_WORKERS} (1: a single process), got ${JSON.stringify(value)}`]);
  }
  return Number(value);
}

/** What `serve` runs: one process serving Checks, or a primary and its workers. */
interface Served {
  readonly address: string;
  readonly authzHttp: string | null;
  /** SIGHUP: reopen the decision log, reload the policy and TLS files. */
  sighup(): void;
  /** Drains and stops; false when a worker did not end cleanly. */
  close(): Promise<boolean>;
}

function single(service: RunningService): Served {
  return {
    address: service.address,
    authzHttp: service.authzHttp?.address ?? null,
    sighup() {
      service.reopenDecisionLog();
      void service.reload("SIGHUP");
      void service.reloadTls("SIGHUP");
    },
    async close() {
      await service.close();
      return true;
    },
  };
}

function workers(cluster: RunningCluster): Served {
  return { address: cluster.address, authzHttp: cluster.authzHttp, sighup: () => cluster.reload("SIGHUP"), close: () => cluster.close() };
}

/** A `--listen`-like flag's address, or a ConfigError naming the flag. */
function flagAddress(flag: string, value: string): ListenAddress {
  const listen = parseListen(value);
  if (!listen) throw new ConfigError(flag, [`expected ${LISTEN_FORMS}, got ${JSON.stringify(value)}`]);
  const problems = socketPathProblems(listen);
  if (problems.length > 0) throw new ConfigError(flag, problems);
  return listen;
}

/** The embedded default: one process (a demo on a many-core workstation needs no more), unless `--workers`. */
function demoConfig(listen: string): ServiceConfig {
  return parseServiceConfig("(embedded default)", {
    grpc: { listen },
    policy: { data: DEMO_DATA_FILE, wasm: BUILT_POLICY_FILE },
    workers: 1,
  });
}

/** The development issuer's port and state file from the options, checked. */
function devIssuerSettings(options: ServeOptions): { port: number; stateFile: string } {
  const given = [options.devIssuerPort !== undefined ? "--dev-issuer-port" : "", options.stateFile !== undefined ? "--state" : ""].filter(Boolean);
  if (options.config !== undefined && given.length > 0) {
    throw new ConfigError(given.join(" and "), ["only for the embedded default (serve without --config), whose development issuer they set"]);
  }
  const port = options.devIssuerPort ?? String(DEMO.issuerPort);
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) {
    throw new ConfigError("--dev-issuer-port", [`expected a port from 0 to 65535 (0: any free port), got ${JSON.stringify(port)}`]);
  }
  return { port: Number(port), stateFile: resolve(options.stateFile ?? DEMO.stateFile) };
}

/**
 * The data file for the demo: policies/demo.yaml when the development issuer runs at the
 * address it trusts, else a copy trusting `issuer`, written beside the state file.
 */
async function demoDataFile(issuer: string, stateFile: string): Promise<string> {
  if (issuer === DEMO.issuer) return DEMO_DATA_FILE;
  const file = join(dirname(stateFile), "demo.yaml");
  await writeFile(file, demoDataFor(await readFile(DEMO_DATA_FILE, "utf8"), DEMO.issuer, issuer));
  return file;
}

/** `scitokens-authz serve`: runs until SIGINT/SIGTERM, then drains and exits; SIGHUP reloads the policy files. */
export async function serve(options: ServeOptions): Promise<void> {
  const issuerSettings = devIssuerSettings(options);
  let config = options.config !== undefined ? await loadServiceConfig(options.config) : demoConfig(options.listen ?? DEMO.listen);
  if (options.listen !== undefined) config = { ...config, listen: flagAddress("--listen", options.listen) };
  if (options.authzHttp !== undefined) {
    const listen = flagAddress("--authz-http", options.authzHttp);
    config = { ...config, authzHttp: { listen, maxHeaderBytes: config.authzHttp?.maxHeaderBytes ?? DEFAULT_AUTHZ_HTTP_MAX_HEADER_BYTES } };
  }
  if (options.workers !== undefined) config = { ...config, workers: flagWorkers(options.workers) };
  // V8 sizes its heap at start-up: with `memory`'s flags not yet in force, this process
  // runs again with them here (same pid), before it opens a file or a socket.
  const heap = applyHeapFlags(config.memory);
  // One writer of stdout for the log and, with workers, their lines passed on whole.
  const stdout = pino.destination({ dest: 1, sync: false });
  const logger = createLogger(config.logLevel, stdout as unknown as NodeJS.WritableStream);
  routeGrpcLogs(logger);
  if (heap.kind === "unsupported") {
    logger.warn(
      { node_flags: heap.flags, node: process.version, reason: heap.reason },
      `memory settings not applied: ${heap.reason}; V8 sizes the heap itself; give node ${heap.flags.join(" ")} to apply them`,
    );
  }
  // SIGHUP reopens the decision log (rotation), reloads the policy files and, with
  // grpc.tls, the TLS files (each reload logs its outcome; with workers, each worker's).
  // One that arrives while the service starts is applied once it listens, instead of
  // ending the process.
  let running: Served | undefined;
  let reloadPending = false;
  const reload = () => {
    logger.info({ signal: "SIGHUP" }, "reload requested");
    if (running) running.sighup();
    else reloadPending = true;
  };
  process.on("SIGHUP", reload);
  // A signal to stop while the workers start: they are stopped once they listen.
  let stopSignal: string | undefined;
  let stopRequested = () => {};
  const stopped = new Promise<void>((resolveStop) => (stopRequested = resolveStop));
  const stop = (signal: string) => {
    if (stopSignal !== undefined) return;
    stopSignal = signal;
    logger.info({ signal }, "shutting down");
    stopRequested();
  };
  const onSigint = () => stop("SIGINT");
  const onSigterm = () => stop("SIGTERM");
  let stopSignalsHandled = false;
  const handleStopSignals = () => {
    if (stopSignalsHandled) return;
    stopSignalsHandled = true;
    process.once("SIGINT", onSigint);
    process.once("SIGTERM", onSigterm);
  };
  let devIssuer: DevIssuer | undefined;
  let demoData: string | undefined;
  let served: Served;
  try {
    if (options.config === undefined) {
      const { port, stateFile } = issuerSettings;
      devIssuer = await startDevIssuer({ host: DEMO.issuerHost, port, path: DEMO.issuerPath, stateFile });
      demoData = await demoDataFile(devIssuer.issuer, stateFile);
      config = { ...config, policy: { kind: "files", dataFile: demoData, wasmFile: BUILT_POLICY_FILE } };
    }
    if (config.workers > 1) {
      // Stop signals are the primary's from the start (the workers ignore them).
      handleStopSignals();
      served = workers(await startCluster(config, { logger, stdout, stderr: process.stderr }));
    } else served = single(await startService(config, { logger }));
  } catch (error) {
    process.off("SIGHUP", reload);
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigterm);
    await devIssuer?.close();
    await removeDemoCopy(demoData);
    logger.flush();
    throw error;
  }
  running = served;
  if (reloadPending && stopSignal === undefined) served.sighup();
  if (devIssuer && demoData && stopSignal === undefined) {
    await printDemo(devIssuer, {
      target: served.address,
      dataFile: demoData,
      stateFile: issuerSettings.stateFile,
      authzHttp: served.authzHttp,
      write: (text) => stdout.write(text),
    });
  }
  handleStopSignals();
  await stopped;
  process.off("SIGHUP", reload);
  const clean = await served.close();
  await devIssuer?.close();
  await removeDemoCopy(demoData);
  logger.flush();
  if (!clean) throw new Error("a worker did not drain cleanly (see the log)");
}

/** Removes the demo data copy that {@link demoDataFile} wrote (never policies/demo.yaml). */
async function removeDemoCopy(file: string | undefined): Promise<void> {
  if (file !== undefined && file !== DEMO_DATA_FILE) await rm(file, { force: true });
}

async function printDemo(
  issuer: DevIssuer,
  where: { target: string; dataFile: string; stateFile: string; authzHttp: string | null; write: (text: string) => void },
): Promise<void> {
  const { target, authzHttp } = where;
  const token = await mintToken({
    privateKey: issuer.privateKey,
    alg: issuer.alg,
    kid: issuer.kid,
    issuer: issuer.issuer,
    audience: DEMO.audience,
    scopes: ["read:/data"],
    lifetimeSeconds: 3600,
  });
  const check = `npx scitokens-authz check --target ${target}`;
  const state = where.stateFile === DEMO.stateFile ? "" : ` --state ${where.stateFile}`;
  const lines = [
    "",
    `scitokens-authz is serving envoy.service.auth.v3.Authorization/Check on ${target} (plaintext gRPC)`,
    `  policy: policies/authz.rego (build/policy.wasm) with data ${shown(where.dataFile)}`,
    `  development issuer: ${issuer.issuer} (ephemeral ${issuer.alg} key, loopback only)`,
    ...(authzHttp !== null ? [`  HTTP authorization endpoint (nginx auth_request, Envoy http_service): ${authzHttp}`] : []),
    "",
    `A token from the development issuer (aud ${DEMO.audience}, scope "read:/data", valid 1 h):`,
    "",
    `  export TOKEN=${token}`,
    "",
    "Allowed: read under the demo base path /protected + the scope path /data",
    `  ${check} --token "$TOKEN" --method GET --path /protected/data/hello.txt`,
    "",
    "Denied (403 scope_insufficient): the same token cannot write",
    `  ${check} --token "$TOKEN" --method PUT --path /protected/data/hello.txt`,
    "",
    "Denied (401 token_missing): no token",
    `  ${check} --method GET --path /protected/data/hello.txt`,
    "",
    `More tokens:  npx scitokens-authz token create${state} --scope storage.create:/data/new --aud ${DEMO.audience}`,
    "Stop with Ctrl-C. Decision logs follow as JSON lines.",
    "",
  ];
  where.write(`${lines.join("\n")}\n`);
}

/** A file of the checkout relative to it (policies/demo.yaml), any other as given. */
function shown(file: string): string {
  const inCheckout = relative(PACKAGE_ROOT, file);
  return inCheckout.startsWith("..") ? file : inCheckout;
}
