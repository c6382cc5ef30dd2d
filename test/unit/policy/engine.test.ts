import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../../src/config/config-error.js";
import { PACKAGE_ROOT } from "../../../src/config/service-config.js";
import { PolicyEngine, PolicyFault } from "../../../src/policy/engine.js";

// The engine trusts nothing a policy returns: operators edit the Rego, and a mistake there
// must surface as a fault (a gRPC error), never as an allow.

const OPA = join(PACKAGE_ROOT, ".tools", "bin", "opa");
const CAPABILITIES = join(PACKAGE_ROOT, "build", "capabilities.json");
let dir: string;

/** Compiles `decision := <expression>` with the real OPA CLI into a policy.wasm. */
async function compile(name: string, expression: string): Promise<string> {
  const rego = join(dir, `${name}.rego`);
  await writeFile(rego, `package scitokens.authz\n\ndecision := ${expression}\n`);
  const bundle = join(dir, `${name}.tar.gz`);
  execFileSync(OPA, ["build", "-t", "wasm", "-e", "scitokens/authz/decision", "--capabilities", CAPABILITIES, "-o", bundle, rego]);
  const out = join(dir, name);
  execFileSync("mkdir", ["-p", out]);
  execFileSync("tar", ["-xzf", bundle, "-C", out, "/policy.wasm"], { stdio: ["ignore", "ignore", "ignore"] });
  return join(out, "policy.wasm");
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-authz-engine-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("PolicyEngine.evaluate", () => {
  it.each([
    ["a deny with the passthrough reason", `{"allow": false, "reason": "passthrough"}`],
    ["a deny with the allowed reason", `{"allow": false, "reason": "allowed"}`],
    ["an allow with a deny reason", `{"allow": true, "reason": "scope_insufficient"}`],
    ["a deny with a reason only the service knows (an unknown route)", `{"allow": false, "reason": "route_unknown"}`],
    ["a deny with the service's fault reason", `{"allow": false, "reason": "internal_error"}`],
    ["a deny with an unknown reason", `{"allow": false, "reason": "nope"}`],
    ["allow as a string", `{"allow": "true", "reason": "allowed"}`],
    ["not an object", `"allowed"`],
    ["an upstream header value that is not a string", `{"allow": true, "reason": "allowed", "headers": {"x-a": 1}}`],
    ["an upstream header name in upper case", `{"allow": true, "reason": "allowed", "headers": {"X-A": "1"}}`],
    ["a pseudo-header", `{"allow": true, "reason": "allowed", "headers": {":path": "/x"}}`],
    ["remove_headers that is not a list of names", `{"allow": true, "reason": "allowed", "remove_headers": "x-a"}`],
    ["a deny status outside 400-599", `{"allow": false, "reason": "scope_insufficient", "status": 200}`],
    ["a body that is not a string", `{"allow": false, "reason": "scope_insufficient", "body": {"a": 1}}`],
  ])("refuses %s as a fault", async (name, expression) => {
    const engine = await PolicyEngine.load(await compile(name.replaceAll(/[^a-z0-9]+/gi, "-"), expression), {});
    expect(() => engine.evaluate({})).toThrow(PolicyFault);
  });

  it.each([
    [
      "allowed",
      `{"allow": true, "reason": "allowed", "scope": "read:/", "headers": {"x-scitokens-subject": "alice"}, "remove_headers": ["authorization"]}`,
      { allow: true, reason: "allowed", scope: "read:/", headers: { "x-scitokens-subject": "alice" }, removeHeaders: ["authorization"] },
    ],
    ["passthrough", `{"allow": true, "reason": "passthrough"}`, { allow: true, reason: "passthrough", scope: null, headers: {}, removeHeaders: [] }],
    ["denied", `{"allow": false, "reason": "audience_mismatch"}`, { allow: false, reason: "audience_mismatch", responseHeaders: {} }],
    ["denied with a token-level reason", `{"allow": false, "reason": "signature_invalid"}`, { allow: false, reason: "signature_invalid", responseHeaders: {} }],
    [
      "denied with a status, a header and a body",
      `{"allow": false, "reason": "scope_insufficient", "status": 404, "response_headers": {"x-why": "no"}, "body": "not here"}`,
      { allow: false, reason: "scope_insufficient", status: 404, responseHeaders: { "x-why": "no" }, body: "not here" },
    ],
  ])("passes a well-formed %s decision through", async (name, expression, expected) => {
    const engine = await PolicyEngine.load(await compile(`ok-${name.replaceAll(/[^a-z0-9]+/gi, "-")}`, expression), {});
    expect(engine.evaluate({})).toEqual(expected);
  });

  it("refuses a policy without the decision entrypoint at load, naming the file", async () => {
    const rego = join(dir, "other.rego");
    await writeFile(rego, "package other\n\nanswer := 1\n");
    const bundle = join(dir, "other.tar.gz");
    execFileSync(OPA, ["build", "-t", "wasm", "-e", "other/answer", "--capabilities", CAPABILITIES, "-o", bundle, rego]);
    execFileSync("mkdir", ["-p", join(dir, "other")]);
    execFileSync("tar", ["-xzf", bundle, "-C", join(dir, "other"), "/policy.wasm"], { stdio: ["ignore", "ignore", "ignore"] });
    const file = join(dir, "other", "policy.wasm");
    await expect(PolicyEngine.load(file, {})).rejects.toThrow(ConfigError);
    await expect(PolicyEngine.load(file, {})).rejects.toThrow(/expected the entrypoint scitokens\/authz\/decision/);
  });

  it("refuses a file that is not WebAssembly", async () => {
    const file = join(dir, "not.wasm");
    await writeFile(file, "not wasm");
    await expect(PolicyEngine.load(file, {})).rejects.toThrow(/not a loadable OPA WebAssembly policy/);
  });
});
