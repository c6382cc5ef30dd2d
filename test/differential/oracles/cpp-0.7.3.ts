import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ClassExample, exampleCase } from "../class-examples.js";
import { FIXES, type Fix, cppScopeDecision } from "../cpp-model.js";
import {
  type Classifier,
  acceptsAny,
  allScopePaths,
  audiences,
  hasUnsafeSegment,
  isScitokens1,
  literallyAccepted,
  refAllowed,
  refDenied,
  withinLeeway,
} from "../divergences.js";
import { type DiffCase, PROFILES, SCITOKENS_ANY, WLCG_ANY, isWlcg } from "../generate-cases.js";
import type { Outcome } from "../run-case.js";
import { compileHarness, startCppHarness } from "./cpp.js";
import type { OracleSpec } from "./spec.js";

// scitokens-cpp 0.7.3, Debian's libscitokens-dev: the reference implementation most sites
// have installed (XRootD's scitokens plugin links it), asked through cpp-harness.c.

/** 0.7.3's scope match (cpp-model.ts) grants the request, with `fixes` applied. */
const modelSays = (c: DiffCase, fixes: readonly Fix[] = []): boolean => cppScopeDecision(c, new Set(fixes)) === "allow";

/** Every subset of {@link FIXES}. */
const FIX_SUBSETS: ReadonlyArray<readonly Fix[]> = FIXES.reduce<Fix[][]>((subsets, fix) => subsets.concat(subsets.map((subset) => [...subset, fix])), [[]]);

/**
 * The disagreement is a matter of scope matching and `fix` explains it: both sides judged
 * the scopes (the service allowed or said scope_insufficient; scitokens-cpp answered as its
 * scope match predicts), the model with every fix matches the service, and adding `fix` to
 * some set of the other fixes turns the model's answer into the service's. With several
 * causes (say a storage.read scope in a SciTokens token and a percent-encoded path), the
 * disagreement counts under the first such class in divergences.yaml order.
 */
function explainedByFix(o: Outcome, fix: Fix): boolean {
  if (o.ours.reason !== "allowed" && o.ours.reason !== "scope_insufficient") return false;
  if (!refAllowed(o) && !refDenied(o, "enforcer_test")) return false;
  if (cppScopeDecision(o.case) === "undefined-behaviour" || modelSays(o.case) !== refAllowed(o)) return false;
  if (modelSays(o.case, FIXES) !== o.ours.allowed) return false;
  return FIX_SUBSETS.some(
    (subset) => !subset.includes(fix) && modelSays(o.case, subset) !== o.ours.allowed && modelSays(o.case, [...subset, fix]) === o.ours.allowed,
  );
}

// --- the classes (ids as in cpp-0.7.3.yaml) ---------------------------------------------

/** One classifier per class of cpp-0.7.3.yaml, keyed by the same id. */
const CLASSIFIERS: Record<string, Classifier> = {
  "cpp-dot-dot-above-root": (o) =>
    cppScopeDecision(o.case) === "undefined-behaviour" && (o.ref.kind === "crash" || o.ref.kind === "allow" || refDenied(o, "enforcer_test")),

  "cpp-string-prefix": (o) => explainedByFix(o, "component-match"),

  "cpp-nbf-required": (o) => o.ours.allowed && o.case.times.nbf === undefined && refDenied(o, "deserialize", "'nbf' claim is mandatory"),

  "any-audience-not-listed": (o) =>
    refAllowed(o) &&
    o.ours.reason === "audience_mismatch" &&
    !acceptsAny(o.case) &&
    !literallyAccepted(o.case) &&
    ((PROFILES[o.case.profile].mint === "scitokens2" && audiences(o.case).includes(SCITOKENS_ANY)) || (isWlcg(o.case) && audiences(o.case).includes(WLCG_ANY))),

  "any-audience-either-spelling": (o) =>
    o.ours.allowed &&
    refDenied(o, "enforcer_test") &&
    acceptsAny(o.case) &&
    !literallyAccepted(o.case) &&
    audiences(o.case).some((aud) => aud === SCITOKENS_ANY || aud === WLCG_ANY) &&
    modelSays(o.case),

  "request-path-refused": (o) => o.ours.reason === "path_invalid" && refAllowed(o) && hasUnsafeSegment(o.case.path),

  "percent-decoding": (o) => explainedByFix(o, "decode"),

  "scope-path-unsafe": (o) => o.ours.reason === "scope_invalid" && refAllowed(o) && allScopePaths(o.case).some(hasUnsafeSegment),

  "storage-scopes-in-scitokens": (o) => !isWlcg(o.case) && explainedByFix(o, "storage-everywhere"),

  "storage-scope-needs-path": (o) => explainedByFix(o, "bare-storage-ignored"),

  leeway: (o) => o.ours.allowed && withinLeeway(o.case) && refDenied(o, "deserialize", "token expired"),

  "scitokens1-scp": (o) => o.case.scopeClaim === "scp" && o.ours.allowed && refDenied(o, "enforcer_test"),

  // scitokens-cpp's scope match would grant, so its refusal is the unknown claim.
  "unknown-claims-ignored": (o) => isScitokens1(o.case) && o.case.groups && o.ours.allowed && refDenied(o, "enforcer_test") && modelSays(o.case),

  "ver-integer": (o) => o.case.profile === "scitokens1-integer-ver" && o.ours.allowed && refDenied(o, "deserialize", "'ver' claim value must be a string"),

  "wlcg-ver-1x": (o) => o.case.profile === "wlcg-1.2" && o.ours.allowed && refDenied(o, "deserialize", "Unknown WLCG profile version"),
};

/**
 * One hand-written case per divergence class, plus agreements, run through the real
 * harness and service whatever the seed: every classifier is checked against real
 * answers, and a class that stops occurring (say, scitokens-cpp got fixed) is noticed.
 */
const EXAMPLES: readonly ClassExample[] = [
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

export const CPP_073: OracleSpec = {
  id: "cpp-0.7.3",
  label: "scitokens-cpp 0.7.3 (Debian)",
  classesFile: join(dirname(fileURLToPath(import.meta.url)), "cpp-0.7.3.yaml"),
  classifiers: CLASSIFIERS,
  // 0.7.3 reads past its path components for these: its answer changes from run to run.
  arbitraryClass: "cpp-dot-dot-above-root",
  examples: EXAMPLES,
  async start(context) {
    const binary = await compileHarness(context.dir);
    return startCppHarness({ id: this.id, label: this.label, binary, ...context });
  },
};
