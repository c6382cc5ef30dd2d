import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CLI, type ServedProcess, killAllServed, spawnServe } from "../helpers/cli-process.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { mint } from "../helpers/tokens.js";

// The CLI as an operator runs it: the built dist/cli/main.js in a child process.

const run = promisify(execFile);

let dir: string;
let key: TestKey;
let issuer: OidcServer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-authz-cli-"));
  key = await makeKey("ES256");
  issuer = await startOidcServer({ keys: [key] });
});

afterAll(async () => {
  killAllServed();
  await issuer?.close();
  await rm(dir, { recursive: true, force: true });
});

async function writeConfig(name: string, data: object | string, service: Record<string, unknown> = {}): Promise<string> {
  const dataFile = join(dir, `${name}-data.yaml`);
  await writeFile(dataFile, typeof data === "string" ? data : JSON.stringify(data));
  const configFile = join(dir, `${name}-service.yaml`);
  await writeFile(configFile, JSON.stringify({ grpc: { listen: "127.0.0.1:0" }, policy: { data: dataFile }, ...service }));
  return configFile;
}

describe("scitokens-authz serve --config", () => {
  let served: ServedProcess | undefined;
  afterEach(async () => {
    await served?.stop();
    served = undefined;
  });

  it("logs the bound port, answers Checks there, and exits 0 on SIGTERM", async () => {
    const config = await writeConfig("ok", { audiences: ["https://storage.example.org"], issuers: [{ issuer: issuer.issuer, base_path: "/data" }] });
    served = spawnServe(["--config", config]);
    const [, port] = await served.waitFor(/"msg":"listening on 127\.0\.0\.1:(\d+)"/);
    expect(Number(port)).toBeGreaterThan(0);
    const token = await mint(key, issuer.issuer, { scopes: ["read:/"] });
    const allowed = await run(process.execPath, [CLI, "check", "--target", `127.0.0.1:${port}`, "--token", token, "--path", "/data/x"]);
    expect(allowed.stdout).toMatch(/^ALLOWED {2}reason=allowed/);
    const denied = await run(process.execPath, [CLI, "check", "--target", `127.0.0.1:${port}`, "--path", "/data/x"]).catch(
      (e: { code: number; stdout: string }) => e,
    );
    expect((denied as { code: number }).code).toBe(1);
    expect((denied as { stdout: string }).stdout).toMatch(/DENIED {3}http=401 grpc=16 reason=token_missing/);
    await served.waitFor(/"reason":"token_missing"/);
    expect(served.lines.join("\n")).not.toContain(token.split(".")[1]!);
    expect(await served.stop()).toBe(0);
  });

  it.each([
    {
      name: "a relative base path",
      data: { audiences: [], issuers: [{ issuer: "https://issuer.example", base_path: "data" }] },
      expected: [/-data\.yaml: /, /issuers\[0\]\.base_path: expected an absolute path/],
    },
    {
      name: "a misspelt key",
      data: { audiences: [], issuer: [] },
      expected: [/issuers: required: /, /issuer: unknown key; did you mean "issuers"\?/],
    },
    {
      name: "an HMAC algorithm",
      data: { audiences: [], issuers: [{ issuer: "https://issuer.example", base_path: "/", algorithms: ["HS256"] }] },
      expected: [/issuers\[0\]\.algorithms\[0\]: expected one of RS256/],
    },
    { name: "broken YAML", data: "audiences: [\n", expected: [/YAML syntax/] },
  ])("refuses $name in the data: exit 2 naming the file and the key", async ({ data, expected }) => {
    const config = await writeConfig("bad", data);
    const result = await run(process.execPath, [CLI, "serve", "--config", config]).catch((e: { code: number; stderr: string }) => e);
    expect((result as { code: number }).code).toBe(2);
    const stderr = (result as { stderr: string }).stderr;
    expect(stderr).toContain("configuration error");
    for (const pattern of expected) expect(stderr).toMatch(pattern);
  });

  it("refuses a bad service config: exit 2 naming the file and the key", async () => {
    const file = join(dir, "bad-service.yaml");
    await writeFile(file, "grpc:\n  listen: localhost\ntokens:\n  leeway_seconds: -5\n");
    const result = await run(process.execPath, [CLI, "serve", "--config", file]).catch((e: { code: number; stderr: string }) => e);
    expect((result as { code: number }).code).toBe(2);
    const stderr = (result as { stderr: string }).stderr;
    expect(stderr).toContain(`${file}: 2 problems`);
    expect(stderr).toMatch(/grpc\.listen: expected "host:port"/);
    expect(stderr).toMatch(/tokens\.leeway_seconds: expected the clock-skew leeway in seconds, not negative/);
  });

  it("exits 2 with one line when its port is in use (another process listens there)", async () => {
    const config = await writeConfig("first", { audiences: ["https://storage.example.org"], issuers: [{ issuer: issuer.issuer, base_path: "/data" }] });
    served = spawnServe(["--config", config]);
    const [, port] = await served.waitFor(/"msg":"listening on 127\.0\.0\.1:(\d+)"/);
    const result = await run(process.execPath, [CLI, "serve", "--config", config, "--listen", `127.0.0.1:${port}`]).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((result as { code: number }).code).toBe(2);
    expect((result as { stderr: string }).stderr).toBe(
      `scitokens-authz: configuration error: ${config}: grpc.listen: cannot listen on 127.0.0.1:${port}: the address is in use (another process listens there)\n`,
    );
  });

  it("check without a service to ask: a message and exit 3, not a decision", async () => {
    const config = await writeConfig("gone", { audiences: ["https://storage.example.org"], issuers: [{ issuer: issuer.issuer, base_path: "/data" }] });
    served = spawnServe(["--config", config]);
    const [, port] = await served.waitFor(/"msg":"listening on 127\.0\.0\.1:(\d+)"/);
    expect(await served.stop()).toBe(0);
    const result = await run(process.execPath, [CLI, "check", "--target", `127.0.0.1:${port}`, "--path", "/data/x"]).catch(
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(result).toMatchObject({ code: 3, stdout: "" });
    expect((result as { stderr: string }).stderr).toMatch(
      new RegExp(`^scitokens-authz check: no decision from 127\\.0\\.0\\.1:${port}: UNAVAILABLE \\(.*ECONNREFUSED`),
    );
  });

  it("refuses a missing config file", async () => {
    const result = await run(process.execPath, [CLI, "serve", "--config", join(dir, "nope.yaml")]).catch((e: { code: number; stderr: string }) => e);
    expect((result as { code: number }).code).toBe(2);
    expect((result as { stderr: string }).stderr).toMatch(/nope\.yaml: the file does not exist/);
  });
});

describe("scitokens-authz serve (embedded default)", () => {
  it("prints a token and sample Checks that behave as printed", async () => {
    // On free ports, with the development issuer's files in a temporary folder: the demo
    // then trusts the issuer where it runs, and nothing is written into the checkout.
    const state = join(dir, "demo", "dev-issuer.json");
    const served = spawnServe(["--listen", "127.0.0.1:0", "--dev-issuer-port", "0", "--state", state]);
    try {
      const [, token] = await served.waitFor(/^ {2}export TOKEN=(\S+)$/);
      const [, target] = await served.waitFor(/^scitokens-authz is serving \S+ on (127\.0\.0\.1:\d+) /);
      const [, issuerPort] = await served.waitFor(/^ {2}development issuer: http:\/\/127\.0\.0\.1:(\d+)\/dev /);
      expect(Number(issuerPort)).not.toBe(8484);
      expect(served.lines).toContain(`  policy: policies/authz.rego (build/policy.wasm) with data ${join(dir, "demo", "demo.yaml")}`);
      await served.waitFor(/^Stop with Ctrl-C/);
      const samples = served.lines.filter((l) => l.trim().startsWith("npx scitokens-authz check"));
      expect(samples).toHaveLength(3);
      const outcomes: string[] = [];
      for (const sample of samples) {
        const args = sample
          .trim()
          .replace(/^npx scitokens-authz /, "")
          .split(/\s+/)
          .map((a) => (a === '"$TOKEN"' ? token! : a));
        const result = await run(process.execPath, [CLI, ...args]).catch((e: { code: number; stdout: string }) => e);
        outcomes.push(`${(result as { code?: number }).code ?? 0} ${(result as { stdout: string }).stdout.split("\n")[0]}`);
      }
      expect(outcomes[0]).toMatch(/^0 ALLOWED {2}reason=allowed/);
      expect(outcomes[1]).toMatch(/^1 DENIED {3}http=403 grpc=7 reason=scope_insufficient/);
      expect(outcomes[2]).toMatch(/^1 DENIED {3}http=401 grpc=16 reason=token_missing/);
      // The lines that announce them say the same.
      const text = served.lines.join("\n");
      expect(text).toContain("Denied (403 scope_insufficient)");
      expect(text).toContain("Denied (401 token_missing)");

      expect(text).toContain(`npx scitokens-authz token create --state ${state} --scope`);

      const created = await run(process.execPath, [CLI, "token", "create", "--state", state, "--scope", "storage.create:/data/new", "--profile", "wlcg1"]);
      const minted = created.stdout.trim();
      const put = await run(process.execPath, [CLI, "check", "--target", target!, "--token", minted, "--method", "PUT", "--path", "/protected/data/new/file"]);
      expect(put.stdout).toMatch(/^ALLOWED/);
      expect(put.stdout).toContain("upstream header set: if-none-match: *");

      const foreign = await run(process.execPath, [CLI, "token", "create", "--state", state, "--scope", "read:/", "--issuer", "https://untrusted.example"]);
      const untrusted = await run(process.execPath, [CLI, "check", "--target", target!, "--token", foreign.stdout.trim(), "--path", "/protected/data/x"]).catch(
        (e: { code: number; stdout: string }) => e,
      );
      expect((untrusted as { code: number }).code).toBe(1);
      expect((untrusted as { stdout: string }).stdout).toMatch(/DENIED {3}http=401 grpc=16 reason=issuer_untrusted/);
    } finally {
      expect(await served.stop()).toBe(0);
    }
    const after = await run(process.execPath, [CLI, "token", "create", "--state", state, "--scope", "read:/"]).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((after as { code: number }).code).toBe(1);
    expect((after as { stderr: string }).stderr).toContain("the development issuer is not running");
    // Stopped, it leaves nothing behind: the key and the demo data copy are removed.
    expect(await readdir(join(dir, "demo"))).toEqual([]);
  }, 60_000);

  it.each([
    {
      name: "--dev-issuer-port with --config",
      args: ["--config", "service.yaml", "--dev-issuer-port", "0"],
      expected: /--dev-issuer-port: only for the embedded default/,
    },
    { name: "--state with --config", args: ["--config", "service.yaml", "--state", "x.json"], expected: /--state: only for the embedded default/ },
    {
      name: "a --dev-issuer-port that is not a number",
      args: ["--dev-issuer-port", "http"],
      expected: /--dev-issuer-port: expected a port from 0 to 65535 \(0: any free port\), got "http"/,
    },
    { name: "a --dev-issuer-port above 65535", args: ["--dev-issuer-port", "65536"], expected: /--dev-issuer-port: expected a port from 0 to 65535/ },
  ])("refuses $name: exit 2, before anything listens", async ({ args, expected }) => {
    const result = await run(process.execPath, [CLI, "serve", ...args]).catch((e: { code: number; stderr: string }) => e);
    expect((result as { code: number }).code).toBe(2);
    expect((result as { stderr: string }).stderr).toMatch(expected);
  });
});
