import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { checkResponseToHttp, readAuthzHttpRequest } from "../authz-http/index.js";
import { type ListenAddress, listenTarget } from "../config/service-config.js";
import type { CheckResponse } from "../gen/envoy/service/auth/v3/external_auth.js";
import { LogLimiter } from "../observability/log-limiter.js";
import type { CheckHandler } from "./grpc-server.js";
import { claimSocketPath } from "./unix-socket.js";

export interface RunningAuthzHttpServer {
  /** The TCP port bound (port 0 in the config picks one); 0 on a Unix socket. */
  readonly port: number;
  /** Where it listens: "127.0.0.1:40213" or "unix:/run/scitokens-authz/http.sock". */
  readonly address: string;
  /** Stops accepting requests, lets those in flight be answered (bounded by `graceMs`), then closes. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Longer than the idle time after which nginx (`keepalive_timeout` of the upstream block
 * in deploy/nginx/nginx.conf) and Envoy (the cluster's `idle_timeout`) drop a kept-alive
 * connection, so that the proxy, not the service, closes an idle connection: a request
 * never meets a connection the service is closing.
 */
const KEEP_ALIVE_TIMEOUT_MS = 75_000;

// A proxy that leaves out the original method or URI is logged once a minute, not per request.
const MISCONFIGURED_LOG_INTERVAL_MS = 60_000;

const NOT_FOUND_BODY = `${JSON.stringify({ error: "not_found", paths: ["/nginx", "/nginx/ROUTE", "/envoy/…"] })}\n`;

/**
 * Serves the HTTP authorization endpoint (`authz_http.listen`) for proxies that do not
 * speak gRPC ext_authz: nginx `auth_request` and Envoy's `http_service`. Each request is
 * turned into the CheckRequest the gRPC path would get (src/authz-http/) and decided by
 * the same `handler` (the live policy), and its CheckResponse into the HTTP answer.
 * Nothing here decides: a request of no endpoint is 404, everything else a decision.
 */
export async function startAuthzHttpServer(
  listen: ListenAddress,
  handler: CheckHandler,
  logger: Logger,
  limits: {
    readonly maxHeaderBytes: number;
    /** Whether to make a Unix socket path free first; false in a cluster worker (see startGrpcServer). */
    readonly claimSocket?: boolean;
  },
): Promise<RunningAuthzHttpServer> {
  const misconfigured = new LogLimiter({ intervalMs: MISCONFIGURED_LOG_INTERVAL_MS });
  const answer = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // A body (Envoy's with_request_body) is not read: the decision is the headers'.
    req.resume();
    const call = readAuthzHttpRequest({ method: req.method ?? "", target: req.url ?? "", rawHeaders: req.rawHeaders });
    if (call.mode === null) {
      res.writeHead(404, { "content-type": "application/json" }).end(NOT_FOUND_BODY);
      return;
    }
    if (call.misconfigured !== undefined) {
      const suppressed = misconfigured.admit(call.misconfigured);
      if (suppressed !== null)
        logger.error({ mode: call.mode, suppressed_since_last: suppressed }, `${call.misconfigured}: requests are denied (request_malformed)`);
    }
    let response: CheckResponse;
    try {
      response = await handler.check(call.check, {});
    } catch (error) {
      // Authorizer.check does not reject; should it ever, the request is still denied.
      logger.error({ err: error }, "check failed inside the service: request denied (internal_error)");
      response = handler.faultResponse();
    }
    const { status, headers, body } = checkResponseToHttp(response);
    res.writeHead(status, { ...headers, "content-length": Buffer.byteLength(body) }).end(body);
  };
  const server: Server = createServer(
    {
      maxHeaderSize: limits.maxHeaderBytes,
      // The Host header is the original request's (or none, from an HTTP/1.0 client).
      requireHostHeader: false,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    },
    (req, res) => {
      answer(req, res).catch((error: unknown) => {
        logger.error({ err: error }, "the HTTP authorization endpoint could not answer");
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" }).end();
        else res.destroy();
      });
    },
  );
  if ("socketPath" in listen && limits.claimSocket !== false) await claimSocketPath(listen.socketPath, logger);
  const target = listenTarget(listen);
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) => reject(new Error(`cannot listen on ${target}: ${error.message}`)));
    const ready = () => {
      server.removeAllListeners("error");
      server.on("error", (error) => logger.error({ err: error }, "HTTP authorization endpoint error"));
      resolve();
    };
    if ("socketPath" in listen) server.listen({ path: listen.socketPath }, ready);
    else server.listen({ host: listen.host.replace(/^\[(.*)\]$/, "$1"), port: listen.port }, ready);
  });
  const port = "socketPath" in listen ? 0 : (server.address() as AddressInfo).port;
  return {
    port,
    address: listenTarget(listen, port),
    close(graceMs = 5000) {
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      });
    },
  };
}
