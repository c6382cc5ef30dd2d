import type { CheckRequest } from "../gen/envoy/service/auth/v3/external_auth.js";
import { DenyError } from "../reasons/index.js";

/** The parts of an Envoy CheckRequest the service reads. */
export interface HttpRequestView {
  readonly method: string;
  /** As Envoy sent it: path plus query. */
  readonly rawPath: string;
  readonly host: string;
  /** The `Authorization` header value, if any (Envoy lower-cases header names). */
  readonly authorization: string | undefined;
  readonly destination: string | undefined;
  readonly origin: string | undefined;
  readonly accessControlRequestMethod: string | undefined;
  readonly contextExtensions: Readonly<Record<string, string>>;
  /** Any request header by its lower-case name (repeats joined with ","), if present. */
  header(name: string): string | undefined;
}

/**
 * Headers a request may carry at most once. A second copy is ambiguous (the service
 * would check one value and the upstream might act on the other), so it is refused.
 */
export const SINGLE_VALUED_HEADERS = ["authorization", "destination", "if-none-match"] as const;
const SINGLE_VALUED: ReadonlySet<string> = new Set(SINGLE_VALUED_HEADERS);

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A raw header value as UTF-8, like the `headers` map. Bytes that are not UTF-8 become
 * a NUL, which every later check (paths, bearer tokens) refuses: fail closed.
 */
function rawHeaderValue(bytes: Buffer): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return "\u0000";
  }
}

function header(headers: Readonly<Record<string, string>>, name: string, map: ReadonlyMap<string, string>): string | undefined {
  return headers[name] ?? map.get(name);
}

/**
 * Reads the HTTP attributes of a CheckRequest (opa-envoy's `attributes.request.http`).
 * Headers come from `headers`, or from `header_map` when Envoy sends raw headers;
 * repeated headers in `header_map` are joined with "," as Envoy joins them in `headers`.
 *
 * Throws `DenyError` `request_malformed` when the CheckRequest has no HTTP attributes,
 * or when `header_map` carries one of {@link SINGLE_VALUED_HEADERS} more than once (in
 * `headers`, Envoy has already joined the copies with ",": the Destination and bearer
 * parsers refuse those).
 */
export function readHttpRequest(request: CheckRequest): HttpRequestView {
  const http = request.attributes?.request?.http;
  if (!http) throw new DenyError("request_malformed", "CheckRequest without attributes.request.http");
  const fromMap = new Map<string, string>();
  for (const entry of http.headerMap?.headers ?? []) {
    const key = entry.key.toLowerCase();
    const value = entry.rawValue.length > 0 ? rawHeaderValue(entry.rawValue) : entry.value;
    const previous = fromMap.get(key);
    if (previous !== undefined && SINGLE_VALUED.has(key)) throw new DenyError("request_malformed", `more than one ${key} header`);
    fromMap.set(key, previous === undefined ? value : `${previous},${value}`);
  }
  const headers = http.headers ?? {};
  // Envoy sends one of the two maps; a single-valued header in both is two copies.
  for (const name of SINGLE_VALUED_HEADERS) {
    if (headers[name] !== undefined && fromMap.has(name)) throw new DenyError("request_malformed", `${name} in both headers and header_map`);
  }
  return {
    method: http.method || header(headers, ":method", fromMap) || "",
    rawPath: http.path || header(headers, ":path", fromMap) || "",
    host: http.host || header(headers, ":authority", fromMap) || "",
    authorization: header(headers, "authorization", fromMap),
    destination: header(headers, "destination", fromMap),
    origin: header(headers, "origin", fromMap),
    accessControlRequestMethod: header(headers, "access-control-request-method", fromMap),
    contextExtensions: request.attributes?.contextExtensions ?? {},
    header: (name) => header(headers, name, fromMap),
  };
}
