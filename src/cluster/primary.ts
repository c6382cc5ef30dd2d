import cluster, { type Worker } from "node:cluster";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { sourceFiles, sourceLabel } from "../bundle/snapshot.js";
import { ConfigError } from "../config/config-error.js";
import type { ListenAddress, ServiceConfig } from "../config/service-config.js";
import type { MetricsSnapshot } from "../observability/metrics.js";
import type { Readiness } from "../observability/readiness.js";
import { type RunningAdminServer, startAdminServer } from "../server/admin-server.js";
import { listenError } from "../server/listen-error.js";
import { type PolicyWatcher, watchPolicyFiles } from "../server/policy-watcher.js";
import { claimSocketPath } from "../server/unix-socket.js";
import { tlsFiles } from "../tls/read-tls-files.js";
import { ClusterMetrics } from "./cluster-metrics.js";
import { type ClusterReadiness, type WorkerSlotState, assessClusterReadiness } from "./cluster-readiness.js";
import { FetchRelay } from "./fetch-relay.js";
import { type LineSink, forwardLines } from "./forward-lines.js";
import { type FromWorker, type ReloadKind, type ToWorker, WORKER_SLOT_VARIABLE, type WorkerListening, isClusterMessage } from "./messages.js";
import { restartDelay } from "./restart-backoff.js";

/** The program every worker runs (compiled next to this file). */
const WORKER_MAIN = fileURLToPath(new URL("./worker-main.js", import.meta.url));

/** How long /readyz and /metrics wait for a worker's answer. */
const ANSWER_WAIT = Object.freeze({ readinessMs: 1_000, metricsMs: 2_000 });

/**
 * The longest a shutdown waits for the workers to drain and exit (each gives its calls
 * 5 s, see startGrpcServer) before the ones left are killed.
 */
const DRAIN_LIMIT_MS = 15_000;

export interface ClusterOptions {
  readonly logger: Logger;
  /**
   * The primary's own stdout writer (its log destination): worker log lines are written
   * through it whole, so that lines of different processes never mix.
   */
  readonly stdout: LineSink;
  readonly stderr: LineSink;
}

export interface RunningCluster {
  /** What a client targets: "127.0.0.1:40213" or "unix:/run/scitokens-authz/grpc.sock". */
  readonly address: string;
  /** The HTTP authorization endpoint's address, null without one. */
  readonly authzHttp: string | null;
  /** SIGHUP: every worker reopens its decision log and reloads its policy and TLS files. */
  reload(trigger: string): void;
  /** Drains every worker and stops; resolves false when a worker did not end cleanly. */
  close(): Promise<boolean>;
}

interface Slot {
  readonly number: number;
  worker: Worker | null;
  state: WorkerSlotState["state"];
  ready: boolean;
  startedAt: number;
  /** The slot's current process has been ready at least once (reset when it is replaced). */
  readyOnce: boolean;
  /** Unexpected exits in a row (see restart-backoff.ts). */
  failures: number;
  restartTimer: NodeJS.Timeout | undefined;
  listening: WorkerListening | null;
  /** Why the current process could not start, as it said. */
  startError: Error | null;
}

type Reply = Extract<FromWorker, { type: "authz:readiness" | "authz:metrics" }>;

/**
 * `serve` with several workers (`workers` above 1): the primary process. It validates
 * nothing itself that the service does not (the configuration was validated before), and
 * serves no Check: it
 * - claims a Unix socket path once (node:cluster then holds the listening sockets, TCP
 *   and Unix alike, and hands each new connection to the next worker in turn);
 * - forks the workers, each told the configuration, and stops them all with the first
 *   one's configuration error (said once, exit 2) when one cannot start; later, restarts
 *   one that exits unexpectedly, with a backoff (restart-backoff.ts);
 * - serves the admin listener (`http.listen`): /readyz from every worker's answer, /metrics
 *   merged from every worker's (ClusterMetrics);
 * - tells every worker whether the cluster is ready (their gRPC health follows it: see
 *   updateGate), and relays
 *   reloads (SIGHUP, the watched policy and TLS files) and the shutdown to each;
 * - makes the workers' key requests, sharing those in flight (FetchRelay).
 */
