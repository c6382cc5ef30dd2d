import { isFetchableUrl } from "../config/authz-data.js";
import { closest } from "../config/issue-text.js";
import { normalizeConfiguredPath } from "../paths/normalize.js";
import type { IniSection, IniSetting } from "./ini.js";

/**
 * What became of one setting (or one behaviour that is not a setting): `became` a key of
 * the authorization data, `no equivalent` here, `not imported` (unknown, ignored by the
 * source too, or refused here), or a `note` on behaviour that differs.
 */
export type Outcome = "became" | "no equivalent" | "not imported" | "note";

export interface ReportLine {
  /** The line of the source file, or null for a setting left out or a behaviour. */
  readonly line: number | null;
  /** `[Section] key`, or a description such as `[Global] audience (not set)`. */
  readonly where: string;
  readonly outcome: Outcome;
  /** Starts with the outcome's words, e.g. "became audiences: [testing]". */
  readonly text: string;
}

/** A value of the authorization data and where it came from (a YAML comment). */
export interface Sourced<T> {
  readonly value: T;
  readonly from: string;
}

export interface ImportedIssuer {
  /** The section it came from, e.g. `[Issuer OSG-Demo]`, and its line. */
  readonly from: string;
  readonly issuer: Sourced<string>;
  readonly basePath: Sourced<readonly string[]>;
  readonly restrictedPath?: Sourced<readonly string[]>;
}

/** The authorization data a source file becomes, each value with its origin. */
export interface ImportedData {
  readonly audiences: Sourced<readonly string[]>;
  readonly issuers: readonly ImportedIssuer[];
  readonly usernameClaim?: Sourced<string>;
  readonly onMissing: Sourced<"deny" | "passthrough">;
  readonly onInvalid: Sourced<"deny" | "passthrough">;
}

export interface Conversion {
  readonly data: ImportedData;
  readonly report: readonly ReportLine[];
}

/**
 * The source is not one that can be converted: every problem, each `line` or null for the
 * file, and what the report had found by then (why no issuer was left, for example).
 */
export class ImportInputError extends Error {
  override readonly name = "ImportInputError";
  constructor(
    readonly problems: ReadonlyArray<{ line: number | null; message: string }>,
    readonly report: readonly ReportLine[] = [],
  ) {
    super(problems.map((p) => p.message).join("; "));
  }
}

/** What the upstream gets instead of a mapped user (SEMANTICS §11). */
export const IDENTITY_HEADERS = "it gets x-scitokens-subject (sub, or the username_claim), x-scitokens-issuer and x-scitokens-groups (wlcg.groups) instead";

/** Collects report lines in the order they are found. */
export class Report {
  readonly lines: ReportLine[] = [];
  add(line: number | null, where: string, outcome: Outcome, text: string): void {
    this.lines.push({ line, where, outcome, text });
  }
}

/** One section after merging repeated headers: the last value of each key counts. */
export interface MergedSection {
  /** The name as first written. */
  readonly name: string;
  /** The line of the first header. */
  readonly line: number;
  /** Each key's setting that counts (the last one). */
  readonly settings: ReadonlyMap<string, IniSetting>;
  /** Every setting in file order, the overridden ones included. */
  readonly all: readonly IniSetting[];
}

/**
 * Merges repeated section headers (named alike under `identity`) as both readers do:
 * later settings of a key replace earlier ones. Each replaced setting is reported as not
 * imported, naming the line that counts and the source (`sourceName`).
 */
export function mergeSections(sections: readonly IniSection[], identity: (name: string) => string, report: Report, sourceName: string): MergedSection[] {
  const merged = new Map<string, { name: string; line: number; settings: Map<string, IniSetting>; all: IniSetting[] }>();
  for (const section of sections) {
    const id = identity(section.name);
    let entry = merged.get(id);
    if (entry === undefined) {
      entry = { name: section.name, line: section.line, settings: new Map(), all: [] };
      merged.set(id, entry);
    }
    for (const setting of section.settings) {
      entry.all.push(setting);
      entry.settings.set(setting.key, setting);
    }
  }
  for (const section of merged.values()) {
    for (const setting of section.all) {
      const counting = section.settings.get(setting.key)!;
      if (counting !== setting) {
        report.add(
          setting.line,
          `[${section.name}] ${setting.name}`,
          "not imported",
          `not imported: set again at line ${counting.line}, and the last value counts (as in ${sourceName})`,
        );
      }
    }
  }
  return [...merged.values()];
}

/** `unknown key, not imported: …; did you mean "x"?` for a key the source does not read. */
export function unknownKeyText(setting: IniSetting, known: readonly string[], aliases: Readonly<Record<string, string>>, why: string): string {
  const close = aliases[setting.key] ?? closest(setting.key, known);
  const hint = close !== null && close !== setting.key ? `; did you mean "${close}"?` : "";
  return `unknown key, not imported: ${why}${hint}`;
}

/** A path of the data (SEMANTICS §8), or why it is not one. */
export function checkPath(raw: string): { ok: true; path: string } | { ok: false; why: string } {
  const result = normalizeConfiguredPath(raw);
  return result.ok ? { ok: true, path: raw } : { ok: false, why: result.why };
}

/** Why an issuer value cannot be used with OIDC discovery here (SEMANTICS §3), or null. */
export function issuerProblem(issuer: string): string | null {
  if (issuer === "") return "it is empty";
  if (!isFetchableUrl(issuer)) {
    return "keys are found here by OIDC discovery over HTTPS only (http:// only on loopback); to use it, add it by hand with a jwks_file";
  }
  return null;
}

/** Paths of a list value, each checked; the refused ones with their reason. */
export function splitPaths(items: readonly string[]): { paths: string[]; refused: Array<{ raw: string; why: string }> } {
  const paths: string[] = [];
  const refused: Array<{ raw: string; why: string }> = [];
  for (const raw of items) {
    const checked = checkPath(raw);
    if (checked.ok) paths.push(checked.path);
    else refused.push({ raw, why: checked.why });
  }
  return { paths, refused };
}

/** A list in YAML flow style for the report: `[a, "b,c"]`. */
export function flowList(items: readonly string[]): string {
  return `[${items.map((item) => (/^[\w./:@+-]+$/.test(item) ? item : JSON.stringify(item))).join(", ")}]`;
}

/** `FILE:LINE [Section] key` for a YAML comment naming where a value came from. */
export function origin(file: string, line: number, where: string): string {
  return `${file}:${line} ${where}`;
}
