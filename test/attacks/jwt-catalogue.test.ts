import { KeyObject, X509Certificate, createHash, generateKeyPairSync, randomUUID, type webcrypto } from "node:crypto";
import type { CryptoKey, JWK } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type TestService, startTestService } from "../helpers/service.js";
import { TEST_AUDIENCE } from "../helpers/tokens.js";
import { type ExpectedDeny, expectAllowed, expectDenied, forbidden, unauthenticated } from "../integration/expect-decision.js";
import {
  P256_ORDER,
  b64u,
  compact,
  es256,
  es256Der,
  forge,
  hmac,
  jsonText,
  membersOf,
  negateModOrder,
  rs256,
  segment,
  segmentsOf,
  withPadding,
  withStandardAlphabet,
  withTrailingBitsSet,
} from "./forge.js";
import { selfSignedP256Certificate } from "./self-signed-cert.js";

// A catalogue of JWT attacks (RFC 8725 and the usual list) through the real gRPC service,
// with real loopback issuers and real keys. Every token is built by hand (./forge.ts) so
// that each byte is the attack's, and every case names the reason code the service must
// answer with: client input is always a CheckResponse with a documented reason, never a
// gRPC error and never `internal_error`. After every case, the attacker's server has seen
// no request and each trusted issuer only requests for its metadata and its JWKS.
//
// Decisions recorded here where SEMANTICS is silent:
// - Duplicate JSON members: the service reads the lexically last one, in the header
//   and in the claims, before and after verification alike (RFC 7515 §5.2 step 4,
//   RFC 7519 §4 allow that instead of rejecting). So no reading is attacker-favourable:
//   the member that decides trust is the one that decides the key and the grant.
// - `cty: JWT` is advisory (RFC 7515 §4.1.10): the service never unwraps a nested token,
//   so a token whose payload is another JWT is `token_malformed` (its payload is no
//   claims object), and one whose payload is a claims object is read as those claims.
// - `b64` is understood (jose implements RFC 7797) but only honoured when named in
//   `crit`, as RFC 7797 §6 requires; unencoded payloads are never claims in a compact
//   token, so `crit: [b64]` with `b64: false` is `token_malformed`, and `b64: true` (the
//   default) is harmless.
// - ECDSA signatures are malleable, (r, n−s) verifies as well as (r, s): it is the
//   issuer's signature over the same claims, so it is allowed.
// - A claim nested 100 000 levels deep that the service does not read is ignored like
//   any unknown claim (SEMANTICS §1); in a claim it reads, it is `claim_invalid`.

let ec: TestKey; // issuer A's ES256 key
let rsa: TestKey; // issuer A's RS256 key
let ecB: TestKey; // issuer B's only key
let ecW: TestKey; // the weak-key issuer's ES256 key
let evil: TestKey; // the attacker's key
let weakRsa: { kid: string; privateKey: KeyObject; publicJwk: JWK }; // 1024 bits
let evilCert: Buffer; // a real self-signed certificate of the attacker's key

let issuer: OidcServer; // A: ES256 + RS256
let issuerB: OidcServer; // B: one ES256 key
let weakIssuer: OidcServer; // W: a 1024-bit RSA key and an ES256 key
let attacker: OidcServer; // publishes `evil` under its own kid and under A's; never contacted
let svc: TestService; // default limits (tokens.max_bytes 16 KiB)
let roomy: TestService; // tokens.max_bytes 512 KiB, to reach the parser with huge JSON

const ROOMY_MAX_BYTES = 512 * 1024;

beforeAll(async () => {
  [ec, rsa, ecB, ecW, evil] = await Promise.all([
    makeKey("ES256", "a-es256"),
    makeKey("RS256", "a-rs256"),
    makeKey("ES256", "b-es256"),
    makeKey("ES256", "w-es256"),
    makeKey("ES256", "evil-es256"),
  ]);
  const weak = generateKeyPairSync("rsa", { modulusLength: 1024 });
  weakRsa = { kid: "w-rsa-1024", privateKey: weak.privateKey, publicJwk: { ...weak.publicKey.export({ format: "jwk" }), use: "sig" } };
  evilCert = selfSignedP256Certificate(keyObject(evil.privateKey), keyObject(evil.publicKey), "attacker.example");
  expect(new X509Certificate(evilCert).verify(keyObject(evil.publicKey))).toBe(true);

  [issuer, issuerB, weakIssuer, attacker] = await Promise.all([
    startOidcServer({ keys: [ec, rsa] }),
    startOidcServer({ keys: [ecB] }),
    startOidcServer({ keys: [{ alg: "RS256", kid: weakRsa.kid, publicJwk: weakRsa.publicJwk }, ecW] }),
    startOidcServer({ keys: [evil, { ...evil, kid: ec.kid }] }),
  ]);
  const trusted = [issuer, issuerB, weakIssuer].map((server) => ({ issuer: server.issuer, base_path: "/" }));
  // An unknown kid makes the service refetch and wait; on a loaded 2-core machine a
  // loopback fetch may outlast the default 150 ms wait, which would be key_unavailable.
  const keys = { check_wait_seconds: 5 };
  [svc, roomy] = await Promise.all([
    startTestService({ audiences: [TEST_AUDIENCE], issuers: trusted }, { keys }),
    startTestService({ audiences: [TEST_AUDIENCE], issuers: [{ issuer: issuer.issuer, base_path: "/" }] }, { keys, tokens: { max_bytes: ROOMY_MAX_BYTES } }),
  ]);
});

afterAll(async () => {
  await Promise.all([svc?.close(), roomy?.close()]);
  await Promise.all([issuer, issuerB, weakIssuer, attacker].map((server) => server?.close()));
});

// The service runs in this process: a token that polluted Object.prototype would show here.
const PROTOTYPE_MEMBERS = Object.getOwnPropertyNames(Object.prototype).sort();

afterEach(() => {
  expect(Object.getOwnPropertyNames(Object.prototype).sort(), "Object.prototype").toEqual(PROTOTYPE_MEMBERS);
  expect(attacker.requests, "requests the attacker's server received").toEqual([]);
  for (const server of [issuer, issuerB, weakIssuer]) {
    const expected = new Set([new URL(server.jwksUri).pathname, new URL(`${server.issuer}/.well-known/openid-configuration`).pathname]);
    expect(
      server.requests.filter((target) => !expected.has(target)),
      `unexpected requests to ${server.issuer}`,
    ).toEqual([]);
  }
});

function keyObject(key: CryptoKey | KeyObject): KeyObject {
  return key instanceof KeyObject ? key : KeyObject.from(key as unknown as webcrypto.CryptoKey);
}

// ---------------------------------------------------------------------------------------
// Building tokens

const nowSeconds = () => Math.floor(Date.now() / 1000);

function withoutUndefined(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined));
}

/** A valid SciTokens 2 claim set of `iss` granting read:/; `undefined` removes a claim. */
function claims(overrides: Record<string, unknown> = {}, iss: string = issuer.issuer): Record<string, unknown> {
  const iat = nowSeconds();
  return withoutUndefined({
    ver: "scitoken:2.0",
    iss,
    sub: "catalogue",
    aud: TEST_AUDIENCE,
    scope: "read:/",
    iat,
    exp: iat + 600,
    jti: randomUUID(),
    ...overrides,
  });
}

