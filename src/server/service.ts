import type { Logger } from "pino";
import { BundleDownloader } from "../bundle/downloader.js";
import { sourceFiles, sourceLabel } from "../bundle/snapshot.js";
import type { AuthzData } from "../config/authz-data.js";
import { ConfigError } from "../config/config-error.js";
import { BUILT_DESCRIPTOR_SET, type ServiceConfig } from "../config/service-config.js";
import { DecisionLog } from "../observability/decision-log.js";
import { type MetricsSnapshot, ServiceMetrics } from "../observability/metrics.js";
import type { Readiness, ReadinessInput } from "../observability/readiness.js";
import { LiveTls, type TlsReloadEvent, tlsFiles } from "../tls/index.js";
import type { KeyStore } from "../token/keys/index.js";
import { type RunningAdminServer, startAdminServer } from "./admin-server.js";
import { type RunningAuthzHttpServer, startAuthzHttpServer } from "./authz-http-server.js";
import type { GenerationObserver } from "./generation.js";
import { GrpcHealth } from "./grpc-health.js";
import { loadReflection } from "./grpc-reflection.js";
import { type GrpcServiceRegistration, type RunningGrpcServer, startGrpcServer } from "./grpc-server.js";
import { listenError } from "./listen-error.js";
import { LivePolicy, type ReloadEvent } from "./live-policy.js";
import { type DebounceOptions, type PolicyWatcher, watchPolicyFiles } from "./policy-watcher.js";
import type { ReadinessGate } from "./readiness-gate.js";
import { ReadinessMonitor } from "./readiness-monitor.js";

export interface ServiceSeams {
  readonly logger: Logger;
  /** Network seam for key fetches (tests). */
  readonly fetch?: typeof globalThis.fetch;
  /** Clock seam, ms since the epoch (tests). */
  readonly now?: () => number;
  /** How file events are gathered into one reload (default POLICY_WATCH_DEBOUNCE). */
  readonly watchDebounce?: DebounceOptions;
  /** A number in [0, 1) for the bundle polling jitter (tests). */
  readonly random?: () => number;
  /** The FileDescriptorSet gRPC reflection serves (default: build/grpc-descriptors.binpb). */
  readonly descriptorSet?: string;
  /**
   * In a cluster worker (src/cluster/), what the primary does for every worker instead:
   * watching the policy and TLS files (it asks for the reloads), and claiming a Unix
   * socket path (it holds the listening socket).
   */
  readonly worker?: {
    /** The worker's slot, 1 to N: the `worker` label of its metrics. */
    readonly slot: number;
    /** Whether every worker is ready: the gRPC health service follows it too. */
    readonly gate: ReadinessGate;
    /** Called with each change of this worker's own readiness. */
    readonly onReadinessChange: (ready: boolean) => void;
  };
}

