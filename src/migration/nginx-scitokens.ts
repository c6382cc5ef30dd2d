import {
  type Conversion,
  IDENTITY_HEADERS,
  ImportInputError,
  type ImportedIssuer,
  type MergedSection,
  Report,
  type Sourced,
  flowList,
  issuerProblem,
  mergeSections,
  origin,
  splitPaths,
  unknownKeyText,
} from "./conversion.js";
import type { IniDocument, IniSetting } from "./ini.js";

/** What nginx-scitokens' authorizer reads in each section. */
export const NGINX_GLOBAL_KEYS = ["audience", "audience_json"] as const;
export const NGINX_ISSUER_KEYS = ["issuer", "base_path", "map_subject"] as const;
/** XRootD settings that nginx-scitokens does not read (its file format was borrowed from XRootD). */
const XROOTD_ONLY_KEYS = ["onmissing", "restricted_path", "default_user", "name_mapfile", "username_claim", "groups_claim", "authorization_strategy"];

const SOURCE = "nginx-scitokens";

/** The value as Python's ConfigParser gives it: continuation lines joined by newlines, `""` empty. */
function settingValue(setting: IniSetting): string {
  const value = setting.parts.map((part) => part.text).join("\n");
  return value === '""' ? "" : value;
}

/**
 * Converts an nginx-scitokens `authorizer.cfg` (read as its authorizer reads it: Python's
 * ConfigParser, `[Global]` with that case, `[Issuer NAME]` sections with `issuer` and
 * `base_path`) into authorization data. `file` names the source in YAML comments.
 */
