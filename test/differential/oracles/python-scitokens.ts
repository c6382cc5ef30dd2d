import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ClassExample, exampleCase } from "../class-examples.js";
import {
  type Classifier,
  accepted,
  acceptsAny,
  allScopePaths,
  audiences,
  hasUnsafeSegment,
  literallyAccepted,
  refAllowed,
  refDenied,
  withinLeeway,
} from "../divergences.js";
import { type DiffCase, OTHER_AUDIENCE, SCITOKENS_ANY, WLCG_ANY, isWlcg } from "../generate-cases.js";
import { PY_FIXES, type PyFix, pyNormalizeScopePath, pyScopeDecision } from "../python-model.js";
import type { Outcome } from "../run-case.js";
import { PYTHON_SCITOKENS_VERSION, startPythonHarness } from "./python.js";
import type { OracleSpec } from "./spec.js";

// The Python scitokens library (the release package.json's config.pythonScitokensVersion
// pins, installed by setup into .tools/python-scitokens), as nginx-scitokens and DQSegDB's
// SciTokens support use it, asked through python-harness.py: SciToken.deserialize,
// Enforcer(issuer, audience), Enforcer.test.

/**
 * The library reads the token as SciTokens 2 only for the exact `ver: "scitoken:2.0"`; any
 * other token must have a validator for every claim, and `ver` must be 1 or that string.
 */
const isLibraryScitokens2 = (c: DiffCase): boolean => c.profile === "scitokens2";

/** The library refused in its scope validator: no grant, or an entry it refuses. */
const scopeRefusal = (o: Outcome): "deny" | "invalid" | undefined => {
  if (o.ref.kind !== "deny" || o.ref.stage !== "enforcer_test") return undefined;
  if (/^returned False; last_failure: Validator rejected value of .* for claim '(scope|scp)'$/.test(o.ref.message)) return "deny";
  if (/^returned False; last_failure: Token contains /.test(o.ref.message)) return "invalid";
  return undefined;
};

/** The model of the library's scope match (python-model.ts) grants the request, with `fixes`. */
const modelSays = (c: DiffCase, fixes: readonly PyFix[] = []): boolean => pyScopeDecision(c, new Set(fixes)) === "allow";

/** Every subset of {@link PY_FIXES}. */
const FIX_SUBSETS: ReadonlyArray<readonly PyFix[]> = PY_FIXES.reduce<PyFix[][]>(
  (subsets, fix) => subsets.concat(subsets.map((subset) => [...subset, fix])),
  [[]],
);

/**
 * The disagreement is a matter of scope matching and `fix` explains it: both sides judged
 * the scopes (the service allowed or said scope_insufficient; the library allowed or
 * refused in its scope validator, exactly as the model predicts, refused entry included),
 * the model with every fix matches the service, and adding `fix` to some set of the other
 * fixes turns the model's answer into the service's.
 */
function explainedByFix(o: Outcome, fix: PyFix): boolean {
  if (o.ours.reason !== "allowed" && o.ours.reason !== "scope_insufficient") return false;
  const predicted = pyScopeDecision(o.case);
  if (refAllowed(o) ? predicted !== "allow" : scopeRefusal(o) !== predicted) return false;
  if (modelSays(o.case, PY_FIXES) !== o.ours.allowed) return false;
  return FIX_SUBSETS.some(
    (subset) => !subset.includes(fix) && modelSays(o.case, subset) !== o.ours.allowed && modelSays(o.case, [...subset, fix]) === o.ours.allowed,
  );
}

// --- the classes (ids as in python-scitokens.yaml) --------------------------------------

const CLASSIFIERS: Record<string, Classifier> = {
  // The library allowed, so the entry it would refuse comes after the one that granted.
  "py-traversal-after-grant": (o) =>
    o.ours.reason === "scope_invalid" &&
    refAllowed(o) &&
    o.case.scopes.some((entry) => {
      const path = entry.includes(":") ? entry.slice(entry.indexOf(":") + 1) : "";
      return path.startsWith("/") && pyNormalizeScopePath(path) === undefined;
    }),

  "py-upper-case-escapes": (o) => explainedByFix(o, "decode-upper-case"),

  "wlcg-profile": (o) => isWlcg(o.case) && o.ours.allowed && refDenied(o, "enforcer_test"),

  "unknown-claims-ignored": (o) => !isLibraryScitokens2(o.case) && o.case.groups && o.ours.allowed && refDenied(o, "enforcer_test"),

  "ver-spellings": (o) =>
    (o.case.profile === "scitokens2-plural" || o.case.profile === "scitokens1-ver") && o.ours.allowed && refDenied(o, "enforcer_test", "for claim 'ver'"),

  leeway: (o) =>
    o.ours.allowed && withinLeeway(o.case) && (refDenied(o, "deserialize", "ExpiredSignatureError") || refDenied(o, "deserialize", "ImmatureSignatureError")),

  "iat-required": (o) => o.ours.reason === "claim_invalid" && o.case.times.iat === undefined && refAllowed(o),

  "any-audience-not-listed": (o) =>
    refAllowed(o) && o.ours.reason === "audience_mismatch" && audiences(o.case).includes(SCITOKENS_ANY) && !acceptsAny(o.case) && !literallyAccepted(o.case),

  "any-audience-either-spelling": (o) =>
    o.ours.allowed &&
    refDenied(o, "enforcer_test", "for claim 'aud'") &&
    acceptsAny(o.case) &&
    audiences(o.case).includes(WLCG_ANY) &&
    !audiences(o.case).includes(SCITOKENS_ANY) &&
    !literallyAccepted(o.case),

  "scitokens1-aud-required": (o) =>
    refAllowed(o) && o.ours.reason === "audience_mismatch" && o.case.aud === undefined && !isLibraryScitokens2(o.case) && accepted(o.case).length > 0,

  "request-path-refused": (o) => o.ours.reason === "path_invalid" && refAllowed(o) && hasUnsafeSegment(o.case.path),

  "scope-path-unsafe": (o) => o.ours.reason === "scope_invalid" && refAllowed(o) && allScopePaths(o.case).some(hasUnsafeSegment),

  "storage-scopes-in-scitokens": (o) => explainedByFix(o, "storage-everywhere"),

  "read-write-without-path": (o) => explainedByFix(o, "read-write-without-path"),

  "empty-or-relative-scope-path": (o) => explainedByFix(o, "empty-or-relative-path"),

  "scope-trailing-slash": (o) => explainedByFix(o, "trailing-slash"),
};

