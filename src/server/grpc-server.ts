import { type ServiceError, Server, ServerCredentials, status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { ListenAddress } from "../config/service-config.js";
import { type Authorizer, UnknownRoute } from "../decision/authorizer.js";
import { type AuthorizationServer, AuthorizationService } from "../gen/envoy/service/auth/v3/external_auth.js";

export interface RunningGrpcServer {
  readonly port: number;
  /** Stops accepting calls, lets in-flight calls finish (bounded by `graceMs`), then closes. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Serves envoy.service.auth.v3.Authorization/Check. A decision (allow or deny) is an OK
 * call; any fault inside the service is a gRPC INTERNAL error so that Envoy's
 * `failure_mode_allow` decides what happens to the request.
 */
export async function startGrpcServer(listen: ListenAddress, authorizer: Authorizer, logger: Logger): Promise<RunningGrpcServer> {
  const server = new Server({ "grpc.max_receive_message_length": 1024 * 1024 });
  const implementation: AuthorizationServer = {
    check(call, callback) {
      authorizer.check(call.request).then(
        (response) => callback(null, response),
        (error: unknown) => {
          logger.error({ err: error }, "check failed inside the service");
          // A route the data does not define is a deployment mismatch: say which, so the
          // operator sees it in Envoy's logs too. Any other fault says nothing more.
          const fault: Partial<ServiceError> =
            error instanceof UnknownRoute
              ? { code: status.FAILED_PRECONDITION, details: error.message }
              : { code: status.INTERNAL, details: "internal error in scitokens-authz" };
          callback(fault);
        },
      );
    },
  };
  server.addService(AuthorizationService, implementation);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${listen.host}:${listen.port}`, ServerCredentials.createInsecure(), (error, bound) => {
      if (error) reject(new Error(`cannot listen on ${listen.host}:${listen.port}: ${error.message}`));
      else resolve(bound);
    });
  });
  return {
    port,
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
