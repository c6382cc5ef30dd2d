import { constants } from "node:fs";
import { access, readFile, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { PERSISTED_BUNDLE } from "../bundle/downloader.js";
import { readPublicKey } from "../bundle/signatures.js";
import { filesRevision, readPolicyBytes } from "../bundle/snapshot.js";
import { type AuthzData, loadAuthzData } from "../config/authz-data.js";
import { ConfigError } from "../config/config-error.js";
import { readYamlFile } from "../config/read-yaml.js";
import {
  BUILT_POLICY_FILE,
  DEMO_DATA_FILE,
  type ListenAddress,
  type PolicySource,
  type ServiceConfig,
  type TlsSettings,
  listenTarget,
  loadServiceConfig,
  parseServiceConfig,
} from "../config/service-config.js";
import { type PolicyInput, type PolicyToken, buildPolicyInput } from "../envoy/policy-input.js";
import { ENTRYPOINT, PolicyEngine } from "../policy/engine.js";
import { type CertificateSummary, readTlsFiles } from "../tls/index.js";
import { checkJwksFile } from "../token/keys/check-jwks-file.js";
import { KEY_STORE_DEFAULTS, KeyStore } from "../token/keys/index.js";
import { DEMO } from "./serve.js";

/** The name `serve` gives the configuration used without --config. */
export const EMBEDDED_CONFIG = "(embedded default)";

/** One problem: `problem` is `key: what was expected, what was found`, as in ConfigError. */
export interface ValidationProblem {
  readonly file: string;
  readonly problem: string;
}

/** Where one issuer's keys would come from, and what could be checked of it offline. */
export interface CheckedIssuer {
  readonly issuer: string;
  readonly source: "discovery" | "jwks_uri" | "jwks_file";
  /** The issuer URL (discovery), the jwks_uri, or the jwks_file's absolute path. */
  readonly from: string;
  /** For a jwks_file that was read: its usable keys. */
  readonly usableKeys: number | null;
}

/** What `validate` found; the same facts the text and the `--json` output show. */
export interface ValidationReport {
  readonly ok: boolean;
  readonly problems: readonly ValidationProblem[];
  readonly checked: {
    readonly config: string;
    readonly data: string | null;
    readonly policy: string | null;
    /** A bundle's `.manifest` revision; null for policy files. */
    readonly bundleRevision: string | null;
    /** Whether a bundle's signature was verified. */
    readonly signed: boolean;
    readonly entrypoint: string;
    /** Synthetic inputs the policy answered within its contract. */
    readonly syntheticInputs: number;
    readonly issuers: readonly CheckedIssuer[];
    /** Named route sections (the top level is always there). */
    readonly routes: readonly string[];
    readonly cacheDir: string | null;
    /** The gRPC listener: its address, and its TLS certificate when `grpc.tls` is set and valid. */
    readonly listener: CheckedListener | null;
    /** The service's policy revision: a short SHA-256 of the data file and the compiled policy, or of the bundle. */
    readonly revision: string | null;
  };
  /** Checks that could not run because something they depend on is broken. */
  readonly notChecked: readonly string[];
}

/** The gRPC listener as configured (`grpc.listen`, `grpc.tls`). */
export interface CheckedListener {
  /** What a client targets, e.g. "127.0.0.1:9292" or "unix:/run/scitokens-authz/grpc.sock". */
  readonly address: string;
  /** null: plaintext. */
  readonly tls: { readonly certificate: CertificateSummary; readonly mutual: boolean; readonly clientCas: number } | null;
}

/** The files and settings a service config names; recovered leniently when it is not valid. */
interface ConfigPaths {
  /** `grpc.listen` and `grpc.tls`; null when the config is not valid. */
  readonly listen: ListenAddress | null;
  readonly tls: TlsSettings | null;
  /** `authz_http.listen`; null without one (or when the config is not valid). */
  readonly authzHttpListen: ListenAddress | null;
  /** The policy files or bundle; null when the config's `policy` is not valid. */
  readonly source: PolicySource | null;
  readonly cacheDir: string | null;
  readonly maxResponseBytes: number;
  /** `log.decisions.file`; null when there is no decision log (or the config is not valid). */
  readonly decisionLogFile: string | null;
}

/**
 * Checks a service config, its authorization data and its compiled policy as `serve`
 * would before listening, plus what `serve` leaves to run time: each `jwks_file` and
 * `keys.cache_dir`. Offline: nothing is fetched and nothing listens. A problem in one
 * file does not stop the checks of the others, so every problem is reported in one run.
 * Throws only on an internal error (not on a bad file).
 */
export async function validateConfig(configFile: string | undefined): Promise<ValidationReport> {
  const problems: ValidationProblem[] = [];
  const notChecked: string[] = [];
  const collect = (error: unknown): void => {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) problems.push({ file: error.file, problem });
  };

  const configName = configFile === undefined ? EMBEDDED_CONFIG : resolve(configFile);
  let paths: ConfigPaths | null;
  try {
    paths = pathsOf(configFile === undefined ? embeddedConfig() : await loadServiceConfig(configName));
  } catch (error) {
    collect(error);
    paths = await lenientPaths(configName);
  }
  const checked = {
    config: configName,
    data: null as string | null,
    policy: null as string | null,
    bundleRevision: null as string | null,
    signed: false,
    entrypoint: ENTRYPOINT,
    syntheticInputs: 0,
    issuers: [] as CheckedIssuer[],
    routes: [] as string[],
    cacheDir: paths?.cacheDir ?? null,
    listener: null as CheckedListener | null,
    revision: null as string | null,
  };
  if (paths === null) {
    notChecked.push("the authorization data, the policy and the key sources (the service config names them and cannot be read)");
    return { ok: false, problems, checked, notChecked };
  }

  // The data and the compiled policy, read as `serve` reads them.
  const source = paths.source;
  let data: AuthzData | null = null;
  let wasm: { name: string; bytes: Buffer } | null = null;
  let dataFile: string | null = null;
  if (source === null) notChecked.push("the authorization data, the policy and the key sources (policy is not valid)");
  else if (source.kind === "files") {
    dataFile = source.dataFile;
    checked.data = source.dataFile;
    checked.policy = source.wasmFile;
    try {
      data = await loadAuthzData(source.dataFile);
    } catch (error) {
      collect(error);
    }
    try {
      wasm = { name: source.wasmFile, bytes: await readFile(source.wasmFile) };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      problems.push({
        file: source.wasmFile,
        problem:
          code === "ENOENT" ? "the compiled policy does not exist (run `npm run build`, or set policy.wasm)" : `cannot be read (${code ?? messageOf(error)})`,
      });
    }
    checked.revision = await revisionOf(source.dataFile, source.wasmFile);
  } else {
    if (source.signing !== null) {
      for (const key of source.signing.keys) {
        await readPublicKey(key).catch((error: unknown) => problems.push({ file: configName, problem: `policy.bundle.signing.keys: ${messageOf(error)}` }));
      }
    }
    const persisted = source.kind === "bundle-url" && source.persistDir !== null ? join(source.persistDir, PERSISTED_BUNDLE) : null;
    const local = source.kind === "bundle-file" ? source.file : persisted !== null && (await exists(persisted)) ? persisted : null;
    if (local === null) {
      notChecked.push(
        `the bundle (downloaded from ${source.kind === "bundle-url" ? source.url : ""} at run time, and none is kept in policy.bundle.persist_dir yet)`,
      );
    } else {
      try {
        const bytes = await readPolicyBytes(source.kind === "bundle-file" ? source : { ...source, kind: "bundle-file", file: local });
        checked.revision = bytes.revision;
        const snapshot = await bytes.parse();
        data = snapshot.data;
        dataFile = snapshot.data.file;
        wasm = { name: snapshot.wasmName, bytes: snapshot.wasm };
        checked.data = snapshot.data.file;
        checked.policy = snapshot.wasmName;
        checked.bundleRevision = snapshot.bundleRevision;
        checked.signed = snapshot.signed;
      } catch (error) {
        collect(error);
      }
    }
  }

  if (dataFile !== null) {
    const issuers = data !== null ? issuersOf(data) : source?.kind === "files" ? await lenientIssuers(dataFile) : [];
    if (data !== null) problems.push(...keyStoreProblems(data));
    for (const entry of issuers) {
      let usableKeys: number | null = null;
      if (entry.source === "jwks_file") {
        const result = await checkJwksFile(entry.from, paths.maxResponseBytes);
        if (typeof result === "string") problems.push({ file: dataFile, problem: `issuers[${entry.index}].jwks_file: ${result}` });
        else usableKeys = result;
      }
      if (data !== null) checked.issuers.push({ issuer: entry.issuer, source: entry.source, from: entry.from, usableKeys });
    }
    if (data !== null) checked.routes.push(...data.routes.keys());
  }

  if (wasm !== null) {
    let engine: PolicyEngine | null = null;
    try {
      engine = await PolicyEngine.fromBytes(wasm.name, wasm.bytes, data?.policyData ?? {});
    } catch (error) {
      if (error instanceof ConfigError) collect(error);
      else problems.push({ file: wasm.name, problem: `cannot be loaded with the data (${messageOf(error)})` });
    }
    if (engine !== null && data !== null) {
      const faults = new Map<string, string>();
      for (const { input, what } of syntheticInputs(data)) {
        try {
          engine.evaluate(input);
          checked.syntheticInputs += 1;
        } catch (error) {
          const message = messageOf(error);
          if (!faults.has(message)) faults.set(message, what);
        }
      }
      for (const [message, what] of faults) {
        problems.push({
          file: wasm.name,
          problem: `${ENTRYPOINT}: expected a decision within the contract (policies/README.md) for ${what}, found: ${message}`,
        });
      }
    } else if (engine !== null) {
      notChecked.push("the policy's answers (the authorization data is not valid)");
    }
  }

  if (paths.cacheDir !== null) {
    const problem = await cacheDirProblem(paths.cacheDir);
    if (problem !== null) problems.push({ file: configName, problem: `keys.cache_dir: ${problem}` });
  }
  if (source?.kind === "bundle-url" && source.persistDir !== null) {
    const problem = await cacheDirProblem(source.persistDir);
    if (problem !== null) problems.push({ file: configName, problem: `policy.bundle.persist_dir: ${problem}` });
  }
  if (paths.listen !== null) {
    const problem = "socketPath" in paths.listen ? await socketFolderProblem(paths.listen.socketPath) : null;
    if (problem !== null) problems.push({ file: configName, problem: `grpc.listen: ${problem}` });
    let tls: CheckedListener["tls"] = null;
    if (paths.tls !== null) {
      try {
        const material = await readTlsFiles(paths.tls, configName);
        tls = { certificate: material.certificate, mutual: paths.tls.clientCaFile !== null, clientCas: material.clientCas };
      } catch (error) {
        collect(error);
      }
    }
    if (paths.tls === null || tls !== null) checked.listener = { address: listenTarget(paths.listen), tls };
  }
  if (paths.authzHttpListen !== null && "socketPath" in paths.authzHttpListen) {
    const problem = await socketFolderProblem(paths.authzHttpListen.socketPath);
    if (problem !== null) problems.push({ file: configName, problem: `authz_http.listen: ${problem}` });
  }
  if (paths.decisionLogFile !== null) {
    const problem = await decisionLogProblem(paths.decisionLogFile);
    if (problem !== null) problems.push({ file: configName, problem: `log.decisions.file: ${problem}` });
  }

  return { ok: problems.length === 0 && notChecked.length === 0, problems, checked, notChecked };
}

