import type { Server, ServerWritableStream, UntypedServiceImplementation } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { AuthorizationService } from "../gen/envoy/service/auth/v3/external_auth.js";

/** The fully qualified name of the Check service, as gRPC health and reflection name it. */
export const AUTHORIZATION_SERVICE_NAME = AuthorizationService.check.path.split("/")[1]!;

type WatchCall = ServerWritableStream<unknown, unknown>;

/**
 * The standard `grpc.health.v1.Health` service (Check, Watch and List, from
 * grpc-health-check) for the overall status ("") and for
 * `envoy.service.auth.v3.Authorization`; both follow readiness (/readyz): SERVING when
 * ready, else NOT_SERVING. Other service names are NOT_FOUND (Watch: SERVICE_UNKNOWN).
 * Watch streams are ended by {@link GrpcHealth.close}, so that they do not hold up the
 * server's graceful shutdown.
 */
export class GrpcHealth {
  readonly #implementation = new HealthImplementation({ "": "NOT_SERVING", [AUTHORIZATION_SERVICE_NAME]: "NOT_SERVING" });
  readonly #watches = new Set<WatchCall>();

  /** Serves it on a gRPC server (startGrpcServer calls it). */
  addToServer(server: Server): void {
    this.#implementation.addToServer({
      addService: (definition, implementation: UntypedServiceImplementation) => {
        const watch = implementation["watch"] as (call: WatchCall) => void;
        server.addService(definition, {
          ...implementation,
          watch: (call: WatchCall) => {
            this.#watches.add(call);
            call.on("cancelled", () => this.#watches.delete(call));
            call.on("finish", () => this.#watches.delete(call));
            watch(call);
          },
        });
      },
    });
  }

  /** Sets both statuses; Watch streams hear the change. */
  set(ready: boolean): void {
    const status = ready ? "SERVING" : "NOT_SERVING";
    this.#implementation.setStatus("", status);
    this.#implementation.setStatus(AUTHORIZATION_SERVICE_NAME, status);
  }

  /** Ends every Watch stream (with status OK), after the last status they were sent. */
  close(): void {
    for (const call of this.#watches) call.end();
    this.#watches.clear();
  }
}
