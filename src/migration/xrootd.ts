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

/** What XRootD's scitokens plugin reads in each section (XrdSciTokensAccess.cc, `Reconfig`). */
export const XROOTD_GLOBAL_KEYS = ["audience", "audience_json", "onmissing"] as const;
export const XROOTD_ISSUER_KEYS = [
  "issuer",
  "base_path",
  "restricted_path",
  "map_subject",
  "default_user",
  "username_claim",
  "groups_claim",
  "name_mapfile",
  "authorization_strategy",
] as const;
/** Spellings seen in the wild for keys XRootD reads under another name. */
const ALIASES: Readonly<Record<string, string>> = { authz_strategy: "authorization_strategy", audiences: "audience", on_missing: "onmissing" };

const SOURCE = "XRootD";

/**
 * The value as XRootD's reader gives it: its INI reader replaces a value by each
 * continuation line, so the last line counts.
 */
function settingValue(setting: IniSetting): string {
  return setting.parts[setting.parts.length - 1]!.text;
}

/** XRootD splits `audience`, `base_path` and `restricted_path` at commas and spaces. */
function splitList(value: string): string[] {
  return value.split(/[, ]+/).filter((item) => item !== "");
}

/** `(continued on line N: XRootD keeps only its last line)` when a value has continuation lines. */
function continued(setting: IniSetting): string {
  if (setting.parts.length === 1) return "";
  return ` (continued on line ${setting.parts[setting.parts.length - 1]!.line}: XRootD's reader keeps only the last line)`;
}

/** `onmissing` as set, and where. */
interface Onmissing {
  readonly value: string;
  readonly line: number;
  readonly where: string;
}

interface Candidate {
  readonly section: MergedSection;
  readonly where: string;
  readonly issuer: string;
  readonly issuerLine: number;
  readonly basePath: { paths: string[]; line: number };
  readonly restricted: { paths: string[]; line: number } | null;
  readonly usernameClaim: { value: string; line: number } | null;
  /** Whether the section leaves authorization_strategy at XRootD's default (capability group mapping). */
  readonly defaultStrategy: boolean;
}

/**
 * Converts an XRootD `scitokens.cfg` (read as XRootD's scitokens plugin reads it:
 * sections named `Global…` and `Issuer NAME` in any case, later values of a key
 * replacing earlier ones) into authorization data. `file` names the source in YAML
 * comments.
 */
