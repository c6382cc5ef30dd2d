import { resolve } from "node:path";
import { format } from "node:util";
import { setLogger } from "@grpc/grpc-js";
import { ConfigError } from "../config/config-error.js";
import {
  BUILT_POLICY_FILE,
  DEFAULT_AUTHZ_HTTP_MAX_HEADER_BYTES,
  DEMO_DATA_FILE,
  LISTEN_FORMS,
  type ListenAddress,
  PACKAGE_ROOT,
  type ServiceConfig,
  loadServiceConfig,
  parseListen,
  parseServiceConfig,
  socketPathProblems,
} from "../config/service-config.js";
import { type DevIssuer, mintToken, startDevIssuer } from "../dev-issuer/index.js";
import { createLogger } from "../observability/logger.js";
import { type RunningService, startService } from "../server/service.js";

/** The embedded default (no --config): the demo policy and its development issuer. */
export const DEMO = {
  listen: "127.0.0.1:9292",
  issuerHost: "127.0.0.1",
  issuerPort: 8484,
  issuerPath: "/dev",
  audience: "https://storage.example.org",
  stateFile: resolve(PACKAGE_ROOT, ".state", "dev-issuer.json"),
} as const;

export interface ServeOptions {
  readonly config?: string | undefined;
  readonly listen?: string | undefined;
  /** `--authz-http`: serve the HTTP authorization endpoint there (replaces `authz_http.listen`). */
  readonly authzHttp?: string | undefined;
}

/** A `--listen`-like flag's address, or a ConfigError naming the flag. */
function flagAddress(flag: string, value: string): ListenAddress {
  const listen = parseListen(value);
  if (!listen) throw new ConfigError(flag, [`expected ${LISTEN_FORMS}, got ${JSON.stringify(value)}`]);
  const problems = socketPathProblems(listen);
  if (problems.length > 0) throw new ConfigError(flag, problems);
  return listen;
}

function demoConfig(listen: string): ServiceConfig {
  return parseServiceConfig("(embedded default)", {
    grpc: { listen },
    policy: { data: DEMO_DATA_FILE, wasm: BUILT_POLICY_FILE },
  });
}

/** `scitokens-authz serve`: runs until SIGINT/SIGTERM, then drains and exits; SIGHUP reloads the policy files. */
export async function serve(options: ServeOptions): Promise<void> {
  let config = options.config !== undefined ? await loadServiceConfig(options.config) : demoConfig(options.listen ?? DEMO.listen);
  if (options.listen !== undefined) config = { ...config, listen: flagAddress("--listen", options.listen) };
  if (options.authzHttp !== undefined) {
    const listen = flagAddress("--authz-http", options.authzHttp);
    config = { ...config, authzHttp: { listen, maxHeaderBytes: config.authzHttp?.maxHeaderBytes ?? DEFAULT_AUTHZ_HTTP_MAX_HEADER_BYTES } };
  }
  const logger = createLogger(config.logLevel);
  // grpc-js reports some failures on stderr in its own format (e.g. "E No address added…"
  // before a bind error the service states itself): keep them, as JSON log lines.
  const grpcLog = logger.child({ component: "grpc-js" });
  setLogger({
    error: (...args: unknown[]) => grpcLog.warn(format(...args)),
    info: (...args: unknown[]) => grpcLog.info(format(...args)),
    debug: (...args: unknown[]) => grpcLog.debug(format(...args)),
  });
  // SIGHUP reopens the decision log (rotation), reloads the policy files and, with
  // grpc.tls, the TLS files (each reload logs its outcome). One that arrives while the
  // service starts is applied once it listens, instead of ending the process.
  let running: RunningService | undefined;
  let reloadPending = false;
  const reload = () => {
    logger.info({ signal: "SIGHUP" }, "reload requested");
    if (running) {
      running.reopenDecisionLog();
      void running.reload("SIGHUP");
      void running.reloadTls("SIGHUP");
    } else reloadPending = true;
  };
  process.on("SIGHUP", reload);
  let devIssuer: DevIssuer | undefined;
  let service: RunningService;
  try {
    if (options.config === undefined) {
      devIssuer = await startDevIssuer({ host: DEMO.issuerHost, port: DEMO.issuerPort, path: DEMO.issuerPath, stateFile: DEMO.stateFile });
    }
    service = await startService(config, { logger });
  } catch (error) {
    process.off("SIGHUP", reload);
    await devIssuer?.close();
    throw error;
  }
  running = service;
  if (reloadPending) {
    void service.reload("SIGHUP");
    void service.reloadTls("SIGHUP");
  }
  if (devIssuer) await printDemo(devIssuer, service.address, service.authzHttp?.address ?? null);
  await new Promise<void>((resolveStop) => {
    const stop = (signal: string) => {
      logger.info({ signal }, "shutting down");
      resolveStop();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  process.off("SIGHUP", reload);
  await service.close();
  await devIssuer?.close();
  logger.flush();
}

async function printDemo(issuer: DevIssuer, target: string, authzHttp: string | null): Promise<void> {
  const token = await mintToken({
    privateKey: issuer.privateKey,
    alg: issuer.alg,
    kid: issuer.kid,
    issuer: issuer.issuer,
    audience: DEMO.audience,
    scopes: ["read:/data"],
    lifetimeSeconds: 3600,
  });
  const check = `npx scitokens-authz check --target ${target}`;
  const lines = [
    "",
    `scitokens-authz is serving envoy.service.auth.v3.Authorization/Check on ${target} (plaintext gRPC)`,
    `  policy: policies/authz.rego (build/policy.wasm) with data policies/demo.yaml`,
    `  development issuer: ${issuer.issuer} (ephemeral ${issuer.alg} key, loopback only)`,
    ...(authzHttp !== null ? [`  HTTP authorization endpoint (nginx auth_request, Envoy http_service): ${authzHttp}`] : []),
    "",
    `A token from the development issuer (aud ${DEMO.audience}, scope "read:/data", valid 1 h):`,
    "",
    `  export TOKEN=${token}`,
    "",
    "Allowed: read under the demo base path /protected + the scope path /data",
    `  ${check} --token "$TOKEN" --method GET --path /protected/data/hello.txt`,
    "",
    "Denied (403 scope_insufficient): the same token cannot write",
    `  ${check} --token "$TOKEN" --method PUT --path /protected/data/hello.txt`,
    "",
    "Denied (401 token_missing): no token",
    `  ${check} --method GET --path /protected/data/hello.txt`,
    "",
    `More tokens:  npx scitokens-authz token create --scope storage.create:/data/new --aud ${DEMO.audience}`,
    "Stop with Ctrl-C. Decision logs follow as JSON lines.",
    "",
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}