export async function startCluster(config: ServiceConfig, options: ClusterOptions): Promise<RunningCluster> {
  const { logger } = options;
  const listeners: Array<[string, ListenAddress | undefined]> = [
    ["grpc.listen", config.listen],
    ["authz_http.listen", config.authzHttp?.listen],
  ];
  for (const [key, listen] of listeners) {
    if (listen === undefined || !("socketPath" in listen)) continue;
    try {
      await claimSocketPath(listen.socketPath, logger);
    } catch (error) {
      throw listenError(config, error, key, listen);
    }
  }

  const slots: Slot[] = Array.from({ length: config.workers }, (_, i) => ({
    number: i + 1,
    worker: null,
    state: "starting",
    ready: false,
    readyOnce: false,
    startedAt: 0,
    failures: 0,
    restartTimer: undefined,
    listening: null,
    startError: null,
  }));
  let started = false;
  let closing = false;
  // The start failed: the other workers are killed on purpose.
  let aborting = false;
  let gateOpen = false;
  const metrics =
    config.httpListen !== null
      ? new ClusterMetrics({
          workers: config.workers,
          state: () => ({ ready: gateOpen, readyWorkers: slots.filter((slot) => slot.state === "running" && slot.ready).length }),
        })
      : undefined;
  const relay = new FetchRelay({
    timeoutMs: Math.max(config.keys.fetchTimeoutMs, config.policy.kind === "bundle-url" ? config.policy.timeoutMs : 0),
    maxBytes: Math.max(config.keys.maxResponseBytes, config.policy.kind === "bundle-url" ? config.policy.maxBytes : 0),
    ...(metrics ? { onRequest: (outcome: "fetched" | "joined") => metrics.relayed(outcome) } : {}),
  });

  const sendTo = (worker: Worker | null, message: ToWorker) => {
    if (worker === null || !worker.isConnected()) return;
    try {
      worker.send(message, undefined, undefined, () => {});
    } catch {
      // The worker is gone: its exit is handled where it is seen.
    }
  };

  let nextRequest = 0;
  const waiting = new Map<number, (reply: Reply | null) => void>();
  const ask = (slot: Slot, type: "authz:readiness-request" | "authz:metrics-request", timeoutMs: number): Promise<Reply | null> => {
    const worker = slot.worker;
    if (worker === null || !worker.isConnected()) return Promise.resolve(null);
    const id = ++nextRequest;
    return new Promise((resolve) => {
      const timer = setTimeout(() => answer(null), timeoutMs);
      const answer = (reply: Reply | null) => {
        clearTimeout(timer);
        waiting.delete(id);
        resolve(reply);
      };
      waiting.set(id, answer);
      sendTo(worker, { type, id });
    });
  };

  // The workers' gRPC health follows this gate. It first opens when every worker is ready.
  // After that, a worker that is down or (re)starting takes no connection (node:cluster
  // hands them to the live ones) and does not close it: one worker's crash must not take
  // the whole host out of Envoy's load balancing. A live worker that was ready and is not
  // any more (its keys or policy became unusable) closes it, as in one process.
  let openedOnce = false;
  const updateGate = () => {
    const live = slots.filter((slot) => slot.state === "running" && slot.worker !== null);
    const open =
      started &&
      !closing &&
      (openedOnce
        ? live.some((slot) => slot.ready) && live.every((slot) => slot.ready || !slot.readyOnce)
        : slots.every((slot) => slot.state === "running" && slot.ready));
    if (open) openedOnce = true;
    if (open === gateOpen) return;
    gateOpen = open;
    for (const slot of slots) sendTo(slot.worker, { type: "authz:cluster-ready", ready: open });
    logger.info({ ready: open }, open ? "ready (gRPC health SERVING)" : "not ready (gRPC health NOT_SERVING)");
  };

  const readiness = async (): Promise<ClusterReadiness> => {
    const states = await Promise.all(
      slots.map(async (slot): Promise<WorkerSlotState> => {
        const reply = slot.state === "restarting" || slot.state === "stopped" ? null : await ask(slot, "authz:readiness-request", ANSWER_WAIT.readinessMs);
        const own: Readiness | null = reply?.type === "authz:readiness" ? reply.readiness : null;
        return { worker: slot.number, pid: slot.worker?.process.pid ?? null, state: slot.state, readiness: own };
      }),
    );
    return assessClusterReadiness({ closing, slots: states });
  };

  const exposition = async (cm: ClusterMetrics) => {
    const answers = new Map<number, MetricsSnapshot | null>();
    await Promise.all(
      slots
        .filter((slot) => slot.worker !== null)
        .map(async (slot) => {
          const reply = await ask(slot, "authz:metrics-request", ANSWER_WAIT.metricsMs);
          answers.set(slot.number, reply?.type === "authz:metrics" ? reply.metrics : null);
        }),
    );
    return cm.exposition(answers);
  };

  // The admin listener answers from before the workers listen (/readyz 503 "starting").
  let admin: RunningAdminServer | undefined;
  if (config.httpListen !== null && metrics !== undefined) {
    try {
      admin = await startAdminServer(config.httpListen, { readiness, metrics: () => exposition(metrics) }, logger);
    } catch (error) {
      throw listenError(config, error, "http.listen", config.httpListen);
    }
    logger.info(
      { address: `${config.httpListen.host}:${admin.port}`, port: admin.port },
      `admin HTTP listening on ${config.httpListen.host}:${admin.port} (/healthz, /readyz, /metrics)`,
    );
  }

  let startupDone!: () => void;
  let startupFailed!: (error: Error) => void;
  const startup = new Promise<void>((resolve, reject) => {
    startupDone = resolve;
    startupFailed = reject;
  });

  const onMessage = (slot: Slot, worker: Worker, message: unknown) => {
    if (slot.worker !== worker || !isClusterMessage<FromWorker>(message)) return;
    switch (message.type) {
      case "authz:listening": {
        const { type: _type, ...listening } = message;
        slot.listening = listening;
        slot.state = "running";
        sendTo(worker, { type: "authz:cluster-ready", ready: gateOpen });
        if (started) logger.info({ worker: slot.number, pid: worker.process.pid }, `worker ${slot.number} is serving again (pid ${worker.process.pid})`);
        else if (slots.every((s) => s.state === "running")) startupDone();
        updateGate();
        return;
      }
      case "authz:ready":
        slot.ready = message.ready;
        if (message.ready) slot.readyOnce = true;
        updateGate();
        return;
      case "authz:config-error":
        slot.startError = new ConfigError(message.file, message.problems);
        if (!started) startupFailed(slot.startError);
        return;
      case "authz:start-failed":
        slot.startError = new Error(message.message);
        if (!started) startupFailed(slot.startError);
        return;
      case "authz:readiness":
      case "authz:metrics":
        waiting.get(message.id)?.(message);
        return;
      case "authz:fetch": {
        const { id, url, headers } = message;
        void relay.request({ url, headers }).then((result) => sendTo(worker, { type: "authz:fetch-result", id, result }));
        return;
      }
    }
  };

  const onExit = async (slot: Slot, worker: Worker, code: number | null, signal: string | null) => {
    if (slot.worker !== worker) return;
    slot.worker = null;
    slot.ready = false;
    slot.readyOnce = false;
    const pid = worker.process.pid;
    const how = signal !== null ? `signal ${signal}` : `code ${code}`;
    if (closing) {
      slot.state = "stopped";
      if (code !== 0 && !aborting)
        logger.warn({ worker: slot.number, pid, code, signal }, `worker ${slot.number} (pid ${pid}) ended with ${how} while draining`);
      return;
    }
    if (!started) {
      startupFailed(slot.startError ?? new Error(`worker ${slot.number} (pid ${pid}) exited with ${how} before it listened`));
      return;
    }
    slot.state = "restarting";
    updateGate();
    await metrics?.retire(slot.number);
    const { delayMs: delay, failures } = restartDelay(slot.failures, Date.now() - slot.startedAt);
    slot.failures = failures;
    const fields = { worker: slot.number, pid, code, signal, restart_in_ms: delay };
    if (slot.startError instanceof ConfigError) {
      logger.error(
        { ...fields, file: slot.startError.file, problems: slot.startError.problems },
        `worker ${slot.number} cannot start: configuration error: ${slot.startError.message}; trying again in ${delay} ms`,
      );
    } else if (slot.startError !== null) {
      logger.error({ ...fields, err: slot.startError.message }, `worker ${slot.number} cannot start: ${slot.startError.message}; trying again in ${delay} ms`);
    } else {
      logger.error(fields, `worker ${slot.number} (pid ${pid}) exited unexpectedly (${how}): restarting it in ${delay} ms`);
    }
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (closing) return;
      metrics?.workerRestarted();
      fork(slot);
    }, delay);
  };

  cluster.setupPrimary({ exec: WORKER_MAIN, args: [], silent: true, serialization: "advanced" });
  const fork = (slot: Slot) => {
    const worker = cluster.fork({ [WORKER_SLOT_VARIABLE]: String(slot.number) });
    slot.worker = worker;
    slot.state = "starting";
    slot.ready = false;
    slot.readyOnce = false;
    slot.listening = null;
    slot.startError = null;
    slot.startedAt = Date.now();
    forwardLines(worker.process.stdout, options.stdout);
    forwardLines(worker.process.stderr, options.stderr);
    worker.on("message", (message: unknown) => onMessage(slot, worker, message));
    // A worker's IPC channel errors when it dies mid-message: its exit says what happened.
    worker.on("error", () => {});
    void ended(worker)
      .then(({ code, signal }) => onExit(slot, worker, code, signal))
      .catch((error: unknown) =>
        logger.error({ worker: slot.number, err: error instanceof Error ? error.message : String(error) }, "handling a worker's exit failed"),
      );
    logger.info({ worker: slot.number, pid: worker.process.pid }, `worker ${slot.number} started (pid ${worker.process.pid})`);
    sendTo(worker, { type: "authz:start", config });
  };

  for (const slot of slots) fork(slot);
  try {
    await startup;
  } catch (error) {
    // Stop the others at once: nothing has been announced, and the error is said once.
    closing = true;
    aborting = true;
    const alive = slots.flatMap((slot) => (slot.worker !== null ? [slot.worker] : []));
    for (const worker of alive) worker.process.kill("SIGKILL");
    await Promise.all(alive.map(ended));
    relay.close();
    await admin?.close();
    throw error;
  }
  started = true;
  updateGate();

  const broadcastReload = (kind: ReloadKind, trigger: string) => {
    for (const slot of slots) if (slot.state === "running") sendTo(slot.worker, { type: "authz:reload", kind, trigger });
  };
  const watchers: PolicyWatcher[] = [];
  const watched = sourceFiles(config.policy);
  if (config.watchPolicy && watched.length > 0) {
    watchers.push(watchPolicyFiles(watched, (changed) => broadcastReload("policy", `changed: ${changed.join(", ")}`), { logger }));
  }
  if (config.tls !== undefined) {
    watchers.push(watchPolicyFiles(tlsFiles(config.tls), (changed) => broadcastReload("tls", `changed: ${changed.join(", ")}`), { logger, what: "TLS" }));
  }

  const first = slots[0]!.listening!;
  const tls = config.tls === undefined ? "off" : config.tls.clientCaFile !== null ? "mutual" : "on";
  logger.info(
    {
      address: first.address,
      ...("socketPath" in config.listen ? { socket: config.listen.socketPath } : { port: first.port }),
      tls,
      ...sourceLabel(config.policy),
      issuers: first.issuers,
      revision: first.revision,
      watch: config.watchPolicy,
      decision_log: config.decisionLogFile ?? null,
      http_port: admin?.port ?? null,
      authz_http: first.authzHttp,
      workers: config.workers,
      pids: slots.map((slot) => slot.worker?.process.pid ?? null),
    },
    `listening on ${first.address}${tls === "off" ? "" : tls === "mutual" ? " (mutual TLS)" : " (TLS)"}${
      first.authzHttp === null ? "" : `; HTTP authorization endpoint on ${first.authzHttp}`
    }`,
  );

  return {
    address: first.address,
    authzHttp: first.authzHttp,
    reload: (trigger) => broadcastReload("sighup", trigger),
    async close() {
      closing = true;
      updateGate();
      for (const watcher of watchers) watcher.close();
      const running = slots.filter((slot) => slot.worker !== null);
      for (const slot of slots) {
        clearTimeout(slot.restartTimer);
        if (slot.worker === null) slot.state = "stopped";
      }
      for (const slot of running) sendTo(slot.worker, { type: "authz:shutdown" });
      const workers = running.map((slot) => slot.worker!);
      const drained = await Promise.race([
        Promise.all(workers.map(ended)).then((ends) => ends.every((end) => end.code === 0)),
        new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), DRAIN_LIMIT_MS).unref()),
      ]);
      if (drained === "timeout") {
        const left = workers.filter((worker) => worker.process.exitCode === null && worker.process.signalCode === null);
        logger.error({ pids: left.map((worker) => worker.process.pid) }, `${left.length} workers did not drain within ${DRAIN_LIMIT_MS} ms: killed`);
        for (const worker of left) worker.process.kill("SIGKILL");
        await Promise.all(left.map(ended));
      }
      relay.close();
      await admin?.close();
      return drained === true;
    },
  };
}

const endings = new WeakMap<Worker, Promise<{ code: number | null; signal: string | null }>>();

/**
 * Resolves once `worker` has exited and its IPC channel is closed, so that every message
 * it sent (a configuration error just before exiting) has been handled first.
 */
function ended(worker: Worker): Promise<{ code: number | null; signal: string | null }> {
  let end = endings.get(worker);
  if (end === undefined) {
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
      const { exitCode, signalCode } = worker.process;
      if (exitCode !== null || signalCode !== null) resolve({ code: exitCode, signal: signalCode });
      else worker.process.once("exit", (code, signal) => resolve({ code, signal }));
    });
    const disconnected = new Promise<void>((resolve) => {
      if (!worker.isConnected()) resolve();
      else worker.once("disconnect", () => resolve());
    });
    end = Promise.all([exited, disconnected]).then(([result]) => result);
    endings.set(worker, end);
  }
  return end;
}