export function convertXrootd(doc: IniDocument, file: string): Conversion {
  const report = new Report();
  for (const setting of doc.preamble) {
    report.add(setting.line, setting.name, "not imported", "not imported: a setting outside any [section]; XRootD ignores it");
  }
  const sections = mergeSections(doc.sections, (name) => name.toLowerCase(), report, SOURCE);
  const audiences: Array<{ value: string[]; from: string }> = [];
  let onmissing: Onmissing | null = null;
  const candidates: Candidate[] = [];

  // XRootD visits the sections in the order of their names (a std::set).
  for (const section of [...sections].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const lower = section.name.toLowerCase();
    if (lower.startsWith("global")) {
      onmissing = readGlobal(section, file, report, audiences) ?? onmissing;
    } else if (lower.startsWith("issuer ")) {
      const candidate = readIssuer(section, report);
      if (candidate !== null) candidates.push(candidate);
    } else {
      const keys = section.all.length > 0 ? ` (its keys: ${[...new Set(section.all.map((s) => s.name))].join(", ")})` : "";
      const hint = lower === "issuer" ? '; an issuer section needs a name after "Issuer ", like [Issuer OSG-Connect]' : "";
      report.add(
        section.line,
        `[${section.name}]`,
        "not imported",
        `unknown section, not imported${keys}: XRootD reads only [Global] and [Issuer NAME] sections and ignores it${hint}`,
      );
    }
  }

  const kept = keptCandidates(candidates, report);
  const issuers = importIssuers(kept, file, report);
  if (issuers.length === 0) {
    throw new ImportInputError(
      [{ line: null, message: "no issuer to import: authorization data needs at least one [Issuer NAME] section with issuer and base_path" }],
      report.lines,
    );
  }
  const usernameClaim = importUsernameClaim(kept, file, report);
  const defaultStrategy = kept.filter((c) => c.defaultStrategy).map((c) => c.where);
  if (defaultStrategy.length > 0) {
    report.add(
      null,
      `authorization_strategy (not set in ${defaultStrategy.join(", ")})`,
      "no equivalent",
      "no equivalent for group and mapping, in XRootD's default capability group mapping: XRootD sent a token with groups or a mapped username but no granting scope on to its onmissing behaviour (by default the next authorization plugin); here only scopes authorize, and groups only reach the upstream as x-scitokens-groups",
    );
  }
  const accepted = [...new Set(audiences.flatMap((a) => a.value))];
  if (audiences.length === 0 || accepted.length === 0) {
    report.add(
      null,
      "[Global] audience (not set)",
      "became",
      "became audiences: []: without an audience XRootD accepts only tokens without aud; here that admits SciTokens 1 tokens only (SciTokens 2 and WLCG tokens always carry aud): list this server's audience",
    );
  }
  if (!accepted.includes("ANY")) {
    report.add(
      null,
      "(audience ANY)",
      "note",
      "note: XRootD (through scitokens-cpp) also accepts tokens whose aud is ANY or https://wlcg.cern.ch/jwt/v1/any, whatever its audience list; here only when audiences lists ANY (docs/semantics.md §5): add it if clients rely on such tokens",
    );
  }
  const behaviour = onMissingBehaviour(onmissing, file, report);
  report.add(
    null,
    "(operations)",
    "note",
    "note: what a scope allows differs in places: XRootD also allows stat and mkdir on the parents of a granted path, storage.create and storage.stage map to other operations, and HTTP methods follow docs/semantics.md §9; see docs/migration.md",
  );
  return {
    data: {
      audiences: { value: accepted, from: audiences.length > 0 ? audiences.map((a) => a.from).join(" + ") : `${file} sets no [Global] audience` },
      issuers,
      ...(usernameClaim !== null ? { usernameClaim } : {}),
      onMissing: behaviour,
      onInvalid: behaviour,
    },
    report: report.lines,
  };
}

function readGlobal(section: MergedSection, file: string, report: Report, audiences: Array<{ value: string[]; from: string }>): Onmissing | null {
  let onmissing: Onmissing | null = null;
  const where = `[${section.name}]`;
  for (const setting of section.all) {
    if (section.settings.get(setting.key) !== setting) continue;
    const at = `${where} ${setting.name}`;
    const value = settingValue(setting);
    switch (setting.key) {
      case "audience": {
        const list = splitList(value);
        if (list.length === 0) continue;
        const split = list.length > 1 ? " (split at commas and spaces, as XRootD does)" : "";
        report.add(setting.line, at, "became", `became audiences: ${flowList(list)}${split}${continued(setting)}`);
        audiences.push({ value: list, from: origin(file, setting.line, at) });
        break;
      }
      case "audience_json": {
        if (value === "") continue;
        const list = parseAudienceJson(value, setting.line);
        const also = section.settings.has("audience") ? " (XRootD accepts the audiences of both audience and audience_json)" : "";
        const single = value.trimStart().startsWith('"') ? "; current XRootD releases refuse a JSON string here and want a list" : "";
        report.add(setting.line, at, "became", `became audiences: ${flowList(list)}${also}${single}${continued(setting)}`);
        audiences.push({ value: list, from: origin(file, setting.line, at) });
        break;
      }
      case "onmissing":
        if (value !== "passthrough" && value !== "allow" && value !== "deny") {
          if (value === "") continue;
          throw new ImportInputError([
            { line: setting.line, message: `onmissing: expected passthrough, allow or deny, found ${JSON.stringify(value)} (XRootD refuses this file too)` },
          ]);
        }
        onmissing = { value, line: setting.line, where: at };
        break;
      default: {
        const hint = (XROOTD_ISSUER_KEYS as readonly string[]).includes(setting.key)
          ? `XRootD reads ${setting.key} only in [Issuer NAME] sections and ignores it here`
          : `XRootD reads only ${XROOTD_GLOBAL_KEYS.join(", ")} in [Global] and ignores it`;
        report.add(setting.line, at, "not imported", unknownKeyText(setting, XROOTD_GLOBAL_KEYS, ALIASES, hint));
      }
    }
  }
  return onmissing;
}

