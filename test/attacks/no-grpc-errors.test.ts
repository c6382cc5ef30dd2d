import { execFileSync } from "node:child_process";
import { type KeyObject, generateKeyPairSync, sign } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Metadata, credentials } from "@grpc/grpc-js";
import fc from "fast-check";
import type { JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { stringify } from "yaml";
import { buildCheckRequest, sendCheck } from "../../src/cli/check.js";
import { BUILT_POLICY_FILE, PACKAGE_ROOT, parseServiceConfig } from "../../src/config/service-config.js";
import { DENY_SHAPES, GrpcCode } from "../../src/envoy/decision-to-response.js";
import { AuthorizationClient, type CheckRequest, type CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth.js";
import { createLogger } from "../../src/observability/logger.js";
import { type DenyReason, REASON_CODES } from "../../src/reasons/index.js";
import { type RunningService, startService } from "../../src/server/service.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { reasonOf } from "../helpers/service.js";
import { TEST_AUDIENCE } from "../helpers/tokens.js";
import { runs } from "../properties/harness.js";

// Issue 6, class 3: no input a client controls may produce a gRPC error (Envoy's
// failure_mode_allow would turn it into an allow), and class 4: a fault of the
// deployment or of the service is a denial too. Everything here goes through the real
// gRPC service, against a real loopback issuer whose key set holds keys of odd types and
// sizes, including an RSA key too short for jose to verify with.

const b64 = (data: string | Buffer) => Buffer.from(data).toString("base64url");

interface SigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: KeyObject;
  readonly jwk: JWK;
}

function keyPair(kid: string, alg: string, type: "rsa" | "ec" | "ed25519", options: object): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync(type as "rsa", options as { modulusLength: number });
  return { kid, alg, privateKey, jwk: { ...(publicKey.export({ format: "jwk" }) as JWK), kid, alg, use: "sig" } };
}

/** Signs `signingInput` as `alg` asks, with whatever key is given (the header may lie). */
function signWith(key: SigningKey, alg: string, signingInput: string): string {
  const data = Buffer.from(signingInput);
  const type = key.privateKey.asymmetricKeyType;
  if (type === "ed25519") return b64(sign(null, data, key.privateKey));
  const hash = /(\d{3})$/.exec(alg)?.[1] ?? "256";
  if (type === "ec") return b64(sign(`sha${hash}`, data, { key: key.privateKey, dsaEncoding: "ieee-p1363" }));
  if (alg.startsWith("PS")) return b64(sign(`sha${hash}`, data, { key: key.privateKey, padding: 6, saltLength: Number(hash) / 8 }));
  return b64(sign(`sha${hash}`, data, key.privateKey));
}

let issuer: OidcServer;
let keys: SigningKey[];
let service: RunningService;
let target: string;
let dir: string;
const logLines: Array<Record<string, unknown>> = [];
let clockMs = Date.now();

function captureLogger() {
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line !== "") logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return createLogger("info", stream);
}

beforeAll(async () => {
  keys = [
    keyPair("ec", "ES256", "ec", { namedCurve: "P-256" }),
    keyPair("rsa", "RS256", "rsa", { modulusLength: 2048 }),
    keyPair("short", "RS256", "rsa", { modulusLength: 1024 }),
    keyPair("p384", "ES384", "ec", { namedCurve: "P-384" }),
    keyPair("ed", "EdDSA", "ed25519", {}),
    keyPair("ps", "PS256", "rsa", { modulusLength: 2048 }),
  ];
  const odd: JWK[] = [
    { ...keys[1]!.jwk, kid: "mismatch", alg: "ES256" }, // an RSA key that claims an EC algorithm
    { ...keys[0]!.jwk, kid: "enc", use: "enc" }, // an encryption key
    { ...keys[0]!.jwk, kid: "dup" }, // two keys under one kid
    { ...keys[1]!.jwk, kid: "dup" },
    { kty: "oct", kid: "oct", k: b64("secret"), alg: "HS256" }, // a symmetric key
    { kty: "EC", kid: "bad-point", crv: "P-256", x: b64(Buffer.alloc(32, 1)), y: b64(Buffer.alloc(32, 2)), alg: "ES256" },
    { kty: "RSA", kid: "tiny", n: b64(Buffer.from([0xc5])), e: "AQAB", alg: "RS256" },
    { kty: "OKP", kid: "x448", crv: "X448", x: b64(Buffer.alloc(56, 3)) },
  ];
  issuer = await startOidcServer({ keys: [] });
  issuer.setKeys({ keys: [...keys.map((k) => k.jwk), ...odd] });
  dir = await mkdtemp(join(tmpdir(), "scitokens-no-grpc-errors-"));
  const dataFile = join(dir, "data.yaml");
  await writeFile(
    dataFile,
    stringify({
      audiences: [TEST_AUDIENCE],
      issuers: [{ issuer: issuer.issuer, base_path: "/", algorithms: ["RS256", "ES256", "ES384", "EdDSA", "PS256"] }],
      routes: { webdav: {} },
    }),
  );
  const config = parseServiceConfig(join(dir, "service.yaml"), {
    grpc: { listen: "127.0.0.1:0" },
    policy: { data: dataFile, wasm: BUILT_POLICY_FILE },
  });
  service = await startService(config, { logger: captureLogger(), now: () => clockMs });
  target = `127.0.0.1:${service.port}`;
});