/** An ES256 header naming issuer A's key; `undefined` removes a parameter. */
const header = (overrides: Record<string, unknown> = {}) => withoutUndefined({ alg: "ES256", typ: "JWT", kid: ec.kid, ...overrides });

/** Signed by issuer A's ES256 key: everything the issuer vouches for. */
const signedByIssuer = (h: object | string | Uint8Array = header(), c: object | string | Uint8Array = claims()) => forge(h, c, es256(ec.privateKey));

/** Signed by the attacker's key; the header names the attacker's kid unless told otherwise. */
const signedByAttacker = (h: object | string | Uint8Array = header({ kid: evil.kid }), c: object | string | Uint8Array = claims()) =>
  forge(h, c, es256(evil.privateKey));

/** The issuer's signature over `header.payload` as given, as a signature segment. */
const issuerSignatureOver = (h: string, p: string) => b64u(es256(ec.privateKey)(Buffer.from(`${h}.${p}`, "latin1")));

const pem = (key: CryptoKey | KeyObject) => keyObject(key).export({ type: "spki", format: "pem" }) as string;
const spkiDer = (key: CryptoKey | KeyObject) => keyObject(key).export({ type: "spki", format: "der" });

/** A JSON value nested `depth` levels: `[[[…0…]]]` or `{"a":{"a":…0…}}`. */
const nestedArrays = (depth: number, inner = "0") => `${"[".repeat(depth)}${inner}${"]".repeat(depth)}`;
const nestedObjects = (depth: number) => `${'{"a":'.repeat(depth)}0${"}".repeat(depth)}`;

/** Claims text with `raw` spliced in as the JSON text of the member `name`. */
const claimsWithRaw = (name: string, raw: string, base: Record<string, unknown> = claims()) =>
  `${jsonText(membersOf(withoutUndefined({ ...base, [name]: undefined }))).slice(0, -1)},${JSON.stringify(name)}:${raw}}`;

// ---------------------------------------------------------------------------------------
// Asking the service

type Expectation = ExpectedDeny | { allowed: Record<string, string | null> };

interface AttackCase {
  name: string;
  /** The bearer token. Built lazily: keys and servers exist only after beforeAll. */
  token: () => string | Promise<string>;
  expect: Expectation;
  method?: string;
  /** The service with 512 KiB tokens, for fixtures past the default 16 KiB. */
  roomy?: boolean;
}

const malformed = unauthenticated("token_malformed");
const algNotAllowed = unauthenticated("alg_not_allowed");
const keyNotFound = unauthenticated("key_not_found");
const badSignature = unauthenticated("signature_invalid");
const claimInvalid = unauthenticated("claim_invalid");
const untrusted = unauthenticated("issuer_untrusted");
const profileUnknown = unauthenticated("profile_unknown");
const tooLarge = unauthenticated("token_too_large");
const allowed = (headers: Record<string, string | null> = {}): Expectation => ({ allowed: headers });

/** One Check with `Authorization: Bearer <token>`; a gRPC error fails the case by name. */
async function ask(service: TestService, token: string, method = "GET"): Promise<CheckResponse> {
  try {
    return await service.check({ method, path: "/data/file", headers: { authorization: `Bearer ${token}` } });
  } catch (error) {
    const { code, details } = error as { code?: unknown; details?: unknown };
    throw new Error(`the service answered with a gRPC error (code ${String(code)}: ${String(details)}) instead of a CheckResponse`);
  }
}

function expectDecision(response: CheckResponse, expectation: Expectation): void {
  if ("allowed" in expectation) {
    const headers = expectAllowed(response);
    for (const [name, value] of Object.entries(expectation.allowed)) expect(headers[name], name).toBe(value ?? undefined);
  } else {
    expectDenied(response, expectation);
  }
}

async function run(c: AttackCase): Promise<void> {
  const token = await c.token();
  expectDecision(await ask(c.roomy ? roomy : svc, token, c.method), c.expect);
}

// ---------------------------------------------------------------------------------------
// RFC 8725 §2.1, §3.1: alg "none" in any spelling

const NONE_SPELLINGS = ["none", "None", "NONE", "nOnE", "NoNe", "nonE", "none ", " none", "none\u0000", "none\n", "\u006eone"];

const NONE_SIGNATURES: Array<{ name: string; signature: (h: string, p: string) => string }> = [
  { name: "an empty signature", signature: () => "" },
  { name: "a junk signature", signature: () => b64u("signature") },
  { name: "the issuer's real ES256 signature over the same input", signature: issuerSignatureOver },
];

const algNone: AttackCase[] = [
  ...NONE_SPELLINGS.flatMap((alg) =>
    NONE_SIGNATURES.map((s) => ({
      name: `alg ${JSON.stringify(alg)} with ${s.name}`,
      token: () => {
        const [h, p] = [segment(header({ alg })), segment(claims())];
        return compact(h, p, s.signature(h, p));
      },
      expect: algNotAllowed,
    })),
  ),
  {
    name: 'alg "none" spelled with a JSON escape (\\u006eone)',
    token: () => forge(`{"alg":"\\u006eone","kid":${JSON.stringify(ec.kid)}}`, claims(), ""),
    expect: algNotAllowed,
  },
  { name: 'alg "none" without kid or typ', token: () => forge({ alg: "none" }, claims(), ""), expect: algNotAllowed },
  {
    name: 'alg "none" with an untrusted iss (alg is refused first)',
    token: () => forge({ alg: "none" }, claims({}, attacker.issuer), ""),
    expect: algNotAllowed,
  },
  // Spellings that are not JSON at all never get as far as the algorithm.
  { name: 'alg none unquoted ({"alg":none})', token: () => forge(`{"alg":none,"kid":"${ec.kid}"}`, claims(), ""), expect: malformed },
  { name: 'alg none in a truncated header ({"alg":"none")', token: () => forge('{"alg":"none"', claims(), ""), expect: malformed },
  { name: "alg none with a trailing comma", token: () => forge('{"alg":"none",}', claims(), ""), expect: malformed },
  { name: "alg none in single quotes", token: () => forge("{'alg':'none'}", claims(), ""), expect: malformed },
];

// ---------------------------------------------------------------------------------------
// RFC 8725 §2.1, §3.1: HMAC with the issuer's public key as the secret (key confusion)

