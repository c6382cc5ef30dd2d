import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { type AuthzData, parseAuthzData } from "../config/authz-data.js";
import { ConfigError } from "../config/config-error.js";
import { parseYamlText } from "../config/read-yaml.js";
import type { PolicySource } from "../config/service-config.js";
import { BUNDLE_DATA_PATH, readBundle } from "./read-bundle.js";

/**
 * The bytes of one version of the policy, read once: a generation is built from exactly
 * these (never from a second read of files that may have changed since).
 */
export interface PolicyBytes {
  /** 12 hex digits of a SHA-256 over the bytes: equal revisions, equal policies. */
  readonly revision: string;
  /** Parses and checks the bytes: the data and the WASM the generation is built from. */
  parse(): Promise<PolicySnapshot>;
}

/** One version of the policy, parsed and (for a bundle with signing configured) verified. */
export interface PolicySnapshot {
  readonly revision: string;
  readonly data: AuthzData;
  readonly wasm: Buffer;
  /** Where the WASM came from, for errors: its file, or `BUNDLE#policy.wasm`. */
  readonly wasmName: string;
  /** A bundle's `.manifest` revision (the git commit of `policy build`); null for policy files. */
  readonly bundleRevision: string | null;
  /** Whether a bundle signature was verified. */
  readonly signed: boolean;
}

/** The name of the last good bundle in `policy.bundle.persist_dir`. */
export const PERSISTED_BUNDLE = "bundle.tar.gz";

/** The files a source is read from (what a watcher watches); none for a bundle server. */
export function sourceFiles(source: PolicySource): readonly string[] {
  if (source.kind === "files") return [source.dataFile, source.wasmFile];
  if (source.kind === "bundle-file") return [source.file];
  return [];
}

/** What the operator named as the policy, for log lines. */
export function sourceLabel(source: PolicySource): Record<string, string> {
  if (source.kind === "files") return { data: source.dataFile, wasm: source.wasmFile };
  if (source.kind === "bundle-file") return { bundle: source.file };
  return { bundle: source.url };
}

/**
 * Reads the policy's bytes: the two files, or the bundle file. A bundle server's bytes
 * are the last download, given as `downloaded`. Throws ConfigError when they cannot be read.
 */
export async function readPolicyBytes(source: PolicySource, downloaded?: Buffer | null): Promise<PolicyBytes> {
  if (source.kind === "files") {
    const [data, wasm] = await Promise.all([readOrFail(source.dataFile, "the authorization data"), readOrFail(source.wasmFile, "the compiled policy")]);
    const revision = filesRevision(data, wasm);
    return {
      revision,
      parse: async () => {
        const raw = parseYamlText(source.dataFile, data.toString("utf8"));
        return { revision, data: parseAuthzData(source.dataFile, raw), wasm, wasmName: source.wasmFile, bundleRevision: null, signed: false };
      },
    };
  }
  let name: string;
  let bytes: Buffer;
  if (source.kind === "bundle-file") {
    name = source.file;
    const size = await stat(source.file).then(
      (s) => s.size,
      () => 0,
    );
    if (size > source.maxBytes) throw new ConfigError(name, [`larger than ${source.maxBytes} bytes (policy.bundle.max_bytes)`]);
    bytes = await readOrFail(source.file, "the OPA bundle");
  } else {
    name = source.url;
    if (downloaded === undefined || downloaded === null) throw new ConfigError(name, ["no bundle has been downloaded yet"]);
    bytes = downloaded;
  }
  const revision = bundleRevision(bytes);
  return {
    revision,
    parse: async () => {
      const bundle = await readBundle(name, bytes, { maxBytes: source.maxBytes, signing: source.signing });
      const dataName = `${name}#${BUNDLE_DATA_PATH.join("/")}/data.json`;
      const data = parseAuthzData(dataName, bundle.data, source.base);
      return { revision, data, wasm: bundle.wasm, wasmName: bundle.wasmName, bundleRevision: bundle.manifestRevision, signed: bundle.signed };
    },
  };
}

/** The revision of policy files: a SHA-256 over the SHA-256 of each (as validate prints it). */
export function filesRevision(data: Buffer, wasm: Buffer): string {
  const hash = createHash("sha256");
  for (const bytes of [data, wasm]) hash.update(createHash("sha256").update(bytes).digest());
  return hash.digest("hex").slice(0, 12);
}

/** The revision of a bundle: a SHA-256 of its bytes. */
export function bundleRevision(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex").slice(0, 12);
}

async function readOrFail(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(file, [code === "ENOENT" ? `${what} does not exist` : `cannot be read (${code ?? String(error)})`]);
  }
}

/**
 * The policy as offline tools (explain) read it: the files or the bundle file; for a
 * bundle server, the last good bundle kept in `persist_dir`. Throws ConfigError when
 * there is none.
 */
export async function readPolicyOffline(source: PolicySource): Promise<PolicyBytes> {
  if (source.kind !== "bundle-url") return readPolicyBytes(source);
  const kept = source.persistDir !== null ? join(source.persistDir, PERSISTED_BUNDLE) : null;
  if (kept === null)
    throw new ConfigError(source.url, ["the bundle is downloaded at run time, and policy.bundle.persist_dir (where a copy is kept) is not set"]);
  return readPolicyBytes({ ...source, kind: "bundle-file", file: kept });
}
