import { type FetchLimits, fetchJsonObject } from "./fetch-json.js";
import { KeySourceError } from "./key-source-error.js";
import { discoveryUrls, keyUrlProblem } from "./key-url.js";

/**
 * Find an issuer's `jwks_uri` from its metadata: OpenID Connect Discovery first, then
 * RFC 8414 (see {@link discoveryUrls}). The next document is tried when one cannot be
 * fetched or is unusable. A document is usable only when its `issuer` equals the
 * configured issuer exactly (OIDC Discovery §4.3, RFC 8414 §3.3) and its `jwks_uri`
 * passes {@link keyUrlProblem}; the `jwks_uri` itself is not fetched here.
 */
export async function discoverJwksUri(issuer: string, limits: FetchLimits): Promise<string> {
  const problems: string[] = [];
  for (const url of discoveryUrls(issuer)) {
    try {
      const metadata = await fetchJsonObject(url, limits);
      return jwksUriFrom(metadata, issuer, url);
    } catch (err) {
      if (limits.signal?.aborted) throw err;
      problems.push(err instanceof Error ? err.message : String(err));
    }
  }
  throw new KeySourceError(`discovery failed: ${problems.join("; ")}`);
}

function jwksUriFrom(metadata: Record<string, unknown>, issuer: string, url: string): string {
  if (metadata.issuer !== issuer) {
    throw new KeySourceError(`${url}: metadata issuer ${quote(metadata.issuer)} is not ${quote(issuer)}`);
  }
  const jwksUri = metadata.jwks_uri;
  if (typeof jwksUri !== "string") throw new KeySourceError(`${url}: metadata has no jwks_uri string`);
  const problem = keyUrlProblem(jwksUri, issuer);
  if (problem !== null) throw new KeySourceError(`${url}: jwks_uri ${jwksUri} ${problem}`);
  return jwksUri;
}

/** A remote value, shortened for a log line. */
function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