const HMAC_SECRETS: Array<{ name: string; key: () => TestKey; secret: () => string | Uint8Array }> = [
  { name: "A's ES256 public key as SPKI PEM", key: () => ec, secret: () => pem(ec.publicKey) },
  { name: "A's ES256 public key as SPKI PEM without the final newline", key: () => ec, secret: () => pem(ec.publicKey).trimEnd() },
  { name: "A's ES256 public key as SPKI DER", key: () => ec, secret: () => spkiDer(ec.publicKey) },
  { name: "A's ES256 public key as the published JWK JSON", key: () => ec, secret: () => JSON.stringify(ec.publicJwk) },
  {
    name: "A's ES256 public key as its RFC 7638 thumbprint input",
    key: () => ec,
    secret: () => JSON.stringify({ crv: ec.publicJwk.crv, kty: ec.publicJwk.kty, x: ec.publicJwk.x, y: ec.publicJwk.y }),
  },
  { name: "A's ES256 x coordinate as base64url text", key: () => ec, secret: () => ec.publicJwk.x! },
  { name: "A's ES256 x coordinate as bytes", key: () => ec, secret: () => Buffer.from(ec.publicJwk.x!, "base64url") },
  { name: "A's RS256 public key as SPKI PEM", key: () => rsa, secret: () => pem(rsa.publicKey) },
  { name: "A's RS256 public key as PKCS#1 PEM", key: () => rsa, secret: () => keyObject(rsa.publicKey).export({ type: "pkcs1", format: "pem" }) as string },
  { name: "A's RS256 public key as SPKI DER", key: () => rsa, secret: () => spkiDer(rsa.publicKey) },
  { name: "A's RS256 modulus n as bytes", key: () => rsa, secret: () => Buffer.from(rsa.publicJwk.n!, "base64url") },
  { name: "A's RS256 public key as the published JWK JSON", key: () => rsa, secret: () => JSON.stringify(rsa.publicJwk) },
];

const hmacConfusion: AttackCase[] = [
  ...([256, 384, 512] as const).flatMap((bits) =>
    HMAC_SECRETS.map((s) => ({
      name: `HS${bits} keyed with ${s.name}`,
      token: () => forge(header({ alg: `HS${bits}`, kid: s.key().kid }), claims(), hmac(bits, s.secret())),
      expect: algNotAllowed,
    })),
  ),
  ...["hs256", "Hs256", "HS256 ", "HS256\u0000", "HS1", "HS"].map((alg) => ({
    name: `alg ${JSON.stringify(alg)} keyed with A's SPKI PEM`,
    token: () => forge(header({ alg }), claims(), hmac(256, pem(ec.publicKey))),
    expect: algNotAllowed,
  })),
  {
    name: "HS256 without kid, keyed with A's SPKI PEM",
    token: () => forge(header({ alg: "HS256", kid: undefined }), claims(), hmac(256, pem(ec.publicKey))),
    expect: algNotAllowed,
  },
];

// ---------------------------------------------------------------------------------------
// RFC 8725 §3.10 / SEMANTICS §2: keys never come from the token (jku, x5u, jwk, x5c, kid)
// (test/integration/token-faults.test.ts has the plain jku/x5u/jwk/x5c cases; these are
// the combinations and the kid injections.)

const evilJwks = (kid: string) => ({ keys: [{ ...evil.publicJwk, kid }] });
const dataUrl = (document: object) => `data:application/json,${encodeURIComponent(JSON.stringify(document))}`;
const evilX5c = () => [evilCert.toString("base64")];
const evilJwkWithoutKid = () => withoutUndefined({ ...evil.publicJwk, kid: undefined });

const keyInjection: AttackCase[] = [
  {
    name: "x5c: a real self-signed certificate of the attacker's key, with A's kid",
    token: () => signedByAttacker(header({ x5c: evilX5c() })),
    expect: badSignature,
  },
  { name: "x5c: the same certificate, no kid", token: () => signedByAttacker(header({ kid: undefined, x5c: evilX5c() })), expect: badSignature },
  {
    name: "x5c and x5t#S256 of the certificate, the attacker's kid",
    token: () => signedByAttacker(header({ kid: evil.kid, x5c: evilX5c(), "x5t#S256": b64u(createHash("sha256").update(evilCert).digest()) })),
    expect: keyNotFound,
  },
  {
    name: "jwk: the attacker's key carrying A's kid, no kid in the header",
    token: () => signedByAttacker(header({ kid: undefined, jwk: { ...evil.publicJwk, kid: ec.kid } })),
    expect: badSignature,
  },
  {
    name: "jwk: the attacker's key without kid, no kid in the header",
    token: () => signedByAttacker(header({ kid: undefined, jwk: evilJwkWithoutKid() })),
    expect: badSignature,
  },
  {
    name: "jwk: the attacker's key without kid, the attacker's kid in the header",
    token: () => signedByAttacker(header({ kid: evil.kid, jwk: evilJwkWithoutKid() })),
    expect: keyNotFound,
  },
  {
    name: "jku: a data: URL holding the attacker's JWKS, the attacker's kid",
    token: () => signedByAttacker(header({ kid: evil.kid, jku: dataUrl(evilJwks(evil.kid)) })),
    expect: keyNotFound,
  },
  {
    name: "jku: a data: URL holding the attacker's key under A's kid",
    token: () => signedByAttacker(header({ jku: dataUrl(evilJwks(ec.kid)) })),
    expect: badSignature,
  },
  {
    name: "jku: a path on the trusted issuer's own origin, the attacker's kid",
    token: () => signedByAttacker(header({ kid: evil.kid, jku: `${issuer.url}/attacker/jwks` })),
    expect: keyNotFound,
  },
  {
    name: "jku: the attacker's JWKS, which publishes the attacker's key under A's kid",
    token: () => signedByAttacker(header({ jku: attacker.jwksUri })),
    expect: badSignature,
  },
  { name: "jku: a file: URL, the attacker's kid", token: () => signedByAttacker(header({ kid: evil.kid, jku: "file:///etc/passwd" })), expect: keyNotFound },
  {
    name: "x5u, x5c, jwk and jku at once, no kid",
    token: () => signedByAttacker(header({ kid: undefined, x5u: `${attacker.url}/cert.pem`, x5c: evilX5c(), jwk: evilJwkWithoutKid(), jku: attacker.jwksUri })),
    expect: badSignature,
  },
  {
    name: "jku naming the attacker's JWKS, from an untrusted iss: refused before any key lookup",
    token: () => signedByAttacker(header({ kid: evil.kid, jku: attacker.jwksUri }), claims({}, attacker.issuer)),
    expect: untrusted,
  },
  // kid injection, each on a token that is otherwise the issuer's own
  ...[
    ["the URL of the attacker's JWKS", () => attacker.jwksUri],
    ["a path traversal", () => "../../../../../dev/null"],
    ["an SQL injection", () => "x' UNION SELECT 'secret' --"],
    ["a command injection", () => "a-es256|curl http://127.0.0.1:1/"],
    ["the empty string", () => ""],
    ["__proto__", () => "__proto__"],
    ["constructor", () => "constructor"],
    ["hasOwnProperty", () => "hasOwnProperty"],
    ["A's kid with a trailing space", () => `${ec.kid} `],
    ["A's kid in upper case", () => ec.kid.toUpperCase()],
    ["A's kid with a NUL and more", () => `${ec.kid}\u0000evil`],
    ["8 000 characters", () => "k".repeat(8000)],
  ].map(([what, kid]) => ({ name: `kid: ${what as string}`, token: () => signedByIssuer(header({ kid: (kid as () => string)() })), expect: keyNotFound })),
  ...[
    ["an array holding A's kid", () => [ec.kid]],
    ["an object holding A's kid", () => ({ kid: ec.kid })],
    ["null", () => null],
    ["true", () => true],
    ["a number", () => 1],
  ].map(([what, kid]) => ({ name: `kid as ${what as string}`, token: () => signedByIssuer(header({ kid: (kid as () => unknown)() })), expect: keyNotFound })),
];