export interface RunningService {
  /** The TCP port bound; 0 on a Unix socket. */
  readonly port: number;
  /** What a client targets: "127.0.0.1:40213" or "unix:/run/scitokens-authz/grpc.sock". */
  readonly address: string;
  /** The port of the admin HTTP listener (`http.listen`), null without one. */
  readonly httpPort: number | null;
  /** Readiness now, as /readyz and the gRPC health service report it. */
  readiness(): Readiness;
  /** The metrics as prom-client's JSON (for the cluster primary to merge); null without `http.listen`. */
  metricsSnapshot(): Promise<MetricsSnapshot> | null;
  /** The HTTP authorization endpoint (`authz_http.listen`): its port (0 on a Unix socket) and address; null without one. */
  readonly authzHttp: { readonly port: number; readonly address: string } | null;
  /** The authorization data of the generation in force. */
  readonly data: AuthzData;
  /** The key store of the generation in force. */
  readonly keys: KeyStore;
  /** The revision in force: a short SHA-256 of the data file and the compiled policy. */
  readonly revision: string;
  /**
   * Reloads the policy files (what SIGHUP does); resolves with the outcome of a reload
   * that read them after this call. Never rejects. With a bundle server, SIGHUP
   * downloads the bundle first (see `poll`).
   */
  reload(trigger?: string): Promise<ReloadEvent>;
  /** With a bundle server: downloads the bundle now and activates it if new; else nothing. */
  poll(): Promise<void>;
  /** Reopens the decision log file, if there is one (log rotation; what SIGHUP does besides reloading). */
  reopenDecisionLog(): void;
  /** Resolves with the next reload outcome matching `filter` (file changes and SIGHUP included). */
  nextReload(filter?: (event: ReloadEvent) => boolean): Promise<ReloadEvent>;
  /** Calls `listener` with every reload outcome; returns the unsubscribe function. */
  onReload(listener: (event: ReloadEvent) => void): () => void;
  /**
   * With `grpc.tls`: reads the certificate, key and client CA files again and applies
   * them to new connections if valid (what SIGHUP and a change to them do); null without TLS.
   */
  reloadTls(trigger?: string): Promise<TlsReloadEvent> | null;
  /** With `grpc.tls`: the next TLS reload outcome matching `filter`; null without TLS. */
  nextTlsReload(filter?: (event: TlsReloadEvent) => boolean): Promise<TlsReloadEvent> | null;
  close(): Promise<void>;
}

export type { TlsReloadEvent } from "../tls/index.js";
export type { ReloadEvent } from "./live-policy.js";

/**
 * The composition root: loads and validates the authorization data and the compiled
 * policy (both before listening, so a bad file never serves), prepares key sets, then
 * serves gRPC, and reloads the policy files when they change (`policy.watch`) or when
 * asked. It only wires parts together.
 */
