import { Server, ServerCredentials } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { type ListenAddress, listenTarget } from "../config/service-config.js";
import type { CheckBudget } from "../decision/authorizer.js";
import { type AuthorizationServer, AuthorizationService, type CheckRequest, type CheckResponse } from "../gen/envoy/service/auth/v3/external_auth.js";
import { claimSocketPath } from "./unix-socket.js";

/** What decides a Check: an Authorizer, or the live policy that picks one per Check. */
export interface CheckHandler {
  /** Never rejects in practice; should it, the request is denied with {@link faultResponse}. */
  check(request: CheckRequest, budget: CheckBudget): Promise<CheckResponse>;
  faultResponse(): CheckResponse;
}

/** A further service served beside Check (gRPC health, reflection): it adds itself to the server. */
export interface GrpcServiceRegistration {
  addToServer(server: Server): void;
}

export interface RunningGrpcServer {
  /** The TCP port bound (port 0 in the config picks one); 0 on a Unix socket. */
  readonly port: number;
  /** What a client targets: "127.0.0.1:40213" or "unix:/run/scitokens-authz/grpc.sock". */
  readonly address: string;
  /** Stops accepting calls, lets in-flight calls finish (bounded by `graceMs`), then closes. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Serves envoy.service.auth.v3.Authorization/Check. Every call is answered with a
 * CheckResponse: an allow, a denial of the client's request, or a denial for a fault
 * (`route_unknown`, `internal_error`; see Authorizer). The service itself never answers
 * with a gRPC error status, so Envoy's `failure_mode_allow` only applies when the service
 * cannot be reached or does not answer within Envoy's timeout.
 */
export async function startGrpcServer(
  listen: ListenAddress,
  authorizer: CheckHandler,
  logger: Logger,
  limits: {
    readonly maxRequestBytes: number;
    /** TLS or mutual TLS (see RotatingServerCredentials); plaintext without. */
    readonly credentials?: ServerCredentials;
    /** Connection age (`grpc.max_connection_age_seconds`) and its grace, in ms; 0: no limit. */
    readonly connectionAge?: { readonly maxAgeMs: number; readonly graceMs: number };
    /**
     * Whether to make a Unix socket path free first ({@link claimSocketPath}); false in a
     * cluster worker, whose socket the primary has claimed and holds for every worker.
     */
    readonly claimSocket?: boolean;
  },
  services: readonly GrpcServiceRegistration[] = [],
): Promise<RunningGrpcServer> {
  const age = limits.connectionAge;
  const server = new Server({
    "grpc.max_receive_message_length": limits.maxRequestBytes,
    // GOAWAY after this age (grpc-js adds ±10% jitter): clients reconnect, and a new
    // connection may land on another worker.
    ...(age !== undefined && age.maxAgeMs > 0 ? { "grpc.max_connection_age_ms": age.maxAgeMs, "grpc.max_connection_age_grace_ms": age.graceMs } : {}),
  });
  const implementation: AuthorizationServer = {
    check(call, callback) {
      const deadline = call.getDeadline();
      const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
      authorizer.check(call.request, Number.isFinite(deadlineMs) ? { deadlineMs } : {}).then(
        (response) => callback(null, response),
        (error: unknown) => {
          // Authorizer.check does not reject; should it ever, the request is still denied.
          logger.error({ err: error }, "check failed inside the service: request denied (internal_error)");
          callback(null, authorizer.faultResponse());
        },
      );
    },
  };
  server.addService(AuthorizationService, implementation);
  for (const service of services) service.addToServer(server);
  if ("socketPath" in listen && limits.claimSocket !== false) await claimSocketPath(listen.socketPath, logger);
  const target = listenTarget(listen);
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(target, limits.credentials ?? ServerCredentials.createInsecure(), (error, port) => {
      if (error) reject(new Error(`cannot listen on ${target}: ${error.message}`));
      else resolve(port);
    });
  });
  const port = "socketPath" in listen ? 0 : bound;
  return {
    port,
    address: listenTarget(listen, port),
    close(graceMs = 5000) {
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), graceMs);
        timer.unref();
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}
