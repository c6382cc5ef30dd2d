import cluster from "node:cluster";
import { pino } from "pino";
import { ConfigError } from "../config/config-error.js";
import type { ServiceConfig } from "../config/service-config.js";
import { createLogger } from "../observability/logger.js";
import { routeGrpcLogs } from "../server/grpc-log.js";
import { ReadinessGate } from "../server/readiness-gate.js";
import { type RunningService, startService } from "../server/service.js";
import { RelayedFetch } from "./fetch-relay.js";
import { type FromWorker, type ToWorker, WORKER_SLOT_VARIABLE, isClusterMessage } from "./messages.js";

/** Exit codes of a worker that could not start: its configuration (as `serve`), or anything else. */
export const WORKER_EXIT = { configError: 2, failed: 1 } as const;

/** After a drain, the most a worker waits for its event loop to empty before it exits anyway. */
const EXIT_AFTER_DRAIN_MS = 2_000;

/**
 * A worker's log lines reach the primary in writes of this many bytes (or all there is,
 * every LOG_FLUSH_MS), not one write per line: the primary passes on a few chunks instead
 * of a line per Check (README "Using every core"), and both do fewer system calls.
 */
const LOG_BATCH_BYTES = 4096;
const LOG_FLUSH_MS = 100;

function send(message: FromWorker): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    process.send!(message, undefined, {}, () => resolve());
  });
}

/**
 * One worker process of `serve` with several workers (src/cluster/primary.ts forks it):
 * gets the service configuration the primary validated, runs the same service as a
 * single process (gRPC Check, the HTTP authorization endpoint, gRPC health), and answers
 * the primary: readiness, metrics, reloads, shutdown. Its key and bundle requests go
 * through the primary (fetch-relay.ts). Signals are the primary's to handle: a worker
 * ignores SIGINT, SIGTERM and SIGHUP (a terminal's Ctrl-C or a process-group kill reach
 * it too) and drains when the primary says so. When the primary is gone (its IPC channel
 * closes), Node ends the worker at once.
 */
export async function runWorker(): Promise<void> {
  if (!cluster.isWorker) throw new Error("runWorker: not a cluster worker (start `scitokens-authz serve`)");
  const slot = Number(process.env[WORKER_SLOT_VARIABLE]);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => {});
  const gate = new ReadinessGate(false);
  const relay = new RelayedFetch((id, request) => void send({ type: "authz:fetch", id, ...request }));
  let service: RunningService | undefined;
  let started!: (config: ServiceConfig) => void;
  const startMessage = new Promise<ServiceConfig>((resolve) => (started = resolve));
  let drain = () => {};
  const drainRequested = new Promise<void>((resolve) => (drain = resolve));

  process.on("message", (message: unknown) => {
    if (!isClusterMessage<ToWorker>(message)) return;
    switch (message.type) {
      case "authz:start":
        started(message.config);
        return;
      case "authz:cluster-ready":
        gate.set(message.ready);
        return;
      case "authz:reload":
        if (service === undefined) return;
        if (message.kind !== "tls") {
          if (message.kind === "sighup") service.reopenDecisionLog();
          void service.reload(message.trigger);
        }
        if (message.kind !== "policy") void service.reloadTls(message.trigger);
        return;
      case "authz:readiness-request":
        void send({ type: "authz:readiness", id: message.id, readiness: service?.readiness() ?? null });
        return;
      case "authz:metrics-request":
        void (service?.metricsSnapshot() ?? Promise.resolve(null)).then(
          (metrics) => send({ type: "authz:metrics", id: message.id, metrics }),
          () => send({ type: "authz:metrics", id: message.id, metrics: null }),
        );
        return;
      case "authz:fetch-result":
        relay.settle(message.id, message.result);
        return;
      case "authz:shutdown":
        drain();
        return;
    }
  });
  process.once("disconnect", () => relay.close());

  const serviceConfig = await startMessage;
  const stdout = pino.destination({ dest: 1, sync: false, minLength: LOG_BATCH_BYTES });
  setInterval(() => stdout.flush(), LOG_FLUSH_MS).unref();
  // Whatever is still held goes out on the way out, however the worker ends (but SIGKILL).
  process.once("exit", () => {
    try {
      stdout.flushSync();
    } catch {
      // stdout is gone with the primary: nothing left to tell.
    }
  });
  const logger = createLogger(serviceConfig.logLevel, stdout as unknown as NodeJS.WritableStream).child({ worker: slot, pid: process.pid });
  routeGrpcLogs(logger);
  try {
    service = await startService(serviceConfig, {
      logger,
      fetch: relay.fetch,
      worker: { slot, gate, onReadinessChange: (ready) => void send({ type: "authz:ready", ready }) },
    });
  } catch (error) {
    // Said once, by the primary (which stops every worker): not logged here.
    if (error instanceof ConfigError) {
      await send({ type: "authz:config-error", file: error.file, problems: error.problems });
      process.exit(WORKER_EXIT.configError);
    }
    await send({ type: "authz:start-failed", message: error instanceof Error ? error.message : String(error) });
    process.exit(WORKER_EXIT.failed);
  }
  const running = service;
  await send({
    type: "authz:listening",
    address: running.address,
    port: running.port,
    authzHttp: running.authzHttp?.address ?? null,
    revision: running.revision,
    issuers: running.data.issuers.size,
  });
  await drainRequested;
  logger.info("worker draining");
  await running.close();
  logger.flush();
  // Disconnecting lets the process end once nothing is left to do; should a handle keep
  // it alive, it exits anyway a little later.
  setTimeout(() => process.exit(0), EXIT_AFTER_DRAIN_MS).unref();
  cluster.worker?.disconnect();
}
