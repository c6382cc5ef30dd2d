import { execFileSync } from "node:child_process";
import { copyFile, mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { stringify } from "yaml";
import { type CheckOptions, buildCheckRequest, sendCheck } from "../../src/cli/check.js";
import { BUILT_POLICY_FILE, PACKAGE_ROOT, parseServiceConfig } from "../../src/config/service-config.js";
import type { CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth.js";
import { createLogger } from "../../src/observability/logger.js";
import { type ReloadEvent, type RunningService, startService } from "../../src/server/service.js";
import { TEST_CHECK_WAIT_SECONDS } from "./service.js";

// Live reload tests: a service whose data file and compiled policy are its own copies in
// a temporary folder, so a test can edit, replace or break them; its log lines are kept.

const OPA = join(PACKAGE_ROOT, ".tools", "bin", "opa");
const CAPABILITIES = join(PACKAGE_ROOT, "build", "capabilities.json");

export interface ReloadableService {
  readonly service: RunningService;
  readonly target: string;
  readonly dir: string;
  readonly dataFile: string;
  readonly bundleFile: string;
  /** Every log line so far, parsed. */
  readonly logs: Array<Record<string, unknown>>;
  check(request: Omit<CheckOptions, "target" | "host"> & { host?: string }): Promise<CheckResponse>;
  /** Writes the data in place (truncate and write, the same inode), as an editor saving does. */
  writeDataInPlace(data: object | string): Promise<void>;
  /** Writes the data beside the file, then renames it over the file, as configuration management does. */
  replaceData(data: object | string): Promise<void>;
  /** Replaces the compiled policy by rename. */
  replaceBundle(bytes: Uint8Array | string): Promise<void>;
  /** Resolves with the next reload outcome for which `filter` holds. */
  nextReload(filter?: (event: ReloadEvent) => boolean): Promise<ReloadEvent>;
  close(): Promise<void>;
}

function text(data: object | string): string {
  return typeof data === "string" ? data : stringify(data);
}

let replacements = 0;

/** A stream for the service's logger that keeps every JSON log line, parsed. */
export function collectLogs(): { logs: Array<Record<string, unknown>>; sink: Writable } {
  const logs: Array<Record<string, unknown>> = [];
  let partial = "";
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      partial += chunk.toString();
      for (let newline = partial.indexOf("\n"); newline !== -1; newline = partial.indexOf("\n")) {
        logs.push(JSON.parse(partial.slice(0, newline)) as Record<string, unknown>);
        partial = partial.slice(newline + 1);
      }
      done();
    },
  });
  return { logs, sink };
}

/**
 * Starts the real service in-process on 127.0.0.1:0 with `data` as its authorization
 * data and a copy of build/policy.wasm as its compiled policy, both in a fresh folder.
 */
export async function startReloadableService(data: object, serviceOverrides: Record<string, unknown> = {}): Promise<ReloadableService> {
  const dir = await mkdtemp(join(tmpdir(), "scitokens-authz-reload-"));
  const dataFile = join(dir, "authz.yaml");
  const bundleFile = join(dir, "policy.wasm");
  await writeFile(dataFile, text(data));
  await copyFile(BUILT_POLICY_FILE, bundleFile);
  const { logs, sink } = collectLogs();
  const keys = { check_wait_seconds: TEST_CHECK_WAIT_SECONDS, ...(serviceOverrides["keys"] as object | undefined) };
  const config = parseServiceConfig(join(dir, "service.yaml"), {
    grpc: { listen: "127.0.0.1:0" },
    policy: { data: dataFile, wasm: bundleFile },
    ...serviceOverrides,
    keys,
  });
  let service: RunningService;
  try {
    service = await startService(config, { logger: createLogger("info", sink) });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const target = `127.0.0.1:${service.port}`;
  const replace = async (file: string, bytes: Uint8Array | string) => {
    const staging = join(dir, `.staging-${++replacements}`);
    await writeFile(staging, bytes);
    await rename(staging, file);
  };
  return {
    service,
    target,
    dir,
    dataFile,
    bundleFile,
    logs,
    check: (request) => sendCheck(target, buildCheckRequest({ host: "storage.example.org", ...request, target })),
    writeDataInPlace: (next) => writeFile(dataFile, text(next)),
    replaceData: (next) => replace(dataFile, text(next)),
    replaceBundle: (bytes) => replace(bundleFile, bytes),
    nextReload: (filter) => service.nextReload(filter),
    async close() {
      await service.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Compiles `rego` with the pinned OPA CLI into a policy.wasm under `dir` and returns its
 * bytes path; `entrypoint` as `opa build -e` takes it.
 */
export async function compilePolicy(dir: string, name: string, rego: string, entrypoint: string): Promise<string> {
  const out = join(dir, `compiled-${name}`);
  await mkdir(out, { recursive: true });
  const source = join(out, "policy.rego");
  await writeFile(source, rego);
  const bundle = join(out, "bundle.tar.gz");
  execFileSync(OPA, ["build", "-t", "wasm", "-e", entrypoint, "--capabilities", CAPABILITIES, "-o", bundle, source]);
  execFileSync("tar", ["-xzf", bundle, "-C", out, "/policy.wasm"], { stdio: ["ignore", "ignore", "ignore"] });
  return join(out, "policy.wasm");
}

/** The revision that answered a Check (its dynamic metadata). */
export function revisionOf(response: CheckResponse): unknown {
  return (response.dynamicMetadata as Record<string, unknown> | undefined)?.["policy_revision"];
}
