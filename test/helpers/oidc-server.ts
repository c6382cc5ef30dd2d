import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { CryptoKey, JSONWebKeySet, JWK } from "jose";

/**
 * A key the server publishes. `kid` replaces the JWK's own `kid`; passing
 * `kid: undefined` explicitly publishes the key without one.
 */
export interface OidcServerKey {
  alg: string;
  kid?: string;
  privateKey?: CryptoKey;
  publicJwk: JWK;
}

/** The documents the server can be told to answer differently. */
export type OidcRoute = "openid-configuration" | "oauth-authorization-server" | "jwks";

/** A canned answer for {@link OidcServer.respond}; `hang` never answers (until close). */
export interface CannedResponse {
  status?: number;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
  hang?: boolean;
}

export interface OidcServerOptions {
  keys: ReadonlyArray<OidcServerKey>;
  /** Issuer path, e.g. `/realms/igwn`; `""` (default) makes the issuer the bare origin. */
  path?: string;
  /** The `issuer` the metadata claims, to test the equality check (SEMANTICS §3). */
  metadataIssuer?: string;
  /**
   * Metadata documents served: `{issuer}/.well-known/openid-configuration` and/or the
   * RFC 8414 `{origin}/.well-known/oauth-authorization-server{path}`. Default: the first.
   */
  discovery?: ReadonlyArray<"openid-configuration" | "oauth-authorization-server">;
  /** Loopback address to listen on; default 127.0.0.1. */
  host?: string;
}

export interface OidcServer {
  /** `url` + path. */
  issuer: string;
  /** The origin, `http://127.0.0.1:<port>`. */
  url: string;
  /** Where the metadata points: `{issuer}/jwks`. */
  jwksUri: string;
  /** The request target (path and query) of every request received, in order. */
  requests: string[];
  /** Replaces the published key set, from then on. */
  setKeys(jwks: JSONWebKeySet | ReadonlyArray<OidcServerKey>): void;
  /** Answers `route` with `response` from then on; `undefined` restores the normal answer. */
  respond(route: OidcRoute, response: CannedResponse | undefined): void;
  /**
   * Holds every request for `route` received from then on until `until` settles, then
   * answers it as the server would at that moment (keys and canned answers in force
   * then): a slow issuer whose slowness the test ends by an event, not a timer.
   * `undefined` stops holding later requests (held ones still wait for their gate).
   */
  hold(route: OidcRoute, until: PromiseLike<unknown> | undefined): void;
  /** Resolves with the request target of the next request for `route` received after this call. */
  nextRequest(route: OidcRoute): Promise<string>;
  /** Stops the server, cutting hanging requests. Idempotent. */
  close(): Promise<void>;
}

/**
 * A real loopback OIDC issuer for integration tests: discovery metadata plus a JWKS
 * whose keys can change at runtime, recording every request so tests can assert on
 * traffic (or its absence).
 */
export async function startOidcServer(o: OidcServerOptions): Promise<OidcServer> {
  const path = o.path ?? "";
  const host = o.host ?? "127.0.0.1";
  const discovery = new Set(o.discovery ?? ["openid-configuration"]);
  const requests: string[] = [];
  const overrides = new Map<OidcRoute, CannedResponse>();
  const holds = new Map<OidcRoute, PromiseLike<unknown>>();
  const waiters = new Map<OidcRoute, Array<(target: string) => void>>();
  let jwks: JSONWebKeySet = toJwks(o.keys);
  let routes = new Map<string, OidcRoute>();
  let metadata: Record<string, unknown> = {};

  const server = createServer((req, res) => {
    requests.push(req.url ?? "");
    const target = req.url ?? "";
    const query = target.indexOf("?");
    const route = routes.get(query === -1 ? target : target.slice(0, query));
    if (route === undefined || (req.method !== "GET" && req.method !== "HEAD")) {
      send(res, { status: 404, body: { error: "not_found" } });
      return;
    }
    const waiting = waiters.get(route);
    waiters.delete(route);
    for (const resolve of waiting ?? []) resolve(target);
    const answer = () => {
      if (res.destroyed) return; // cut by close() while held
      const canned = overrides.get(route);
      if (canned?.hang === true) return;
      send(res, canned ?? { status: 200, body: route === "jwks" ? jwks : metadata });
    };
    const gate = holds.get(route);
    if (gate === undefined) answer();
    else Promise.resolve(gate).then(answer, answer);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  const issuer = `${url}${path}`;
  const jwksUri = `${issuer}/jwks`;
  metadata = {
    issuer: o.metadataIssuer ?? issuer,
    jwks_uri: jwksUri,
    token_endpoint_auth_methods_supported: ["none"],
    id_token_signing_alg_values_supported: [...new Set(o.keys.map((key) => key.alg))],
  };
  routes = new Map<string, OidcRoute>([[`${path}/jwks`, "jwks"]]);
  if (discovery.has("openid-configuration")) {
    routes.set(`${path}/.well-known/openid-configuration`, "openid-configuration");
  }
  if (discovery.has("oauth-authorization-server")) {
    routes.set(`/.well-known/oauth-authorization-server${path}`, "oauth-authorization-server");
  }

  let closing: Promise<void> | undefined;
  return {
    issuer,
    url,
    jwksUri,
    requests,
    setKeys(next) {
      jwks = isKeyList(next) ? toJwks(next) : { keys: next.keys.map((key) => ({ ...key })) };
    },
    respond(route, response) {
      if (response === undefined) overrides.delete(route);
      else overrides.set(route, response);
    },
    hold(route, until) {
      if (until === undefined) holds.delete(route);
      else holds.set(route, until);
    },
    nextRequest(route) {
      return new Promise<string>((resolve) => {
        const list = waiters.get(route) ?? [];
        list.push(resolve);
        waiters.set(route, list);
      });
    },
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function isKeyList(value: JSONWebKeySet | ReadonlyArray<OidcServerKey>): value is ReadonlyArray<OidcServerKey> {
  return Array.isArray(value);
}

function toJwks(keys: ReadonlyArray<OidcServerKey>): JSONWebKeySet {
  return {
    keys: keys.map((key) => {
      const jwk: JWK = { ...key.publicJwk, alg: key.alg };
      if ("kid" in key) {
        if (key.kid === undefined) delete jwk.kid;
        else jwk.kid = key.kid;
      }
      return jwk;
    }),
  };
}

function send(res: ServerResponse<IncomingMessage>, answer: CannedResponse): void {
  const body = typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body ?? null);
  res.writeHead(answer.status ?? 200, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    ...answer.headers,
  });
  res.end(body);
}
