import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../../src/config/config-error.js";
import { configFileFrom } from "../../../src/config/environment.js";
import { loadServiceConfig } from "../../../src/config/service-config.js";
import { CLI } from "../../helpers/cli-process.js";

// Issue 8, container use: a few settings come from environment variables, replacing the
// file's values; a bad value names its variable.

let dir: string;
let file: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-authz-env-"));
  file = join(dir, "service.yaml");
  await writeFile(file, "grpc: { listen: '127.0.0.1:9292' }\nlog: { level: info }\n");
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("environment overrides", () => {
  it("replace the file's values; unset and empty variables change nothing", async () => {
    const config = await loadServiceConfig(file, {
      SCITOKENS_AUTHZ_LISTEN: "0.0.0.0:9000",
      SCITOKENS_AUTHZ_LOG_LEVEL: "warn",
      SCITOKENS_AUTHZ_KEYS_CACHE_DIR: "/var/cache/scitokens-authz",
      SCITOKENS_AUTHZ_DECISION_LOG: "/var/log/decisions.jsonl",
      SCITOKENS_AUTHZ_HTTP_LISTEN: "0.0.0.0:9090",
      SCITOKENS_AUTHZ_AUTHZ_HTTP_LISTEN: "127.0.0.1:9393",
    });
    expect(config.httpListen).toEqual({ host: "0.0.0.0", port: 9090 });
    expect(config.authzHttp?.listen).toEqual({ host: "127.0.0.1", port: 9393 });
    expect(config.listen).toEqual({ host: "0.0.0.0", port: 9000 });
    expect(config.logLevel).toBe("warn");
    expect(config.keys.cacheDir).toBe("/var/cache/scitokens-authz");
    expect(config.decisionLogFile).toBe("/var/log/decisions.jsonl");
    const plain = await loadServiceConfig(file, { SCITOKENS_AUTHZ_LISTEN: "" });
    expect(plain.listen).toEqual({ host: "127.0.0.1", port: 9292 });
    expect(plain.keys.cacheDir).toBeNull();
  });

  it("name the variable when its value is not valid", async () => {
    const failure = await loadServiceConfig(file, { SCITOKENS_AUTHZ_LISTEN: "9000", SCITOKENS_AUTHZ_LOG_LEVEL: "loud" }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ConfigError);
    expect((failure as ConfigError).problems).toEqual([
      'grpc.listen: expected "host:port" (port 0-65535; IPv6 as "[::1]:9292") or "unix:/path/to.sock", got "9000" (from SCITOKENS_AUTHZ_LISTEN)',
      'log.level: expected one of "fatal", "error", "warn", "info", "debug", "trace", "silent", found "loud" (from SCITOKENS_AUTHZ_LOG_LEVEL)',
    ]);
  });

  it("pass a worker count on as a number, and name the variable when it is not one", async () => {
    expect((await loadServiceConfig(file, { SCITOKENS_AUTHZ_WORKERS: "3" })).workers).toBe(3);
    const failure = await loadServiceConfig(file, { SCITOKENS_AUTHZ_WORKERS: "all" }).catch((e: unknown) => e);
    expect((failure as ConfigError).problems).toEqual([
      'workers: expected the number of worker processes, 1 to 256, found "all" (from SCITOKENS_AUTHZ_WORKERS)',
    ]);
    const zero = await loadServiceConfig(file, { SCITOKENS_AUTHZ_WORKERS: "0" }).catch((e: unknown) => e);
    expect((zero as ConfigError).problems).toEqual([
      "workers: expected the number of worker processes, 1 to 256 (1: a single process), found 0 (from SCITOKENS_AUTHZ_WORKERS)",
    ]);
  });

  it("refuse a relative path", async () => {
    await expect(loadServiceConfig(file, { SCITOKENS_AUTHZ_KEYS_CACHE_DIR: "cache" })).rejects.toThrow(
      'SCITOKENS_AUTHZ_KEYS_CACHE_DIR: expected an absolute path, found "cache"',
    );
  });

  it("SCITOKENS_AUTHZ_CONFIG names the file when --config is not given", async () => {
    expect(configFileFrom(undefined, { SCITOKENS_AUTHZ_CONFIG: "/etc/s.yaml" })).toBe("/etc/s.yaml");
    expect(configFileFrom("other.yaml", { SCITOKENS_AUTHZ_CONFIG: "/etc/s.yaml" })).toBe("other.yaml");
    expect(configFileFrom(undefined, { SCITOKENS_AUTHZ_CONFIG: "" })).toBeUndefined();
    const run = await promisify(execFile)(process.execPath, [CLI, "validate", "--json"], {
      env: { ...process.env, SCITOKENS_AUTHZ_CONFIG: file, SCITOKENS_AUTHZ_LISTEN: "127.0.0.1:0" },
    }).catch((e: { stdout: string }) => e);
    expect(JSON.parse(run.stdout)).toMatchObject({ checked: { config: file } });
  });
});
