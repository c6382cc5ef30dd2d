import type { HeaderValue } from "../gen/envoy/config/core/v3/base.js";
import type { AttributeContext_Request } from "../gen/envoy/service/auth/v3/attribute_context.js";
import type { CheckRequest } from "../gen/envoy/service/auth/v3/external_auth.js";

/**
 * The HTTP authorization endpoint answers two kinds of proxy, told apart by the path they
 * call (README, "nginx (auth_request)" and "Envoy's HTTP ext_authz service"):
 * - nginx `auth_request`: `/nginx`, or `/nginx/ROUTE` for a route section of the data;
 *   the original method and URI come in {@link ORIGINAL_METHOD_HEADER} and
 *   {@link ORIGINAL_URI_HEADER} (deploy/nginx/nginx.conf sets both);
 * - Envoy's ext_authz `http_service` with `path_prefix: /envoy`: the original method,
 *   `/envoy` + the original path, and the original headers Envoy forwards.
 */
export type AuthzHttpMode = "nginx" | "envoy";

export const NGINX_PATH = "/nginx";
export const ENVOY_PATH_PREFIX = "/envoy";
export const ORIGINAL_METHOD_HEADER = "x-original-method";
export const ORIGINAL_URI_HEADER = "x-original-uri";

/** One request to the endpoint, as received. */
export interface AuthzHttpRequest {
  readonly method: string;
  /** The request target: path and query, as sent. */
  readonly target: string;
  /** Names and values alternating, as Node's `rawHeaders` holds them: one character per byte. */
  readonly rawHeaders: readonly string[];
}

/** What the endpoint makes of a request: a Check to decide, or nothing it answers (404). */
export type AuthzHttpCall =
  | {
      readonly mode: AuthzHttpMode;
      readonly check: CheckRequest;
      /**
       * Set when the proxy left out what its configuration must send (nginx without the
       * original method or URI): the Check then has no HTTP attributes, and is denied
       * `request_malformed` like such a CheckRequest on the gRPC path.
       */
      readonly misconfigured?: string;
    }
  | { readonly mode: null };

const NOT_AN_ENDPOINT: AuthzHttpCall = Object.freeze({ mode: null });

/** The request's headers as a CheckRequest's `header_map`: every copy its own entry, raw bytes. */
function headerMap(rawHeaders: readonly string[], skip: ReadonlySet<string>): HeaderValue[] {
  const out: HeaderValue[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const key = rawHeaders[i]!.toLowerCase();
    if (skip.has(key)) continue;
    // Node reads each byte of a header value as one character (latin1); the bytes go on
    // as they came, and readHttpRequest decodes them as UTF-8 (refusing what is not).
    out.push({ key, value: "", rawValue: Buffer.from(rawHeaders[i + 1]!, "latin1") });
  }
  return out;
}

/** Every value of the header `name` (lower case), decoded as UTF-8 (a malformed byte becomes U+FFFD). */
function values(rawHeaders: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === name) out.push(Buffer.from(rawHeaders[i + 1]!, "latin1").toString("utf8"));
  }
  return out;
}

function checkRequest(http: AttributeContext_Request | undefined, route: string | undefined): CheckRequest {
  return {
    attributes: {
      source: undefined,
      destination: undefined,
      request: http,
      contextExtensions: route !== undefined ? { route } : {},
      metadataContext: undefined,
      routeMetadataContext: undefined,
      tlsSession: undefined,
    },
  };
}

function httpAttributes(method: string, rawPath: string, host: string, headers: HeaderValue[]): AttributeContext_Request {
  return {
    time: undefined,
    http: {
      id: "",
      method,
      headers: {},
      headerMap: { headers },
      path: rawPath,
      host,
      scheme: "",
      query: "",
      fragment: "",
      size: -1,
      protocol: "",
      body: "",
      rawBody: Buffer.alloc(0),
    },
  };
}

const NGINX_TRANSPORT_HEADERS: ReadonlySet<string> = new Set([ORIGINAL_METHOD_HEADER, ORIGINAL_URI_HEADER]);
const NO_HEADERS: ReadonlySet<string> = new Set();

/**
 * Turns a request to the endpoint into the CheckRequest the gRPC path would get for the
 * original request, so that the one Authorizer decides both. Pure: no I/O, tested with
 * tables. The original path goes on raw (nginx's `$request_uri`, Envoy's `:path`): the
 * Authorizer normalizes it and refuses what a proxy or an upstream could read otherwise.
 */
export function readAuthzHttpRequest(request: AuthzHttpRequest): AuthzHttpCall {
  const query = request.target.indexOf("?");
  const path = query === -1 ? request.target : request.target.slice(0, query);
  const host = values(request.rawHeaders, "host")[0] ?? "";
  if (path === NGINX_PATH || path.startsWith(`${NGINX_PATH}/`)) {
    const route = path === NGINX_PATH ? undefined : path.slice(NGINX_PATH.length + 1);
    if (route === "" || route?.includes("/")) return NOT_AN_ENDPOINT;
    const methods = values(request.rawHeaders, ORIGINAL_METHOD_HEADER);
    const uris = values(request.rawHeaders, ORIGINAL_URI_HEADER);
    if (methods.length !== 1 || uris.length !== 1 || methods[0] === "" || uris[0] === "") {
      const missing = [methods.length !== 1 || methods[0] === "" ? "X-Original-Method" : null, uris.length !== 1 || uris[0] === "" ? "X-Original-URI" : null]
        .filter((name) => name !== null)
        .join(" and ");
      return {
        mode: "nginx",
        check: checkRequest(undefined, route),
        misconfigured: `nginx sent ${missing} not exactly once: its auth_request location must set them (deploy/nginx/nginx.conf)`,
      };
    }
    return { mode: "nginx", check: checkRequest(httpAttributes(methods[0]!, uris[0]!, host, headerMap(request.rawHeaders, NGINX_TRANSPORT_HEADERS)), route) };
  }
  if (path === ENVOY_PATH_PREFIX || path.startsWith(`${ENVOY_PATH_PREFIX}/`) || path.startsWith(`${ENVOY_PATH_PREFIX}*`)) {
    const rawPath = request.target.slice(ENVOY_PATH_PREFIX.length);
    return { mode: "envoy", check: checkRequest(httpAttributes(request.method, rawPath, host, headerMap(request.rawHeaders, NO_HEADERS)), undefined) };
  }
  return NOT_AN_ENDPOINT;
}
