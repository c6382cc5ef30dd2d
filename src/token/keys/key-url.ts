/**
 * Which URLs the key store may fetch, and where discovery looks (docs/semantics.md §3).
 */

/**
 * Why `url` may not be fetched for keys, or `null` when it may.
 *
 * Only `https:` is allowed, except plain `http:` to a loopback host (127.0.0.0/8,
 * `[::1]`, `localhost`) for development. The same rule covers the issuer used for
 * discovery, a discovered `jwks_uri`, an explicit `jwks_uri` and every redirect hop.
 * `from` is the URL that led here (the configured issuer for a discovered `jwks_uri`,
 * the first URL for a redirect hop): plain `http:` to loopback is allowed only when
 * `from` is itself on loopback, so a remote issuer cannot point the service at local
 * services.
 */
export function keyUrlProblem(url: string | URL, from?: string | URL): string | null {
  let parsed: URL;
  try {
    parsed = typeof url === "string" ? new URL(url) : url;
  } catch {
    return "is not an absolute URL";
  }
  // Credentials in a key URL would end up in logs and error messages.
  if (parsed.username !== "" || parsed.password !== "") return "must not carry credentials (user:password@)";
  if (parsed.protocol === "https:") return null;
  if (parsed.protocol === "http:" && isLoopbackHost(parsed.hostname)) {
    if (from === undefined || isLoopbackHost(new URL(from).hostname)) return null;
    return "is plain http to a loopback host, reached from a remote URL";
  }
  if (parsed.protocol === "http:") return "must use https (plain http only to loopback hosts)";
  return `must use https, not ${parsed.protocol.replace(/:$/, "")}`;
}

/** `hostname` as the WHATWG URL parser normalises it (IPv6 in brackets, IPv4 dotted). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase();
  return host === "localhost" || host === "[::1]" || /^127(?:\.\d{1,3}){3}$/.test(host);
}

/**
 * Discovery documents to try, in order: OpenID Connect Discovery 1.0 §4
 * (`{iss}/.well-known/openid-configuration`), then RFC 8414 §3.1
 * (`{origin}/.well-known/oauth-authorization-server{path}`). A terminating `/` of the
 * issuer path is removed first, as both specifications require.
 */
export function discoveryUrls(issuer: string): readonly [string, string] {
  const url = new URL(issuer);
  const path = url.pathname.replace(/\/$/, "");
  return [`${url.origin}${path}/.well-known/openid-configuration`, `${url.origin}/.well-known/oauth-authorization-server${path}`];
}