function parseAudienceJson(text: string, line: number): string[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ImportInputError([
      { line, message: `audience_json: expected a JSON list of strings, found ${JSON.stringify(text)} (XRootD refuses this file too)` },
    ]);
  }
  const items = typeof value === "string" ? [value] : value;
  if (!Array.isArray(items) || items.some((item) => typeof item !== "string")) {
    throw new ImportInputError([{ line, message: `audience_json: expected a JSON list of strings, found ${text} (XRootD refuses this file too)` }]);
  }
  return (items as string[]).filter((item) => item !== "");
}

/** One `[Issuer NAME]` section as XRootD reads it, or null (reported) when XRootD skips it or it cannot be imported. */
function readIssuer(section: MergedSection, report: Report): Candidate | null {
  const where = `[${section.name}]`;
  const skip = (line: number, text: string): null => {
    report.add(line, where, "not imported", text);
    return null;
  };
  const get = (key: string) => section.settings.get(key);
  let strategyWords: string[] | null = null;
  let usernameClaim: { value: string; line: number } | null = null;

  for (const setting of section.all) {
    if (section.settings.get(setting.key) !== setting) continue;
    const at = `${where} ${setting.name}`;
    const value = settingValue(setting);
    switch (setting.key) {
      case "issuer":
      case "base_path":
      case "restricted_path":
        break; // reported with the issuer below
      case "map_subject": {
        const on = ["true", "yes", "on", "1"].includes(value.toLowerCase());
        report.add(
          setting.line,
          at,
          "no equivalent",
          on
            ? `no equivalent: XRootD made the token's sub the request's username (for file ownership with xrootd-multiuser); mapping users is the upstream's job here: ${IDENTITY_HEADERS}`
            : "no equivalent: map_subject off is XRootD's default (no username from sub); nothing to carry over",
        );
        break;
      }
      case "default_user":
        report.add(
          setting.line,
          at,
          "no equivalent",
          `no equivalent: XRootD ran the requests this issuer's scopes authorized as Unix user ${JSON.stringify(value)}; mapping users is the upstream's job here: ${IDENTITY_HEADERS}`,
        );
        break;
      case "name_mapfile":
        report.add(
          setting.line,
          at,
          "no equivalent",
          `no equivalent: the mapfile's rules (sub, username, group, path to a username) are not read here; apply them in the upstream: ${IDENTITY_HEADERS}`,
        );
        break;
      case "groups_claim":
        report.add(
          setting.line,
          at,
          "no equivalent",
          value === "wlcg.groups"
            ? "no equivalent needed: wlcg.groups is XRootD's default, and the groups here come from wlcg.groups too (x-scitokens-groups)"
            : `no equivalent: groups come only from wlcg.groups here (sent upstream as x-scitokens-groups, never authorizing); ${JSON.stringify(value)} is not read`,
        );
        break;
      case "username_claim":
        if (value !== "") usernameClaim = { value, line: setting.line };
        break;
      case "authorization_strategy":
        strategyWords = value.split(" ").filter((word) => word !== "");
        break;
      default:
        report.add(
          setting.line,
          at,
          "not imported",
          unknownKeyText(
            setting,
            XROOTD_ISSUER_KEYS,
            ALIASES,
            (XROOTD_GLOBAL_KEYS as readonly string[]).includes(setting.key)
              ? `XRootD reads ${setting.key} only in [Global] and ignores it here`
              : "XRootD ignores it in an [Issuer NAME] section",
          ),
        );
    }
  }

  const issuerSetting = get("issuer");
  const issuer = issuerSetting !== undefined ? settingValue(issuerSetting) : "";
  if (issuerSetting === undefined || issuer === "") return skip(section.line, "not imported: the section has no issuer, and XRootD skips it too");
  const baseSetting = get("base_path");
  const baseValue = baseSetting !== undefined ? settingValue(baseSetting) : "";
  if (baseSetting === undefined || baseValue === "") return skip(section.line, "not imported: the section has no base_path, and XRootD skips it too");
  if (section.name.slice("issuer ".length).trim() === "")
    return skip(section.line, "not imported: the section has no name after Issuer, and XRootD skips it too");

  const problem = issuerProblem(issuer);
  if (problem !== null) return skip(issuerSetting.line, `not imported: issuer ${JSON.stringify(issuer)}: ${problem}`);

  let strategyLine: (() => void) | null = null;
  if (strategyWords !== null) {
    const strategySetting = get("authorization_strategy")!;
    const known = ["capability", "group", "mapping"];
    const unknown = strategyWords.filter((word) => !known.includes(word.toLowerCase()));
    const words = strategyWords.filter((word) => known.includes(word.toLowerCase())).map((word) => word.toLowerCase());
    const ignored = unknown.length > 0 ? ` (XRootD ignores ${unknown.map((w) => JSON.stringify(w)).join(", ")})` : "";
    if (!words.includes("capability")) {
      return skip(
        strategySetting.line,
        `not imported: authorization_strategy ${JSON.stringify(settingValue(strategySetting))} leaves out capability${ignored}, so XRootD never authorized this issuer's tokens by their scopes; here only scopes authorize, so importing it would grant what XRootD did not`,
      );
    }
    const others = [...new Set(words.filter((word) => word !== "capability"))];
    strategyLine = () =>
      report.add(
        strategySetting.line,
        `${where} ${strategySetting.name}`,
        others.length > 0 ? "no equivalent" : "became",
        others.length > 0
          ? `no equivalent for ${others.join(" and ")}${ignored}: XRootD sent a token with groups or a mapped username but no granting scope on to its onmissing behaviour (by default the next authorization plugin); here only scopes authorize, and groups only reach the upstream as x-scitokens-groups`
          : `became the service's only way to authorize: by the token's scopes${ignored}`,
      );
  }

  const base = splitPaths(splitList(baseValue));
  for (const refused of base.refused) {
    report.add(baseSetting.line, `${where} base_path`, "not imported", `not imported: the entry ${JSON.stringify(refused.raw)}: ${refused.why}`);
  }
  if (base.paths.length === 0) return skip(baseSetting.line, "not imported: no base_path entry is a path here");

  let restricted: Candidate["restricted"] = null;
  const restrictedSetting = get("restricted_path");
  if (restrictedSetting !== undefined && settingValue(restrictedSetting) !== "") {
    const checked = splitPaths(splitList(settingValue(restrictedSetting)));
    for (const refused of checked.refused) {
      report.add(restrictedSetting.line, `${where} restricted_path`, "not imported", `not imported: the entry ${JSON.stringify(refused.raw)}: ${refused.why}`);
    }
    // Without its restriction the issuer would be granted more than XRootD granted it.
    if (checked.paths.length === 0)
      return skip(
        restrictedSetting.line,
        "not imported: no restricted_path entry is a path here, and without one the issuer would get more than XRootD gave it",
      );
    restricted = { paths: checked.paths, line: restrictedSetting.line };
  }
  strategyLine?.();
  return {
    section,
    where,
    issuer,
    issuerLine: issuerSetting.line,
    basePath: { paths: base.paths, line: baseSetting.line },
    restricted,
    usernameClaim,
    defaultStrategy: strategyWords === null,
  };
}

