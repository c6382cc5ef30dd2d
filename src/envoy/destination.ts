import { DenyError } from "../decision/reasons.js";

const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/;

/** Host and port as compared between the request and a Destination: lower case, default ports dropped. */
function comparableAuthority(authority: string): string {
  return authority.toLowerCase().replace(/:(80|443)$/, "");
}

/**
 * The path of a WebDAV Destination header (RFC 4918 §10.3: an absolute URI or an
 * absolute path). A Destination on another host would make this server push data
 * elsewhere (HTTP third-party copy), which no scope here grants; a network-path
 * reference (`//host/…`) is refused as ambiguous. A raw `,` is how Envoy joins two
 * Destination headers, so it is `request_malformed` (a comma in a name is sent as `%2C`).
 */
export function destinationPath(value: string, requestHost: string): string {
  if (value.includes(",")) throw new DenyError("request_malformed", "Destination holds a raw comma (more than one Destination header?)");
  if (value.startsWith("//")) throw new DenyError("path_invalid", "Destination is a network-path reference");
  const uri = ABSOLUTE_URI.exec(value);
  if (!uri) return value;
  if (comparableAuthority(uri[1]!) !== comparableAuthority(requestHost)) {
    throw new DenyError("scope_insufficient", "Destination on another host (third-party copy is not authorized)");
  }
  const rest = value.slice(uri[0].length);
  // "/#…" keeps a fragment for the path check to refuse.
  return rest === "" || rest.startsWith("?") || rest.startsWith("#") ? `/${rest}` : rest;
}
