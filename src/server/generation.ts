import type { Logger } from "pino";
import type { PolicyBytes } from "../bundle/snapshot.js";
import type { AuthzData } from "../config/authz-data.js";
import { ConfigError } from "../config/config-error.js";
import type { ServiceConfig } from "../config/service-config.js";
import { Authorizer } from "../decision/authorizer.js";
import { type PolicyToken, buildPolicyInput } from "../envoy/index.js";
import type { DecisionEvent, DecisionLog } from "../observability/decision-log.js";
import { PolicyEngine } from "../policy/engine.js";
import { checkJwksFile } from "../token/keys/check-jwks-file.js";
import { type IssuerKeySource, KeyStore } from "../token/keys/index.js";
import { TokenVerifier } from "../token/verify.js";

/** What a generation is built with besides the configuration (see ServiceSeams). */
export interface GenerationSeams {
  readonly logger: Logger;
  readonly fetch?: typeof globalThis.fetch;
  readonly now?: () => number;
  /** The decision log (`log.decisions`), when on: every Check's record, with the generation's revision. */
  readonly decisionLog?: DecisionLog;
  /** Told what metrics and readiness follow; each method must not throw. */
  readonly observer?: GenerationObserver;
}

/** What a generation reports as it serves (metrics, readiness), besides its logs. */
export interface GenerationObserver {
  /** One Check answered. */
  decided?(event: DecisionEvent): void;
  /** One lookup in the verified-token cache. */
  tokenCacheLookup?(hit: boolean): void;
  /** One lookup in the negative cache (refused tokens). */
  negativeCacheLookup?(hit: boolean): void;
  /** One fetch (or file read) of a trusted issuer's keys has ended. */
  keyAttempt?(issuer: string, ok: boolean): void;
}

/**
 * A key store shared by the generations whose issuers take keys from the same sources.
 * It is closed when the last generation using it has been retired and drained.
 */
export class SharedKeyStore {
  #users = 0;
  #closed = false;

