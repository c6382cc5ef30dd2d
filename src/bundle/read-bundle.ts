import { gunzipSync } from "node:zlib";
import { Parser, type ReadEntry } from "tar";
import { ConfigError } from "../config/config-error.js";
import { ENTRYPOINT } from "../policy/engine.js";
import { type BundleSigningConfig, verifyBundleSignature } from "./signatures.js";

/** Where the authorization data sits in a bundle's data document (data.json at scitokens/data/). */
export const BUNDLE_DATA_PATH = ["scitokens", "data"] as const;

/** The default module of a WASM bundle written by `opa build -t wasm`. */
const DEFAULT_WASM_MODULE = "policy.wasm";

/** What the service takes from an OPA bundle, once read and (when configured) verified. */
export interface BundleContents {
  /** The `.manifest`'s `revision` (the git commit for bundles from `policy build`); "" when none. */
  readonly manifestRevision: string;
  /** The compiled policy: the manifest's module for the entrypoint, else /policy.wasm. */
  readonly wasm: Buffer;
  readonly wasmName: string;
  /** The authorization data document (what a data YAML holds), at data.scitokens.data. */
  readonly data: unknown;
  /** Whether a signature was verified (policy.bundle.signing set). */
  readonly signed: boolean;
}

export interface ReadBundleOptions {
  /** Largest size of the bundle once decompressed. */
  readonly maxBytes: number;
  /** Verify `.signatures.json` with these keys; null: signatures are not checked. */
  readonly signing: BundleSigningConfig | null;
}

/**
 * Reads a gzipped OPA bundle held in memory. Every problem found is listed in one
 * ConfigError naming `name` (the bundle's file or URL). Refused: more than `maxBytes`
 * decompressed; an entry that is not a regular file or folder (links, devices); a path
 * with `..`, or one given twice; a file the service does not use (only `.manifest`,
 * `.signatures.json`, `*.rego` sources, `data.json` and the WASM module may be there);
 * data outside data.scitokens.data; a missing module or data; and, with signing
 * configured, any signature problem. Nothing is taken from a refused bundle.
 */
export async function readBundle(name: string, compressed: Buffer, options: ReadBundleOptions): Promise<BundleContents> {
  let tarBytes: Buffer;
  try {
    tarBytes = gunzipSync(compressed, { maxOutputLength: options.maxBytes });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(name, [
      code === "ERR_BUFFER_TOO_LARGE"
        ? `larger than ${options.maxBytes} bytes once decompressed (policy.bundle.max_bytes)`
        : `not a gzipped OPA bundle (${(error as Error).message})`,
    ]);
  }
  const { files, problems } = await untar(tarBytes);
  if (problems.length > 0) throw new ConfigError(name, problems);

  const signaturesText = files.get(".signatures.json")?.toString("utf8");
  files.delete(".signatures.json");
  if (options.signing !== null) {
    const signatureProblems = await verifyBundleSignature(signaturesText, files, options.signing);
    if (signatureProblems.length > 0)
      throw new ConfigError(
        name,
        signatureProblems.map((p) => `signature: ${p}`),
      );
  }

  const manifest = parseManifest(files.get(".manifest"), problems);
  const wasmName = manifest.module ?? DEFAULT_WASM_MODULE;
  const wasm = files.get(wasmName);
  if (wasm === undefined) problems.push(`expected the WASM module ${wasmName} (compiled with the entrypoint ${ENTRYPOINT}), found none`);
  let dataTree: Record<string, unknown> = {};
  for (const [path, bytes] of files) {
    const base = path.slice(path.lastIndexOf("/") + 1);
    if (path === ".manifest" || path === wasmName || path.endsWith(".rego")) continue;
    if (base === "data.json") {
      dataTree = mergeData(dataTree, path, bytes, problems);
    } else if (base === "data.yaml" || base === "data.yml") {
      problems.push(`${path}: YAML data is not read from bundles; write it as data.json (scitokens-authz policy build does)`);
    } else {
      problems.push(`${path}: a file the service does not use (expected .manifest, .signatures.json, *.rego, data.json and ${wasmName})`);
    }
  }
  const data = dataAt(dataTree, problems);
  if (problems.length > 0 || wasm === undefined) throw new ConfigError(name, problems);
  return { manifestRevision: manifest.revision, wasm, wasmName: `${name}#${wasmName}`, data, signed: options.signing !== null };
}