/** What `serve` uses without --config (src/cli/serve.ts): the demo data and the built policy. */
function embeddedConfig(): ServiceConfig {
  return parseServiceConfig(EMBEDDED_CONFIG, { grpc: { listen: DEMO.listen }, policy: { data: DEMO_DATA_FILE, wasm: BUILT_POLICY_FILE } });
}

function pathsOf(config: ServiceConfig): ConfigPaths {
  return {
    listen: config.listen,
    tls: config.tls ?? null,
    authzHttpListen: config.authzHttp?.listen ?? null,
    source: config.policy,
    cacheDir: config.keys.cacheDir,
    maxResponseBytes: config.keys.maxResponseBytes,
    decisionLogFile: config.decisionLogFile ?? null,
  };
}

/**
 * The paths an invalid service config names, as `parseServiceConfig` would resolve them,
 * so that the data and the policy are still checked. A key that is itself not valid
 * (already reported) gives null; `null` overall when the file cannot be read at all.
 */
async function lenientPaths(file: string): Promise<ConfigPaths | null> {
  let raw: unknown;
  try {
    raw = await readYamlFile(file);
  } catch {
    return null;
  }
  if (!isRecord(raw)) return null;
  const base = dirname(file);
  const path = (section: unknown, key: string, fallback: string | null): string | null => {
    if (!isRecord(section) || section[key] === undefined) return fallback;
    const value = section[key];
    return typeof value === "string" && value !== "" ? resolve(base, value) : null;
  };
  const policy = raw["policy"] ?? {};
  const keys = raw["keys"] ?? {};
  const maxBytes = isRecord(keys) ? keys["max_response_bytes"] : undefined;
  // Only policy files are recovered from a config that is not valid; a bundle section is not.
  const dataFile = isRecord(policy) && policy["bundle"] === undefined ? path(policy, "data", DEMO_DATA_FILE) : null;
  const wasmFile = isRecord(policy) && policy["bundle"] === undefined ? path(policy, "wasm", BUILT_POLICY_FILE) : null;
  return {
    listen: null,
    tls: null,
    authzHttpListen: null,
    source: dataFile !== null && wasmFile !== null ? { kind: "files", dataFile, wasmFile } : null,
    cacheDir: path(keys, "cache_dir", null),
    decisionLogFile: null,
    maxResponseBytes: Number.isInteger(maxBytes) && (maxBytes as number) > 0 ? (maxBytes as number) : KEY_STORE_DEFAULTS.maxResponseBytes,
  };
}