export function convertNginxScitokens(doc: IniDocument, file: string): Conversion {
  const report = new Report();
  const sections = mergeSections(doc.sections, (name) => name, report, SOURCE);
  let audiences: Sourced<readonly string[]> | null = null;
  const candidates = new Map<string, { where: string; line: number; issuerLine: number; baseLine: number; issuer: string; paths: string[] }>();

  // ConfigParser gives the settings of [DEFAULT] to every section that does not set them.
  const defaults = sections.find((section) => section.name === "DEFAULT");
  if (defaults !== undefined) {
    report.add(
      defaults.line,
      "[DEFAULT]",
      "note",
      "note: ConfigParser gives its settings to every section that lacks them; each is reported where it applies, with its own line",
    );
  }
  for (const own of sections) {
    if (own === defaults) continue;
    const where = `[${own.name}]`;
    const known = own.name === "Global" || own.name.toLowerCase().startsWith("issuer ");
    const section = defaults !== undefined && known ? withDefaults(own, defaults) : own;
    if (section.name === "Global") {
      audiences = globalAudiences(section.settings, file, report);
      for (const setting of section.all) {
        if ((NGINX_GLOBAL_KEYS as readonly string[]).includes(setting.key) || section.settings.get(setting.key) !== setting) continue;
        report.add(setting.line, `${where} ${setting.name}`, "not imported", notReadText(setting, NGINX_GLOBAL_KEYS, "[Global]"));
      }
      continue;
    }
    if (!section.name.toLowerCase().startsWith("issuer ")) {
      const keys = section.all.length > 0 ? ` (its keys: ${[...new Set(section.all.map((s) => s.name))].join(", ")})` : "";
      const hint = section.name.toLowerCase() === "global" ? "; nginx-scitokens reads the audience only from [Global], spelled with that case" : "";
      report.add(section.line, where, "not imported", `unknown section, not imported${keys}: nginx-scitokens reads [Global] and [Issuer NAME] sections${hint}`);
      continue;
    }
    for (const setting of section.all) {
      if (section.settings.get(setting.key) !== setting) continue;
      const at = `${where} ${setting.name}`;
      if (setting.key === "map_subject") {
        report.add(
          setting.line,
          at,
          "no equivalent",
          `no equivalent: nginx-scitokens reads map_subject but does not use it; mapping identities to users is the upstream's job here: ${IDENTITY_HEADERS}`,
        );
      } else if (!(NGINX_ISSUER_KEYS as readonly string[]).includes(setting.key)) {
        report.add(setting.line, at, "not imported", notReadText(setting, NGINX_ISSUER_KEYS, "an [Issuer NAME] section"));
      }
    }
    const issuerSetting = section.settings.get("issuer");
    const baseSetting = section.settings.get("base_path");
    const missing = [issuerSetting === undefined ? "issuer" : null, baseSetting === undefined ? "base_path" : null].filter((k) => k !== null);
    if (issuerSetting === undefined || baseSetting === undefined) {
      report.add(section.line, where, "not imported", `not imported: the section has no ${missing.join(" and no ")}, and nginx-scitokens skips it too`);
      continue;
    }
    const issuer = settingValue(issuerSetting);
    const problem = issuerProblem(issuer);
    if (problem !== null) {
      report.add(issuerSetting.line, `${where} issuer`, "not imported", `not imported, nor the rest of ${where}: issuer ${JSON.stringify(issuer)}: ${problem}`);
      continue;
    }
    const basePath = settingValue(baseSetting);
    const { paths, refused } = splitPaths([basePath]);
    if (refused.length > 0) {
      report.add(
        baseSetting.line,
        `${where} base_path`,
        "not imported",
        `not imported, nor the rest of ${where}: ${JSON.stringify(basePath)} is not a path here: ${refused[0]!.why}`,
      );
      continue;
    }
    const earlier = candidates.get(issuer);
    if (earlier !== undefined) {
      report.add(
        earlier.line,
        earlier.where,
        "not imported",
        `not imported: ${where} (line ${section.line}) names the same issuer, and nginx-scitokens keeps the later section's base_path`,
      );
      candidates.delete(issuer);
    }
    candidates.set(issuer, { where, line: section.line, issuerLine: issuerSetting.line, baseLine: baseSetting.line, issuer, paths });
  }

  const issuers: ImportedIssuer[] = [];
  for (const candidate of candidates.values()) {
    const index = issuers.length;
    const { where } = candidate;
    report.add(candidate.line, where, "became", `became issuers[${index}] (the section name is kept as a comment)`);
    report.add(candidate.issuerLine, `${where} issuer`, "became", `became issuers[${index}].issuer: ${candidate.issuer}`);
    report.add(
      candidate.baseLine,
      `${where} base_path`,
      "became",
      `became issuers[${index}].base_path: ${candidate.paths[0]} (scope paths stay relative to it, as in nginx-scitokens)`,
    );
    issuers.push({
      from: origin(file, candidate.line, where),
      issuer: { value: candidate.issuer, from: origin(file, candidate.issuerLine, "issuer") },
      basePath: { value: candidate.paths, from: origin(file, candidate.baseLine, "base_path") },
    });
  }

  if (audiences === null) {
    report.add(
      null,
      "[Global] (no such section)",
      "became",
      "became audiences: []: without an audience nginx-scitokens accepts only tokens without aud; here that admits SciTokens 1 tokens only (SciTokens 2 and WLCG tokens always carry aud)",
    );
    audiences = { value: [], from: `${file} has no [Global] audience` };
  }
  if (issuers.length === 0) {
    throw new ImportInputError(
      [{ line: null, message: "no issuer to import: authorization data needs at least one [Issuer NAME] section with issuer and base_path" }],
      report.lines,
    );
  }
  report.add(null, "(no token)", "became", "became on_missing: deny: nginx-scitokens answers 401 to a request without a token, as the service does");
  report.add(
    null,
    "(unusable token)",
    "became",
    "became on_invalid: deny: nginx-scitokens answers 401 to a token it cannot verify (wrong audience included), as the service does",
  );
  report.add(
    null,
    "(methods)",
    "note",
    "note: nginx-scitokens asks for read on GET and for write on PUT, POST, DELETE, MKCOL, COPY and MOVE, and refuses other methods; here read also allows HEAD, OPTIONS and PROPFIND, and write also PATCH, PROPPATCH, LOCK and UNLOCK (docs/semantics.md §9): add verbs to narrow them",
  );
  return {
    data: {
      audiences,
      issuers,
      onMissing: { value: "deny", from: "not a setting: nginx-scitokens answers 401 without a token" },
      onInvalid: { value: "deny", from: "not a setting: nginx-scitokens answers 401 to a token it cannot verify" },
    },
    report: report.lines,
  };
}

