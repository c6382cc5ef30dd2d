import { type JWSHeaderParameters, decodeJwt, decodeProtectedHeader } from "jose";
import type { AuthzData } from "../config/authz-data.js";
import type { ServiceConfig } from "../config/service-config.js";
import { type PolicyToken, verifiedPolicyToken } from "../envoy/policy-input.js";
import { DenyError } from "../reasons/index.js";
import { type VerifiedToken, checkTime, readClaims } from "../token/claims.js";
import { readCachedJwks } from "../token/keys/disk-cache.js";
import { type PreparedKeySet, prepareKeySet } from "../token/keys/prepared-key-set.js";
import { readJwksFile } from "../token/keys/read-jwks-file.js";
import { type KeyResolver, TokenVerifier } from "../token/verify.js";

/** Where offline keys came from. */
export type OfflineKeySource = "jwks_file" | "disk_cache";

/** What could be said of the token's signature without the network. */
export type SignatureCheck =
  | { readonly status: "verified"; readonly keys: OfflineKeySource; readonly from: string }
  | { readonly status: "failed"; readonly keys: OfflineKeySource; readonly from: string }
  | { readonly status: "not_verified"; readonly why: string }
  | { readonly status: "not_checked"; readonly why: string }
  | { readonly status: "no_token" };

/** The token as `explain` establishes it offline. */
export interface OfflineVerification {
  /** The token's state for the policy: what `serve` would give it, assuming a good signature when unverified. */
  readonly state: PolicyToken;
  /** Why the token is unusable (DenyError detail), for the reader; never token material. */
  readonly detail: string | null;
  readonly signature: SignatureCheck;
  /**
   * The claims as the service's claim reader reads them, also when only the time check
   * failed or the signature could not be checked; null when they cannot be read.
   */
  readonly claimsToken: VerifiedToken | null;
  /** The decoded payload (unverified unless `signature.status` is "verified"), for display. */
  readonly payload: Readonly<Record<string, unknown>> | null;
  readonly header: Readonly<{ alg?: unknown; kid?: unknown; typ?: unknown }> | null;
}

/** The key lookup reached an issuer whose keys only the network has. */
class KeysNotOffline extends Error {
  override readonly name = "KeysNotOffline";
}

interface OfflineKeys {
  readonly source: OfflineKeySource;
  readonly from: string;
  readonly keys: PreparedKeySet;
}

/**
 * Verifies `token` as `serve` would, with the service's own TokenVerifier, claim reader
 * and time check, except that keys come only from disk: an issuer's `jwks_file`, or its
 * entry in `keys.cache_dir`. Nothing is fetched. When the issuer's keys are not on disk,
 * everything but the signature is still checked (the verifier runs up to the key lookup,
 * then the decoded payload goes through the same claim reader and time check), and the
 * state is the one `serve` would give the token if its signature is good.
 */
export async function verifyOffline(
  token: string,
  data: AuthzData,
  config: ServiceConfig,
  allowedIssuers: ReadonlySet<string> | null,
  nowMs: number,
): Promise<OfflineVerification> {
  let used: OfflineKeys | null = null;
  const keys: KeyResolver = async (issuer, header, lookup) => {
    const found = await offlineKeys(issuer, data, config);
    if (found === null) throw new KeysNotOffline(issuer);
    used = found;
    // Offline there is no newer key set to try: the rejected key stands (signature_invalid).
    if (lookup?.rejected !== undefined) return lookup.rejected;
    return found.keys.resolve(header);
  };
  const verifier = new TokenVerifier({
    issuers: data.issuers,
    keys,
    recheckKey: () => {},
    leewaySeconds: config.tokens.leewaySeconds,
    cacheEntries: 0,
    now: () => nowMs,
  });
  const decoded = decode(token);
  const claimsToken = readableClaims(decoded.payload, data);
  try {
    const verified = await verifier.verify(token, allowedIssuers);
    const source = used as OfflineKeys | null;
    const signature: SignatureCheck =
      source !== null ? { status: "verified", keys: source.source, from: source.from } : { status: "not_checked", why: "no key was needed" };
    return { state: verifiedPolicyToken(verified), detail: null, signature, claimsToken: verified, ...decoded };
  } catch (error) {
    if (!(error instanceof DenyError)) throw error;
    if (error.cause instanceof KeysNotOffline) return withoutSignature(decoded, data, config, nowMs);
    const source = used as OfflineKeys | null;
    if (source === null) {
      return {
        state: invalid(error),
        detail: error.detail ?? null,
        signature: { status: "not_checked", why: `the token is refused before its signature is checked (${error.code})` },
        claimsToken,
        ...decoded,
      };
    }
    // Keys from the disk cache may be older than the issuer's: a key they lack, or a
    // kid-less token they do not verify, is what `serve` would fetch newer keys for.
    const kidless = typeof decoded.header?.kid !== "string";
    if (source.source === "disk_cache" && (error.code === "key_not_found" || (error.code === "signature_invalid" && kidless))) {
      return withoutSignature(decoded, data, config, nowMs, `the keys cached on disk (${source.from}) do not verify it, and serve would fetch newer ones`);
    }
    const signatureFailed = error.code === "signature_invalid" || error.code === "key_not_found" || error.code === "alg_not_allowed";
    const signature: SignatureCheck = signatureFailed
      ? { status: "failed", keys: source.source, from: source.from }
      : { status: "verified", keys: source.source, from: source.from };
    return { state: invalid(error), detail: error.detail ?? null, signature, claimsToken, ...decoded };
  }
}

