import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { realpath } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type ClassExample, exampleCase } from "../class-examples.js";
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
import { FIXES_141, type Fix141, cpp141ScopeDecision, refusedBy141, refusedOnlyByUs } from "./cpp-1.4.1-model.js";
import type { OracleSpec } from "./spec.js";

// scitokens-cpp 1.4.1, the upstream release built from source (`npm run diff:scitokens-cpp
// -- scitokens-cpp-1.4.1.tar.gz`, which sets SCITOKENS_CPP_PREFIX to the install), asked
// through the same cpp-harness.c as Debian's 0.7.3. Not part of `npm test`: Debian ships
// only 0.7.3.

const exec = promisify(execFile);

/** The release these classes describe; a prefix holding another one is refused. */
export const CPP_141_VERSION = "1.4.1";

/** 1.4.1's scope match (cpp-1.4.1-model.ts) grants the request, with `fixes` applied. */
const modelSays = (c: DiffCase, fixes: readonly Fix141[] = []): boolean => cpp141ScopeDecision(c, new Set(fixes)) === "allow";

const FIX_SUBSETS: ReadonlyArray<readonly Fix141[]> = FIXES_141.reduce<Fix141[][]>(
  (subsets, fix) => subsets.concat(subsets.map((subset) => [...subset, fix])),
  [[]],
);

/**
 * The disagreement is a matter of scope matching and `fix` explains it: both sides judged
 * the scopes (the service allowed, or said scope_insufficient or scope_invalid; 1.4.1
 * answered as the model predicts), the model with every fix decides like the service, and
 * adding `fix` to some set of the other fixes turns the model's answer into the service's.
 */
function explainedByFix(o: Outcome, fix: Fix141): boolean {
  if (!["allowed", "scope_insufficient", "scope_invalid"].includes(o.ours.reason)) return false;
  if (!refAllowed(o) && !refDenied(o, "enforcer_test", "'scope' claim verification failed")) return false;
  if (modelSays(o.case) !== refAllowed(o) || modelSays(o.case, FIXES_141) !== o.ours.allowed) return false;
  return FIX_SUBSETS.some(
    (subset) => !subset.includes(fix) && modelSays(o.case, subset) !== o.ours.allowed && modelSays(o.case, [...subset, fix]) === o.ours.allowed,
  );
}

// --- the classes (ids as in cpp-1.4.1.yaml) ---------------------------------------------

const CLASSIFIERS: Record<string, Classifier> = {
  "scope-order-dependence": (o) => o.ours.reason === "scope_invalid" && allScopePaths(o.case).some(refusedBy141) && explainedByFix(o, "whole-scope"),

  "scope-path-dot-or-encoded": (o) =>
    o.ours.reason === "scope_invalid" && allScopePaths(o.case).some(refusedOnlyByUs) && explainedByFix(o, "strict-scope-paths"),

  "any-audience-not-listed": (o) =>
    refAllowed(o) &&
    o.ours.reason === "audience_mismatch" &&
    !acceptsAny(o.case) &&
    !literallyAccepted(o.case) &&
    ((PROFILES[o.case.profile].mint === "scitokens2" && audiences(o.case).includes(SCITOKENS_ANY)) || (isWlcg(o.case) && audiences(o.case).includes(WLCG_ANY))),

  // 1.4.1 names the claim it refused: the audience, whatever the scopes would have done.
  "any-audience-either-spelling": (o) =>
    o.ours.allowed &&
    refDenied(o, "enforcer_test", "'aud' claim verification failed") &&
    acceptsAny(o.case) &&
    !literallyAccepted(o.case) &&
    audiences(o.case).some((aud) => aud === SCITOKENS_ANY || aud === WLCG_ANY),

  "request-path-refused": (o) => o.ours.reason === "path_invalid" && refAllowed(o) && hasUnsafeSegment(o.case.path),

  "percent-decoding": (o) => explainedByFix(o, "decode-request"),

  "storage-scopes-in-scitokens": (o) => !isWlcg(o.case) && explainedByFix(o, "storage-everywhere"),

  "storage-scope-needs-path": (o) => explainedByFix(o, "bare-storage-ignored"),

  leeway: (o) => o.ours.allowed && withinLeeway(o.case) && refDenied(o, "deserialize", "token expired"),

  "scitokens1-scp": (o) => o.case.scopeClaim === "scp" && o.ours.allowed && refDenied(o, "enforcer_test", "'scope' claim is mandatory"),

  "unknown-claims-ignored": (o) =>
    isScitokens1(o.case) && o.case.groups && o.ours.allowed && refDenied(o, "enforcer_test", "'wlcg.groups' claim verification is mandatory"),

  "ver-integer": (o) => o.case.profile === "scitokens1-integer-ver" && o.ours.allowed && refDenied(o, "deserialize", "'ver' claim value must be a string"),

  "wlcg-ver-1x": (o) => o.case.profile === "wlcg-1.2" && o.ours.allowed && refDenied(o, "deserialize", "Unknown WLCG profile version"),
};

/**
 * One hand-written case per class, plus agreements (several of them where 0.7.3 differs:
 * what 1.4.1 fixed), run through the real harness and service whatever the seed.
 */