// ---------------------------------------------------------------------------------------
// RFC 7515 §4.1.1 and RFC 8725 §3.1: alg of the wrong type or not allowed

const algValues: AttackCase[] = [
  ...[
    ["a number", 256],
    ["an array holding ES256", ["ES256"]],
    ["an object", { ES256: true }],
    ["null", null],
    ["false", false],
    ["the empty string", ""],
    ["es256 (lower case)", "es256"],
    ["ES256 with a trailing space", "ES256 "],
    ["ES256 with a NUL", "ES256\u0000"],
    ["ES384 (not in the issuer's list)", "ES384"],
    ["PS256 (not in the issuer's list)", "PS256"],
    ["EdDSA (not in the issuer's list)", "EdDSA"],
    ["RSA-OAEP (a JWE algorithm)", "RSA-OAEP"],
    ["dir (a JWE algorithm)", "dir"],
  ].map(([what, alg]) => ({ name: `alg as ${what as string}`, token: () => signedByIssuer(header({ alg })), expect: algNotAllowed })),
  { name: "no alg at all", token: () => signedByIssuer(header({ alg: undefined })), expect: algNotAllowed },
  // Asymmetric confusion: the kid is real, but its key is of another type.
  {
    name: "RS256 naming A's EC key, signed with A's RSA key",
    token: () => forge(header({ alg: "RS256", kid: ec.kid }), claims(), rs256(rsa.privateKey)),
    expect: keyNotFound,
  },
  { name: "ES256 naming A's RSA key, signed with A's EC key", token: () => signedByIssuer(header({ kid: rsa.kid })), expect: keyNotFound },
];

// ---------------------------------------------------------------------------------------
// RFC 7515 §4.1.11 crit, RFC 7797 b64

const critAndB64: AttackCase[] = [
  { name: "crit: [] (an empty list)", token: () => signedByIssuer(header({ crit: [] })), expect: malformed },
  { name: 'crit: "b64" (a string, not a list)', token: () => signedByIssuer(header({ crit: "b64", b64: true })), expect: malformed },
  { name: 'crit: [""]', token: () => signedByIssuer(header({ crit: [""] })), expect: malformed },
  { name: "crit: [1]", token: () => signedByIssuer(header({ crit: [1] })), expect: malformed },
  { name: "crit naming kid (a registered parameter)", token: () => signedByIssuer(header({ crit: ["kid"] })), expect: malformed },
  { name: "crit naming alg", token: () => signedByIssuer(header({ crit: ["alg"] })), expect: malformed },
  {
    name: "crit naming b64 and an unknown extension",
    token: () => signedByIssuer(header({ crit: ["b64", "urn:example:x"], b64: true, "urn:example:x": 1 })),
    expect: malformed,
  },
  { name: "crit naming b64, which is absent", token: () => signedByIssuer(header({ crit: ["b64"] })), expect: malformed },
  { name: 'crit naming b64, b64: "false" (a string)', token: () => signedByIssuer(header({ crit: ["b64"], b64: "false" })), expect: malformed },
  {
    name: "crit naming b64, b64: false (RFC 7797 unencoded payload): the payload segment is then no claims object",
    token: () => signedByIssuer(header({ crit: ["b64"], b64: false })),
    expect: malformed,
  },
  {
    // A real RFC 7797 token: the payload segment is the JSON text itself (no comma in it,
    // which would make it several credentials); it is never a token68 string.
    name: "crit naming b64, b64: false, with raw JSON as the payload",
    token: () => {
      const h = segment(header({ crit: ["b64"], b64: false }));
      const raw = JSON.stringify({ scope: "write:/" });
      return `${h}.${raw}.${b64u(es256(ec.privateKey)(Buffer.from(`${h}.${raw}`, "utf8")))}`;
    },
    expect: malformed,
  },
  {
    name: "crit naming b64, b64: false, signed by the attacker under A's kid",
    token: () => signedByAttacker(header({ crit: ["b64"], b64: false })),
    expect: badSignature,
  },
  // RFC 7515 §4.1.11 forbids producers a duplicate in crit and lets recipients reject it
  // (MAY); b64: true changes nothing, so the issuer's token is accepted.
  { name: "crit naming b64 twice, b64: true", token: () => signedByIssuer(header({ crit: ["b64", "b64"], b64: true })), expect: allowed() },
  { name: "crit naming b64, b64: true (RFC 7797's default, understood)", token: () => signedByIssuer(header({ crit: ["b64"], b64: true })), expect: allowed() },
  {
    name: "b64: false without crit is ignored (RFC 7797 §6): the payload is base64url claims",
    token: () => signedByIssuer(header({ b64: false })),
    expect: allowed(),
  },
];

// ---------------------------------------------------------------------------------------
// RFC 8725 §2.8, §3.11: JWE, nested JWTs and what the outer token says about them

const innerNone = () => forge({ alg: "none", typ: "JWT" }, claims({ scope: "write:/ read:/" }), "");
const innerValid = () => signedByIssuer(header(), claims({ scope: "write:/ read:/" }));

const jweAndNesting: AttackCase[] = [
  {
    name: "JWE compact (five segments, RSA-OAEP-256 / A256GCM)",
    token: () =>
      [
        segment({ alg: "RSA-OAEP-256", enc: "A256GCM", kid: ec.kid }),
        b64u(new Uint8Array(256)),
        b64u(new Uint8Array(12)),
        b64u("ciphertext"),
        b64u(new Uint8Array(16)),
      ].join("."),
    expect: malformed,
  },
  {
    name: "JWE compact with alg dir (empty encrypted key)",
    token: () => [segment({ alg: "dir", enc: "A128GCM" }), "", b64u(new Uint8Array(12)), b64u("ciphertext"), b64u(new Uint8Array(16))].join("."),
    expect: malformed,
  },
  { name: "a valid token with two more segments (five in all)", token: () => `${signedByIssuer()}.${b64u("x")}.${b64u("y")}`, expect: malformed },
  {
    name: "cty JWT, signed by the issuer, payload an alg-none token granting write:/",
    token: () => signedByIssuer(header({ cty: "JWT" }), innerNone()),
    method: "PUT",
    expect: malformed,
  },
  {
    name: "cty JWT, signed by the issuer, payload a valid token of the issuer",
    token: () => signedByIssuer(header({ cty: "JWT" }), innerValid()),
    method: "PUT",
    expect: malformed,
  },
  {
    name: "cty JWT, signed by the attacker under A's kid, payload a valid token of the issuer",
    token: () => signedByAttacker(header({ cty: "JWT" }), innerValid()),
    method: "PUT",
    expect: malformed,
  },
  {
    name: "no cty, signed by the issuer, payload a valid token of the issuer",
    token: () => signedByIssuer(header(), innerValid()),
    method: "PUT",
    expect: malformed,
  },
  {
    name: "cty JWT over an ordinary claims payload is read as those claims",
    token: () => signedByIssuer(header({ cty: "JWT" }), claims({ scope: "read:/data" })),
    expect: allowed({ "x-scitokens-scope": "read:/data" }),
  },
];

// ---------------------------------------------------------------------------------------
// Duplicate JSON members: the lexically last one counts, everywhere (see the top)

