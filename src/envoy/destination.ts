import { normalizeRequestPath } from "../paths/normalize.js";
import { DenyError } from "../reasons/index.js";

const ABSOLUTE_URI = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)/;
const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: ":80", https: ":443" };

/**
 * Host and port as compared between the request and a Destination: lower case, the
 * default port of `scheme` dropped (either default when the request's scheme is unknown).
 */
function comparableAuthority(authority: string, scheme: string | undefined): string {
  const lower = authority.toLowerCase();
  const defaults = scheme === undefined ? Object.values(DEFAULT_PORTS) : [DEFAULT_PORTS[scheme]];
  for (const port of defaults) if (port !== undefined && lower.endsWith(port)) return lower.slice(0, -port.length);
  return lower;
}

/** A parsed Destination: a path on this server, or a URI on another host. */
export type Destination = { readonly local: true; readonly path: string } | { readonly local: false; readonly authority: string };

/**
 * Parses a WebDAV Destination header (RFC 4918 §10.3: an absolute URI or an absolute
 * path). Whether a Destination on another host may be used (an HTTP third-party copy
 * push) is for the authorizer to decide, not for this parser. A network-path reference
 * (`//host/…`), or a URI of another scheme than http(s), is refused as ambiguous
 * (`path_invalid`). A raw `,` is how Envoy joins two Destination headers, so it is
 * `request_malformed` (a comma in a name is sent as `%2C`). The request's host is what
 * the client sent: Envoy's virtual host `domains` must admit only the storage's own
 * names for "local" to mean "this server" (docs/security.md).
 */
export function parseDestination(value: string, requestHost: string): Destination {
  if (value.includes(",")) throw new DenyError("request_malformed", "Destination holds a raw comma (more than one Destination header?)");
  if (value.startsWith("//")) throw new DenyError("path_invalid", "Destination is a network-path reference");
  const uri = ABSOLUTE_URI.exec(value);
  if (!uri) return { local: true, path: value };
  const scheme = uri[1]!.toLowerCase();
  if (DEFAULT_PORTS[scheme] === undefined) throw new DenyError("path_invalid", "Destination is neither http nor https");
  const authority = comparableAuthority(uri[2]!, scheme);
  if (authority !== comparableAuthority(requestHost, undefined)) return { local: false, authority };
  const rest = value.slice(uri[0].length);
  // "/#…" keeps a fragment for the path check to refuse.
  return { local: true, path: rest === "" || rest.startsWith("?") || rest.startsWith("#") ? `/${rest}` : rest };
}

/**
 * The Destination of a MOVE/COPY (§9) as the policy input carries it: normalized like the
 * request path when it names this server, or `remote`; none for other methods or without
 * the header. Whether either may be used is the policy's decision.
 */
export function moveDestination(method: string, value: string | undefined, host: string): { readonly path: string | null; readonly remote: boolean } {
  if ((method !== "MOVE" && method !== "COPY") || value === undefined) return { path: null, remote: false };
  const parsed = parseDestination(value, host);
  if (!parsed.local) return { path: null, remote: true };
  const normalized = normalizeRequestPath(parsed.path);
  if (!normalized.ok) throw new DenyError("path_invalid", `Destination has ${normalized.why}`);
  return { path: normalized.path, remote: false };
}
