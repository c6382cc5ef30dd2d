import { KeyObject } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type TokenProfile, mint } from "../helpers/tokens.js";
import { type RefResult, describeRef } from "./oracle.js";
import { compileHarness, startCppHarness } from "./oracles/cpp.js";

// What a scitokens-cpp enforcer carries from one token to the next. The differential test
// asks a fresh enforcer per case (one forked child each), as a short-lived client would;
// a server such as XRootD keeps one enforcer per issuer. Here several tokens go, in order,
// through ONE enforcer (cpp-harness.c --one-enforcer): 1.4.1 decides whether `nbf` is
// mandatory from the profile of the token that enforcer verified before (m_profile in
// Validator::verify_async), so the same token without `nbf` is allowed or refused
// depending on its predecessor. The service enforces `nbf` only when present, whatever
// came before (SEMANTICS §4). Debian's 0.7.3 always runs; 1.4.1 when SCITOKENS_CPP_PREFIX
// names its build (npm run diff:scitokens-cpp).

const KID = "state-es256";

interface TokenSpec {
  profile: TokenProfile;
  nbf: boolean;
  /** Expired an hour ago: refused before the enforcer records the token's profile. */
  expired?: boolean;
  /** Another audience: refused after the enforcer recorded the token's profile. */
  otherAudience?: boolean;
}

const REFERENCES = [
  { id: "cpp-0.7.3", prefix: undefined },
  ...(process.env["SCITOKENS_CPP_PREFIX"] ? [{ id: "cpp-1.4.1", prefix: process.env["SCITOKENS_CPP_PREFIX"] }] : []),
] as const;
type ReferenceId = (typeof REFERENCES)[number]["id"];

const ALLOW = "ALLOW";
const NBF_AT_DESERIALIZE = "DENY at deserialize: token verification failed: 'nbf' claim is mandatory";
const NBF_AT_ENFORCER = "DENY at enforcer_test: token verification failed: 'nbf' claim is mandatory";

const SEQUENCES: ReadonlyArray<{ name: string; tokens: TokenSpec[]; expected: Record<ReferenceId, string[]> }> = [
  {
    name: "SciTokens 2 without nbf, twice",
    tokens: [
      { profile: "scitokens2", nbf: false },
      { profile: "scitokens2", nbf: false },
    ],
    expected: { "cpp-0.7.3": [NBF_AT_DESERIALIZE, NBF_AT_DESERIALIZE], "cpp-1.4.1": [ALLOW, NBF_AT_ENFORCER] },
  },
  {
    name: "SciTokens 1, then SciTokens 2 without nbf",
    tokens: [
      { profile: "scitokens1", nbf: true },
      { profile: "scitokens2", nbf: false },
    ],
    expected: { "cpp-0.7.3": [ALLOW, NBF_AT_DESERIALIZE], "cpp-1.4.1": [ALLOW, NBF_AT_ENFORCER] },
  },
  {
    name: "SciTokens 2, then WLCG without nbf",
    tokens: [
      { profile: "scitokens2", nbf: true },
      { profile: "wlcg1", nbf: false },
    ],
    expected: { "cpp-0.7.3": [ALLOW, NBF_AT_DESERIALIZE], "cpp-1.4.1": [ALLOW, NBF_AT_ENFORCER] },
  },
  {
    name: "SciTokens 2, WLCG, then SciTokens 2 without nbf",
    tokens: [
      { profile: "scitokens2", nbf: true },
      { profile: "wlcg1", nbf: true },
      { profile: "scitokens2", nbf: false },
    ],
    expected: { "cpp-0.7.3": [ALLOW, ALLOW, NBF_AT_DESERIALIZE], "cpp-1.4.1": [ALLOW, ALLOW, ALLOW] },
  },
  {
    name: "an expired SciTokens 2, then SciTokens 2 without nbf",
    tokens: [
      { profile: "scitokens2", nbf: true, expired: true },
      { profile: "scitokens2", nbf: false },
    ],
    expected: {
      "cpp-0.7.3": ["DENY at deserialize: token verification failed: token expired", NBF_AT_DESERIALIZE],
      "cpp-1.4.1": ["DENY at deserialize: token verification failed: token expired", ALLOW],
    },
  },
  {
    name: "a SciTokens 2 for another audience, then SciTokens 2 without nbf",
    tokens: [
      { profile: "scitokens2", nbf: true, otherAudience: true },
      { profile: "scitokens2", nbf: false },
    ],
    expected: {
      "cpp-0.7.3": ["DENY at enforcer_test: (no message)", NBF_AT_DESERIALIZE],
      "cpp-1.4.1": ["DENY at enforcer_test: token verification failed: 'aud' claim verification failed.", NBF_AT_ENFORCER],
    },
  },
];

let dir: string;
let key: TestKey;
let oidc: OidcServer;
let publicKeyPem: string;
/** The compiled harness per reference, compiled once. */
const binaries = new Map<ReferenceId, Promise<string>>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-cpp-state-"));
  key = await makeKey("ES256", KID);
  oidc = await startOidcServer({ keys: [{ alg: "ES256", kid: KID, publicJwk: key.publicJwk }] });
  publicKeyPem = KeyObject.from(key.publicKey).export({ type: "spki", format: "pem" }).toString();
});

afterAll(async () => {
  await oidc?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function tokenOf(spec: TokenSpec): Promise<string> {
  const hourAgo = new Date(Date.now() - 7_200_000);
  return mint(key, oidc.issuer, {
    profile: spec.profile,
    scopes: ["read:/data"],
    nbf: spec.nbf,
    ...(spec.expired === true ? { now: hourAgo, lifetimeSeconds: 3600 } : {}),
    ...(spec.otherAudience === true ? { audience: "https://other.example.org" } : {}),
  });
}

describe.each(REFERENCES)("one $id enforcer across tokens", ({ id, prefix }) => {
  it.each(SEQUENCES)("$name", async ({ tokens, expected }) => {
    if (!binaries.has(id)) binaries.set(id, compileHarness(dir, prefix));
    const binary = await (binaries.get(id) as Promise<string>);
    const harness = await startCppHarness({ id, label: id, binary, dir, issuer: oidc.issuer, kid: KID, publicKeyPem, oneEnforcer: true });
    const answers: RefResult[] = [];
    try {
      for (const spec of tokens) {
        answers.push(await harness.test({ token: await tokenOf(spec), authz: "read", path: "/data/f", audiences: ["https://storage.example.org"] }));
      }
    } finally {
      await harness.close();
    }
    expect(answers.map(describeRef)).toEqual(expected[id]);
  });
});