/**
 * One hand-written case per divergence class, plus agreements, run through the real
 * driver and service whatever the seed: every classifier is checked against real answers,
 * and a class that stops occurring (say, a new release of the library) is noticed.
 */
const EXAMPLES: readonly ClassExample[] = [
  { name: "both allow a read under the scope path", case: exampleCase({}), expected: null },
  { name: "both deny a read outside the scope path", case: exampleCase({ path: "/other/file" }), expected: null },
  { name: "both deny a write with a read scope", case: exampleCase({ authz: "write" }), expected: null },
  { name: "both deny an expired token", case: exampleCase({ times: { label: "expired", iat: -7200, nbf: -7200, exp: -3600 } }), expected: null },
  { name: "both deny another audience", case: exampleCase({ aud: OTHER_AUDIENCE }), expected: null },
  { name: "both match whole components: read:/foo denies /foobar", case: exampleCase({ scopes: ["read:/foo"], path: "/foobar" }), expected: null },
  { name: "both decode a lower-case escape: /d%61ta is /data", case: exampleCase({ path: "/d%61ta/file.h5" }), expected: null },
  { name: "both accept a token without nbf", case: exampleCase({ times: { label: "no nbf", iat: -10, exp: 600 } }), expected: null },
  { name: "both read SciTokens 1 scopes in scp", case: exampleCase({ profile: "scitokens1", scopeClaim: "scp" }), expected: null },
  { name: "both read ver: 1 (integer) as SciTokens 1", case: exampleCase({ profile: "scitokens1-integer-ver" }), expected: null },
  {
    name: "a .. after the granting scope is never examined",
    case: exampleCase({ scopes: ["read:/data", "read:/data/../etc"] }),
    expected: "py-traversal-after-grant",
  },
  {
    name: "an upper-case escape in the request path",
    case: exampleCase({ scopes: ["read:/foo"], path: "/f%6Fo/file.h5" }),
    expected: "py-upper-case-escapes",
  },
  {
    name: "a WLCG token",
    case: exampleCase({ profile: "wlcg", scopes: ["storage.read:/data"] }),
    expected: "wlcg-profile",
  },
  {
    name: "wlcg.groups in a SciTokens 1 token",
    case: exampleCase({ profile: "scitokens1", groups: true }),
    expected: "unknown-claims-ignored",
  },
  { name: "ver: scitokens:2.0", case: exampleCase({ profile: "scitokens2-plural" }), expected: "ver-spellings" },
  {
    name: "expired 30 s ago, within the leeway",
    case: exampleCase({ times: { label: "expired 30 s ago", iat: -630, nbf: -630, exp: -30 } }),
    expected: "leeway",
  },
  { name: "no iat", case: exampleCase({ times: { label: "no iat", nbf: -10, exp: 600 } }), expected: "iat-required" },
  { name: "aud ANY without ANY in the policy", case: exampleCase({ aud: SCITOKENS_ANY }), expected: "any-audience-not-listed" },
  {
    name: "the WLCG any audience in a SciTokens token, ANY listed",
    case: exampleCase({ aud: WLCG_ANY, audienceConfig: "with-any" }),
    expected: "any-audience-either-spelling",
  },
  { name: "a SciTokens 1 token without aud", case: exampleCase({ profile: "scitokens1", aud: undefined }), expected: "scitokens1-aud-required" },
  { name: "a request path with ..", case: exampleCase({ path: "/data/x/../file.h5" }), expected: "request-path-refused" },
  { name: "a scope path with . invalidates the token", case: exampleCase({ scopes: ["read:/data/./x", "read:/data"] }), expected: "scope-path-unsafe" },
  { name: "storage.read in a SciTokens 2 token", case: exampleCase({ scopes: ["storage.read:/data"] }), expected: "storage-scopes-in-scitokens" },
  { name: "read without a path", case: exampleCase({ scopes: ["read"] }), expected: "read-write-without-path" },
  { name: "a relative scope path", case: exampleCase({ scopes: ["read:data"] }), expected: "empty-or-relative-scope-path" },
  { name: "read:/data/ covers /data", case: exampleCase({ scopes: ["read:/data/"], path: "/data" }), expected: "scope-trailing-slash" },
];

export const PYTHON_SCITOKENS: OracleSpec = {
  id: "python-scitokens",
  label: `Python scitokens ${PYTHON_SCITOKENS_VERSION}`,
  classesFile: join(dirname(fileURLToPath(import.meta.url)), "python-scitokens.yaml"),
  classifiers: CLASSIFIERS,
  // The library refuses every WLCG token (about a third of the cases) and most odd scope
  // forms, so fewer cases are allowed by both sides than with scitokens-cpp (about 7 %).
  minBothAllowShare: 0.05,
  examples: EXAMPLES,
  start(context) {
    return startPythonHarness({ id: this.id, label: this.label, ...context });
  },
};
