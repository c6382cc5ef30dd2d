import { ConfigError } from "../config/config-error.js";
import { type ListenAddress, type ServiceConfig, listenTarget } from "../config/service-config.js";
import { SocketPathError } from "./unix-socket.js";

/**
 * Why a listener's address cannot be used, as a configuration error of its key (exit 2):
 * `grpc.listen` unless another key is given; any other error as it is.
 */
export function listenError(config: ServiceConfig, error: unknown, key = "grpc.listen", listen: ListenAddress = config.listen): unknown {
  if (error instanceof SocketPathError) return new ConfigError(config.file, [`${key}: ${error.message}`]);
  const message = error instanceof Error ? error.message : String(error);
  const address = listenTarget(listen);
  const why = /EADDRINUSE/.test(message)
    ? "the address is in use (another process listens there)"
    : /EACCES/.test(message)
      ? "socketPath" in listen
        ? "permission denied (the service's user cannot create files in the socket's folder)"
        : "permission denied (ports below 1024 need privileges)"
      : /EADDRNOTAVAIL|ENOTFOUND|EAI_AGAIN/.test(message)
        ? "no interface of this machine has that address"
        : null;
  return why === null ? error : new ConfigError(config.file, [`${key}: cannot listen on ${address}: ${why}`]);
}