/**
 * Everything but the signature, with the service's code: the verifier has already
 * checked the form, the algorithm and the issuer (it reached the key lookup), so what is
 * left is the claim reader and the time check, run on the decoded payload.
 */
function withoutSignature(decoded: Decoded, data: AuthzData, config: ServiceConfig, nowMs: number, why = "keys not available offline"): OfflineVerification {
  const signature: SignatureCheck = { status: "not_verified", why };
  const issuer = typeof decoded.payload?.["iss"] === "string" ? data.issuers.get(decoded.payload["iss"]) : undefined;
  if (decoded.payload === null || issuer === undefined) {
    return { state: { state: "invalid", reason: "token_malformed" }, detail: "the payload cannot be decoded", signature, claimsToken: null, ...decoded };
  }
  let token: VerifiedToken;
  try {
    token = readClaims({ ...decoded.payload }, issuer);
  } catch (error) {
    if (!(error instanceof DenyError)) throw error;
    return { state: invalid(error), detail: error.detail ?? null, signature, claimsToken: null, ...decoded };
  }
  try {
    checkTime(token, nowMs / 1000, config.tokens.leewaySeconds);
  } catch (error) {
    if (!(error instanceof DenyError)) throw error;
    return { state: invalid(error), detail: error.detail ?? null, signature, claimsToken: token, ...decoded };
  }
  return { state: verifiedPolicyToken(token), detail: null, signature, claimsToken: token, ...decoded };
}

function invalid(error: DenyError): PolicyToken {
  return { state: "invalid", reason: error.code };
}

interface Decoded {
  readonly payload: Readonly<Record<string, unknown>> | null;
  readonly header: Readonly<{ alg?: unknown; kid?: unknown; typ?: unknown }> | null;
}

/** The header and payload without verification, for display; null parts when they cannot be decoded. */
function decode(token: string): Decoded {
  let header: Decoded["header"] = null;
  let payload: Decoded["payload"] = null;
  try {
    const h = decodeProtectedHeader(token) as JWSHeaderParameters;
    header = { alg: h.alg, kid: h.kid, typ: h.typ };
  } catch {
    header = null;
  }
  try {
    payload = decodeJwt(token);
  } catch {
    payload = null;
  }
  return { header, payload };
}

/** The claims as the service reads them, ignoring time and signature; null when they cannot be read. */
function readableClaims(payload: Readonly<Record<string, unknown>> | null, data: AuthzData): VerifiedToken | null {
  const iss = payload?.["iss"];
  const issuer = typeof iss === "string" ? data.issuers.get(iss) : undefined;
  if (payload === null || issuer === undefined) return null;
  try {
    return readClaims({ ...payload }, issuer);
  } catch {
    return null;
  }
}

/**
 * The issuer's keys on this machine: its `jwks_file`, else its entry in the key store's
 * disk cache (`keys.cache_dir`, as the key store would load it: for a `jwks_uri` issuer,
 * only an entry fetched from that URL). Null when there are none.
 */
async function offlineKeys(issuer: string, data: AuthzData, config: ServiceConfig): Promise<OfflineKeys | null> {
  const policy = data.issuers.get(issuer);
  if (policy === undefined) return null;
  const maxBytes = config.keys.maxResponseBytes;
  if (policy.jwksFile !== undefined) {
    // Unreadable or without keys: `serve` has no keys for this issuer either.
    try {
      const keys = await prepareKeySet(await readJwksFile(policy.jwksFile, maxBytes));
      return { source: "jwks_file", from: policy.jwksFile, keys };
    } catch (error) {
      throw new DenyError("key_unavailable", `the jwks_file is not a usable key set (${(error as Error).message})`);
    }
  }
  if (config.keys.cacheDir === null) return null;
  try {
    const entry = await readCachedJwks(config.keys.cacheDir, issuer, maxBytes);
    if (entry === null) return null;
    if (policy.jwksUri !== undefined && entry.jwksUri !== policy.jwksUri) return null;
    return { source: "disk_cache", from: `${entry.jwksUri}, fetched ${new Date(entry.fetchedAt).toISOString()}`, keys: await prepareKeySet(entry.jwks) };
  } catch {
    return null;
  }
}