const dupHeader = (members: Array<readonly [string, unknown]>) => jsonText(members);
const claimsWith = (before: Array<readonly [string, unknown]>, base: Record<string, unknown>, after: Array<readonly [string, unknown]>) =>
  jsonText([...before, ...membersOf(base), ...after]);

const duplicates: AttackCase[] = [
  {
    name: 'header {"alg":"ES256","alg":"none"}, empty signature: none counts',
    token: () =>
      forge(
        dupHeader([
          ["alg", "ES256"],
          ["alg", "none"],
          ["kid", ec.kid],
        ]),
        claims(),
        "",
      ),
    expect: algNotAllowed,
  },
  {
    name: 'header {"alg":"none","alg":"ES256"}, empty signature: ES256 counts',
    token: () =>
      forge(
        dupHeader([
          ["alg", "none"],
          ["alg", "ES256"],
          ["kid", ec.kid],
        ]),
        claims(),
        "",
      ),
    expect: badSignature,
  },
  {
    name: 'header {"alg":"ES256","alg":"HS256"}, keyed with A\'s PEM: HS256 counts',
    token: () =>
      forge(
        dupHeader([
          ["alg", "ES256"],
          ["alg", "HS256"],
          ["kid", ec.kid],
        ]),
        claims(),
        hmac(256, pem(ec.publicKey)),
      ),
    expect: algNotAllowed,
  },
  {
    name: 'header {"alg":"HS256","alg":"ES256"}, keyed with A\'s PEM: ES256 counts',
    token: () =>
      forge(
        dupHeader([
          ["alg", "HS256"],
          ["alg", "ES256"],
          ["kid", ec.kid],
        ]),
        claims(),
        hmac(256, pem(ec.publicKey)),
      ),
    expect: badSignature,
  },
  {
    name: "header kid twice, the attacker's then A's, signed by the attacker",
    token: () =>
      signedByAttacker(
        dupHeader([
          ["alg", "ES256"],
          ["kid", evil.kid],
          ["kid", ec.kid],
        ]),
      ),
    expect: badSignature,
  },
  {
    name: "header kid twice, A's then the attacker's, signed by the attacker",
    token: () =>
      signedByAttacker(
        dupHeader([
          ["alg", "ES256"],
          ["kid", ec.kid],
          ["kid", evil.kid],
        ]),
      ),
    expect: keyNotFound,
  },
  {
    name: "header kid twice, an unknown one then A's, signed by the issuer",
    token: () =>
      signedByIssuer(
        dupHeader([
          ["alg", "ES256"],
          ["kid", "unknown"],
          ["kid", ec.kid],
        ]),
      ),
    expect: allowed(),
  },
  {
    name: "iss twice, A then the attacker's, signed by the attacker: the attacker's issuer is untrusted",
    token: () => signedByAttacker(header({ kid: evil.kid }), claimsWith([], claims(), [["iss", attacker.issuer]])),
    expect: untrusted,
  },
  {
    name: "iss twice, the attacker's then A, signed by the attacker under its own kid: A has no such key",
    token: () => signedByAttacker(header({ kid: evil.kid }), claimsWith([["iss", attacker.issuer]], claims(), [])),
    expect: keyNotFound,
  },
  {
    name: "iss twice, the attacker's then A, signed by the attacker under A's kid",
    token: () => signedByAttacker(header(), claimsWith([["iss", attacker.issuer]], claims(), [])),
    expect: badSignature,
  },
  {
    name: "iss twice, A then an untrusted one, signed by the issuer",
    token: () => signedByIssuer(header(), claimsWith([], claims(), [["iss", attacker.issuer]])),
    expect: untrusted,
  },
  {
    name: "scope twice, read:/ then write:/, signed by the attacker under A's kid",
    token: () => signedByAttacker(header(), claimsWith([], claims({ scope: "read:/" }), [["scope", "write:/"]])),
    method: "PUT",
    expect: badSignature,
  },
  {
    name: "scope twice, write:/ then read:/, signed by the issuer: PUT is not granted",
    token: () => signedByIssuer(header(), claimsWith([["scope", "write:/"]], claims({ scope: undefined }), [["scope", "read:/"]])),
    method: "PUT",
    expect: forbidden("scope_insufficient"),
  },
  {
    name: "scope twice, write:/ then read:/, signed by the issuer: GET is granted by read:/",
    token: () => signedByIssuer(header(), claimsWith([["scope", "write:/"]], claims({ scope: undefined }), [["scope", "read:/"]])),
    expect: allowed({ "x-scitokens-scope": "read:/" }),
  },
  {
    name: "exp twice, in the future then in the past, signed by the issuer",
    token: () => signedByIssuer(header(), claimsWith([], claims(), [["exp", nowSeconds() - 3600]])),
    expect: unauthenticated("token_expired"),
  },
  {
    name: "aud twice, the service's then another, signed by the issuer",
    token: () => signedByIssuer(header(), claimsWith([], claims(), [["aud", "https://elsewhere.example"]])),
    expect: unauthenticated("audience_mismatch"),
  },
];

// ---------------------------------------------------------------------------------------
// Prototype pollution through JSON members named __proto__ or constructor

const prototypePollution: AttackCase[] = [
  {
    name: "claims with a __proto__ member holding scope write:/ and no scope of their own",
    token: () => signedByIssuer(header(), claimsWith([["__proto__", { scope: "write:/" }]], claims({ scope: undefined }), [])),
    method: "PUT",
    expect: forbidden("scope_insufficient"),
  },
  {
    name: "claims with a __proto__ member holding another iss and aud",
    token: () => signedByIssuer(header(), claimsWith([], claims({ aud: undefined }), [["__proto__", { iss: attacker.issuer, aud: TEST_AUDIENCE }]])),
    expect: unauthenticated("audience_mismatch"),
  },
  {
    name: "claims with constructor.prototype holding scope write:/",
    token: () => signedByIssuer(header(), claimsWith([["constructor", { prototype: { scope: "write:/" } }]], claims({ scope: undefined }), [])),
    method: "PUT",
    expect: forbidden("scope_insufficient"),
  },
  {
    name: "a header whose alg and kid are only under __proto__",
    token: () => signedByIssuer(jsonText([["__proto__", { alg: "ES256", kid: ec.kid }]])),
    expect: algNotAllowed,
  },
  {
    name: "a header whose kid is only under __proto__",
    token: () =>
      signedByIssuer(
        jsonText([
          ["alg", "ES256"],
          ["__proto__", { kid: evil.kid }],
        ]),
      ),
    expect: allowed(),
  },
];

// ---------------------------------------------------------------------------------------
// ECDSA and RSA signature bytes: psychic signatures (CVE-2022-21449), encodings, lengths

/** A's real ES256 signature over fresh claims, and the segments it signs. */
function issuerSigned(): { h: string; p: string; sig: Buffer } {
  const [h, p, s] = segmentsOf(signedByIssuer());
  return { h, p, sig: Buffer.from(s, "base64url") };
}

const withSignatureBytes = (make: (sig: Buffer, input: Buffer) => Uint8Array) => () => {
  const { h, p, sig } = issuerSigned();
  return compact(h, p, make(sig, Buffer.from(`${h}.${p}`, "latin1")));
};

