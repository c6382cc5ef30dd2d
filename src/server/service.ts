import type { Logger } from "pino";
import { type AuthzData, loadAuthzData } from "../config/authz-data.js";
import type { ServiceConfig } from "../config/service-config.js";
import { Authorizer } from "../decision/authorizer.js";
import { PolicyEngine } from "../policy/engine.js";
import { KeyStore } from "../token/keys/index.js";
import { TokenVerifier } from "../token/verify.js";
import { type RunningGrpcServer, startGrpcServer } from "./grpc-server.js";

export interface ServiceSeams {
  readonly logger: Logger;
  /** Network seam for key fetches (tests). */
  readonly fetch?: typeof globalThis.fetch;
  /** Clock seam, ms since the epoch (tests). */
  readonly now?: () => number;
}

export interface RunningService {
  readonly port: number;
  readonly data: AuthzData;
  readonly keys: KeyStore;
  close(): Promise<void>;
}

/**
 * The composition root: loads and validates the authorization data and the compiled
 * policy (both before listening, so a bad file never serves), prepares key sets, then
 * serves gRPC. It only wires parts together.
 */
export async function startService(config: ServiceConfig, seams: ServiceSeams): Promise<RunningService> {
  const { logger } = seams;
  const data = await loadAuthzData(config.dataFile);
  const engine = await PolicyEngine.load(config.bundleFile, data.policyData);
  const keys = new KeyStore(
    [...data.issuers.values()].map((issuer) => ({
      issuer: issuer.issuer,
      ...(issuer.jwksUri !== undefined ? { jwksUri: issuer.jwksUri } : {}),
      ...(issuer.jwksFile !== undefined ? { jwksFile: issuer.jwksFile } : {}),
    })),
    {
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
      logger: logger.child({ component: "keys" }),
    },
  );
  // Bounded: issuers with keys from the disk cache are not waited for, the others at
  // most keys.startup_wait_seconds; their fetches go on while the service listens.
  await keys.start();
  const verifier = new TokenVerifier({
    issuers: data.issuers,
    keys: (issuer, header, lookup) => keys.getKey(issuer, header, lookup),
    recheckKey: (issuer, kid) => keys.assertStillUsable(issuer, kid),
    leewaySeconds: config.tokens.leewaySeconds,
    identityClaims: data.identityClaims,
    cacheEntries: config.tokens.cacheEntries,
    ...(seams.now ? { now: seams.now } : {}),
  });
  const authorizer = new Authorizer({
    data,
    verifier,
    engine,
    maxTokenBytes: config.tokens.maxBytes,
    logger: logger.child({ component: "decision" }),
    ...(seams.now ? { now: seams.now } : {}),
  });
  let server: RunningGrpcServer;
  try {
    server = await startGrpcServer(config.listen, authorizer, logger, { maxRequestBytes: config.maxRequestBytes });
  } catch (error) {
    keys.close();
    throw error;
  }
  logger.info(
    { address: `${config.listen.host}:${server.port}`, port: server.port, data: config.dataFile, issuers: data.issuers.size },
    `listening on ${config.listen.host}:${server.port}`,
  );
  return {
    port: server.port,
    data,
    keys,
    async close() {
      await server.close();
      keys.close();
    },
  };
}
