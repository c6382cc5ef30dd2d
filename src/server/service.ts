import type { Logger } from "pino";
import type { AuthzData } from "../config/authz-data.js";
import type { ServiceConfig } from "../config/service-config.js";
import { DecisionLog } from "../observability/decision-log.js";
import type { KeyStore } from "../token/keys/index.js";
import { policyFiles } from "./generation.js";
import { type RunningGrpcServer, startGrpcServer } from "./grpc-server.js";
import { LivePolicy, type ReloadEvent } from "./live-policy.js";
import { type DebounceOptions, type PolicyWatcher, watchPolicyFiles } from "./policy-watcher.js";

export interface ServiceSeams {
  readonly logger: Logger;
  /** Network seam for key fetches (tests). */
  readonly fetch?: typeof globalThis.fetch;
  /** Clock seam, ms since the epoch (tests). */
  readonly now?: () => number;
  /** How file events are gathered into one reload (default POLICY_WATCH_DEBOUNCE). */
  readonly watchDebounce?: DebounceOptions;
}

export interface RunningService {
  readonly port: number;
  /** The authorization data of the generation in force. */
  readonly data: AuthzData;
  /** The key store of the generation in force. */
  readonly keys: KeyStore;
  /** The revision in force: a short SHA-256 of the data file and the compiled policy. */
  readonly revision: string;
  /**
   * Reloads the policy files (what SIGHUP does); resolves with the outcome of a reload
   * that read them after this call. Never rejects.
   */
  reload(trigger?: string): Promise<ReloadEvent>;
  /** Reopens the decision log file, if there is one (log rotation; what SIGHUP does besides reloading). */
  reopenDecisionLog(): void;
  /** Resolves with the next reload outcome matching `filter` (file changes and SIGHUP included). */
  nextReload(filter?: (event: ReloadEvent) => boolean): Promise<ReloadEvent>;
  /** Calls `listener` with every reload outcome; returns the unsubscribe function. */
  onReload(listener: (event: ReloadEvent) => void): () => void;
  close(): Promise<void>;
}

export type { ReloadEvent } from "./live-policy.js";

/**
 * The composition root: loads and validates the authorization data and the compiled
 * policy (both before listening, so a bad file never serves), prepares key sets, then
 * serves gRPC, and reloads the policy files when they change (`policy.watch`) or when
 * asked. It only wires parts together.
 */
export async function startService(config: ServiceConfig, seams: ServiceSeams): Promise<RunningService> {
  const { logger } = seams;
  const decisionLog =
    config.decisionLogFile !== undefined
      ? new DecisionLog({ file: config.decisionLogFile, logger: logger.child({ component: "decision-log" }), ...(seams.now ? { now: seams.now } : {}) })
      : undefined;
  let policy: LivePolicy;
  let server: RunningGrpcServer;
  try {
    policy = await LivePolicy.start(config, decisionLog ? { ...seams, decisionLog } : seams);
  } catch (error) {
    await decisionLog?.close();
    throw error;
  }
  try {
    server = await startGrpcServer(config.listen, policy, logger, { maxRequestBytes: config.maxRequestBytes });
  } catch (error) {
    await policy.close();
    await decisionLog?.close();
    throw error;
  }
  let watcher: PolicyWatcher | undefined;
  if (config.watchPolicy) {
    watcher = watchPolicyFiles(policyFiles(config), (changed) => void policy.reload(`changed: ${changed.join(", ")}`), {
      logger,
      ...(seams.watchDebounce ? { debounce: seams.watchDebounce } : {}),
    });
  }
  logger.info(
    {
      address: `${config.listen.host}:${server.port}`,
      port: server.port,
      data: config.dataFile,
      issuers: policy.current.data.issuers.size,
      revision: policy.current.revision,
      watch: config.watchPolicy,
      decision_log: decisionLog?.file ?? null,
    },
    `listening on ${config.listen.host}:${server.port}`,
  );
  return {
    port: server.port,
    get data() {
      return policy.current.data;
    },
    get keys() {
      return policy.current.keys.store;
    },
    get revision() {
      return policy.current.revision;
    },
    reload: (trigger = "request") => policy.reload(trigger),
    reopenDecisionLog: () => decisionLog?.reopen(),
    nextReload: (filter) => policy.nextReload(filter),
    onReload: (listener) => policy.onReload(listener),
    async close() {
      watcher?.close();
      await server.close();
      await policy.close();
      await decisionLog?.close();
    },
  };
}
