import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { FIXES, type Fix, cppScopeDecision } from "./cpp-model.js";
import { AUDIENCE_CONFIGS, type DiffCase, PROFILES, SCITOKENS_ANY, WLCG_ANY, isWlcg } from "./generate-cases.js";
import type { Outcome } from "./run-case.js";
import { semanticsDecision } from "./semantics-model.js";

/** The divergence classes' documentation, read by the test and checked against {@link CLASSIFIERS}. */
export const DIVERGENCES_FILE = join(dirname(fileURLToPath(import.meta.url)), "divergences.yaml");

export const DIVERGENCE_KINDS = ["deliberate", "cpp-0.7.3-bug"] as const;
export type DivergenceKind = (typeof DIVERGENCE_KINDS)[number];

export interface DivergenceClass {
  id: string;
  kind: DivergenceKind;
  summary: string;
  reason: string;
}

/** Reads divergences.yaml, refusing entries without the four fields or with an unknown kind. */
export function loadDivergences(file = DIVERGENCES_FILE): DivergenceClass[] {
  const entries: unknown = parse(readFileSync(file, "utf8"));
  if (!Array.isArray(entries)) throw new Error(`${file}: expected a list of divergence classes`);
  return entries.map((entry: unknown, index) => {
    const e = (entry ?? {}) as Record<string, unknown>;
    for (const field of ["id", "kind", "summary", "reason"]) {
      if (typeof e[field] !== "string" || (e[field] as string).trim() === "") {
        throw new Error(`${file}: entry ${index}: "${field}" must be a non-empty string`);
      }
    }
    if (!(DIVERGENCE_KINDS as readonly string[]).includes(e["kind"] as string)) {
      throw new Error(`${file}: entry ${index} (${String(e["id"])}): kind must be one of ${DIVERGENCE_KINDS.join(", ")}`);
    }
    return { id: e["id"], kind: e["kind"], summary: e["summary"], reason: e["reason"] } as DivergenceClass;
  });
}

/** Decides whether a disagreement (never an agreement) belongs to a class. */
export type Classifier = (o: Outcome) => boolean;

// --- what the harness said -------------------------------------------------------------

const cppAllowed = (o: Outcome): boolean => o.cpp.kind === "allow";
/** scitokens-cpp accepted the token's signature, times and profile (then refused in its enforcer). */
const cppEnforcerDenied = (o: Outcome): boolean => o.cpp.kind === "deny" && o.cpp.stage === "enforcer_test";
const cppDeserializeDenied = (o: Outcome, message: string): boolean =>
  o.cpp.kind === "deny" && o.cpp.stage === "deserialize" && o.cpp.message.includes(message);

// --- what the case holds ---------------------------------------------------------------

const PATH_STYLE = new Set(["read", "write", "storage.read", "storage.create", "storage.modify", "storage.stage"]);
const audiences = (c: DiffCase): string[] => (c.aud === undefined ? [] : Array.isArray(c.aud) ? c.aud : [c.aud]);
const acceptsAny = (c: DiffCase): boolean => (AUDIENCE_CONFIGS[c.audienceConfig] as readonly string[]).includes(SCITOKENS_ANY);
const literallyAccepted = (c: DiffCase): boolean => audiences(c).some((aud) => (AUDIENCE_CONFIGS[c.audienceConfig] as readonly string[]).includes(aud));
const isScitokens1 = (c: DiffCase): boolean => PROFILES[c.profile].mint === "scitokens1";

/** The path of each path-style scope entry that has one. */
function scopePaths(c: DiffCase): string[] {
  return c.scopes.flatMap((entry) => {
    const colon = entry.indexOf(":");
    return colon !== -1 && PATH_STYLE.has(entry.slice(0, colon)) ? [entry.slice(colon + 1)] : [];
  });
}

/**
 * What SEMANTICS §6/§7 refuse in a path: a dot segment, raw or encoded, an encoded
 * separator or `%`, an encoded NUL or other control character, a bad escape.
 */
function hasUnsafeSegment(path: string): boolean {
  return (
    path.split("/").some((segment) => segment === "." || segment === "..") || /%(2e|2f|5c|25|[01][0-9a-f]|7f)/i.test(path) || /%(?![0-9a-f]{2})/i.test(path)
  );
}

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
  if (!cppAllowed(o) && !cppEnforcerDenied(o)) return false;
  if (cppScopeDecision(o.case) === "undefined-behaviour" || modelSays(o.case) !== cppAllowed(o)) return false;
  if (modelSays(o.case, FIXES) !== o.ours.allowed) return false;
  return FIX_SUBSETS.some(
    (subset) => !subset.includes(fix) && modelSays(o.case, subset) !== o.ours.allowed && modelSays(o.case, [...subset, fix]) === o.ours.allowed,
  );
}