afterAll(async () => {
  await service?.close();
  await issuer?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Asserts the answer is a decision with a documented reason and the status that reason has. */
function expectDocumented(response: CheckResponse): string {
  const reason = reasonOf(response);
  expect(REASON_CODES).toContain(reason);
  if (reason === "allowed" || reason === "passthrough") {
    expect(response.status?.code).toBe(GrpcCode.OK);
    expect(response.deniedResponse).toBeUndefined();
  } else {
    const shape = DENY_SHAPES[reason as DenyReason];
    expect({ grpc: response.status?.code, http: response.deniedResponse?.status?.code }).toEqual({ grpc: shape.grpc, http: shape.http });
  }
  return reason as string;
}

function now(): number {
  return Math.floor(clockMs / 1000);
}

function compact(header: Record<string, unknown>, payload: Record<string, unknown>, signer: SigningKey | null): string {
  const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(payload))}`;
  return `${input}.${signer ? signWith(signer, String(header["alg"]), input) : ""}`;
}

describe("a token whose kid names an RSA key shorter than 2048 bits", () => {
  it("is 401 key_not_found: the key was left out when the set was loaded", async () => {
    const short = keys.find((k) => k.kid === "short")!;
    const token = compact(
      { alg: "RS256", kid: "short" },
      { iss: issuer.issuer, aud: TEST_AUDIENCE, scope: "read:/", ver: "scitoken:2.0", iat: now(), exp: now() + 600 },
      short,
    );
    const response = await sendCheck(target, buildCheckRequest({ target, host: "storage.example.org", method: "GET", path: "/x", token }));
    expect(expectDocumented(response)).toBe("key_not_found");
  });

  it("is refused for each odd key in the set, never a gRPC error", async () => {
    for (const kid of ["mismatch", "enc", "oct", "bad-point", "tiny", "x448"]) {
      for (const alg of ["RS256", "ES256", "EdDSA"]) {
        const signer = keys.find((k) => k.alg === alg) ?? keys[0]!;
        const token = compact({ alg, kid }, { iss: issuer.issuer, aud: TEST_AUDIENCE, scope: "read:/", iat: now(), exp: now() + 600 }, signer);
        const response = await sendCheck(target, buildCheckRequest({ target, host: "storage.example.org", method: "GET", path: "/x", token }));
        expect(["key_not_found", "signature_invalid", "alg_not_allowed"], `kid ${kid}, alg ${alg}`).toContain(expectDocumented(response));
      }
    }
  });
});

/** A CheckRequest whose headers arrive as Envoy's raw `header_map` (one entry per header line). */
function withHeaderMap(request: CheckRequest, entries: Array<[string, string | Buffer]>): CheckRequest {
  const http = request.attributes!.request!.http!;
  const pseudo = Object.entries(http.headers).filter(([name]) => name.startsWith(":"));
  return {
    ...request,
    attributes: {
      ...request.attributes!,
      request: {
        ...request.attributes!.request!,
        http: {
          ...http,
          headers: {},
          headerMap: {
            headers: [...pseudo, ...entries].map(([key, value]) =>
              typeof value === "string" ? { key, value, rawValue: Buffer.alloc(0) } : { key, value: "", rawValue: value },
            ),
          },
        },
      },
    },
  };
}

describe("repeated single-valued headers delivered as separate header_map entries", () => {
  const valid = () =>
    compact(
      { alg: "ES256", kid: "ec" },
      { iss: issuer.issuer, aud: TEST_AUDIENCE, scope: "write:/a", ver: "scitoken:2.0", iat: now(), exp: now() + 600 },
      keys[0]!,
    );
  const base = (method: string) => buildCheckRequest({ target, host: "storage.example.org", method, path: "/a/f" });

  it.each<[string, string, (token: string) => Array<[string, string | Buffer]>]>([
    [
      "two Destination headers, the second outside the grant",
      "MOVE",
      (t) => [
        ["authorization", `Bearer ${t}`],
        ["destination", "/a/g"],
        ["destination", "/b/g"],
      ],
    ],
    [
      "two Destination headers, the second on another host",
      "COPY",
      (t) => [
        ["authorization", `Bearer ${t}`],
        ["Destination", "/a/g"],
        ["destination", "https://evil.example/x"],
      ],
    ],
    [
      "two Authorization headers",
      "PUT",
      (t) => [
        ["authorization", `Bearer ${t}`],
        ["Authorization", `Bearer ${t}`],
      ],
    ],
    [
      "two If-None-Match headers",
      "PUT",
      (t) => [
        ["authorization", `Bearer ${t}`],
        ["if-none-match", "*"],
        ["if-none-match", '"etag"'],
      ],
    ],
    [
      "two Authorization headers as raw bytes",
      "PUT",
      (t) => [
        ["authorization", Buffer.from(`Bearer ${t}`)],
        ["authorization", Buffer.from("Basic YTpi")],
      ],
    ],
  ])("%s: 400 request_malformed", async (_name, method, headers) => {
    const response = await sendCheck(target, withHeaderMap(base(method), headers(valid())));
    expect(expectDocumented(response)).toBe("request_malformed");
    expect(response.deniedResponse?.headers.some((h) => h.header?.key === "www-authenticate")).toBe(false);
  });

  it("a header in both headers and header_map counts as two: 400 request_malformed", async () => {
    const token = valid();
    const request = withHeaderMap(base("MOVE"), [
      ["authorization", `Bearer ${token}`],
      ["destination", "/a/g"],
    ]);
    request.attributes!.request!.http!.headers = { destination: "/b/g" };
    expect(expectDocumented(await sendCheck(target, request))).toBe("request_malformed");
  });

  it("one of each is fine (the MOVE within the grant is allowed)", async () => {
    const token = valid();
    const response = await sendCheck(
      target,
      withHeaderMap(base("MOVE"), [
        ["authorization", `Bearer ${token}`],
        ["destination", "/a/g"],
        ["if-none-match", "*"],
      ]),
    );
    expect(expectDocumented(response)).toBe("allowed");
  });
});

describe("faults of the deployment or the service are denials", () => {
  it("a CheckRequest of 2 MiB (Envoy forwarding large headers or a body) gets a decision, not RESOURCE_EXHAUSTED", async () => {
    const request = buildCheckRequest({
      target,
      host: "storage.example.org",
      method: "PUT",
      path: "/x",
      headers: { authorization: `Bearer ${"a".repeat(2 * 1024 * 1024)}` },
    });
    expect(expectDocumented(await sendCheck(target, request))).toBe("token_too_large");
  });

  it("a denial's log detail quoting the client (a 5,000-character crit name) is kept short", async () => {
    const name = `p${"x".repeat(5000)}`;
    const token = compact(
      { alg: "ES256", kid: "ec", crit: [name], [name]: 1 },
      { iss: issuer.issuer, aud: TEST_AUDIENCE, scope: "read:/", iat: now(), exp: now() + 600 },
      keys[0]!,
    );
    const response = await sendCheck(target, buildCheckRequest({ target, host: "storage.example.org", method: "GET", path: "/x", token }));
    const id = (response.dynamicMetadata as Record<string, unknown>)["decision_id"];
    expect(expectDocumented(response)).toBe("token_malformed");
    await new Promise((resolve) => setImmediate(resolve));
    const line = logLines.find((l) => l["decision_id"] === id);
    expect(String(line?.["detail"]).length).toBeLessThanOrEqual(201);
    expect(JSON.stringify(line)).not.toContain("x".repeat(300));
  });

  it("a CheckRequest without HTTP attributes is 400 request_malformed", async () => {
    const response = await sendCheck(target, { attributes: undefined });
    expect(expectDocumented(response)).toBe("request_malformed");
  });

  it("an unknown route is denied on every request but logged once a minute per name", async () => {
    const errorsFor = (route: string) => logLines.filter((l) => l["level"] === 50 && l["route"] === route);
    const send = (route: string) => sendCheck(target, buildCheckRequest({ target, host: "storage.example.org", method: "GET", path: "/x", route }));
    for (let i = 0; i < 5; i++) expect(expectDocumented(await send("webdva"))).toBe("route_unknown");
    for (let i = 0; i < 3; i++) expect(expectDocumented(await send("dqsgedb"))).toBe("route_unknown");
    await new Promise((resolve) => setImmediate(resolve)); // let pino's stream deliver the lines
    expect(errorsFor("webdva")).toHaveLength(1);
    expect(errorsFor("dqsgedb")).toHaveLength(1);
    clockMs += 61_000;
    expect(expectDocumented(await send("webdva"))).toBe("route_unknown");
    await new Promise((resolve) => setImmediate(resolve));
    expect(errorsFor("webdva").map((l) => l["suppressed_since_last"])).toEqual([0, 4]);
    clockMs -= 61_000;
  });

  it("a policy answer outside the contract is 500 internal_error, logged, never an allow", async () => {
    const policyDir = join(dir, "broken-policy");
    await mkdir(policyDir, { recursive: true });
    const rego = join(policyDir, "broken.rego");
    // The mistake an operator might make, on one path only (so that the start-up check,
    // which evaluates other inputs, lets it load): an allow with a reason the contract
    // does not know.
    await writeFile(
      rego,
      'package scitokens.authz\n\ndefault decision := {"allow": false, "reason": "scope_insufficient"}\n\ndecision := {"allow": true, "reason": "ok"} if input.path == "/broken"\n',
    );
    const bundle = join(policyDir, "bundle.tar.gz");
    const opa = join(PACKAGE_ROOT, ".tools", "bin", "opa");
    execFileSync(opa, [
      "build",
      "-t",
      "wasm",
      "-e",
      "scitokens/authz/decision",
      "--capabilities",
      join(PACKAGE_ROOT, "build", "capabilities.json"),
      "-o",
      bundle,
      rego,
    ]);
    execFileSync("tar", ["-xzf", bundle, "-C", policyDir, "/policy.wasm"]);
    const lines: Array<Record<string, unknown>> = [];
    const stream = new Writable({
      write(chunk: Buffer, _e, done) {
        for (const line of chunk.toString("utf8").split("\n")) if (line !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const config = parseServiceConfig(join(dir, "broken.yaml"), {
      grpc: { listen: "127.0.0.1:0" },
      policy: { data: join(dir, "data.yaml"), wasm: join(policyDir, "policy.wasm") },
    });
    const broken = await startService(config, { logger: createLogger("info", stream) });
    try {
      const brokenTarget = `127.0.0.1:${broken.port}`;
      const token = compact(
        { alg: "ES256", kid: "ec" },
        { iss: issuer.issuer, aud: TEST_AUDIENCE, scope: "read:/", ver: "scitoken:2.0", iat: now(), exp: now() + 600 },
        keys[0]!,
      );
      const response = await sendCheck(
        brokenTarget,
        buildCheckRequest({ target: brokenTarget, host: "storage.example.org", method: "GET", path: "/broken", token }),
      );
      expect(expectDocumented(response)).toBe("internal_error");
      expect(response.deniedResponse?.status?.code).toBe(500);
      await new Promise((resolve) => setImmediate(resolve));
      const fault = lines.find((l) => l["level"] === 50 && String(l["msg"]).includes("internal_error"));
      expect((fault?.["err"] as { message?: string } | undefined)?.message).toContain("the policy returned allow=true");
      expect(JSON.stringify(lines)).not.toContain(token);
    } finally {
      await broken.close();
    }
  });
});

// --- the property ------------------------------------------------------------------------

const METHODS = ["GET", "HEAD", "PUT", "DELETE", "MOVE", "COPY", "OPTIONS", "PROPFIND", "MKCOL", "TRACE", "", "get", "G\u0000T", "ÄÖ"];
const PATH_PIECES = [
  "/",
  "//",
  "a",
  "data",
  ".",
  "..",
  "%2e",
  "%2F",
  "%5c",
  "%",
  "%zz",
  "%00",
  "%c0%ae",
  "%EF%BC%8F",
  "／",
  "#",
  "?",
  ";",
  "\\",
  "é",
  "\u0000",
  "\ud800",
  " ",
  "~",
  "%25",
];
const ALGS = ["RS256", "ES256", "ES384", "EdDSA", "PS256", "HS256", "none", "None", "RS1", "", "ES256K"];
const KIDS: unknown[] = [
  "ec",
  "rsa",
  "short",
  "p384",
  "ed",
  "ps",
  "mismatch",
  "enc",
  "dup",
  "oct",
  "bad-point",
  "tiny",
  "x448",
  "nope",
  undefined,
  5,
  ["ec"],
  { kid: "ec" },
  "",
];
const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const claimValue = fc.oneof(
  fc.constant(undefined),
  fc.integer(),
  fc.double(),
  fc.string(),
  fc.string({ unit: "binary", maxLength: 8 }),
  fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 }),
  fc.constant(null),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 2 }),
);

const scopeString = fc
  .array(fc.oneof(fc.constantFrom("read", "write", "storage.read", "storage.create", "dqsegdb.read", "compute.create"), fc.string({ maxLength: 4 })), {
    maxLength: 3,
  })
  .chain((authz) =>
    fc.tuple(...authz.map((a) => fc.array(fc.constantFrom(...PATH_PIECES), { maxLength: 4 }).map((p) => (p.length > 0 ? `${a}:${p.join("")}` : a)))),
  )
  .map((entries) => entries.join(" "));

/** Mostly `usual`, sometimes anything: so that many requests get deep into the service. */
const usually = <T>(usual: T, other: fc.Arbitrary<unknown>) => fc.oneof({ arbitrary: fc.constant(usual), weight: 12 }, { arbitrary: other, weight: 1 });

/** A token signed by a real key (any of them, whatever the header claims), or bytes. */
const token: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .record({
        signer: fc.nat({ max: 5 }),
        alg: usually("KEY", fc.constantFrom(...ALGS)),
        kid: usually("KEY", fc.constantFrom(...KIDS)),
        iss: usually("ISSUER", fc.oneof(fc.constant("https://elsewhere.example"), claimValue)),
        aud: usually(TEST_AUDIENCE, fc.oneof(fc.constant("ANY"), claimValue)),
        scope: usually("read:/ write:/", fc.oneof(scopeString, claimValue)),
        ver: usually("scitoken:2.0", fc.constantFrom("scitokens:1.0", 1, "bogus", undefined)),
        wlcgVer: usually(undefined, fc.constantFrom("1.0", "2.0", 1)),
        iat: usually(0, fc.oneof(fc.integer({ min: -1000, max: 1000 }), claimValue)),
        exp: usually(600, fc.oneof(fc.integer({ min: -1000, max: 100_000 }), claimValue)),
        nbf: usually(undefined, fc.integer({ min: -1000, max: 1000 })),
        groups: usually(undefined, claimValue),
        sub: usually("alice", claimValue),
        crit: usually(undefined, fc.constantFrom(["exp"], [], ["b64"], "x")),
        b64: usually(undefined, fc.constantFrom(false, true)),
        mutate: fc.constantFrom("none", "none", "none", "pad", "flip", "truncate", "swap"),
      })
      .map((t) => {
        const signer = keys[t.signer]!;
        const header: Record<string, unknown> = {
          alg: t.alg === "KEY" ? signer.alg : t.alg,
          kid: t.kid === "KEY" ? signer.kid : t.kid,
          crit: t.crit,
          b64: t.b64,
        };
        const n = now();
        const payload: Record<string, unknown> = {
          iss: t.iss === "ISSUER" ? issuer.issuer : t.iss,
          aud: t.aud,
          scope: t.scope,
          ver: t.ver,
          "wlcg.ver": t.wlcgVer,
          iat: typeof t.iat === "number" ? n + t.iat : t.iat,
          exp: typeof t.exp === "number" ? n + t.exp : t.exp,
          nbf: typeof t.nbf === "number" ? n + t.nbf : t.nbf,
          "wlcg.groups": t.groups,
          sub: t.sub,
        };
        const jws = compact(header, payload, signer);
        switch (t.mutate) {
          case "pad":
            return `${jws}==`;
          case "flip":
            return jws.slice(0, -1) + (jws.endsWith("A") ? "B" : "A");
          case "truncate":
            return jws.slice(0, Math.max(1, jws.length - 7));
          case "swap":
            return jws.split(".").reverse().join(".");
          default:
            return jws;
        }
      }),
  },
  fc.array(fc.string({ unit: fc.constantFrom(...B64URL, "=", "+", "/", "~"), maxLength: 40 }), { minLength: 1, maxLength: 6 }).map((parts) => parts.join(".")),
  fc.string({ unit: "binary", maxLength: 60 }),
);

const authorization = fc.oneof(
  { weight: 6, arbitrary: token.map((t) => `Bearer ${t}`) },
  { weight: 1, arbitrary: token.map((t) => `bearer  ${t} `) },
  { weight: 1, arbitrary: fc.tuple(token, token).map(([a, b]) => `Bearer ${a}, Bearer ${b}`) },
  { weight: 1, arbitrary: fc.constantFrom("Basic YTpi", "Bearer", "Bearer ", "Digest a=b, c=d", "Bearer a.b.c, Basic x") },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 30 }) },
);

const headerValue = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 10 }),
  fc.constantFrom("/a/g", "/a/g,/b/g", "https://evil.example/x", "*", "/a#/../x", "//x/y"),
);

const request = fc.record({
  method: usually("GET", fc.constantFrom(...METHODS)) as fc.Arbitrary<string>,
  path: usually(
    "/a/f",
    fc.array(fc.constantFrom(...PATH_PIECES), { maxLength: 10 }).map((p) => p.join("")),
  ) as fc.Arbitrary<string>,
  authorization: fc.option(authorization, { nil: undefined, freq: 8 }),
  destination: usually(undefined, headerValue) as fc.Arbitrary<string | undefined>,
  ifNoneMatch: usually(undefined, headerValue) as fc.Arbitrary<string | undefined>,
  extra: fc.dictionary(fc.constantFrom("origin", "access-control-request-method", "x-scitokens-subject", "x_scitokens_groups", "cookie", "host"), headerValue, {
    maxKeys: 3,
  }),
  route: usually(undefined, fc.constantFrom("webdav", "nope", "")) as fc.Arbitrary<string | undefined>,
  rawMap: fc.boolean(),
  repeat: usually(undefined, fc.constantFrom("authorization", "destination", "if-none-match")) as fc.Arbitrary<string | undefined>,
  invalidUtf8: usually(false, fc.constant(true)) as fc.Arbitrary<boolean>,
  noAttributes: usually(false, fc.constant(true)) as fc.Arbitrary<boolean>,
});

/** One Check on a client kept open; a gRPC error rejects (and fails the property). */
function checkOn(client: AuthorizationClient, request: CheckRequest): Promise<CheckResponse> {
  return new Promise((resolve, reject) => {
    client.check(request, new Metadata(), { deadline: Date.now() + 10_000 }, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

describe("random CheckRequests, random token bytes, odd keys in the key set", () => {
  it("always get a decision with a documented reason and status, never a gRPC error or internal_error", { timeout: 120_000 }, async () => {
    const seen = new Map<string, number>();
    const client = new AuthorizationClient(target, credentials.createInsecure());
    onTestFinished(() => client.close());
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const headers: Record<string, string> = { ...r.extra };
        if (r.authorization !== undefined) headers["authorization"] = r.authorization;
        if (r.destination !== undefined) headers["destination"] = r.destination;
        if (r.ifNoneMatch !== undefined) headers["if-none-match"] = r.ifNoneMatch;
        let check: CheckRequest = buildCheckRequest({
          target,
          host: "storage.example.org",
          method: r.method,
          path: r.path,
          headers,
          ...(r.route !== undefined ? { route: r.route } : {}),
        });
        if (r.rawMap) {
          const entries: Array<[string, string | Buffer]> = Object.entries(headers);
          if (r.repeat !== undefined) entries.push([r.repeat, headers[r.repeat] ?? "x"]);
          if (r.invalidUtf8) entries.push(["authorization", Buffer.from([0x42, 0x65, 0xff, 0xfe, 0x20, 0x61])]);
          check = withHeaderMap(check, entries);
        }
        if (r.noAttributes) check = { attributes: undefined };
        const response = await checkOn(client, check);
        const reason = expectDocumented(response);
        expect(reason).not.toBe("internal_error");
        if (response.status?.code === 13) expect(reason).toBe("route_unknown");
        const bearer = /^bearer\s+(\S{16,})/i.exec(r.authorization ?? "")?.[1];
        if (bearer !== undefined) expect(JSON.stringify(response)).not.toContain(bearer);
        seen.set(reason, (seen.get(reason) ?? 0) + 1);
      }),
      runs(400),
    );
    // The generator reaches deep into the service, not only the first checks.
    for (const reason of ["allowed", "path_invalid", "request_malformed", "token_malformed", "key_not_found", "signature_invalid", "route_unknown"]) {
      expect(seen.get(reason) ?? 0, `reason ${reason} reached (seen: ${JSON.stringify([...seen])})`).toBeGreaterThan(0);
    }
    expect(logLines.filter((l) => String(l["msg"]).includes("internal_error"))).toEqual([]);
  });
});
