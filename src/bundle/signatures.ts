import { type KeyObject, createHash, createPublicKey } from "node:crypto";
import { readFile } from "node:fs/promises";
import { compactVerify, decodeProtectedHeader, errors as joseErrors } from "jose";
import { structuredDigest } from "./structured-hash.js";

/** Algorithms a bundle signature may use: asymmetric only (a shared secret would sit in every replica's config). */
export const BUNDLE_SIGNING_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"] as const;
export type BundleSigningAlgorithm = (typeof BUNDLE_SIGNING_ALGORITHMS)[number];

/** A public key bundles may be signed with (`policy.bundle.signing.keys`). */
export interface BundleKeyConfig {
  readonly keyid: string;
  readonly algorithm: BundleSigningAlgorithm;
  /** Absolute path of the PEM public key (or certificate). */
  readonly keyFile: string;
}

/** `policy.bundle.signing`: when set, a bundle without a valid signature is refused. */
export interface BundleSigningConfig {
  readonly keys: readonly BundleKeyConfig[];
  /** The key to verify with; absent: the `kid` of the signature's header, else its `keyid` claim. */
  readonly keyid: string | null;
  /** The `scope` the signature must carry (OPA's `signing.scope`); "" when none. */
  readonly scope: string;
}

/** What the signature says one file of the bundle holds. */
interface SignedFile {
  readonly hash: string;
  readonly algorithm: string;
}

/** Hash names OPA writes, and Node's name for each; MD5 and SHA-1 are refused. */
const HASHES: ReadonlyMap<string, string> = new Map([
  ["SHA-224", "sha224"],
  ["SHA-256", "sha256"],
  ["SHA-384", "sha384"],
  ["SHA-512", "sha512"],
  ["SHA-512-224", "sha512-224"],
  ["SHA-512-256", "sha512-256"],
]);

const MIN_RSA_BITS = 2048;

/** Files OPA hashes as JSON values rather than bytes (its IsStructuredDoc). */
export function isStructuredFile(name: string): boolean {
  const base = name.slice(name.lastIndexOf("/") + 1);
  return base === ".manifest" || base === "data.json" || base === "data.yaml" || base === "data.yml";
}

/**
 * Verifies a bundle's `.signatures.json` against the configured keys and checks every
 * file of the bundle against it, as OPA does: exactly one JWS; the key chosen by the
 * configured keyid, else the header's `kid`, else the payload's `keyid`; the payload's
 * `scope` equal to the configured one; each file listed with a matching digest, and
 * each listed file present. Returns the problems (empty: verified); never throws.
 */
