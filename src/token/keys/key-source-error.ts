/**
 * Why one attempt to obtain an issuer's keys failed (bad URL, network, HTTP status,
 * size, JSON, metadata). It stays inside the key store: it becomes the issuer's
 * `lastError` and a log line, and a request that needed the keys is denied with
 * `key_unavailable` instead. Messages name the URL or file, never token material.
 */
export class KeySourceError extends Error {
  override readonly name = "KeySourceError";
}
