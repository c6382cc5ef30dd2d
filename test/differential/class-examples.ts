import { AUDIENCE, type DiffCase, SCITOKENS_ANY, WLCG_ANY } from "./generate-cases.js";

/** A case with the service's usual token: SciTokens 2, our audience, read:/data, valid now. */
export function exampleCase(overrides: Partial<DiffCase>): DiffCase {
  return {
    id: 0,
    profile: "scitokens2",
    aud: AUDIENCE,
    scopes: ["read:/data"],
    scopeClaim: "scope",
    groups: false,
    times: { label: "valid", iat: -10, nbf: -10, exp: 600 },
    audienceConfig: "single",
    authz: "read",
    path: "/data/file.h5",
    ...overrides,
  };
}

export interface ClassExample {
  name: string;
  case: DiffCase;
  /** The divergence class the disagreement belongs to; `null`: both sides agree. */
  expected: string | null;
}

/**
 * One hand-written case per divergence class, plus agreements, run through the real
 * harness and service whatever the seed: every classifier is checked against real
 * answers, and a class that stops occurring (say, scitokens-cpp got fixed) is noticed.
 */
export const CLASS_EXAMPLES: readonly ClassExample[] = [
  { name: "both allow a read under the scope path", case: exampleCase({}), expected: null },
  { name: "both deny a read outside the scope path", case: exampleCase({ path: "/other/file" }), expected: null },
  { name: "both deny a write with a read scope", case: exampleCase({ authz: "write" }), expected: null },
  { name: "both deny an expired token", case: exampleCase({ times: { label: "expired", iat: -7200, nbf: -7200, exp: -3600 } }), expected: null },
  { name: "both deny another audience", case: exampleCase({ aud: "https://other.example.org" }), expected: null },
  {
    name: "both allow a WLCG storage.create:/up write",
    case: exampleCase({ profile: "wlcg", scopes: ["storage.create:/up"], authz: "write", path: "/up/new.h5" }),
    expected: null,
  },
  { name: "a scope path climbing above / crashes 0.7.3", case: exampleCase({ scopes: ["read:/../data"] }), expected: "cpp-dot-dot-above-root" },
  { name: "read:/foo grants /foobar in 0.7.3", case: exampleCase({ scopes: ["read:/foo"], path: "/foobar" }), expected: "cpp-string-prefix" },
  {
    name: "0.7.3 requires nbf",
    case: exampleCase({ times: { label: "no nbf", iat: -10, exp: 600 } }),
    expected: "cpp-nbf-required",
  },
  { name: "aud ANY without ANY in the policy", case: exampleCase({ aud: SCITOKENS_ANY }), expected: "any-audience-not-listed" },
  {
    name: "the WLCG any audience in a SciTokens token, ANY listed",
    case: exampleCase({ aud: WLCG_ANY, audienceConfig: "with-any" }),
    expected: "any-audience-either-spelling",
  },
  { name: "a request path with ..", case: exampleCase({ path: "/data/x/../file.h5" }), expected: "request-path-refused" },
  { name: "a percent-encoded request path", case: exampleCase({ path: "/d%61ta/file.h5" }), expected: "percent-decoding" },
  {
    name: "a scope path with . invalidates the token",
    case: exampleCase({ scopes: ["read:/data", "write:/up/./x"] }),
    expected: "scope-path-unsafe",
  },
  { name: "storage.read in a SciTokens 2 token", case: exampleCase({ scopes: ["storage.read:/data"] }), expected: "storage-scopes-in-scitokens" },
  {
    name: "a WLCG storage.read without a path",
    case: exampleCase({ profile: "wlcg", scopes: ["storage.read"], path: "/other" }),
    expected: "storage-scope-needs-path",
  },
  {
    name: "expired 30 s ago, within the leeway",
    case: exampleCase({ times: { label: "expired 30 s ago", iat: -630, nbf: -630, exp: -30 } }),
    expected: "leeway",
  },
  { name: "SciTokens 1 scopes in scp", case: exampleCase({ profile: "scitokens1", scopeClaim: "scp" }), expected: "scitokens1-scp" },
  {
    name: "wlcg.groups in a SciTokens 1 token",
    case: exampleCase({ profile: "scitokens1", groups: true }),
    expected: "unknown-claims-ignored",
  },
  { name: "ver: 1 (integer)", case: exampleCase({ profile: "scitokens1-integer-ver" }), expected: "ver-integer" },
  { name: "wlcg.ver 1.2", case: exampleCase({ profile: "wlcg-1.2" }), expected: "wlcg-ver-1x" },
];