interface IssuerEntry {
  readonly index: number;
  readonly issuer: string;
  readonly source: CheckedIssuer["source"];
  readonly from: string;
}

function issuersOf(data: AuthzData): IssuerEntry[] {
  return [...data.issuers.values()].map((issuer, index) => ({
    index,
    issuer: issuer.issuer,
    ...(issuer.jwksFile !== undefined
      ? { source: "jwks_file" as const, from: issuer.jwksFile }
      : issuer.jwksUri !== undefined
        ? { source: "jwks_uri" as const, from: issuer.jwksUri }
        : { source: "discovery" as const, from: issuer.issuer }),
  }));
}

/** The `jwks_file`s of data that is not valid, resolved as `parseAuthzData` would, to check them anyway. */
async function lenientIssuers(file: string): Promise<IssuerEntry[]> {
  let raw: unknown;
  try {
    raw = await readYamlFile(file);
  } catch {
    return [];
  }
  const issuers = isRecord(raw) && Array.isArray(raw["issuers"]) ? (raw["issuers"] as unknown[]) : [];
  return issuers.flatMap((entry, index) => {
    if (!isRecord(entry) || typeof entry["jwks_file"] !== "string" || entry["jwks_file"] === "") return [];
    return [{ index, issuer: String(entry["issuer"]), source: "jwks_file" as const, from: resolve(dirname(file), entry["jwks_file"]) }];
  });
}

