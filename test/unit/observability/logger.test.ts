import { afterEach, describe, expect, it } from "vitest";
import { createLogger, unredacted } from "../../../src/observability/logger.js";
import { makeKey } from "../../helpers/keys.js";
import { startOidcServer } from "../../helpers/oidc-server.js";
import { collectLogs, startReloadableService } from "../../helpers/policy-files.js";
import { TEST_AUDIENCE, mint } from "../../helpers/tokens.js";

// Redaction is a safety net on every log line but the decision line, whose object is
// built from fixed fields that cannot hold a secret (and skips the redaction pass).

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function flushed(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

describe("createLogger", () => {
  it.each([
    ["token", { token: "eyJ.secret" }, { token: "[redacted]" }],
    ["authorization", { authorization: "Bearer eyJ.secret" }, { authorization: "[redacted]" }],
    ["headers.authorization", { headers: { authorization: "Bearer eyJ.secret", host: "h" } }, { headers: { authorization: "[redacted]", host: "h" } }],
    [
      "one level down",
      { request: { token: "eyJ.secret", authorization: "Bearer eyJ.secret" } },
      { request: { token: "[redacted]", authorization: "[redacted]" } },
    ],
  ])("redacts %s", async (_name, object, expected) => {
    const { logs, sink } = collectLogs();
    createLogger("info", sink).child({ component: "x" }).info(object, "line");
    await flushed();
    expect(logs.at(-1)).toMatchObject(expected);
  });

  it("unredacted keeps the logger's bindings and level, and writes its object as given", async () => {
    const { logs, sink } = collectLogs();
    const logger = createLogger("warn", sink).child({ component: "decision", policy_revision: "r1" });
    const lines = unredacted(logger);
    lines.info({ a: 1 }, "below the level");
    lines.warn({ reason: "allowed", iss: "https://issuer.example" }, "decision");
    await flushed();
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({ component: "decision", policy_revision: "r1", reason: "allowed", iss: "https://issuer.example", msg: "decision" });
  });
});

describe("the decision line", () => {
  it("has its fixed fields, and no log line holds the token", async () => {
    const key = await makeKey("ES256", "k1");
    const issuer = await startOidcServer({ keys: [key] });
    cleanups.push(() => issuer.close());
    const svc = await startReloadableService({ audiences: [TEST_AUDIENCE], issuers: [{ issuer: issuer.issuer, base_path: "/" }] });
    cleanups.push(() => svc.close());
    const token = await mint(key, issuer.issuer, { scopes: ["read:/data"] });
    await svc.check({ method: "GET", path: "/data/f", token });
    await svc.check({ method: "PUT", path: "/data/f", token });
    await flushed();
    const decisions = svc.logs.filter((line) => line["msg"] === "decision");
    expect(decisions.map((line) => line["reason"])).toEqual(["allowed", "scope_insufficient"]);
    for (const line of decisions) {
      expect(Object.keys(line).sort()).toEqual(
        [
          "allowed",
          "component",
          "decision_id",
          "duration_us",
          "iss",
          "level",
          "method",
          "msg",
          "path",
          "policy_revision",
          "reason",
          "route",
          "scope",
          "service",
          "sub",
          "time",
        ].sort(),
      );
    }
    expect(JSON.stringify(svc.logs)).not.toContain(token.split(".")[2]);
  });
});