/** A section with the [DEFAULT] settings it does not set itself (first, as ConfigParser lists them). */
function withDefaults(section: MergedSection, defaults: MergedSection): MergedSection {
  const inherited = [...defaults.settings.values()].filter((setting) => !section.settings.has(setting.key));
  return {
    name: section.name,
    line: section.line,
    settings: new Map([...inherited.map((setting) => [setting.key, setting] as const), ...section.settings]),
    all: [...inherited, ...section.all],
  };
}

function notReadText(setting: IniSetting, known: readonly string[], place: string): string {
  if (XROOTD_ONLY_KEYS.includes(setting.key)) {
    return `not imported: an XRootD setting that nginx-scitokens does not read; if XRootD reads this file, run "scitokens-authz import xrootd" on it`;
  }
  return unknownKeyText(setting, known, {}, `nginx-scitokens reads only ${known.join(", ")} in ${place}`);
}

/** `[Global]`'s audience: `audience_json` (JSON: a list of strings, or one string) before `audience` (split at commas). */
function globalAudiences(settings: ReadonlyMap<string, IniSetting>, file: string, report: Report): Sourced<readonly string[]> {
  const json = settings.get("audience_json");
  const plain = settings.get("audience");
  if (json !== undefined) {
    const list = parseAudienceJson(settingValue(json), json.line);
    report.add(json.line, "[Global] audience_json", "became", `became audiences: ${flowList(list)}`);
    if (plain !== undefined) {
      report.add(plain.line, "[Global] audience", "not imported", `not imported: audience_json (line ${json.line}) takes precedence, as in nginx-scitokens`);
    }
    return { value: list, from: origin(file, json.line, "[Global] audience_json") };
  }
  const value = plain !== undefined ? settingValue(plain) : "";
  const list = value.includes(",") ? value.split(/\s*,\s*/).filter((a) => a !== "") : value === "" ? [] : [value];
  if (plain === undefined || list.length === 0) {
    report.add(
      plain?.line ?? null,
      plain !== undefined ? "[Global] audience" : "[Global] audience (not set)",
      "became",
      "became audiences: []: without an audience nginx-scitokens accepts only tokens without aud; here that admits SciTokens 1 tokens only (SciTokens 2 and WLCG tokens always carry aud)",
    );
    return { value: [], from: plain !== undefined ? origin(file, plain.line, "[Global] audience (empty)") : `${file} sets no [Global] audience` };
  }
  const split = list.length > 1 ? " (split at commas, as nginx-scitokens does)" : "";
  report.add(
    plain.line,
    "[Global] audience",
    "became",
    `became audiences: ${flowList(list)}${split}; nginx-scitokens also accepts SciTokens 1 tokens without aud, which are refused here (docs/semantics.md §5)`,
  );
  return { value: list, from: origin(file, plain.line, "[Global] audience") };
}

function parseAudienceJson(text: string, line: number): string[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ImportInputError([{ line, message: `audience_json: expected JSON (a list of strings, or one string), found ${JSON.stringify(text)}` }]);
  }
  const items = typeof value === "string" ? [value] : value;
  if (!Array.isArray(items) || items.some((item) => typeof item !== "string" || item === "")) {
    throw new ImportInputError([{ line, message: `audience_json: expected a list of non-empty strings, or one string, found ${text}` }]);
  }
  return [...new Set(items as string[])];
}