export async function startService(config: ServiceConfig, seams: ServiceSeams): Promise<RunningService> {
  const { logger } = seams;
  // The TLS files are checked first: nothing has started yet that would need stopping.
  const tls = config.tls !== undefined ? await LiveTls.start(config.tls, config.file, logger.child({ component: "tls" })) : undefined;
  const now = seams.now ?? Date.now;
  let policy: LivePolicy | undefined;
  let closing = false;
  const readinessInput = (): ReadinessInput => ({
    revision: policy?.current.revision ?? null,
    closing,
    keys: policy?.current.keys.store.status() ?? [],
    maxStaleMs: config.keys.maxStaleMs,
    nowMs: now(),
  });
  const readiness = new ReadinessMonitor(readinessInput);
  const health = new GrpcHealth();
  const worker = seams.worker;
  let locallyReady = false;
  const updateHealth = () => health.set(locallyReady && (worker?.gate.open ?? true));
  readiness.onChange((ready) => {
    locallyReady = ready;
    updateHealth();
    if (worker === undefined) logger.info({ ready }, ready ? "ready (gRPC health SERVING)" : "not ready (gRPC health NOT_SERVING)");
    else {
      logger.info({ ready }, ready ? "worker ready" : "worker not ready");
      worker.onReadinessChange(ready);
    }
  });
  const stopGate = worker?.gate.onChange(updateHealth);
  // Metrics are counted only when they can be read (http.listen).
  const metrics =
    config.httpListen !== null
      ? new ServiceMetrics({
          maxStaleSeconds: config.keys.maxStaleMs / 1000,
          refreshIntervalSeconds: config.keys.refreshIntervalMs / 1000,
          ...(worker !== undefined ? { worker: worker.slot } : {}),
          state: () => {
            const input = readinessInput();
            return { revision: input.revision, keys: input.keys, ready: readiness.assess().ready, nowMs: input.nowMs };
          },
        })
      : undefined;
  const observer: GenerationObserver = {
    keyAttempt(issuer, ok) {
      metrics?.keyAttempt(issuer, ok);
      readiness.assess();
    },
    ...(metrics
      ? {
          decided: (event) => metrics.decided(event),
          tokenCacheLookup: (hit) => metrics.tokenCacheLookup(hit),
          negativeCacheLookup: (hit) => metrics.negativeCacheLookup(hit),
        }
      : {}),
  };
  // The admin listener answers from before the policy is loaded (/healthz 200, /readyz 503
  // "starting"), so an orchestrator can tell a slow start from a dead process. First, so
  // that nothing else is left open when its port cannot be had.
  let admin: RunningAdminServer | undefined;
  // A worker counts; the primary serves the listener, from every worker's answers.
  if (config.httpListen !== null && metrics !== undefined && worker === undefined) {
    try {
      admin = await startAdminServer(config.httpListen, { readiness: () => readiness.assess(), metrics: () => metrics.exposition() }, logger);
    } catch (error) {
      throw listenError(config, error, "http.listen", config.httpListen);
    }
    logger.info(
      { address: `${config.httpListen.host}:${admin.port}`, port: admin.port },
      `admin HTTP listening on ${config.httpListen.host}:${admin.port} (/healthz, /readyz, /metrics)`,
    );
  }
  const stopAdmin = async () => {
    readiness.close();
    stopGate?.();
    await admin?.close();
  };
  const decisionLog =
    config.decisionLogFile !== undefined
      ? new DecisionLog({ file: config.decisionLogFile, logger: logger.child({ component: "decision-log" }), ...(seams.now ? { now: seams.now } : {}) })
      : undefined;
  const generationSeams = { ...seams, observer, ...(decisionLog ? { decisionLog } : {}) };
  const downloader =
    config.policy.kind === "bundle-url"
      ? new BundleDownloader(config.policy, {
          logger: logger.child({ component: "bundle" }),
          ...(seams.fetch ? { fetch: seams.fetch } : {}),
          ...(seams.random ? { random: seams.random } : {}),
        })
      : undefined;
  let live: LivePolicy;
  let server: RunningGrpcServer;
  let startedFrom: "persisted" | "downloaded" | undefined;
  try {
    if (downloader === undefined) {
      live = await LivePolicy.start(config, generationSeams);
    } else {
      startedFrom = await downloader.initial();
      try {
        live = await LivePolicy.start(config, generationSeams, downloader.read);
      } catch (error) {
        if (startedFrom !== "persisted" || !(error instanceof ConfigError)) throw error;
        logger.error({ file: error.file, problems: error.problems }, "the persisted bundle is refused: downloading the bundle instead");
        await downloader.download();
        startedFrom = "downloaded";
        live = await LivePolicy.start(config, generationSeams, downloader.read);
      }
    }
  } catch (error) {
    downloader?.close();
    await decisionLog?.close();
    await stopAdmin();
    throw error;
  }
  policy = live;
  live.onReload((event) => {
    metrics?.reloaded(event.outcome);
    readiness.assess();
  });
  readiness.assess();
  try {
    server = await startGrpcServer(
      config.listen,
      live,
      logger,
      {
        maxRequestBytes: config.maxRequestBytes,
        connectionAge: config.connectionAge,
        claimSocket: worker === undefined,
        ...(tls !== undefined ? { credentials: tls.credentials } : {}),
      },
      grpcServices(health, seams, logger),
    );
  } catch (error) {
    downloader?.close();
    await live.close();
    await decisionLog?.close();
    await stopAdmin();
    throw listenError(config, error);
  }
  // The HTTP authorization endpoint, when configured: the same live policy decides.
  let authzHttp: RunningAuthzHttpServer | undefined;
  if (config.authzHttp !== undefined) {
    try {
      authzHttp = await startAuthzHttpServer(config.authzHttp.listen, live, logger.child({ component: "authz-http" }), {
        maxHeaderBytes: config.authzHttp.maxHeaderBytes,
        claimSocket: worker === undefined,
      });
    } catch (error) {
      downloader?.close();
      await server.close();
      await live.close();
      await decisionLog?.close();
      await stopAdmin();
      throw listenError(config, error, "authz_http.listen", config.authzHttp.listen);
    }
  }
  const activate = async (trigger: string) => {
    const event = await live.reload(trigger);
    return { activated: event.outcome === "reloaded" || event.outcome === "unchanged", revision: event.revision };
  };
  if (downloader !== undefined) await downloader.started(activate, startedFrom!);
  let watcher: PolicyWatcher | undefined;
  const watched = sourceFiles(config.policy);
  if (config.watchPolicy && watched.length > 0 && worker === undefined) {
    watcher = watchPolicyFiles(watched, (changed) => void live.reload(`changed: ${changed.join(", ")}`), {
      logger,
      ...(seams.watchDebounce ? { debounce: seams.watchDebounce } : {}),
    });
  }
  let tlsWatcher: PolicyWatcher | undefined;
  if (tls !== undefined && config.tls !== undefined && worker === undefined) {
    tlsWatcher = watchPolicyFiles(tlsFiles(config.tls), (changed) => void tls.reload(`changed: ${changed.join(", ")}`), {
      logger,
      what: "TLS",
      ...(seams.watchDebounce ? { debounce: seams.watchDebounce } : {}),
    });
  }
  logger.info(
    {
      address: server.address,
      ...("socketPath" in config.listen ? { socket: config.listen.socketPath } : { port: server.port }),
      tls: tls === undefined ? "off" : tls.mutual ? "mutual" : "on",
      ...sourceLabel(config.policy),
      issuers: live.current.data.issuers.size,
      revision: live.current.revision,
      watch: config.watchPolicy,
      decision_log: decisionLog?.file ?? null,
      http_port: admin?.port ?? null,
      authz_http: authzHttp?.address ?? null,
    },
    // With workers, the primary says "listening on" once, when every worker listens.
    `${worker === undefined ? "" : `worker ${worker.slot} `}listening on ${server.address}${tls === undefined ? "" : tls.mutual ? " (mutual TLS)" : " (TLS)"}${
      authzHttp === undefined ? "" : `; HTTP authorization endpoint on ${authzHttp.address}`
    }`,
  );
  return {
    port: server.port,
    address: server.address,
    httpPort: admin?.port ?? null,
    readiness: () => readiness.assess(),
    metricsSnapshot: () => metrics?.snapshot() ?? null,
    authzHttp: authzHttp !== undefined ? { port: authzHttp.port, address: authzHttp.address } : null,
    get data() {
      return live.current.data;
    },
    get keys() {
      return live.current.keys.store;
    },
    get revision() {
      return live.current.revision;
    },
    reload: async (trigger = "request") => {
      if (downloader !== undefined) await downloader.pollNow(activate);
      return live.reload(trigger);
    },
    poll: async () => {
      if (downloader !== undefined) await downloader.pollNow(activate);
    },
    reopenDecisionLog: () => decisionLog?.reopen(),
    nextReload: (filter) => live.nextReload(filter),
    onReload: (listener) => live.onReload(listener),
    reloadTls: (trigger = "request") => tls?.reload(trigger) ?? null,
    nextTlsReload: (filter) => tls?.nextReload(filter) ?? null,
    async close() {
      // Not ready from now on (gRPC health NOT_SERVING, /readyz 503) while the Checks drain.
      closing = true;
      readiness.assess();
      health.close();
      watcher?.close();
      tlsWatcher?.close();
      downloader?.close();
      await Promise.all([server.close(), authzHttp?.close()]);
      await live.close();
      await decisionLog?.close();
      await stopAdmin();
    },
  };
}

/** Health always; reflection when the descriptor set can be read (else a warning, and none). */
function grpcServices(health: GrpcHealth, seams: ServiceSeams, logger: Logger): GrpcServiceRegistration[] {
  const descriptorSet = seams.descriptorSet ?? BUILT_DESCRIPTOR_SET;
  try {
    return [health, loadReflection(descriptorSet)];
  } catch (error) {
    logger.warn(
      { file: descriptorSet, err: error instanceof Error ? error.message : String(error) },
      "gRPC reflection is off: its descriptor set cannot be read (npm run build writes it)",
    );
    return [health];
  }
}
