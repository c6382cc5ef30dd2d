import { createHash } from "node:crypto";
import { join } from "node:path";
import type { JSONWebKeySet } from "jose";
import { writePrivateFile } from "../../fs/write-private-file.js";
import { KeySourceError } from "./key-source-error.js";
import { parseJsonObject } from "./parse-json-object.js";
import { readBoundedFile } from "./read-jwks-file.js";

/**
 * One issuer's last good key set on disk, so that a restarted service can serve
 * while the issuer is down (docs/semantics.md §3). Stored as
 * `{ issuer, jwks_uri, fetched_at, jwks }`, `fetched_at` in ms since the epoch.
 */
export interface CachedJwks {
  readonly issuer: string;
  /** The URL the keys were fetched from. */
  readonly jwksUri: string;
  /** When the keys were fetched, in ms since the epoch (the key store's clock). */
  readonly fetchedAt: number;
  readonly jwks: Readonly<Record<string, unknown>>;
}

/** `{sha256(issuer) in hex}.json`: fixed length, no path characters from config. */
export function cacheFileName(issuer: string): string {
  return `${createHash("sha256").update(issuer, "utf8").digest("hex")}.json`;
}

/**
 * Write the entry atomically: a private temporary file (mode 0600) in the same
 * directory, flushed, then renamed over the old entry, so a reader sees either the old
 * or the new file, never half of one. Creates `dir` (mode 0700) when missing.
 */
export async function writeCachedJwks(dir: string, entry: Omit<CachedJwks, "jwks"> & { readonly jwks: JSONWebKeySet }): Promise<void> {
  const body = JSON.stringify({
    issuer: entry.issuer,
    jwks_uri: entry.jwksUri,
    fetched_at: entry.fetchedAt,
    jwks: entry.jwks,
  });
  await writePrivateFile(join(dir, cacheFileName(entry.issuer)), body);
}

/**
 * Read the issuer's entry, or `null` when there is none. Throws `KeySourceError` when
 * the file is larger than `maxBytes`, is not the expected shape, or belongs to another
 * issuer. Freshness is the caller's decision.
 */
export async function readCachedJwks(dir: string, issuer: string, maxBytes: number): Promise<CachedJwks | null> {
  const path = join(dir, cacheFileName(issuer));
  const bytes = await readBoundedFile(path, maxBytes).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  });
  if (bytes === null) return null;
  const entry = parseJsonObject(bytes, path);
  const { jwks, fetched_at: fetchedAt, jwks_uri: jwksUri } = entry;
  if (entry.issuer !== issuer) throw new KeySourceError(`${path}: entry is for another issuer`);
  if (typeof fetchedAt !== "number" || !Number.isFinite(fetchedAt)) {
    throw new KeySourceError(`${path}: fetched_at is not a number`);
  }
  if (typeof jwksUri !== "string") throw new KeySourceError(`${path}: jwks_uri is not a string`);
  if (typeof jwks !== "object" || jwks === null || Array.isArray(jwks)) {
    throw new KeySourceError(`${path}: jwks is not an object`);
  }
  return { issuer, jwksUri, fetchedAt, jwks: jwks as Record<string, unknown> };
}