// --- the classes (ids as in divergences.yaml) ------------------------------------------

/** One classifier per class of divergences.yaml, keyed by the same id. */
export const CLASSIFIERS: Record<string, Classifier> = {
  "cpp-dot-dot-above-root": (o) =>
    cppScopeDecision(o.case) === "undefined-behaviour" && (o.cpp.kind === "crash" || o.cpp.kind === "allow" || cppEnforcerDenied(o)),

  "cpp-string-prefix": (o) => explainedByFix(o, "component-match"),

  "cpp-nbf-required": (o) => o.ours.allowed && o.case.times.nbf === undefined && cppDeserializeDenied(o, "'nbf' claim is mandatory"),

  "any-audience-not-listed": (o) =>
    cppAllowed(o) &&
    o.ours.reason === "audience_mismatch" &&
    !acceptsAny(o.case) &&
    !literallyAccepted(o.case) &&
    ((PROFILES[o.case.profile].mint === "scitokens2" && audiences(o.case).includes(SCITOKENS_ANY)) || (isWlcg(o.case) && audiences(o.case).includes(WLCG_ANY))),

  "any-audience-either-spelling": (o) =>
    o.ours.allowed &&
    cppEnforcerDenied(o) &&
    acceptsAny(o.case) &&
    !literallyAccepted(o.case) &&
    audiences(o.case).some((aud) => aud === SCITOKENS_ANY || aud === WLCG_ANY) &&
    modelSays(o.case),

  "request-path-refused": (o) => o.ours.reason === "path_invalid" && cppAllowed(o) && hasUnsafeSegment(o.case.path),

  "percent-decoding": (o) => explainedByFix(o, "decode"),

  "scope-path-unsafe": (o) => o.ours.reason === "scope_invalid" && cppAllowed(o) && scopePaths(o.case).some(hasUnsafeSegment),

  "storage-scopes-in-scitokens": (o) => !isWlcg(o.case) && explainedByFix(o, "storage-everywhere"),

  "storage-scope-needs-path": (o) => explainedByFix(o, "bare-storage-ignored"),

  leeway: (o) => {
    const { iat, nbf, exp } = o.case.times;
    const withinLeeway = (exp < 0 && exp >= -60) || (nbf !== undefined && nbf > 0 && nbf <= 60) || (iat !== undefined && iat > 0 && iat <= 60);
    return o.ours.allowed && withinLeeway && cppDeserializeDenied(o, "token expired");
  },

  "scitokens1-scp": (o) => o.case.scopeClaim === "scp" && o.ours.allowed && cppEnforcerDenied(o),

  // scitokens-cpp's scope match would grant, so its refusal is the unknown claim.
  "unknown-claims-ignored": (o) => isScitokens1(o.case) && o.case.groups && o.ours.allowed && cppEnforcerDenied(o) && modelSays(o.case),

  "ver-integer": (o) => o.case.profile === "scitokens1-integer-ver" && o.ours.allowed && cppDeserializeDenied(o, "'ver' claim value must be a string"),

  "wlcg-ver-1x": (o) => o.case.profile === "wlcg-1.2" && o.ours.allowed && cppDeserializeDenied(o, "Unknown WLCG profile version"),
};

/**
 * Whether the service's answer is the one SEMANTICS gives for the case's scopes and path
 * (semantics-model.ts). Reasons decided before or apart from the scopes (time, audience,
 * profile) are not constrained here.
 */
export function followsSemantics(o: Outcome): boolean {
  const expected = semanticsDecision(o.case);
  if ((o.ours.reason === "path_invalid") !== (expected === "path_invalid")) return false;
  if (o.ours.reason === "scope_invalid") return expected === "scope_invalid";
  if (o.ours.allowed) return expected === "allow";
  if (o.ours.reason === "scope_insufficient") return expected === "deny";
  return true;
}

/**
 * The first class (in divergences.yaml order) that claims the disagreement, if any. A
 * disagreement in which the service does not follow SEMANTICS belongs to no class.
 */
export function classify(o: Outcome, classes: readonly DivergenceClass[]): string | undefined {
  if (!followsSemantics(o)) return undefined;
  return classes.find((cls) => CLASSIFIERS[cls.id]?.(o) === true)?.id;
}