export async function verifyBundleSignature(
  signaturesText: string | undefined,
  files: ReadonlyMap<string, Buffer>,
  signing: BundleSigningConfig,
): Promise<string[]> {
  if (signaturesText === undefined) return ["the bundle is not signed (no .signatures.json) and policy.bundle.signing requires a signature"];
  let token: string;
  try {
    const parsed = JSON.parse(signaturesText) as { signatures?: unknown };
    const list = parsed?.signatures;
    if (!Array.isArray(list) || list.length !== 1 || typeof list[0] !== "string") {
      return [`.signatures.json: expected {"signatures": [one JWS]}, found ${Array.isArray(list) ? `${list.length} entries` : "no signatures list"}`];
    }
    token = list[0];
  } catch (error) {
    return [`.signatures.json: not JSON (${(error as Error).message})`];
  }
  let payload: { files?: unknown; keyid?: unknown; scope?: unknown };
  try {
    const header = decodeProtectedHeader(token);
    const claimed = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as { keyid?: unknown };
    const keyid = signing.keyid ?? (typeof header.kid === "string" && header.kid !== "" ? header.kid : typeof claimed?.keyid === "string" ? claimed.keyid : "");
    if (keyid === "") return [".signatures.json: the signature names no key (no kid, no keyid) and policy.bundle.signing.keyid is not set"];
    const keyConfig = signing.keys.find((key) => key.keyid === keyid);
    if (keyConfig === undefined) {
      return [
        `.signatures.json: signed with key ${JSON.stringify(keyid)}, expected one of policy.bundle.signing.keys: ${signing.keys.map((k) => k.keyid).join(", ")}`,
      ];
    }
    const key = await readPublicKey(keyConfig);
    const verified = await compactVerify(token, key, { algorithms: [keyConfig.algorithm] });
    payload = JSON.parse(new TextDecoder().decode(verified.payload)) as typeof payload;
  } catch (error) {
    return [`.signatures.json: ${signatureFailure(error)}`];
  }
  const scope = typeof payload.scope === "string" ? payload.scope : "";
  if (scope !== signing.scope) return [`.signatures.json: signed for scope ${JSON.stringify(scope)}, expected ${JSON.stringify(signing.scope)}`];
  if (!Array.isArray(payload.files)) return [".signatures.json: the signed payload has no files list"];

  const signed = new Map<string, SignedFile>();
  for (const entry of payload.files as unknown[]) {
    const { name, hash, algorithm } = (entry ?? {}) as Record<string, unknown>;
    if (typeof name !== "string" || typeof hash !== "string" || typeof algorithm !== "string") {
      return [".signatures.json: a signed file entry lacks name, hash or algorithm"];
    }
    signed.set(name.replace(/^\/+/, ""), { hash: hash.toLowerCase(), algorithm });
  }
  const problems: string[] = [];
  for (const [name, bytes] of files) {
    const entry = signed.get(name);
    if (entry === undefined) {
      problems.push(`${name}: not covered by the signature`);
      continue;
    }
    signed.delete(name);
    const algorithm = HASHES.get(entry.algorithm);
    if (algorithm === undefined) {
      problems.push(`${name}: signed with hash ${JSON.stringify(entry.algorithm)}, expected one of ${[...HASHES.keys()].join(", ")}`);
      continue;
    }
    let digest: string;
    try {
      digest = (isStructuredFile(name) ? structuredDigest(algorithm, bytes.toString("utf8")) : createHash(algorithm).update(bytes).digest()).toString("hex");
    } catch (error) {
      problems.push(`${name}: cannot be hashed as JSON (${(error as Error).message})`);
      continue;
    }
    if (digest !== entry.hash) problems.push(`${name}: digest mismatch: the file is not the one that was signed`);
  }
  for (const name of signed.keys()) problems.push(`${name}: signed but missing from the bundle`);
  return problems;
}

/** Reads a configured verification key: a PEM public key or certificate, never a private key. */
export async function readPublicKey(config: BundleKeyConfig): Promise<KeyObject> {
  let pem: string;
  try {
    pem = await readFile(config.keyFile, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(`key ${JSON.stringify(config.keyid)}: cannot read ${config.keyFile} (${code === "ENOENT" ? "no such file" : (code ?? String(error))})`);
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new Error(`key ${JSON.stringify(config.keyid)}: ${config.keyFile} holds a private key; give the service the public key only`);
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (error) {
    throw new Error(`key ${JSON.stringify(config.keyid)}: ${config.keyFile} is not a PEM public key or certificate (${(error as Error).message})`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (key.asymmetricKeyType?.startsWith("rsa") && bits !== undefined && bits < MIN_RSA_BITS) {
    throw new Error(`key ${JSON.stringify(config.keyid)}: ${config.keyFile} is a ${bits}-bit RSA key, expected at least ${MIN_RSA_BITS} bits`);
  }
  return key;
}

function signatureFailure(error: unknown): string {
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return "the signature does not verify with the configured key";
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return `the signature's algorithm is not the configured one (${error.message})`;
  if (error instanceof joseErrors.JOSEError) return `not a valid JWS (${error.message})`;
  return error instanceof Error ? error.message : String(error);
}
