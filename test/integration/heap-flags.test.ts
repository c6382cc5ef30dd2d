import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Metadata, type ServiceError, credentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCheckRequest } from "../../src/cli/check.js";
import { AuthorizationClient, type CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth.js";
import { CLI, killAllServed, runCli, spawnServe } from "../helpers/cli-process.js";
import { type TestKey, jwksOf, makeKey } from "../helpers/keys.js";
import { mint } from "../helpers/tokens.js";

// Issue 11, memory: the service config's `memory` settings are V8 flags, which V8 reads
// when a process starts. `serve` runs itself again in the same process (same pid) with
// them, after the node flags it was given; workers inherit them. The real command line in
// a child process; what the kernel says each process was started with (/proc), and a
// Check answered after the restart.

const ISSUER = "https://tokens.example.org";
const AUDIENCE = "https://storage.example.org";
const START_TIMEOUT_MS = 60_000;

let dir: string;
let key: TestKey;
let token: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-heap-flags-"));
  key = await makeKey("ES256", "key-1");
  token = await mint(key, ISSUER, { scopes: ["read:/"] });
  await writeFile(join(dir, "issuer.jwks.json"), JSON.stringify(jwksOf(key)));
  await writeFile(
    join(dir, "data.yaml"),
    JSON.stringify({ audiences: [AUDIENCE], issuers: [{ issuer: ISSUER, base_path: "/data", jwks_file: "issuer.jwks.json" }] }),
  );
});

afterAll(async () => {
  killAllServed();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function configWith(name: string, extra: Record<string, unknown>): Promise<string> {
  const file = join(dir, `${name}.yaml`);
  await writeFile(file, JSON.stringify({ grpc: { listen: "127.0.0.1:0" }, policy: { data: join(dir, "data.yaml") }, workers: 1, ...extra }));
  return file;
}

/** The command line a process runs now, as the kernel has it. */
async function commandLine(pid: number): Promise<string[]> {
  const raw = await readFile(`/proc/${pid}/cmdline`, "utf8");
  return raw.split("\0").slice(0, -1);
}

/** The processes whose parent is `pid`. */
async function childrenOf(pid: number): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    // pid (comm) state ppid …: comm may hold spaces, so read after its closing parenthesis.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid === pid) found.push(Number(entry));
  }
  return found;
}

async function allowedCheck(target: string): Promise<CheckResponse | ServiceError> {
  const client = new AuthorizationClient(target, credentials.createInsecure());
  try {
    return await new Promise((resolve) => {
      const request = buildCheckRequest({ target, host: "storage.example.org", method: "GET", path: "/data/file", token });
      client.check(request, new Metadata(), { deadline: Date.now() + 15_000 }, (error, response) => resolve(error ?? response));
    });
  } finally {
    client.close();
  }
}

describe("serve: the memory settings", () => {
  it(
    "runs again in the same process with the default semi-space, and answers Checks",
    async () => {
      const config = await configWith("default", {});
      const served = spawnServe(["--config", config]);
      const [, port] = await served.waitFor(/"msg":"listening on 127\.0\.0\.1:(\d+)"/);
      const argv = await commandLine(served.child.pid!);
      expect(argv).toEqual([process.execPath, "--max-semi-space-size=8", CLI, "serve", "--config", config]);
      const result = await allowedCheck(`127.0.0.1:${port}`);
      expect(result instanceof Error ? result.message : (result.dynamicMetadata as Record<string, unknown>)["reason"]).toBe("allowed");
      expect(await served.stop()).toBe(0);
    },
    START_TIMEOUT_MS,
  );

  it(
    "gives the configured flags to the primary and to every worker",
    async () => {
      const config = await configWith("workers", { workers: 2, memory: { max_semi_space_mb: 4, heap_growing_percent: 30 } });
      const served = spawnServe(["--config", config]);
      await served.waitFor(/"msg":"listening on 127\.0\.0\.1:\d+"/);
      const flags = ["--max-semi-space-size=4", "--heap-growing-percent=30"];
      expect(await commandLine(served.child.pid!)).toEqual([process.execPath, ...flags, CLI, "serve", "--config", config]);
      const workers = await childrenOf(served.child.pid!);
      expect(workers).toHaveLength(2);
      for (const worker of workers) {
        const argv = await commandLine(worker);
        expect(argv.slice(0, 3)).toEqual([process.execPath, ...flags]);
        expect(argv[3]).toMatch(/worker-main\.js$/);
      }
      expect(await served.stop()).toBe(0);
    },
    START_TIMEOUT_MS,
  );

  it(
    "overrides a semi-space size given to node itself",
    async () => {
      const config = await configWith("node-flag", {});
      const served = spawnServe(["--config", config], { nodeArgs: ["--max-semi-space-size=64"] });
      await served.waitFor(/"msg":"listening on 127\.0\.0\.1:\d+"/);
      expect(await commandLine(served.child.pid!)).toEqual([
        process.execPath,
        "--max-semi-space-size=64",
        "--max-semi-space-size=8",
        CLI,
        "serve",
        "--config",
        config,
      ]);
      expect(await served.stop()).toBe(0);
    },
    START_TIMEOUT_MS,
  );

  it(
    "does not run again over a parent's IPC channel: it warns, says why, and serves with V8's sizing",
    async () => {
      const config = await configWith("ipc", {});
      const served = spawnServe(["--config", config], { ipc: true });
      const [, port] = await served.waitFor(/"msg":"listening on 127\.0\.0\.1:(\d+)"/);
      expect(await commandLine(served.child.pid!)).toEqual([process.execPath, CLI, "serve", "--config", config]);
      const warning = served.lines.map((line) => JSON.parse(line) as Record<string, unknown>).find((line) => line["level"] === 40);
      expect(warning).toMatchObject({
        node_flags: ["--max-semi-space-size=8"],
        reason: "this process has an IPC channel to its parent, which running again would close",
      });
      expect(String(warning?.["msg"])).toContain("memory settings not applied: this process has an IPC channel to its parent");
      const result = await allowedCheck(`127.0.0.1:${port}`);
      expect(result instanceof Error ? result.message : (result.dynamicMetadata as Record<string, unknown>)["reason"]).toBe("allowed");
      expect(await served.stop()).toBe(0);
    },
    START_TIMEOUT_MS,
  );

  it(
    "leaves the heap to V8 with null settings: nothing is run again",
    async () => {
      const config = await configWith("v8-own", { memory: { max_semi_space_mb: null } });
      const served = spawnServe(["--config", config]);
      await served.waitFor(/"msg":"listening on 127\.0\.0\.1:\d+"/);
      expect(await commandLine(served.child.pid!)).toEqual([process.execPath, CLI, "serve", "--config", config]);
      expect(await served.stop()).toBe(0);
    },
    START_TIMEOUT_MS,
  );

  it(
    "refuses a bad setting before running anything again: exit 2 naming the key",
    async () => {
      const config = await configWith("bad", { memory: { max_semi_space_mb: 0 } });
      const { code, stdout, stderr } = await runCli(dir, "serve", "--config", config);
      expect(code).toBe(2);
      expect(stdout).toBe("");
      expect(stderr).toContain("memory.max_semi_space_mb: expected V8's semi-space size in MB, 1 to 1024, or null (V8's own)");
    },
    START_TIMEOUT_MS,
  );
});
