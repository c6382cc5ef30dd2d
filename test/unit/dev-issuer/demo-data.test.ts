import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { DEMO } from "../../../src/cli/serve.js";
import { parseAuthzData } from "../../../src/config/authz-data.js";
import { parseYamlText } from "../../../src/config/read-yaml.js";
import { DEMO_DATA_FILE } from "../../../src/config/service-config.js";
import { demoDataFor } from "../../../src/dev-issuer/demo-data.js";

// serve --dev-issuer-port: the demo data must trust the development issuer where it runs.

const DEFAULT = DEMO.issuer;
const MOVED = "http://127.0.0.1:41234/dev";

describe("demoDataFor", () => {
  it("makes policies/demo.yaml, which trusts the development issuer at its default address, trust it at its new one, and only it", async () => {
    const text = await readFile(DEMO_DATA_FILE, "utf8");
    const before = parseAuthzData(DEMO_DATA_FILE, parseYamlText(DEMO_DATA_FILE, text));
    const after = parseAuthzData(DEMO_DATA_FILE, parseYamlText(DEMO_DATA_FILE, demoDataFor(text, DEFAULT, MOVED)));
    expect([...before.issuers.keys()]).toEqual([DEFAULT]);
    expect([...after.issuers.keys()]).toEqual([MOVED]);
    expect(after.issuers.get(MOVED)).toEqual({ ...before.issuers.get(DEFAULT), issuer: MOVED });
    expect(after.policyData).toEqual(JSON.parse(JSON.stringify(before.policyData).replaceAll(DEFAULT, MOVED)));
  });

  it("keeps the comments, and changes nothing when the issuer is not in the data", async () => {
    const text = await readFile(DEMO_DATA_FILE, "utf8");
    expect(demoDataFor(text, DEFAULT, MOVED)).toContain("# the development issuer (keys by OIDC discovery)");
    const other = "audiences:\n  - a\nissuers:\n  - issuer: https://issuer.example # kept\n    base_path: /\n";
    expect(demoDataFor(other, DEFAULT, MOVED)).toBe(other);
  });
});