const signatures: AttackCase[] = [
  { name: "psychic: 64 zero bytes (r = s = 0)", token: withSignatureBytes(() => new Uint8Array(64)), expect: badSignature },
  { name: "psychic: r = s = 0 DER-encoded", token: withSignatureBytes(() => Buffer.from("3006020100020100", "hex")), expect: badSignature },
  { name: "psychic: r = s = n (the group order)", token: withSignatureBytes(() => Buffer.concat([P256_ORDER, P256_ORDER])), expect: badSignature },
  { name: "psychic: r = 0 with the real s", token: withSignatureBytes((sig) => Buffer.concat([Buffer.alloc(32), sig.subarray(32)])), expect: badSignature },
  { name: "psychic: the real r with s = 0", token: withSignatureBytes((sig) => Buffer.concat([sig.subarray(0, 32), Buffer.alloc(32)])), expect: badSignature },
  {
    name: "psychic: r = s = n, DER-encoded",
    token: withSignatureBytes(() => Buffer.from(`3046022100${P256_ORDER.toString("hex")}022100${P256_ORDER.toString("hex")}`, "hex")),
    expect: badSignature,
  },
  { name: "the real ECDSA signature DER-encoded instead of r‖s", token: () => forge(header(), claims(), es256Der(ec.privateKey)), expect: badSignature },
  { name: "ECDSA signature one byte short (63)", token: withSignatureBytes((sig) => sig.subarray(0, 63)), expect: badSignature },
  {
    name: "ECDSA signature one zero byte long (65, appended)",
    token: withSignatureBytes((sig) => Buffer.concat([sig, Buffer.alloc(1)])),
    expect: badSignature,
  },
  {
    name: "ECDSA signature one zero byte long (65, prepended)",
    token: withSignatureBytes((sig) => Buffer.concat([Buffer.alloc(1), sig])),
    expect: badSignature,
  },
  { name: "ECDSA signature of r only (32 bytes)", token: withSignatureBytes((sig) => sig.subarray(0, 32)), expect: badSignature },
  { name: "ECDSA signature twice (128 bytes)", token: withSignatureBytes((sig) => Buffer.concat([sig, sig])), expect: badSignature },
  {
    name: "ECDSA signature with r and s swapped",
    token: withSignatureBytes((sig) => Buffer.concat([sig.subarray(32), sig.subarray(0, 32)])),
    expect: badSignature,
  },
  { name: "an empty signature on an ES256 token", token: withSignatureBytes(() => new Uint8Array(0)), expect: badSignature },
  {
    name: "the signature of another of A's tokens (splicing)",
    token: () => {
      const [h, p] = segmentsOf(signedByIssuer(header(), claims({ scope: "write:/" })));
      return compact(h, p, segmentsOf(signedByIssuer())[2]);
    },
    method: "PUT",
    expect: badSignature,
  },
  {
    name: "RS256 signature with a leading zero byte (257 bytes)",
    token: () => {
      const [h, p, s] = segmentsOf(forge(header({ alg: "RS256", kid: rsa.kid }), claims(), rs256(rsa.privateKey)));
      return compact(h, p, Buffer.concat([Buffer.alloc(1), Buffer.from(s, "base64url")]));
    },
    expect: badSignature,
  },
  {
    name: "RS256 signature one byte short (255 bytes)",
    token: () => {
      const [h, p, s] = segmentsOf(forge(header({ alg: "RS256", kid: rsa.kid }), claims(), rs256(rsa.privateKey)));
      return compact(h, p, Buffer.from(s, "base64url").subarray(1));
    },
    expect: badSignature,
  },
  {
    name: "RS256 control: A's RSA key signs a valid token",
    token: () => forge(header({ alg: "RS256", kid: rsa.kid }), claims(), rs256(rsa.privateKey)),
    expect: allowed(),
  },
  {
    name: "ECDSA malleability: (r, n − s) is the issuer's signature too",
    token: withSignatureBytes((sig) => Buffer.concat([sig.subarray(0, 32), negateModOrder(sig.subarray(32))])),
    expect: allowed(),
  },
];

// ---------------------------------------------------------------------------------------
// Keys of another issuer, and keys too weak to use

const issuerBClaims = () => claims({}, issuerB.issuer);

const crossIssuer: AttackCase[] = [
  { name: "A's token naming B's kid, signed with B's key", token: () => forge(header({ kid: ecB.kid }), claims(), es256(ecB.privateKey)), expect: keyNotFound },
  {
    name: "B's token naming A's kid, signed with A's key",
    token: () => forge(header({ kid: ec.kid }), issuerBClaims(), es256(ec.privateKey)),
    expect: keyNotFound,
  },
  { name: "A's token naming A's kid, signed with B's key", token: () => forge(header({ kid: ec.kid }), claims(), es256(ecB.privateKey)), expect: badSignature },
  {
    name: "B's token without kid, signed with A's key",
    token: () => forge(header({ kid: undefined }), issuerBClaims(), es256(ec.privateKey)),
    expect: badSignature,
  },
  { name: "B's own token (control)", token: () => forge(header({ kid: ecB.kid }), issuerBClaims(), es256(ecB.privateKey)), expect: allowed() },
];

const weakIssuerClaims = () => claims({}, weakIssuer.issuer);

const weakKeys: AttackCase[] = [
  // jose refuses RSA keys under 2048 bits; such a key is left out when the set is
  // loaded, so a token naming it finds no key (and is never a fault of the service).
  {
    name: "RS256 naming the issuer's 1024-bit RSA key, signed with it",
    token: () => forge(header({ alg: "RS256", kid: weakRsa.kid }), weakIssuerClaims(), rs256(weakRsa.privateKey)),
    expect: keyNotFound,
  },
  {
    name: "RS256 without kid, the issuer's only RSA key has 1024 bits",
    token: () => forge(header({ alg: "RS256", kid: undefined }), weakIssuerClaims(), rs256(weakRsa.privateKey)),
    expect: keyNotFound,
  },
  {
    name: "the same issuer's ES256 key still works (control)",
    token: () => forge(header({ kid: ecW.kid }), weakIssuerClaims(), es256(ecW.privateKey)),
    expect: allowed(),
  },
];

// ---------------------------------------------------------------------------------------
// Compact serialization structure