/**
 * The key store's own check of the sources, run as `serve` runs it: its constructor does
 * no I/O and starts nothing (only `start()` would fetch), so it is built and dropped.
 */
function keyStoreProblems(data: AuthzData): ValidationProblem[] {
  const sources = [...data.issuers.values()].map((issuer) => ({
    issuer: issuer.issuer,
    ...(issuer.jwksUri !== undefined ? { jwksUri: issuer.jwksUri } : {}),
    ...(issuer.jwksFile !== undefined ? { jwksFile: issuer.jwksFile } : {}),
  }));
  try {
    new KeyStore(sources).close();
    return [];
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    const lines = error.message.split("\n").filter((line) => line.startsWith("- "));
    return (lines.length > 0 ? lines.map((line) => line.slice(2)) : [error.message]).map((line) => ({ file: data.file, problem: `issuers: ${line}` }));
  }
}

/**
 * Why the key store could not use `dir` for its disk cache, or null. A missing folder
 * is fine when the service can create it (it does, mode 0700). Nothing is created here.
 */
async function cacheDirProblem(dir: string): Promise<string | null> {
  let probe = dir;
  for (;;) {
    let isDirectory: boolean;
    try {
      isDirectory = (await stat(probe)).isDirectory();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const parent = dirname(probe);
      if ((code === "ENOENT" || code === "ENOTDIR") && parent !== probe) {
        probe = parent;
        continue;
      }
      return `expected a folder the service can write, found ${probe} cannot be examined (${code ?? messageOf(error)})`;
    }
    if (!isDirectory) {
      return probe === dir
        ? `expected a folder, found ${dir} is not one`
        : `expected a folder the service can create, found ${probe} in its path is not a folder`;
    }
    try {
      await access(probe, constants.W_OK | constants.X_OK);
      return null;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? messageOf(error);
      return probe === dir
        ? `expected a folder the service can write, found ${dir} is not writable (${code})`
        : `expected a folder the service can create, found ${probe} is not writable (${code})`;
    }
  }
}

/** A socket is created in an existing folder (the service does not create it), or null. */
async function socketFolderProblem(socketPath: string): Promise<string | null> {
  const folder = dirname(socketPath);
  try {
    if ((await stat(folder)).isDirectory()) return null;
    return `expected an existing folder for the socket ${socketPath}, found ${folder} is not a folder`;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return `expected an existing folder for the socket ${socketPath}, found ${code === "ENOENT" ? `nothing at ${folder}` : `${folder} cannot be examined (${code ?? messageOf(error)})`}`;
  }
}

