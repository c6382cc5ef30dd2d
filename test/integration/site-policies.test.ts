import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { PACKAGE_ROOT } from "../../src/config/service-config.js";
import { DENY_SHAPES } from "../../src/envoy/decision-to-response.js";
import { isReasonCode } from "../../src/reasons/index.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type TestService, reasonOf, responseHeader, startTestService } from "../helpers/service.js";
import { mint } from "../helpers/tokens.js";

// The operator-extension examples of examples/site/ (policies/README.md, "Extending
// the policy"): each is compiled together with the shipped policy by the pinned OPA, and
// its cases.yaml runs through the real service against a real loopback issuer.

const EXAMPLES = join(PACKAGE_ROOT, "examples", "site");
const OPA = join(PACKAGE_ROOT, ".tools", "bin", "opa");
const CAPABILITIES = join(PACKAGE_ROOT, "build", "capabilities.json");

interface SiteCase {
  name: string;
  token?: { scope: string; groups?: string[]; claims?: Record<string, unknown> };
  request: { method?: string; path: string; headers?: Record<string, string> };
  expect: { reason: string; http?: number; headers?: Record<string, string>; removed?: string[] };
}

const examples = (await readdir(EXAMPLES, { withFileTypes: true }))
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();

let dir: string;
let key: TestKey;
let issuer: OidcServer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-site-policies-"));
  key = await makeKey("ES256");
  issuer = await startOidcServer({ keys: [key] });
});

afterAll(async () => {
  await issuer?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Compiles the shipped policy with the example's site Rego, as an operator would. */
function compile(example: string): string {
  const out = join(dir, example);
  execFileSync("mkdir", ["-p", out]);
  const bundle = join(out, "policy.tar.gz");
  const sources = [join(PACKAGE_ROOT, "policies", "authz.rego"), join(EXAMPLES, example, "site.rego")];
  execFileSync(OPA, ["build", "-t", "wasm", "-e", "scitokens/authz/decision", "--capabilities", CAPABILITIES, "-o", bundle, ...sources]);
  execFileSync("tar", ["-xzf", bundle, "-C", out, "/policy.wasm"], { stdio: ["ignore", "ignore", "ignore"] });
  return join(out, "policy.wasm");
}

describe.each(examples)("examples/site/%s", (example) => {
  let svc: TestService;
  let cases: SiteCase[] = [];

  beforeAll(async () => {
    const data = parse((await readFile(join(EXAMPLES, example, "data.yaml"), "utf8")).replaceAll("${ISSUER}", issuer.issuer)) as object;
    cases = parse((await readFile(join(EXAMPLES, example, "cases.yaml"), "utf8")).replaceAll("${ISSUER}", issuer.issuer)) as SiteCase[];
    svc = await startTestService(data, { policy: { wasm: compile(example) } });
  });

  afterAll(async () => {
    await svc?.close();
  });

  it("has cases", () => {
    expect(cases.length).toBeGreaterThan(2);
  });

  it("decides every case as its table says", async () => {
    for (const c of cases) {
      const token = c.token
        ? await mint(key, issuer.issuer, {
            scopes: c.token.scope.split(" "),
            ...(c.token.groups ? { groups: c.token.groups } : {}),
            ...(c.token.claims ? { extraClaims: c.token.claims } : {}),
          })
        : undefined;
      const response = await svc.check({
        method: c.request.method ?? "GET",
        path: c.request.path,
        headers: c.request.headers ?? {},
        ...(token ? { token } : {}),
      });
      expect(reasonOf(response), c.name).toBe(c.expect.reason);
      const http =
        c.expect.http ??
        (isReasonCode(c.expect.reason) && c.expect.reason !== "allowed" && c.expect.reason !== "passthrough" ? DENY_SHAPES[c.expect.reason].http : undefined);
      if (http !== undefined) expect(response.deniedResponse?.status?.code, c.name).toBe(http);
      for (const [name, value] of Object.entries(c.expect.headers ?? {})) expect(responseHeader(response, name), `${c.name}: ${name}`).toBe(value);
      for (const name of c.expect.removed ?? []) expect(response.okResponse?.headersToRemove, `${c.name}: removes ${name}`).toContain(name);
    }
  });
});
