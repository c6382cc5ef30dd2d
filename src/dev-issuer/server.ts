import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { CryptoKey, JWK } from "jose";
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from "jose";
import { hostForUrl, isLoopbackHost } from "./loopback.js";
import { removeDevIssuerState, writeDevIssuerState } from "./state-file.js";

export type { DevIssuerState, DevIssuerStateFile } from "./state-file.js";
export { DevIssuerStateError, readDevIssuerState } from "./state-file.js";

export interface DevIssuerOptions {
  /** Must be a loopback host (127.0.0.0/8, ::1, localhost). Defaults to 127.0.0.1. */
  host?: string;
  /** 0 picks a free port; {@link DevIssuer.issuer} names the one chosen. */
  port: number;
  /** Issuer path, `""` (default) or `/segment[/segment…]` without a trailing slash. */
  path?: string;
  /** Signing algorithm of the ephemeral key. Defaults to ES256. */
  alg?: "ES256" | "RS256";
  /** Where to publish the issuer's state for `token create` (see {@link readDevIssuerState}). */
  stateFile?: string;
}

export interface DevIssuer {
  /** `http://host:port` + path: the `iss` of tokens this issuer's key signs. */
  issuer: string;
  /** RFC 7638 JWK thumbprint of the public key. */
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  /** The public key as served in the JWKS, with `kid`, `alg` and `use: "sig"`. */
  publicJwk: JWK;
  /** Stops listening, drains connections and removes the state file. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts a development OIDC issuer on a loopback port: an ephemeral key, its discovery
 * document at `{path}/.well-known/openid-configuration` and its key set at `{path}/jwks`
 * (SEMANTICS §3, loopback-only HTTP). It exists so that `npm start` works without an
 * external issuer; it signs nothing itself, tokens come from `mintToken` (./mint.ts).
 */
export async function startDevIssuer(o: DevIssuerOptions): Promise<DevIssuer> {
  const host = o.host ?? "127.0.0.1";
  const path = o.path ?? "";
  const alg = o.alg ?? "ES256";
  if (!isLoopbackHost(host)) {
    throw new Error(
      `the development issuer only listens on loopback hosts (127.0.0.0/8, ::1, localhost), not "${host}": it serves unauthenticated keys over plain HTTP`,
    );
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) {
    throw new Error(`the development issuer port must be an integer from 0 to 65535, got ${String(o.port)}`);
  }
  if (path !== "" && !/^(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$/.test(path)) {
    throw new Error(`the development issuer path must be "" or "/segment[/segment…]" without a trailing slash, got "${path}"`);
  }
  if (alg !== "ES256" && alg !== "RS256") {
    throw new Error(`the development issuer signs with ES256 or RS256, not "${String(alg)}"`);
  }

  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicBase = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicBase);
  const publicJwk: JWK = { ...publicBase, kid, alg, use: "sig" };

  const listenHost = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  let routes: ReadonlyMap<string, string> = new Map();
  const server = createServer((req, res) => {
    if (!server.listening) res.setHeader("connection", "close");
    serve(routes, req, res);
  });
  const port = await listen(server, listenHost, o.port);
  const issuer = `http://${hostForUrl(listenHost)}:${port}${path}`;
  routes = new Map([
    [
      `${path}/.well-known/openid-configuration`,
      JSON.stringify({
        issuer,
        jwks_uri: `${issuer}/jwks`,
        token_endpoint_auth_methods_supported: ["none"],
        id_token_signing_alg_values_supported: [alg],
      }),
    ],
    [`${path}/jwks`, JSON.stringify({ keys: [publicJwk] })],
  ]);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      try {
        await stop(server);
      } finally {
        if (o.stateFile !== undefined) await removeDevIssuerState(o.stateFile, kid);
      }
    })();
    return closing;
  };

  if (o.stateFile !== undefined) {
    try {
      await writeDevIssuerState(o.stateFile, { issuer, kid, alg, private_jwk: { ...(await exportJWK(privateKey)), kid, alg } });
    } catch (err) {
      await stop(server);
      throw new Error(`the development issuer cannot write its state file ${o.stateFile}`, { cause: err });
    }
  }

  return { issuer, kid, alg, privateKey, publicJwk, close };
}

function serve(routes: ReadonlyMap<string, string>, req: IncomingMessage, res: ServerResponse): void {
  const target = req.url ?? "";
  const query = target.indexOf("?");
  const body = routes.get(query === -1 ? target : target.slice(0, query));
  if (body === undefined) {
    reply(res, 404, JSON.stringify({ error: "not_found" }));
    return;
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("allow", "GET, HEAD");
    reply(res, 405, JSON.stringify({ error: "method_not_allowed" }));
    return;
  }
  reply(res, 200, body, req.method === "HEAD");
}

function reply(res: ServerResponse, status: number, body: string, headOnly = false): void {
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(headOnly ? undefined : body);
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off("listening", onListening);
      const where = `${hostForUrl(host)}:${port}`;
      if (err.code === "EADDRINUSE") {
        reject(new Error(`the development issuer cannot listen on ${where}: the port is in use`, { cause: err }));
      } else {
        reject(new Error(`the development issuer cannot listen on ${where}: ${err.message}`, { cause: err }));
      }
    };
    const onListening = (): void => {
      server.off("error", onError);
      resolve((server.address() as AddressInfo).port);
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen({ host, port, exclusive: true });
  });
}

function stop(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close((err) => (err ? reject(err) : resolve()));
    server.closeIdleConnections();
  });
}