/**
 * The decision log is appended to, never created with its folder: the folder must exist
 * and be writable, and the file, when it exists, must be a writable regular file. (The
 * service would drop every record otherwise, saying so once a minute.)
 */
async function decisionLogProblem(file: string): Promise<string | null> {
  const folder = dirname(file);
  try {
    if (!(await stat(folder)).isDirectory()) return `expected a file in an existing folder, found ${folder} is not a folder`;
    await access(folder, constants.W_OK | constants.X_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? messageOf(error);
    return code === "ENOENT"
      ? `expected a file in an existing folder, found no folder ${folder} (the service does not create it)`
      : `expected a file in a folder the service can write, found ${folder} is not writable (${code})`;
  }
  try {
    if (!(await stat(file)).isFile()) return `expected a regular file, found ${file} is not one`;
    await access(file, constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? messageOf(error);
    if (code !== "ENOENT") return `expected a file the service can append to, found ${file} is not writable (${code})`;
  }
  return null;
}

/**
 * Fixed inputs shaped as the authorizer builds them (src/envoy/policy-input.ts): a read
 * on every route by the first issuer it accepts, one by an issuer nobody trusts, one
 * without a token and one with an invalid token. Any decision is fine; an answer outside
 * the contract (PolicyFault) or a crash is not.
 */
function syntheticInputs(data: AuthzData): Array<{ input: PolicyInput; what: string }> {
  const issuers = [...data.issuers.values()];
  const audiences = Array.isArray(data.policyData["audiences"]) ? (data.policyData["audiences"] as unknown[]) : [];
  const audience = typeof audiences[0] === "string" ? audiences[0] : null;
  const routeData = isRecord(data.policyData["routes"]) ? data.policyData["routes"] : {};
  const inputs: Array<{ input: PolicyInput; what: string }> = [];
  const add = (route: string | null, basePath: string, token: PolicyToken, by: string) => {
    const path = basePath === "/" ? "/scitokens-authz-validate" : `${basePath}/scitokens-authz-validate`;
    const input = buildPolicyInput({
      method: "GET",
      host: "storage.invalid",
      headers: {},
      path,
      segments: path.split("/").filter((segment) => segment !== ""),
      destination: null,
      destinationRemote: false,
      route,
      token,
    });
    inputs.push({ input, what: `GET ${path}${route === null ? "" : ` on route ${route}`} ${by}` });
  };
  const verified = (iss: string): PolicyToken => ({
    state: "verified",
    iss,
    sub: "scitokens-authz-validate",
    jti: null,
    profile: "scitokens:2.0",
    aud: audience === null ? null : [audience],
    scopes: [{ authz: "read", path: "/", raw: "read:/" }],
    groups: [],
    claims: { iss, sub: "scitokens-authz-validate", scope: "read:/", ver: "scitokens:2.0" },
  });
  const first = issuers[0];
  const firstBase = first?.basePaths[0] ?? "/";
  if (first !== undefined) add(null, firstBase, verified(first.issuer), `by ${first.issuer} with scope read:/`);
  for (const [name, route] of data.routes) {
    const issuer = issuers.find((i) => route.allowedIssuers === null || route.allowedIssuers.has(i.issuer));
    if (issuer === undefined) continue;
    const override = isRecord(routeData[name]) ? routeData[name]["base_path"] : null;
    const basePath = Array.isArray(override) && typeof override[0] === "string" ? override[0] : (issuer.basePaths[0] ?? "/");
    add(name, basePath, verified(issuer.issuer), `by ${issuer.issuer} with scope read:/`);
  }
  add(null, "/", verified("https://untrusted.invalid"), "by an untrusted issuer");
  add(null, firstBase, { state: "absent" }, "without a token");
  add(null, firstBase, { state: "invalid", reason: "signature_invalid" }, "with an invalid token");
  return inputs;
}

/**
 * First 12 hex digits of SHA-256 over the SHA-256 digests of the data file and the
 * compiled policy (the service's policy revision); null if either cannot be read.
 */
async function revisionOf(dataFile: string, wasmFile: string): Promise<string | null> {
  try {
    const [data, wasm] = await Promise.all([readFile(dataFile), readFile(wasmFile)]);
    return filesRevision(data, wasm);
  } catch {
    return null;
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