/** One section per issuer, in file order: for a repeated issuer XRootD keeps the section whose name sorts first. */
function keptCandidates(candidates: readonly Candidate[], report: Report): Candidate[] {
  const kept = new Map<string, Candidate>();
  for (const candidate of candidates) {
    const first = kept.get(candidate.issuer);
    if (first === undefined) kept.set(candidate.issuer, candidate);
    else {
      report.add(
        candidate.section.line,
        candidate.where,
        "not imported",
        `not imported: ${first.where} (line ${first.section.line}) names the same issuer, and XRootD keeps only that one (the section name that sorts first)`,
      );
    }
  }
  return [...kept.values()].sort((a, b) => a.section.line - b.section.line);
}

/** The issuers' entries, each reported. */
function importIssuers(kept: readonly Candidate[], file: string, report: Report): ImportedIssuer[] {
  const issuers: ImportedIssuer[] = [];
  for (const c of kept) {
    const index = issuers.length;
    report.add(c.section.line, c.where, "became", `became issuers[${index}] (the section name is kept as a comment)`);
    const issuerSetting = c.section.settings.get("issuer")!;
    report.add(c.issuerLine, `${c.where} ${issuerSetting.name}`, "became", `became issuers[${index}].issuer: ${c.issuer}${continued(issuerSetting)}`);
    const baseSetting = c.section.settings.get("base_path")!;
    const split = c.basePath.paths.length > 1 ? " (split at commas and spaces, as XRootD does)" : "";
    report.add(
      c.basePath.line,
      `${c.where} ${baseSetting.name}`,
      "became",
      `became issuers[${index}].base_path: ${c.basePath.paths.length === 1 ? c.basePath.paths[0] : flowList(c.basePath.paths)}${split}${continued(baseSetting)}`,
    );
    if (c.restricted !== null) {
      const restrictedSetting = c.section.settings.get("restricted_path")!;
      report.add(
        c.restricted.line,
        `${c.where} ${restrictedSetting.name}`,
        "became",
        `became issuers[${index}].restricted_path: ${flowList(c.restricted.paths)} (relative to the base path, as in XRootD)${continued(restrictedSetting)}`,
      );
    }
    issuers.push({
      from: origin(file, c.section.line, c.where),
      issuer: { value: c.issuer, from: origin(file, c.issuerLine, "issuer") },
      basePath: { value: c.basePath.paths, from: origin(file, c.basePath.line, "base_path") },
      ...(c.restricted !== null ? { restrictedPath: { value: c.restricted.paths, from: origin(file, c.restricted.line, "restricted_path") } } : {}),
    });
  }
  return issuers;
}

