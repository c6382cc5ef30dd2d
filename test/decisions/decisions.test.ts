import { readFileSync, readdirSync } from "node:fs";
import { SignJWT, base64url, exportSPKI } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { GrpcCode } from "../../src/envoy/decision-to-response.js";
import type { CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth.js";
import { REASON_CODES } from "../../src/reasons/index.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type TestService, reasonOf, startTestService } from "../helpers/service.js";
import { TEST_AUDIENCE, mintToken } from "../helpers/tokens.js";

// Decision tables (test/decisions/*.yaml): each case gives the token, the request and
// the route, and the expected gRPC status, HTTP status, reason and headers. They run
// through the real gRPC service against real loopback issuers. The format is described
// in test/decisions/FORMAT.md.

const HERE = new URL(".", import.meta.url);

interface TokenSpec {
  issuer?: "A" | "B" | "U" | (string & {});
  key?: "ec" | "rsa" | "ec2" | "ecA2" | "stranger";
  kid?: string | null;
  profile?: "scitokens2" | "wlcg1" | "scitokens1";
  aud?: string | string[] | null;
  scope?: string | null;
  sub?: string | null;
  claims?: Record<string, unknown>;
  header?: Record<string, unknown>;
  special?: "alg-none" | "hmac-public-key" | "not-a-jwt" | "oversize";
}

interface Case {
  name: string;
  section: string;
  token?: TokenSpec | null;
  request: { method?: string; path: string; headers?: Record<string, string>; route?: string; authorization?: string };
  expect: {
    reason: string;
    grpc: keyof typeof GrpcCode;
    http?: number;
    headers?: Record<string, string>;
    absent?: string[];
    removed?: string[];
  };
}

interface TableFile {
  data: string;
  cases: Case[];
}

const tables = readdirSync(HERE)
  .filter((f) => f.endsWith(".yaml"))
  .sort()
  .map((file) => ({ file, table: parse(readFileSync(new URL(file, HERE), "utf8")) as TableFile }));

let keys: Record<NonNullable<TokenSpec["key"]>, TestKey>;
let issuers: Record<"A" | "B" | "U", OidcServer>;
const services = new Map<string, TestService>();

beforeAll(async () => {
  const [ec, rsa, ec2, ecA2, stranger] = await Promise.all([makeKey("ES256"), makeKey("RS256"), makeKey("ES256"), makeKey("ES256"), makeKey("ES256")]);
  keys = { ec: ec!, rsa: rsa!, ec2: ec2!, ecA2: ecA2!, stranger: stranger! };
  issuers = {
    A: await startOidcServer({ keys: [keys.ec, keys.rsa, keys.ecA2], path: "/a" }),
    B: await startOidcServer({ keys: [keys.ec2], path: "/b" }),
    U: await startOidcServer({ keys: [keys.ec], path: "/untrusted" }),
  };
  for (const name of new Set(tables.map((t) => t.table.data))) {
    const text = readFileSync(new URL(`data/${name}.yaml`, HERE), "utf8")
      .replaceAll("${ISSUER_A}", issuers.A.issuer)
      .replaceAll("${ISSUER_B}", issuers.B.issuer);
    services.set(name, await startTestService(parse(text) as object));
  }
});

afterAll(async () => {
  await Promise.all([...services.values()].map((s) => s.close()));
  await Promise.all(Object.values(issuers ?? {}).map((s) => s.close()));
});

/** "now+600" / "now-30" become numbers relative to the current time (seconds). */
function resolveTimes(claims: Record<string, unknown>, now: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(claims)) {
    const m = typeof v === "string" ? /^now([+-]\d+)?$/.exec(v) : null;
    out[k] = m ? now + Number(m[1] ?? 0) : v;
  }
  return out;
}