const EXAMPLES: readonly ClassExample[] = [
  { name: "both allow a read under the scope path", case: exampleCase({}), expected: null },
  { name: "both deny a write with a read scope", case: exampleCase({ authz: "write" }), expected: null },
  { name: "both deny /foobar under read:/foo (whole segments)", case: exampleCase({ scopes: ["read:/foo"], path: "/foobar" }), expected: null },
  { name: "both allow a token without nbf (fresh enforcer)", case: exampleCase({ times: { label: "no nbf", iat: -10, exp: 600 } }), expected: null },
  { name: "both refuse read:/../data", case: exampleCase({ scopes: ["read:/../data"] }), expected: null },
  { name: "both refuse a scope path unsafe before the granting one", case: exampleCase({ scopes: ["read:/a/../b", "read:/"], path: "/x" }), expected: null },
  { name: "both decode the scope path: read:/d%61ta covers /data", case: exampleCase({ scopes: ["read:/d%61ta"] }), expected: null },
  {
    name: "both allow a WLCG storage.create:/up write",
    case: exampleCase({ profile: "wlcg", scopes: ["storage.create:/up"], authz: "write", path: "/up/new.h5" }),
    expected: null,
  },
  {
    name: "an unsafe scope path after the granting one",
    case: exampleCase({ scopes: ["read:/", "read:/a/../b"], path: "/x" }),
    expected: "scope-order-dependence",
  },
  { name: "a . segment in a scope path", case: exampleCase({ scopes: ["read:/a/./b"], path: "/a/b/c" }), expected: "scope-path-dot-or-encoded" },
  { name: "a double-encoded scope path", case: exampleCase({ scopes: ["read:/f%25%36fo"], path: "/foo" }), expected: "scope-path-dot-or-encoded" },
  { name: "aud ANY without ANY in the policy", case: exampleCase({ aud: SCITOKENS_ANY }), expected: "any-audience-not-listed" },
  {
    name: "the WLCG any audience in a SciTokens token, ANY listed",
    case: exampleCase({ aud: WLCG_ANY, audienceConfig: "with-any" }),
    expected: "any-audience-either-spelling",
  },
  { name: "a request path with .. (1.4.1 resolves it)", case: exampleCase({ path: "/data/x/../file.h5" }), expected: "request-path-refused" },
  { name: "a request path climbing above / (1.4.1 stops at the root)", case: exampleCase({ path: "/../data/file.h5" }), expected: "request-path-refused" },
  { name: "a percent-encoded request path", case: exampleCase({ path: "/d%61ta/file.h5" }), expected: "percent-decoding" },
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
  { name: "wlcg.groups in a SciTokens 1 token", case: exampleCase({ profile: "scitokens1", groups: true }), expected: "unknown-claims-ignored" },
  { name: "ver: 1 (integer)", case: exampleCase({ profile: "scitokens1-integer-ver" }), expected: "ver-integer" },
  { name: "wlcg.ver 1.2", case: exampleCase({ profile: "wlcg-1.2" }), expected: "wlcg-ver-1x" },
];

/**
 * Checks that `prefix` holds a scitokens-cpp install of {@link CPP_141_VERSION} (when the
 * build-info.json of scripts/scitokens-cpp-differential.mjs says which). Needed before
 * compiling: gcc would quietly fall back to Debian's header and library otherwise.
 */
function checkPrefix(prefix: string): void {
  for (const file of ["include/scitokens/scitokens.h", "lib/libSciTokens.so"]) {
    if (!existsSync(join(prefix, file))) throw new Error(`SCITOKENS_CPP_PREFIX=${prefix}: no ${file}: not a scitokens-cpp install prefix`);
  }
  const info = join(prefix, "build-info.json");
  if (existsSync(info)) {
    const version = (JSON.parse(readFileSync(info, "utf8")) as { version?: unknown }).version;
    if (version !== CPP_141_VERSION) {
      throw new Error(
        `SCITOKENS_CPP_PREFIX=${prefix} holds scitokens-cpp ${String(version)}; the classes of oracles/cpp-1.4.1.yaml describe ${CPP_141_VERSION} (add an oracle for ${String(version)})`,
      );
    }
  }
}

/** Checks that the compiled harness loads the library in `prefix`, not Debian's (both are libSciTokens.so.0). */
async function checkLoadedLibrary(prefix: string, binary: string): Promise<void> {
  const { stdout } = await exec(binary, ["--library"]);
  const loaded = await realpath(stdout.trim());
  const expected = await realpath(join(prefix, "lib"));
  if (dirname(loaded) !== expected) throw new Error(`the harness built against ${prefix} loads ${loaded}, not the library in ${expected}`);
}

/** The oracle of the scitokens-cpp 1.4.1 installed under `prefix` (its include/ and lib/). */
export function cpp141(prefix: string): OracleSpec {
  return {
    id: "cpp-1.4.1",
    label: "scitokens-cpp 1.4.1 (built from source)",
    classesFile: join(dirname(fileURLToPath(import.meta.url)), "cpp-1.4.1.yaml"),
    classifiers: CLASSIFIERS,
    examples: EXAMPLES,
    async start(context) {
      checkPrefix(prefix);
      const binary = await compileHarness(context.dir, prefix);
      await checkLoadedLibrary(prefix, binary);
      return startCppHarness({ id: this.id, label: this.label, binary, ...context });
    },
  };
}
