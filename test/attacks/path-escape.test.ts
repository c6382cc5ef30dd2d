import { readFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { AuthzData } from "../../src/config/authz-data.js";
import type { PolicyEngine } from "../../src/policy/engine.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type TestService, reasonOf, startTestService } from "../helpers/service.js";
import { TEST_AUDIENCE, mint } from "../helpers/tokens.js";
import { ISSUERS, decide, loadPolicy, runs, tokenWith } from "../properties/harness.js";
import { upstreamReadings, within } from "./upstream-readings.js";

// Issue 6: nothing outside the granted subtree is ever allowed, however an upstream reads
// the path (percent-decoding once or twice, NFKC, `\`, `;params`, Windows trailing dots,
// NUL truncation). A table of known attacks through the real gRPC service, then a property
// over adversarial paths through the service's normalizer and the compiled policy.
// PROPERTY_RUNS_SCALE=40 (npm run test:paths) runs the property on more than 100,000 paths.

interface PathAttack {
  name: string;
  path: string;
  destination?: string;
  expect: string;
}

const attacks = parse(readFileSync(new URL("fixtures/path-attacks.yaml", import.meta.url), "utf8")) as PathAttack[];

describe("known path attacks, through the real gRPC service", () => {
  let key: TestKey;
  let issuer: OidcServer;
  let svc: TestService;
  let token: string;

  beforeAll(async () => {
    key = await makeKey("ES256");
    issuer = await startOidcServer({ keys: [key] });
    svc = await startTestService({ audiences: [TEST_AUDIENCE], issuers: [{ issuer: issuer.issuer, base_path: "/protected" }] });
    token = await mint(key, issuer.issuer, { scopes: ["read:/data", "write:/data"] });
  });

  afterAll(async () => {
    await svc?.close();
    await issuer?.close();
  });

  it.each(attacks.map((a) => [a.name, a] as const))("%s", async (_name, attack) => {
    const response = await svc.check({
      method: attack.destination === undefined ? "GET" : "MOVE",
      path: attack.path,
      token,
      ...(attack.destination === undefined ? {} : { headers: { destination: attack.destination } }),
    });
    expect(reasonOf(response)).toBe(attack.expect);
    // Whatever the table says, an allowed path is read inside the grant by every upstream.
    if (attack.expect === "allowed") {
      for (const reading of upstreamReadings(attack.path)) expect(within("/protected/data", reading), reading).toBe(true);
    }
  });
});

describe("the upstream readings are a real oracle", () => {
  it.each([
    ["full-width solidus", "/protected/data/..%EF%BC%8F..%EF%BC%8Fsecret"],
    ["double encoding", "/protected/data/%252e%252e/secret"],
    ["overlong UTF-8", "/protected/data/%c0%ae%c0%ae/secret"],
    ["path parameter", "/protected/data/..;x/secret"],
    ["backslash", "/protected/data/..%5csecret"],
    ["full-width percent", "/protected/data/%EF%BC%852e%EF%BC%852e/secret"],
  ])("finds the escape in %s", (_name, path) => {
    expect([...upstreamReadings(path)].some((reading) => !within("/protected/data", reading))).toBe(true);
  });
});

// --- the property -------------------------------------------------------------------------

/** Pieces an attacker strings together: separators, dots and percent signs in every spelling. */
const PIECES = [
  "/",
  "//",
  "data",
  "secret",
  "x",
  ".",
  "..",
  "...",
  ". ",
  "%2e",
  "%2E",
  "%2f",
  "%2F",
  "%5c",
  "%25",
  "%252e",
  "%252f",
  "%32",
  "%65",
  "%c0%ae",
  "%c0%af",
  "%e0%80%ae",
  "%c1%5c",
  "\\",
  ";",
  "%3b",
  ";x",
  "%00",
  "\u0000",
  "%20",
  " ",
  "#",
  "?",
  "%23",
  "%3f",
  "％",
  "%EF%BC%85",
  "﹪",
  "／",
  "%EF%BC%8F",
  "＼",
  "%EF%BC%BC",
  "﹨",
  "%EF%B9%A8",
  "．",
  "%EF%BC%8E",
  "‥",
  "%E2%80%A5",
  "…",
  "℀",
  "%E2%84%80",
  "；",
  "é",
  "%C3%A9",
  "Ａ",
  "~",
  "%",
  "%z",
  // full-width hex digits that complete an escape under NFKC (`%２e`), and best-fit slashes
  "２",
  "ｅ",
  "Ｅ",
  "ｆ",
  "%EF%BC%92",
  "%EF%BD%85",
  "%EF%BD%86",
  "∕",
  "%E2%88%95",
  "⁄",
  "∖",
];

const GRANT = "/data";

describe("nothing outside the granted subtree is allowed, under any upstream reading", () => {
  let data: AuthzData;
  let engine: PolicyEngine;

  beforeAll(async () => {
    ({ data, engine } = await loadPolicy());
  });

  const issuer = fc.constantFrom(...ISSUERS);
  const tail = fc.array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 8 }).map((pieces) => pieces.join(""));
  // Mostly starting inside the grant (where an escape would matter), sometimes anywhere.
  const rawPath = (base: string) =>
    fc.oneof({ weight: 4, arbitrary: tail.map((t) => `${base === "/" ? "" : base}${GRANT}/${t}`) }, { weight: 1, arbitrary: tail.map((t) => `/${t}`) });

  it("for GET request paths", () => {
    let allowed = 0;
    fc.assert(
      fc.property(
        issuer.chain((iss) => fc.tuple(fc.constant(iss), rawPath(iss.base))),
        ([iss, path]) => {
          const token = tokenWith(data, iss.iss, [`read:${GRANT}`]);
          const outcome = decide(engine, { method: "GET", rawPath: path }, token);
          if (!outcome.allow) return;
          allowed += 1;
          const subtree = `${iss.base === "/" ? "" : iss.base}${GRANT}`;
          for (const reading of upstreamReadings(path)) expect(within(subtree, reading), `${path} read as ${reading}`).toBe(true);
        },
      ),
      runs(2500),
    );
    expect(allowed, "some generated paths are allowed, so the property is not vacuous").toBeGreaterThan(0);
  });

  it("for MOVE Destination paths", () => {
    fc.assert(
      fc.property(
        issuer.chain((iss) => fc.tuple(fc.constant(iss), rawPath(iss.base))),
        ([iss, destination]) => {
          const token = tokenWith(data, iss.iss, [`write:${GRANT}`]);
          const base = iss.base === "/" ? "" : iss.base;
          const outcome = decide(engine, { method: "MOVE", rawPath: `${base}${GRANT}/f`, destination }, token);
          if (!outcome.allow) return;
          for (const reading of upstreamReadings(destination)) expect(within(`${base}${GRANT}`, reading), `${destination} read as ${reading}`).toBe(true);
        },
      ),
      runs(1000),
    );
  });
});