async function tokenFor(spec: TokenSpec): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const name: string = spec.issuer ?? "A";
  const issuer = name === "A" || name === "B" || name === "U" ? issuers[name as "A" | "B" | "U"].issuer : name;
  switch (spec.special) {
    case "not-a-jwt":
      return "not.a.jwt";
    case "oversize":
      return `${"a".repeat(20_000)}.b.c`;
    case "alg-none": {
      const body = { iss: issuer, aud: TEST_AUDIENCE, scope: "read:/", ver: "scitoken:2.0", iat: now, exp: now + 600 };
      return `${base64url.encode(JSON.stringify({ alg: "none", typ: "JWT" }))}.${base64url.encode(JSON.stringify(body))}.`;
    }
    case "hmac-public-key": {
      const secret = new TextEncoder().encode(await exportSPKI(keys.rsa.publicKey));
      return new SignJWT({ scope: "read:/", ver: "scitoken:2.0", aud: TEST_AUDIENCE })
        .setProtectedHeader({ alg: "HS256", kid: keys.rsa.kid })
        .setIssuer(issuer)
        .setIssuedAt(now)
        .setExpirationTime(now + 600)
        .sign(secret);
    }
    case undefined:
      break;
  }
  const key = keys[spec.key ?? "ec"];
  const extraClaims: Record<string, unknown> = resolveTimes(spec.claims ?? {}, now);
  if (spec.scope === null && !("scope" in extraClaims)) extraClaims["scope"] = undefined;
  if (spec.sub === null && !("sub" in extraClaims)) extraClaims["sub"] = undefined;
  return mintToken({
    privateKey: key.privateKey,
    alg: key.alg,
    ...(spec.kid === null ? {} : { kid: spec.kid ?? (spec.key === "stranger" ? keys.ec.kid : key.kid) }),
    issuer,
    ...(spec.aud === null ? {} : { audience: spec.aud ?? TEST_AUDIENCE }),
    scopes: spec.scope ? spec.scope.split(" ") : [],
    profile: spec.profile ?? "scitokens2",
    ...(spec.sub === null || spec.sub === undefined ? {} : { subject: spec.sub }),
    now: new Date(now * 1000),
    lifetimeSeconds: 600,
    extraClaims,
    ...(spec.header ? { extraHeader: spec.header } : {}),
  });
}

function header(response: CheckResponse, name: string): string | undefined {
  const list = response.okResponse?.headers ?? response.deniedResponse?.headers ?? [];
  return list.find((h) => h.header?.key === name)?.header?.value;
}

const covered = new Set<string>();

// A fault inside the service cannot be caused by authorization data and a request; it is
// covered where a broken policy is loaded (test/attacks/no-grpc-errors.test.ts).
const NOT_REACHABLE_FROM_DATA = new Set<string>(["internal_error"]);

for (const { file, table } of tables) {
  describe(file, () => {
    it.each(table.cases.map((c) => [`${c.section} ${c.name}`, c] as const))("%s", async (_title, c) => {
      const service = services.get(table.data)!;
      const headers: Record<string, string> = { ...(c.request.headers ?? {}) };
      let token: string | undefined;
      if (c.request.authorization !== undefined) headers["authorization"] = c.request.authorization;
      else if (c.token) token = await tokenFor(c.token);
      const before = issuers.U.requests.length;
      const response = await service.check({
        method: c.request.method ?? "GET",
        path: c.request.path,
        headers,
        ...(token !== undefined ? { token } : {}),
        ...(c.request.route !== undefined ? { route: c.request.route } : {}),
      });
      covered.add(c.expect.reason);
      expect(issuers.U.requests.length, "the untrusted issuer must see no traffic").toBe(before);
      expect({ reason: reasonOf(response), grpc: response.status?.code }).toEqual({ reason: c.expect.reason, grpc: GrpcCode[c.expect.grpc] });
      if (c.expect.grpc === "OK") {
        expect(response.deniedResponse).toBeUndefined();
      } else {
        expect(response.deniedResponse?.status?.code).toBe(c.expect.http);
        const body = JSON.parse(response.deniedResponse?.body ?? "{}") as Record<string, unknown>;
        expect(body["reason"]).toBe(c.expect.reason);
        const payload = token?.split(".")[1] ?? "";
        if (payload.length >= 16) expect(JSON.stringify(response)).not.toContain(payload);
      }
      for (const [name, value] of Object.entries(c.expect.headers ?? {})) {
        expect(header(response, name), `header ${name}`).toBe(value.replaceAll("${ISSUER_A}", issuers.A.issuer).replaceAll("${ISSUER_B}", issuers.B.issuer));
      }
      for (const name of c.expect.absent ?? []) expect(header(response, name), `header ${name} must be absent`).toBeUndefined();
      for (const name of c.expect.removed ?? []) expect(response.okResponse?.headersToRemove ?? []).toContain(name);
    });
  });
}

describe("decision tables", () => {
  it("hold at least 150 cases", () => {
    expect(tables.reduce((n, t) => n + t.table.cases.length, 0)).toBeGreaterThanOrEqual(150);
  });

  it("cover every reason code", () => {
    const expected = new Set(tables.flatMap((t) => t.table.cases.map((c) => c.expect.reason)));
    expect([...REASON_CODES].filter((code) => !expected.has(code) && !NOT_REACHABLE_FROM_DATA.has(code))).toEqual([]);
  });

  it("ran every case they declare (each reason seen in a response)", () => {
    // Runs after the tables above (vitest keeps file order): every expected reason was observed.
    const expected = new Set(tables.flatMap((t) => t.table.cases.map((c) => c.expect.reason)));
    expect([...expected].filter((r) => !covered.has(r))).toEqual([]);
  });
});
