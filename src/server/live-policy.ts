import { EventEmitter } from "node:events";
import { type PolicyBytes, readPolicyBytes, sourceLabel } from "../bundle/snapshot.js";
import { ConfigError } from "../config/config-error.js";
import type { ServiceConfig } from "../config/service-config.js";
import type { CheckBudget } from "../decision/authorizer.js";
import type { CheckRequest, CheckResponse } from "../gen/envoy/service/auth/v3/external_auth.js";
import type { KeyStore } from "../token/keys/index.js";
import { type Generation, type GenerationSeams, type SharedKeyStore, loadGeneration, rereadKeyFiles } from "./generation.js";

/** Reads the policy's current bytes (throws ConfigError when they cannot be read). */
export type ReadPolicy = () => Promise<PolicyBytes>;

/** The outcome of one reload, as {@link LivePolicy.reload} and the `reload` event report it. */
export type ReloadEvent =
  | {
      readonly outcome: "reloaded";
      readonly revision: string;
      readonly previousRevision: string;
      /** Whether the key store (and so the fetched keys) was kept: the key sources did not change. */
      readonly keys: "kept" | "replaced";
      readonly trigger: string;
    }
  | {
      /** The files hold the running revision: nothing was swapped, the caches stay (key files are read again). */
      readonly outcome: "unchanged";
      readonly revision: string;
      readonly trigger: string;
    }
  | {
      readonly outcome: "refused";
      /** The file at fault; null when no file is (the service is shutting down). */
      readonly file: string | null;
      readonly problems: readonly string[];
      /** The revision that goes on serving. */
      readonly revision: string;
      readonly trigger: string;
    };

/** A generation with the Checks it is deciding. */
interface Live {
  readonly generation: Generation;
  active: number;
  retired: boolean;
}

interface Queued {
  readonly triggers: string[];
  readonly done: Promise<ReloadEvent>;
  readonly resolve: (event: ReloadEvent) => void;
}

/**
 * The policy generation in force, swapped atomically on reload. Each Check is decided
 * wholly by the generation current when it started: it holds that generation until it
 * has answered. A retired generation is dropped, and its key store closed when no
 * generation uses it any more, once its last Check has answered. Reloads run one at a
 * time off the hot path; requests during a reload are gathered into one more reload. A
 * broken change is refused (logged once, naming the file and the problems) and the
 * last good generation goes on serving.
 */
export class LivePolicy {
  readonly #config: ServiceConfig;
  readonly #seams: GenerationSeams;
  readonly #read: ReadPolicy;
  readonly #events = new EventEmitter();
  readonly #keyStores = new Set<SharedKeyStore>();
  #live: Live;
  #queued: Queued | undefined;
  #running: Promise<void> | undefined;
  #loadingKeys: KeyStore | undefined;
  #closing = false;

  private constructor(config: ServiceConfig, seams: GenerationSeams, read: ReadPolicy, generation: Generation) {
    this.#config = config;
    this.#seams = seams;
    this.#read = read;
    this.#live = { generation, active: 0, retired: false };
    this.#keyStores.add(generation.keys);
    this.#events.setMaxListeners(0);
  }

  /**
   * Loads the first generation from what `read` returns (by default the policy files or
   * bundle file of the config); a ConfigError stops the start-up.
   */
  static async start(config: ServiceConfig, seams: GenerationSeams, read: ReadPolicy = () => readPolicyBytes(config.policy)): Promise<LivePolicy> {
    const generation = await loadGeneration(config, seams, await read());
    const live = new LivePolicy(config, seams, read, generation);
    live.#logLoaded(generation, { trigger: "start" });
    return live;
  }

  /** The generation new Checks are decided by. */
  get current(): Generation {
    return this.#live.generation;
  }

  /**
   * Decides one Check with the current generation, which it holds until the answer is
   * ready; the answer's dynamic metadata names the generation (`policy_revision`).
   */
  async check(request: CheckRequest, budget: CheckBudget = {}): Promise<CheckResponse> {
    const live = this.#live;
    live.active++;
    try {
      return withRevision(await live.generation.authorizer.check(request, budget), live.generation.revision);
    } finally {
      live.active--;
      if (live.retired && live.active === 0) this.#drop(live);
    }
  }

  /** The gRPC layer's last resort (see Authorizer.faultResponse). */
  faultResponse(): CheckResponse {
    const { generation } = this.#live;
    return withRevision(generation.authorizer.faultResponse(), generation.revision);
  }

  /**
   * Asks for a reload. Resolves with the outcome of a reload that reads the files after
   * this call: the one queued behind a reload already running, shared with the other
   * requests made meanwhile. Never rejects.
   */
  reload(trigger: string): Promise<ReloadEvent> {
    if (this.#queued === undefined) {
      let resolve!: (event: ReloadEvent) => void;
      const done = new Promise<ReloadEvent>((r) => (resolve = r));
      this.#queued = { triggers: [], done, resolve };
    }
    this.#queued.triggers.push(trigger);
    const { done } = this.#queued;
    this.#running ??= this.#drain().finally(() => (this.#running = undefined));
    return done;
  }