const structure: AttackCase[] = [
  ...["..", "...", "....", ".", "a..c", ".b.c", "a.b.", "..c", "a.."].map((token) => ({
    name: `the token ${JSON.stringify(token)}`,
    token: () => token,
    expect: malformed,
  })),
  { name: "8 000 dots", token: () => ".".repeat(8000), expect: malformed },
  { name: "a valid token with a trailing dot", token: () => `${signedByIssuer()}.`, expect: malformed },
  { name: "a valid token with a leading dot", token: () => `.${signedByIssuer()}`, expect: malformed },
  { name: "a valid token with a fourth segment", token: () => `${signedByIssuer()}.${b64u("extra")}`, expect: malformed },
  { name: "a valid token with two dots between header and payload", token: () => signedByIssuer().replace(".", ".."), expect: malformed },
  { name: "a valid token without its payload (header..signature)", token: () => segmentsOf(signedByIssuer()).with(1, "").join("."), expect: malformed },
  { name: "a valid token without its header (.payload.signature)", token: () => segmentsOf(signedByIssuer()).with(0, "").join("."), expect: malformed },
  {
    name: "a valid token without its signature (header.payload.) is unsigned",
    token: () => segmentsOf(signedByIssuer()).with(2, "").join("."),
    expect: badSignature,
  },
  ...[
    ["null", "null"],
    ["an array", "[]"],
    ["a number", "1"],
    ["a string", '"ES256"'],
    ["empty JSON text", ""],
  ].map(([what, text]) => ({ name: `header JSON that is ${what}`, token: () => signedByIssuer(text!), expect: malformed })),
  ...[
    ["null", "null"],
    ["an array", "[]"],
    ["a number", "1"],
    ["a string", '"claims"'],
  ].map(([what, text]) => ({ name: `payload JSON that is ${what}`, token: () => signedByIssuer(header(), text!), expect: malformed })),
  {
    name: "header bytes that are not UTF-8 (0xff in kid)",
    token: () => signedByIssuer(Buffer.concat([Buffer.from('{"alg":"ES256","kid":"'), Buffer.from([0xff]), Buffer.from('"}')]), claims()),
    expect: malformed,
  },
  {
    name: "payload bytes that are not UTF-8 (0xff in sub)",
    token: () => {
      const text = jsonText(membersOf(claims({ sub: "__SUB__" })));
      const [before, after] = text.split("__SUB__") as [string, string];
      return signedByIssuer(header(), Buffer.concat([Buffer.from(before), Buffer.from([0xff]), Buffer.from(after)]));
    },
    expect: malformed,
  },
];

// ---------------------------------------------------------------------------------------
// Claim types (the ones test/integration/token-faults.test.ts does not already cover)

const claimTypes: AttackCase[] = [
  ...[
    ["nbf", {}],
    ["nbf", null],
    ["nbf", [0]],
    ["nbf", true],
    ["exp", true],
    ["exp", null],
    ["exp", [nowSeconds() + 600]],
    ["exp", {}],
    ["iat", "0"],
    ["iat", {}],
    ["iat", null],
    ["aud", 42],
    ["aud", true],
    ["aud", null],
    ["aud", [[TEST_AUDIENCE]]],
    ["iss", null],
    ["iss", {}],
    ["sub", {}],
    ["sub", ["catalogue"]],
    ["sub", null],
    ["jti", ["j"]],
    ["jti", {}],
    ["scope", 1],
    ["scope", null],
    ["scope", { "read:/": true }],
    ["wlcg.groups", [1]],
    ["wlcg.groups", { group: "/cms" }],
  ].map(([name, value]) => ({
    name: `${name as string}: ${JSON.stringify(value)}`,
    token: () => signedByIssuer(header(), claims({ [name as string]: value })),
    expect: claimInvalid,
  })),
  { name: "iss: an array holding A", token: () => signedByIssuer(header(), claims({ iss: [issuer.issuer] })), expect: claimInvalid },
  { name: "no iss", token: () => signedByIssuer(header(), claims({ iss: undefined })), expect: claimInvalid },
  { name: "exp: 1e400 (Infinity after parsing)", token: () => signedByIssuer(header(), claimsWithRaw("exp", "1e400")), expect: claimInvalid },
  { name: "iat: -1e400 (-Infinity after parsing)", token: () => signedByIssuer(header(), claimsWithRaw("iat", "-1e400")), expect: claimInvalid },
  { name: "nbf: 1e400", token: () => signedByIssuer(header(), claimsWithRaw("nbf", "1e400")), expect: claimInvalid },
  { name: "SciTokens 1 scp: 5", token: () => signedByIssuer(header(), claims({ ver: undefined, scope: undefined, scp: 5 })), expect: claimInvalid },
  { name: "ver: an array", token: () => signedByIssuer(header(), claims({ ver: ["scitoken:2.0"] })), expect: profileUnknown },
  { name: "ver: an object", token: () => signedByIssuer(header(), claims({ ver: { v: "scitoken:2.0" } })), expect: profileUnknown },
  { name: "ver: null", token: () => signedByIssuer(header(), claims({ ver: null })), expect: profileUnknown },
  {
    name: "wlcg.ver: the number 1.0",
    token: () => signedByIssuer(header(), claims({ ver: undefined, "wlcg.ver": 1.0, scope: "storage.read:/" })),
    expect: profileUnknown,
  },
  { name: "iss: A with a trailing space", token: () => signedByIssuer(header(), claims({ iss: `${issuer.issuer} ` })), expect: untrusted },
  { name: "iss: A followed by a NUL", token: () => signedByIssuer(header(), claims({ iss: `${issuer.issuer}\u0000` })), expect: untrusted },
  { name: "iss: A in upper case", token: () => signedByIssuer(header(), claims({ iss: issuer.issuer.toUpperCase() })), expect: untrusted },
  ...["__proto__", "constructor", "hasOwnProperty"].map((iss) => ({
    name: `iss: ${iss}`,
    token: () => signedByIssuer(header(), claims({ iss })),
    expect: untrusted,
  })),
];

// ---------------------------------------------------------------------------------------
// Size and depth

const TEN_THOUSAND = 10_000;

const sizeAndDepth: AttackCase[] = [
  { name: "900 KiB of base64url", token: () => "A".repeat(900 * 1024), expect: tooLarge },
  { name: "one byte over a configured limit of 512 KiB", roomy: true, token: () => "A".repeat(ROOMY_MAX_BYTES + 1), expect: tooLarge },
  { name: "5 500 three-byte characters (16 500 bytes: the limit counts bytes)", token: () => "€".repeat(5500), expect: tooLarge },
  {
    name: "10 000 nested arrays in an unknown claim, at the default limit",
    token: () => signedByIssuer(header(), claimsWithRaw("x-deep", nestedArrays(TEN_THOUSAND))),
    expect: tooLarge,
  },
  {
    name: "10 000 nested arrays in an unknown claim are ignored",
    roomy: true,
    token: () => signedByIssuer(header(), claimsWithRaw("x-deep", nestedArrays(TEN_THOUSAND))),
    expect: allowed(),
  },
  {
    name: "100 000 nested arrays in an unknown claim are ignored",
    roomy: true,
    token: () => signedByIssuer(header(), claimsWithRaw("x-deep", nestedArrays(100_000))),
    expect: allowed(),
  },
  {
    name: "10 000 nested objects in an unknown claim are ignored",
    roomy: true,
    token: () => signedByIssuer(header(), claimsWithRaw("x-deep", nestedObjects(TEN_THOUSAND))),
    expect: allowed(),
  },
  {
    name: "10 000 nested arrays in an unknown header parameter are ignored",
    roomy: true,
    token: () => signedByIssuer(`${JSON.stringify(header()).slice(0, -1)},"x-deep":${nestedArrays(TEN_THOUSAND)}}`),
    expect: allowed(),
  },
  {
    name: "aud nested 10 000 arrays deep",
    roomy: true,
    token: () => signedByIssuer(header(), claimsWithRaw("aud", nestedArrays(TEN_THOUSAND, JSON.stringify(TEST_AUDIENCE)))),
    expect: claimInvalid,
  },
  {
    name: "scope nested 10 000 arrays deep",
    roomy: true,
    token: () => signedByIssuer(header(), claimsWithRaw("scope", nestedArrays(TEN_THOUSAND, '"read:/"'))),
    expect: claimInvalid,
  },
  {
    name: "wlcg.groups nested 10 000 arrays deep",
    roomy: true,
    token: () => signedByIssuer(header(), claimsWithRaw("wlcg.groups", nestedArrays(TEN_THOUSAND, '"/cms"'))),
    expect: claimInvalid,
  },
  {
    name: "iss nested 10 000 arrays deep",
    roomy: true,
    token: () => signedByIssuer(header(), claimsWithRaw("iss", nestedArrays(TEN_THOUSAND, JSON.stringify(issuer.issuer)))),
    expect: claimInvalid,
  },
  {
    name: "20 000 unknown claims are ignored",
    roomy: true,
    token: () => signedByIssuer(header(), claims(Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`x${i}`, i])))),
    expect: allowed(),
  },
];