/** Regular files by normalized path (no leading "/" or "./"); the problems of the archive. */
async function untar(tarBytes: Buffer): Promise<{ files: Map<string, Buffer>; problems: string[] }> {
  const files = new Map<string, Buffer>();
  const problems: string[] = [];
  const reads: Promise<void>[] = [];
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      const path = normalizeEntryPath(entry.path);
      if (entry.type === "Directory") {
        entry.resume();
        return;
      }
      if (entry.type !== "File" && entry.type !== "OldFile" && entry.type !== "ContiguousFile") {
        problems.push(`${entry.path}: a ${entry.type} entry; a bundle holds regular files only`);
        entry.resume();
        return;
      }
      if (path === null) {
        problems.push(`${JSON.stringify(entry.path)}: not a path inside the bundle`);
        entry.resume();
        return;
      }
      if (files.has(path)) problems.push(`${path}: given twice`);
      const chunks: Buffer[] = [];
      entry.on("data", (chunk: Buffer) => chunks.push(chunk));
      reads.push(
        new Promise((resolve) =>
          entry.on("end", () => {
            files.set(path, Buffer.concat(chunks));
            resolve();
          }),
        ),
      );
    },
  });
  await new Promise<void>((resolve) => {
    parser.on("error", (error: Error) => {
      problems.push(`not a valid tar archive (${error.message})`);
      resolve();
    });
    parser.on("close", () => resolve());
    parser.end(tarBytes);
  });
  await Promise.all(reads);
  if (files.size === 0 && problems.length === 0) problems.push("an empty archive, expected an OPA bundle");
  return { files, problems };
}

/** "/a/b", "./a/b" and "a/b" are the same file; null for "..", empty segments or a backslash. */
function normalizeEntryPath(raw: string): string | null {
  const path = raw.replace(/^(\.?\/)+/, "");
  if (path === "" || path.includes("\\") || path.includes("\0")) return null;
  const segments = path.split("/");
  if (segments.some((s) => s === "" || s === "." || s === "..")) return null;
  return path;
}

function parseManifest(bytes: Buffer | undefined, problems: string[]): { revision: string; module: string | null } {
  if (bytes === undefined) return { revision: "", module: null };
  let manifest: unknown;
  try {
    manifest = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    problems.push(`.manifest: not JSON (${(error as Error).message})`);
    return { revision: "", module: null };
  }
  if (manifest === null || typeof manifest !== "object" || Array.isArray(manifest)) {
    problems.push(".manifest: expected a JSON object");
    return { revision: "", module: null };
  }
  const { revision, wasm } = manifest as { revision?: unknown; wasm?: unknown };
  if (revision !== undefined && typeof revision !== "string") problems.push(`.manifest: revision: expected a string, found ${JSON.stringify(revision)}`);
  let module: string | null = null;
  if (Array.isArray(wasm)) {
    const entry = wasm.find((e: unknown) => (e as { entrypoint?: unknown } | null)?.entrypoint === ENTRYPOINT) as { module?: unknown } | undefined;
    if (entry !== undefined) {
      module = typeof entry.module === "string" ? normalizeEntryPath(entry.module) : null;
      if (module === null) problems.push(`.manifest: wasm: the module of ${ENTRYPOINT} is not a path inside the bundle`);
    } else if (wasm.length > 0) {
      problems.push(`.manifest: wasm: no module for the entrypoint ${ENTRYPOINT} (compile with opa build -e ${ENTRYPOINT})`);
    }
  }
  return { revision: typeof revision === "string" ? revision : "", module };
}

/** Puts the value of `path` (folder/data.json) at its folder in the data tree. */
function mergeData(tree: Record<string, unknown>, path: string, bytes: Buffer, problems: string[]): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    problems.push(`${path}: not JSON (${(error as Error).message})`);
    return tree;
  }
  const folder = path.split("/").slice(0, -1);
  if (folder.length === 0) {
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      problems.push(`${path}: expected a JSON object at the root of the data`);
      return tree;
    }
    return mergeObjects(tree, value as Record<string, unknown>, path, problems);
  }
  let nested: unknown = value;
  for (const segment of [...folder].reverse()) nested = { [segment]: nested };
  return mergeObjects(tree, nested as Record<string, unknown>, path, problems);
}

function mergeObjects(a: Record<string, unknown>, b: Record<string, unknown>, path: string, problems: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [key, value] of Object.entries(b)) {
    const existing = out[key];
    if (existing === undefined) out[key] = value;
    else if (isObject(existing) && isObject(value)) out[key] = mergeObjects(existing, value, path, problems);
    else problems.push(`${path}: data at ${key} is given by two files`);
  }
  return out;
}

/** The authorization data at data.scitokens.data; anything else in the data is refused (the policy would never see it). */
function dataAt(tree: Record<string, unknown>, problems: string[]): unknown {
  const [top, inner] = BUNDLE_DATA_PATH;
  for (const key of Object.keys(tree)) {
    if (key !== top) problems.push(`data.${key}: data outside data.${BUNDLE_DATA_PATH.join(".")} is not given to the policy; put it in the authorization data`);
  }
  const scitokens = tree[top];
  if (scitokens === undefined) {
    problems.push(`expected the authorization data at ${BUNDLE_DATA_PATH.join("/")}/data.json, found none`);
    return undefined;
  }
  if (!isObject(scitokens)) {
    problems.push(`data.${top}: expected an object holding ${inner}`);
    return undefined;
  }
  for (const key of Object.keys(scitokens)) {
    if (key !== inner)
      problems.push(`data.${top}.${key}: data outside data.${BUNDLE_DATA_PATH.join(".")} is not given to the policy; put it in the authorization data`);
  }
  if (scitokens[inner] === undefined) problems.push(`expected the authorization data at ${BUNDLE_DATA_PATH.join("/")}/data.json, found none`);
  return scitokens[inner];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
