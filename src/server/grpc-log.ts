import { format } from "node:util";
import { setLogger } from "@grpc/grpc-js";
import type { Logger } from "pino";

/**
 * grpc-js reports some failures on stderr in its own format (e.g. "E No address added…"
 * before a bind error the service states itself): keep them, as JSON log lines.
 */
export function routeGrpcLogs(logger: Logger): void {
  const grpcLog = logger.child({ component: "grpc-js" });
  setLogger({
    error: (...args: unknown[]) => grpcLog.warn(format(...args)),
    info: (...args: unknown[]) => grpcLog.info(format(...args)),
    debug: (...args: unknown[]) => grpcLog.debug(format(...args)),
  });
}
