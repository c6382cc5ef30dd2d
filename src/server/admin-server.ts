import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { TcpListenAddress } from "../config/service-config.js";
import type { Readiness } from "../observability/readiness.js";

/** What the admin endpoints answer from. */
export interface AdminEndpoints {
  /** Readiness now (/readyz): one process's, or every worker's (src/cluster/). */
  readiness(): Readiness | Promise<{ readonly ready: boolean }>;
  /** The Prometheus exposition (/metrics). */
  metrics(): Promise<{ readonly contentType: string; readonly body: string }>;
}

export interface RunningAdminServer {
  readonly port: number;
  /** Stops listening and closes its connections. */
  close(): Promise<void>;
}

const HTTP_OK = 200;
const HTTP_NOT_FOUND = 404;
const HTTP_METHOD_NOT_ALLOWED = 405;
const HTTP_INTERNAL_ERROR = 500;
const HTTP_UNAVAILABLE = 503;

/**
 * The admin HTTP listener (`http.listen`): `/healthz` (liveness: 200 while the process
 * answers), `/readyz` (200 when ready, else 503; a JSON body with a reason per issuer),
 * `/metrics` (Prometheus text). GET and HEAD only (405 otherwise); any other path is 404.
 * It reads nothing from a request but its method and path.
 */
export async function startAdminServer(listen: TcpListenAddress, endpoints: AdminEndpoints, logger: Logger): Promise<RunningAdminServer> {
  const server = createServer((req, res) => {
    handle(req, res, endpoints).catch((error: unknown) => {
      logger.error({ err: error, path: pathOf(req) }, "admin endpoint failed");
      if (!res.headersSent) send(res, HTTP_INTERNAL_ERROR, "application/json", `${JSON.stringify({ error: "internal error" })}\n`);
      else res.destroy();
    });
  });
  const host = listen.host.startsWith("[") ? listen.host.slice(1, -1) : listen.host;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) => reject(new Error(`cannot listen on ${listen.host}:${listen.port} (http.listen): ${error.message}`)));
    server.listen(listen.port, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, endpoints: AdminEndpoints): Promise<void> {
  const path = pathOf(req);
  if (path !== "/healthz" && path !== "/readyz" && path !== "/metrics") {
    send(res, HTTP_NOT_FOUND, "application/json", `${JSON.stringify({ error: "not found", endpoints: ["/healthz", "/readyz", "/metrics"] })}\n`);
    return;
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("allow", "GET, HEAD");
    send(res, HTTP_METHOD_NOT_ALLOWED, "application/json", `${JSON.stringify({ error: "method not allowed" })}\n`);
    return;
  }
  if (path === "/healthz") {
    send(res, HTTP_OK, "application/json", `${JSON.stringify({ status: "alive" })}\n`);
    return;
  }
  if (path === "/readyz") {
    const readiness = await endpoints.readiness();
    send(res, readiness.ready ? HTTP_OK : HTTP_UNAVAILABLE, "application/json", `${JSON.stringify(readiness, null, 2)}\n`);
    return;
  }
  const { contentType, body } = await endpoints.metrics();
  send(res, HTTP_OK, contentType, body);
}

/** The request path without its query. */
function pathOf(req: IncomingMessage): string {
  const target = req.url ?? "";
  const query = target.indexOf("?");
  return query === -1 ? target : target.slice(0, query);
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(body), "cache-control": "no-store" });
  res.end(res.req.method === "HEAD" ? undefined : body);
}