/**
 * `username_claim` is per issuer in XRootD and one setting here (top level or per
 * route): imported when every imported issuer that sets it agrees.
 */
function importUsernameClaim(kept: readonly Candidate[], file: string, report: Report): Sourced<string> | null {
  const setting = kept.filter((c) => c.usernameClaim !== null);
  if (setting.length === 0) return null;
  const values = [...new Set(setting.map((c) => c.usernameClaim!.value))];
  const valid = /^[^\s]+$/.test(values[0]!);
  if (values.length > 1 || !valid) {
    for (const c of setting) {
      const why =
        values.length > 1
          ? `the issuers ask for different claims (${values.join(", ")}), and here it is one setting for every issuer (top level or per route): choose one`
          : "a claim name has no spaces";
      report.add(c.usernameClaim!.line, `${c.where} username_claim`, "not imported", `not imported: ${why}`);
    }
    return null;
  }
  const first = setting[0]!;
  const others = kept.filter((c) => c.usernameClaim === null).map((c) => c.where);
  const alsoOthers = others.length > 0 ? `; it applies here to every issuer, also ${others.join(", ")}, which XRootD mapped from sub` : "";
  for (const c of setting) {
    report.add(
      c.usernameClaim!.line,
      `${c.where} username_claim`,
      "became",
      `became username_claim: ${values[0]} (top level; it names the claim sent upstream as x-scitokens-subject, and never authorizes)${alsoOthers}`,
    );
  }
  return { value: values[0]!, from: origin(file, first.usernameClaim!.line, `${first.where} username_claim`) };
}

/** `onmissing` (default passthrough) as on_missing and on_invalid. */
function onMissingBehaviour(onmissing: Onmissing | null, file: string, report: Report): Sourced<"deny" | "passthrough"> {
  if (onmissing === null) {
    report.add(
      null,
      "[Global] onmissing (not set)",
      "became",
      "became on_missing: deny and on_invalid: deny: XRootD's default, passthrough, asks the next authorization plugin (ofs.authlib ++) and denies when there is none; deny is the safe reading. Where the upstream authorizes requests by other means, set on_missing and on_invalid to passthrough",
    );
    return { value: "deny", from: `${file} sets no [Global] onmissing; XRootD's default passthrough denies when no plugin follows` };
  }
  const { where } = onmissing;
  const from = origin(file, onmissing.line, `${where} = ${onmissing.value}`);
  if (onmissing.value === "deny") {
    report.add(onmissing.line, where, "became", "became on_missing: deny and on_invalid: deny");
    return { value: "deny", from };
  }
  const how =
    onmissing.value === "allow"
      ? "there is no separate allow here: passthrough sends the request on without identity headers and the upstream decides, as the file system did behind XRootD"
      : "requests without a token or with an unusable one go on to the upstream without identity headers, and the upstream must authorize them as XRootD's next plugin did";
  report.add(
    onmissing.line,
    where,
    "became",
    `became on_missing: passthrough and on_invalid: passthrough: ${how}. A valid token whose scopes do not grant the request is 403 here; XRootD passed it on too`,
  );
  return { value: "passthrough", from };
}