  constructor(
    readonly store: KeyStore,
    /** The key sources, in a canonical spelling, to tell whether a new generation can keep this store. */
    readonly sources: string,
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  acquire(): this {
    this.#users++;
    return this;
  }

  /** Returns true when this was the last user and the store is now closed. */
  release(): boolean {
    this.#users--;
    if (this.#users > 0 || this.#closed) return false;
    this.close();
    return true;
  }

  /** Closes the store whoever still uses it (service shutdown, a generation refused half-built). */
  close(): void {
    this.#closed = true;
    this.store.close();
  }
}

/**
 * Everything one version of the policy files decides with: the validated data, the
 * WASM policy loaded with it, the key store of its issuers, a token verifier (whose
 * cache of verified tokens belongs to this generation: trusted issuers may differ in the
 * next one) and the authorizer. `revision` names the bytes it was built from.
 */
export interface Generation {
  readonly revision: string;
  /** A bundle's `.manifest` revision (the git commit of `policy build`); null for policy files. */
  readonly bundleRevision: string | null;
  /** Whether the bundle's signature was verified. */
  readonly signed: boolean;
  readonly data: AuthzData;
  readonly engine: PolicyEngine;
  readonly authorizer: Authorizer;
  readonly keys: SharedKeyStore;
  /** Whether `keys` is the store of the generation it was built next to. */
  readonly keptKeys: boolean;
}

/**
 * Builds a generation from one version of the policy's bytes, off the hot path: the data
 * (YAML or bundle data, and its schema; a bundle's signature first, when configured), the
 * WASM policy with that data, and a smoke evaluation; then the key store (the one
 * `previous` uses when the key sources are the same, else a new one, started, which waits
 * at most `keys.startup_wait_seconds`), the verifier and the authorizer. Throws
 * ConfigError naming the file and the problems; nothing is left running then.
 */
export async function loadGeneration(
  config: ServiceConfig,
  seams: GenerationSeams,
  bytes: PolicyBytes,
  previous?: Generation,
  onKeyStore?: (store: KeyStore | undefined) => void,
): Promise<Generation> {
  const snapshot = await bytes.parse();
  const { data, revision } = snapshot;
  const engine = await PolicyEngine.fromBytes(snapshot.wasmName, snapshot.wasm, data.policyData);
  smokeCheck(engine, data, snapshot.wasmName);
  await checkKeyFiles(data, config.keys.maxResponseBytes);

  const sources = keySources(data);
  const spelling = JSON.stringify([...sources].sort((a, b) => (a.issuer < b.issuer ? -1 : a.issuer > b.issuer ? 1 : 0)));
  let keys: SharedKeyStore;
  const keptKeys = previous !== undefined && !previous.keys.closed && previous.keys.sources === spelling;
  if (keptKeys) {
    keys = previous.keys.acquire();
    await rereadKeyFiles(previous);
  } else {
    let store: KeyStore;
    try {
      store = newKeyStore(config, seams, sources);
    } catch (error) {
      throw new ConfigError(data.file, [(error as Error).message]);
    }
    keys = new SharedKeyStore(store, spelling).acquire();
    onKeyStore?.(keys.store);
    try {
      // Bounded: issuers with keys from the disk cache are not waited for, the others at
      // most keys.startup_wait_seconds; their fetches go on afterwards.
      await keys.store.start();
    } catch (error) {
      keys.close();
      throw error;
    } finally {
      onKeyStore?.(undefined);
    }
  }
  const { decisionLog, observer } = seams;
  const onDecision = decisionOutlet(decisionLog, observer, revision);
  try {
    const store = keys.store;
    const verifier = new TokenVerifier({
      issuers: data.issuers,
      keys: (issuer, header, lookup) => store.getKey(issuer, header, lookup),
      recheckKey: (issuer, kid) => store.assertStillUsable(issuer, kid),
      keyVersion: (issuer, afterRejection) => store.keyVersion(issuer, afterRejection),
      leewaySeconds: config.tokens.leewaySeconds,
      cacheEntries: config.tokens.cacheEntries,
      negativeCacheEntries: config.tokens.negativeCacheEntries,
      ...(seams.now ? { now: seams.now } : {}),
      ...(observer?.tokenCacheLookup ? { onCacheLookup: (hit: boolean) => observer.tokenCacheLookup?.(hit) } : {}),
      ...(observer?.negativeCacheLookup ? { onNegativeCacheLookup: (hit: boolean) => observer.negativeCacheLookup?.(hit) } : {}),
    });
    const authorizer = new Authorizer({
      data,
      verifier,
      engine,
      maxTokenBytes: config.tokens.maxBytes,
      logger: seams.logger.child({ component: "decision", policy_revision: revision }),
      ...(seams.now ? { now: seams.now } : {}),
      ...(onDecision ? { onDecision } : {}),
    });
    return Object.freeze({ revision, bundleRevision: snapshot.bundleRevision, signed: snapshot.signed, data, engine, authorizer, keys, keptKeys });
  } catch (error) {
    keys.release();
    throw error;
  }
}

/** The authorizer's onDecision: the decision log and the observer, each when there is one. */
function decisionOutlet(decisionLog: DecisionLog | undefined, observer: GenerationObserver | undefined, revision: string) {
  const decided = observer?.decided?.bind(observer);
  if (decisionLog && decided) {
    return (event: DecisionEvent) => {
      decided(event);
      decisionLog.record(event, revision);
    };
  }
  if (decisionLog) return (event: DecisionEvent) => decisionLog.record(event, revision);
  return decided;
}

/**
 * Reads the static key files (`jwks_file`) of a generation's issuers again, without
 * network traffic: on every reload that keeps the key store, changed or not, so that an
 * operator who replaced a key file can apply it with SIGHUP. A file that cannot be read
 * keeps the keys held (logged by the key store).
 */
export async function rereadKeyFiles(generation: Generation): Promise<void> {
  const issuers = [...generation.data.issuers.values()].filter((issuer) => issuer.jwksFile !== undefined);
  await Promise.all(issuers.map((issuer) => generation.keys.store.refresh(issuer.issuer).catch(() => undefined)));
}

/**
 * Every issuer's static key file (`jwks_file`) must hold a usable key, as `validate`
 * checks: a missing or broken one stops the start-up (and refuses a reload) rather than
 * deny every token of its issuer `key_unavailable`.
 */
async function checkKeyFiles(data: AuthzData, maxBytes: number): Promise<void> {
  const problems: string[] = [];
  let index = 0;
  for (const issuer of data.issuers.values()) {
    if (issuer.jwksFile !== undefined) {
      const result = await checkJwksFile(issuer.jwksFile, maxBytes);
      if (typeof result === "string") problems.push(`issuers[${index}].jwks_file: ${result}`);
    }
    index++;
  }
  if (problems.length > 0) throw new ConfigError(data.file, problems);
}

/** Where each trusted issuer's keys come from, in the data's order. */
function keySources(data: AuthzData): IssuerKeySource[] {
  return [...data.issuers.values()].map((issuer) => ({
    issuer: issuer.issuer,
    ...(issuer.jwksUri !== undefined ? { jwksUri: issuer.jwksUri } : {}),
    ...(issuer.jwksFile !== undefined ? { jwksFile: issuer.jwksFile } : {}),
  }));
}

function newKeyStore(config: ServiceConfig, seams: GenerationSeams, sources: readonly IssuerKeySource[]): KeyStore {
  return new KeyStore(sources, {
    ...(seams.fetch ? { fetch: seams.fetch } : {}),
    ...(seams.now ? { now: seams.now } : {}),
    ...(config.keys.cacheDir !== null ? { cacheDir: config.keys.cacheDir } : {}),
    refreshIntervalMs: config.keys.refreshIntervalMs,
    maxStaleMs: config.keys.maxStaleMs,
    unknownKidCooldownMs: config.keys.unknownKidCooldownMs,
    fetchTimeoutMs: config.keys.fetchTimeoutMs,
    maxResponseBytes: config.keys.maxResponseBytes,
    startupWaitMs: config.keys.startupWaitMs,
    checkWaitMs: config.keys.checkWaitMs,
    logger: seams.logger.child({ component: "keys" }),
    ...(seams.observer?.keyAttempt ? { onAttempt: (issuer: string, ok: boolean) => seams.observer?.keyAttempt?.(issuer, ok) } : {}),
  });
}

const SMOKE_HOST = "policy-smoke-check.invalid";

/**
 * Evaluates the policy with fixed synthetic inputs (policies/README.md, "Input"): a read
 * by the first issuer under its first base path with a token for an audience no data
 * lists, the same read without a token, and with an invalid token. Whatever it decides,
 * each answer must be within the contract, or the policy is refused before it serves.
 * (`scitokens-authz validate` evaluates more inputs, offline.)
 */
function smokeCheck(engine: PolicyEngine, data: AuthzData, wasmName: string): void {
  const [issuer] = data.issuers.values();
  const path = issuer?.basePaths[0] ?? "/";
  const iss = issuer?.issuer ?? `https://${SMOKE_HOST}`;
  const tokens: PolicyToken[] = [
    {
      state: "verified",
      iss,
      sub: "policy-smoke-check",
      jti: null,
      profile: "scitokens:2.0",
      aud: [`https://${SMOKE_HOST}`],
      scopes: [{ authz: "read", path: "/", raw: "read:/" }],
      groups: [],
      claims: { iss, sub: "policy-smoke-check", aud: `https://${SMOKE_HOST}`, scope: "read:/", ver: "scitoken:2.0" },
    },
    { state: "absent" },
    { state: "invalid", reason: "signature_invalid" },
  ];
  for (const token of tokens) {
    const input = buildPolicyInput({
      method: "GET",
      host: SMOKE_HOST,
      headers: {},
      path,
      segments: path.split("/").filter((segment) => segment !== ""),
      destination: null,
      destinationRemote: false,
      route: null,
      token,
    });
    try {
      engine.evaluate(input);
    } catch (error) {
      throw new ConfigError(wasmName, [
        `the policy does not answer within its contract for a test input (GET ${path}, token ${token.state}): ${(error as Error).message}`,
      ]);
    }
  }
}
