import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { AUDIENCE_CONFIGS, type DiffCase, PROFILES, SCITOKENS_ANY } from "./generate-cases.js";
import type { Outcome } from "./run-case.js";
import { semanticsDecision } from "./semantics-model.js";

// The divergence classes of one reference implementation (oracles/<id>.yaml) and what all
// classifiers share: reading the reference's answer and the case.

export const DIVERGENCE_KINDS = ["deliberate", "bug"] as const;
export type DivergenceKind = (typeof DIVERGENCE_KINDS)[number];

export interface DivergenceClass {
  id: string;
  /** `deliberate`: we decide differently on purpose; `bug`: a bug of the reference release. */
  kind: DivergenceKind;
  summary: string;
  reason: string;
}

/** Reads an oracle's classes, refusing entries without the four fields or with an unknown kind. */
export function loadDivergences(file: string): DivergenceClass[] {
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

// --- what the reference said -----------------------------------------------------------

export const refAllowed = (o: Outcome): boolean => o.ref.kind === "allow";
/** The reference refused at `stage`, with a message holding `message` (any message if omitted). */
export const refDenied = (o: Outcome, stage: string, message = ""): boolean =>
  o.ref.kind === "deny" && o.ref.stage === stage && o.ref.message.includes(message);

// --- what the case holds ---------------------------------------------------------------

export const PATH_STYLE = new Set(["read", "write", "storage.read", "storage.create", "storage.modify", "storage.stage"]);
export const audiences = (c: DiffCase): string[] => (c.aud === undefined ? [] : Array.isArray(c.aud) ? c.aud : [c.aud]);
export const accepted = (c: DiffCase): readonly string[] => AUDIENCE_CONFIGS[c.audienceConfig];
export const acceptsAny = (c: DiffCase): boolean => accepted(c).includes(SCITOKENS_ANY);
export const literallyAccepted = (c: DiffCase): boolean => audiences(c).some((aud) => accepted(c).includes(aud));
export const isScitokens1 = (c: DiffCase): boolean => PROFILES[c.profile].mint === "scitokens1";
export const isScitokens2 = (c: DiffCase): boolean => PROFILES[c.profile].mint === "scitokens2";

/** The path of each path-style scope entry that has one. */
export function scopePaths(c: DiffCase): string[] {
  return c.scopes.flatMap((entry) => {
    const colon = entry.indexOf(":");
    return colon !== -1 && PATH_STYLE.has(entry.slice(0, colon)) ? [entry.slice(colon + 1)] : [];
  });
}

/** The path of every scope entry that has one, named scopes included. */
export function allScopePaths(c: DiffCase): string[] {
  return c.scopes.flatMap((entry) => {
    const colon = entry.indexOf(":");
    return colon === -1 ? [] : [entry.slice(colon + 1)];
  });
}

/**
 * What SEMANTICS §6/§7 refuse in a path: a dot segment, raw or encoded, an encoded
 * separator or `%`, an encoded NUL or other control character, a bad escape.
 */
export function hasUnsafeSegment(path: string): boolean {
  return (
    path.split("/").some((segment) => segment === "." || segment === "..") || /%(2e|2f|5c|25|[01][0-9a-f]|7f)/i.test(path) || /%(?![0-9a-f]{2})/i.test(path)
  );
}

/** The case's times put a claim within the 60 s leeway of SEMANTICS §4 (and nothing beyond it). */
export function withinLeeway(c: DiffCase): boolean {
  const { iat, nbf, exp } = c.times;
  return (exp < 0 && exp >= -60) || (nbf !== undefined && nbf > 0 && nbf <= 60) || (iat !== undefined && iat > 0 && iat <= 60);
}

/**
 * Whether the service's answer is the one SEMANTICS gives for the case's scopes and path
 * (semantics-model.ts). Reasons decided before or apart from the scopes (time, audience,
 * profile) are not constrained here.
 */
export function followsSemantics(o: Pick<Outcome, "case" | "ours">): boolean {
  const expected = semanticsDecision(o.case);
  if ((o.ours.reason === "path_invalid") !== (expected === "path_invalid")) return false;
  if (o.ours.reason === "scope_invalid") return expected === "scope_invalid";
  if (o.ours.allowed) return expected === "allow";
  if (o.ours.reason === "scope_insufficient") return expected === "deny";
  return true;
}

/**
 * The first class (in the YAML file's order) that claims the disagreement, if any. A
 * disagreement in which the service does not follow SEMANTICS belongs to no class.
 */
export function classify(o: Outcome, classes: readonly DivergenceClass[], classifiers: Readonly<Record<string, Classifier>>): string | undefined {
  if (!followsSemantics(o)) return undefined;
  return classes.find((cls) => classifiers[cls.id]?.(o) === true)?.id;
}