// ---------------------------------------------------------------------------------------
// Non-canonical base64url (RFC 7515 §2 and RFC 4648 §3.5): a token has one spelling, so a
// respelled token can pass neither the verified-token cache nor a deny-list keyed by it.

type Part = "header" | "payload" | "signature";

interface Respelling {
  name: string;
  part: Part;
  /** Which canonical segments can be respelled this way. */
  applies: (encoded: string) => boolean;
  change: (encoded: string) => string;
  /** False when the respelling also changes the bytes (only the length is wrong). */
  sameBytes?: false;
}

const hasSpareBits = (encoded: string) => encoded.length % 4 !== 0;
const hasUrlSafeCharacters = (encoded: string) => /[-_]/.test(encoded);
const always = () => true;
const insertAt = (encoded: string, what: string) => `${encoded.slice(0, 20)}${what}${encoded.slice(20)}`;

const respellings: Respelling[] = [
  { name: 'signature padded with "==" (as base64 would)', part: "signature", applies: hasSpareBits, change: withPadding },
  { name: 'signature with one "="', part: "signature", applies: hasSpareBits, change: (s) => `${s}=` },
  { name: "signature with its unused trailing bits set (the same 64 bytes)", part: "signature", applies: hasSpareBits, change: withTrailingBitsSet },
  { name: "signature in the base64 alphabet (+ and /)", part: "signature", applies: hasUrlSafeCharacters, change: withStandardAlphabet },
  { name: "signature one character short (a length no bytes encode to)", part: "signature", applies: always, change: (s) => s.slice(0, -1), sameBytes: false },
  { name: "signature with a space inside", part: "signature", applies: always, change: (s) => insertAt(s, " ") },
  { name: "signature with a tab inside", part: "signature", applies: always, change: (s) => insertAt(s, "\t") },
  { name: 'header padded with "=" (re-signed as spelled)', part: "header", applies: hasSpareBits, change: withPadding },
  { name: "header with its unused trailing bits set (re-signed as spelled)", part: "header", applies: hasSpareBits, change: withTrailingBitsSet },
  { name: "header in the base64 alphabet (re-signed as spelled)", part: "header", applies: hasUrlSafeCharacters, change: withStandardAlphabet },
  { name: "header with a line feed inside (re-signed as spelled)", part: "header", applies: always, change: (s) => insertAt(s, "\n") },
  { name: 'payload padded with "=" (re-signed as spelled)', part: "payload", applies: hasSpareBits, change: withPadding },
  { name: "payload with its unused trailing bits set (re-signed as spelled)", part: "payload", applies: hasSpareBits, change: withTrailingBitsSet },
  { name: "payload in the base64 alphabet (re-signed as spelled)", part: "payload", applies: hasUrlSafeCharacters, change: withStandardAlphabet },
  { name: "payload with a space inside (re-signed as spelled)", part: "payload", applies: always, change: (s) => insertAt(s, " ") },
];

/**
 * A canonical token of issuer A and its respelling. A header or payload is respelled
 * before signing, so the issuer's signature covers the odd spelling and only the
 * spelling is wrong. A pad parameter is lengthened until the segment can be respelled.
 */
function respell({ part, applies, change }: Respelling): { canonical: string; variant: string } {
  for (let pad = 0; pad < 200; pad++) {
    const padding = { "x-pad": "?".repeat(pad) }; // "?" (0x3f) spells "_" in some positions
    const h = segment(header(part === "header" ? padding : {}));
    const p = segment(claims(part === "payload" ? padding : {}));
    const canonical = compact(h, p, es256(ec.privateKey));
    const s = segmentsOf(canonical)[2];
    if (part === "signature" && applies(s)) return { canonical, variant: `${h}.${p}.${change(s)}` };
    if (part === "header" && applies(h)) return { canonical, variant: compact(change(h), p, es256(ec.privateKey)) };
    if (part === "payload" && applies(p)) return { canonical, variant: compact(h, change(p), es256(ec.privateKey)) };
  }
  throw new Error(`no ${part} segment found that can be respelled`);
}

const PART_INDEX: Readonly<Record<Part, number>> = { header: 0, payload: 1, signature: 2 };

/** Node's lenient decoder reads both spellings of `part` as the same bytes: the fixture is a respelling, not another token. */
function expectSameBytes(part: Part, canonical: string, variant: string): void {
  const decoded = (token: string) => {
    const encoded = token.split(".")[PART_INDEX[part]]!;
    return { encoded, bytes: Buffer.from(encoded, "base64url").toString("hex") };
  };
  const [before, after] = [decoded(canonical), decoded(variant)];
  expect(after.bytes).toBe(before.bytes);
  expect(after.encoded).not.toBe(before.encoded);
}

describe("RFC 7515 §2: non-canonical base64url is token_malformed, even right after the canonical token was allowed", () => {
  it.each(respellings)("$name", async (r) => {
    const { canonical, variant } = respell(r);
    if (r.sameBytes !== false) expectSameBytes(r.part, canonical, variant);
    expectDecision(await ask(svc, canonical), allowed());
    expectDecision(await ask(svc, variant), malformed);
  });
});

// ---------------------------------------------------------------------------------------

describe.each([
  ["RFC 8725 §3.1: alg none", algNone],
  ["RFC 8725 §3.1: HMAC keyed with the issuer's public key", hmacConfusion],
  ["SEMANTICS §2: keys never come from the token", keyInjection],
  ["RFC 7515 §4.1.1: alg values", algValues],
  ["RFC 7515 §4.1.11 crit and RFC 7797 b64", critAndB64],
  ["RFC 8725 §2.8, §3.11: JWE and nested tokens", jweAndNesting],
  ["RFC 7515 §5.2, RFC 7519 §4: duplicate members", duplicates],
  ["prototype pollution", prototypePollution],
  ["CVE-2022-21449 and signature bytes", signatures],
  ["another issuer's keys", crossIssuer],
  ["RFC 7518 §3.3: RSA keys under 2048 bits", weakKeys],
  ["compact serialization structure", structure],
  ["SEMANTICS §1: claim types", claimTypes],
  ["size and depth", sizeAndDepth],
])("%s", (_group, cases) => {
  it.each(cases)("$name", run);
});