  /** Calls `listener` with the outcome of every reload from now on; returns the unsubscribe. */
  onReload(listener: (event: ReloadEvent) => void): () => void {
    this.#events.on("reload", listener);
    return () => this.#events.off("reload", listener);
  }

  /** Resolves with the next reload outcome (matching `filter`, when given). */
  nextReload(filter: (event: ReloadEvent) => boolean = () => true): Promise<ReloadEvent> {
    return new Promise((resolve) => {
      const off = this.onReload((event) => {
        if (!filter(event)) return;
        off();
        resolve(event);
      });
    });
  }

  /**
   * Stops reloading (a reload under way is cut short: a key store it is starting is
   * closed) and closes every key store. Call it after the server has stopped taking Checks.
   */
  async close(): Promise<void> {
    this.#closing = true;
    this.#loadingKeys?.close();
    await this.#running;
    for (const keys of this.#keyStores) keys.close();
    this.#keyStores.clear();
  }

  async #drain(): Promise<void> {
    while (this.#queued !== undefined) {
      const job = this.#queued;
      this.#queued = undefined;
      const trigger = [...new Set(job.triggers)].join(", ");
      let event: ReloadEvent;
      try {
        event = this.#closing ? this.#refused(null, ["the service is shutting down"], trigger) : await this.#reloadOnce(trigger);
      } catch (error) {
        // Not expected (loading errors are refusals already); the last good generation stays.
        event = this.#refused(policyName(this.#config), [`the reload failed (${error instanceof Error ? error.message : String(error)})`], trigger);
      }
      job.resolve(event);
      try {
        this.#events.emit("reload", event);
      } catch (error) {
        this.#seams.logger.error({ err: error }, "a reload listener failed");
      }
    }
  }

  async #reloadOnce(trigger: string): Promise<ReloadEvent> {
    const previous = this.#live.generation;
    let bytes: PolicyBytes;
    let generation: Generation;
    try {
      bytes = await this.#read();
      if (bytes.revision === previous.revision) {
        await rereadKeyFiles(previous);
        this.#seams.logger.info({ revision: bytes.revision, trigger }, "policy unchanged: nothing to reload (key files read again)");
        return { outcome: "unchanged", revision: bytes.revision, trigger };
      }
      generation = await loadGeneration(this.#config, this.#seams, bytes, previous, (store) => (this.#loadingKeys = store));
    } catch (error) {
      const { file, problems } = asConfigError(this.#config, error);
      return this.#refused(file, problems, trigger);
    }
    if (this.#closing) {
      this.#release(generation.keys);
      return this.#refused(null, ["the service is shutting down"], trigger);
    }
    this.#swap(generation);
    const keys = generation.keptKeys ? "kept" : "replaced";
    this.#logLoaded(generation, { trigger, previous_revision: previous.revision, keys });
    return { outcome: "reloaded", revision: generation.revision, previousRevision: previous.revision, keys, trigger };
  }

  #swap(generation: Generation): void {
    const old = this.#live;
    this.#keyStores.add(generation.keys);
    this.#live = { generation, active: 0, retired: false };
    old.retired = true;
    if (old.active === 0) this.#drop(old);
  }

  /** A retired generation whose last Check has answered: its key store loses a user. */
  #drop(live: Live): void {
    this.#release(live.generation.keys);
  }

  #release(keys: SharedKeyStore): void {
    if (!keys.release()) return;
    this.#keyStores.delete(keys);
    const issuers = keys.store.status().map((s) => s.issuer);
    this.#seams.logger.info({ issuers }, "key store of a retired policy closed (no more fetches for it)");
  }

  #refused(file: string | null, problems: readonly string[], trigger: string): ReloadEvent {
    const revision = this.#live.generation.revision;
    if (file === null) {
      this.#seams.logger.info({ revision, trigger }, `policy reload skipped: ${problems.join("; ")}`);
      return { outcome: "refused", file, problems, revision, trigger };
    }
    this.#seams.logger.error(
      { file, problems, revision, trigger },
      `policy reload refused: ${file}: ${problems.join("; ")}; still serving revision ${revision}`,
    );
    return { outcome: "refused", file, problems, revision, trigger };
  }

  #logLoaded(generation: Generation, fields: Record<string, unknown>): void {
    const bundle = generation.bundleRevision !== null ? { bundle_revision: generation.bundleRevision, signed: generation.signed } : {};
    this.#seams.logger.info(
      { revision: generation.revision, ...sourceLabel(this.#config.policy), ...bundle, issuers: generation.data.issuers.size, ...fields },
      `policy loaded: revision ${generation.revision}`,
    );
  }
}

function asConfigError(config: ServiceConfig, error: unknown): ConfigError {
  if (error instanceof ConfigError) return error;
  return new ConfigError(policyName(config), [`cannot be loaded (${error instanceof Error ? error.message : String(error)})`]);
}

/** The policy's file (the data file for policy files) or bundle URL, for a refusal without a file of its own. */
function policyName(config: ServiceConfig): string {
  const { policy } = config;
  return policy.kind === "files" ? policy.dataFile : policy.kind === "bundle-file" ? policy.file : policy.url;
}

function withRevision(response: CheckResponse, revision: string): CheckResponse {
  return { ...response, dynamicMetadata: { ...response.dynamicMetadata, policy_revision: revision } };
}
