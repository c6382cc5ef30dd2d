import { basename } from "node:path";
import { parseAuthzData } from "../config/authz-data.js";
import { ConfigError } from "../config/config-error.js";
import { parseYamlText } from "../config/read-yaml.js";
import { type Conversion, ImportInputError, type Outcome, type ReportLine } from "./conversion.js";
import { authzDataYaml } from "./emit-yaml.js";
import { IniSyntaxError, parseIni } from "./ini.js";
import { convertNginxScitokens } from "./nginx-scitokens.js";
import { convertXrootd } from "./xrootd.js";

export { ImportInputError, type Outcome, type ReportLine } from "./conversion.js";
export { NGINX_GLOBAL_KEYS, NGINX_ISSUER_KEYS } from "./nginx-scitokens.js";
export { XROOTD_GLOBAL_KEYS, XROOTD_ISSUER_KEYS } from "./xrootd.js";

/** The configuration formats `scitokens-authz import` reads. */
export const IMPORT_SOURCES = ["nginx-scitokens", "xrootd"] as const;
export type ImportSource = (typeof IMPORT_SOURCES)[number];

const SOURCES: Record<ImportSource, { title: string; preambleAllowed: boolean; convert: (doc: ReturnType<typeof parseIni>, file: string) => Conversion }> = {
  // Python's ConfigParser refuses a setting before the first header; inih files it under "" (XRootD ignores it).
  "nginx-scitokens": { title: "the nginx-scitokens authorizer configuration", preambleAllowed: false, convert: convertNginxScitokens },
  xrootd: { title: "the XRootD scitokens plugin configuration", preambleAllowed: true, convert: convertXrootd },
};

/** Lines that are not INI, reported one by one up to this many (a binary file has many). */
const MAX_LINE_PROBLEMS = 10;

export interface ImportResult {
  /** Authorization data, valid for the service (checked with its own parser). */
  readonly yaml: string;
  /** What became of each setting, in the order of the source's lines (lines without a number last). */
  readonly report: readonly ReportLine[];
  readonly issuers: number;
}

/**
 * Converts the bytes of a source configuration file into authorization data. `file`
 * names it in the report; its base name is used in the YAML comments. Throws
 * ImportInputError (with lines) when the file is not INI, holds a value its own program
 * refuses, or yields no issuer.
 */
export function importConfig(source: ImportSource, bytes: Uint8Array, file: string): ImportResult {
  const { title, preambleAllowed, convert } = SOURCES[source];
  let conversion: Conversion;
  try {
    conversion = convert(parseIni(bytes, { preambleAllowed }), basename(file));
  } catch (error) {
    if (error instanceof IniSyntaxError) {
      const shown = error.problems.slice(0, MAX_LINE_PROBLEMS).map((p) => ({ line: p.line, message: `not INI: ${p.message}` }));
      const more = error.problems.length - shown.length;
      throw new ImportInputError(more > 0 ? [...shown, { line: null, message: `not INI: and ${more} more lines like these` }] : shown);
    }
    throw error;
  }
  const yaml = authzDataYaml(conversion.data, [
    `Authorization data for scitokens-authz, imported from ${title}`,
    `${basename(file)} by "scitokens-authz import ${source}". Each value names the line it came`,
    "from; what had no equivalent is in the report the import printed. Review before use.",
  ]);
  try {
    parseAuthzData("(imported data)", parseYamlText("(imported data)", yaml));
  } catch (error) {
    if (error instanceof ConfigError)
      throw new ImportInputError(error.problems.map((message) => ({ line: null, message: `the imported data is not valid: ${message}` })));
    throw error;
  }
  return { yaml, report: inLineOrder(conversion.report), issuers: conversion.data.issuers.length };
}

/** Report lines in the order of the source's lines, those without a line last (each group as found). */
export function inLineOrder(report: readonly ReportLine[]): ReportLine[] {
  const numbered = report.filter((line) => line.line !== null).sort((a, b) => a.line! - b.line!);
  return [...numbered, ...report.filter((line) => line.line === null)];
}

/** `FILE:LINE: [Section] key: text`, or `FILE: what: text` for a line-less one. */
export function formatReportLine(file: string, line: ReportLine): string {
  return `${file}${line.line !== null ? `:${line.line}` : ""}: ${line.where}: ${line.text}`;
}

/** How many report lines have each outcome. */
export function countOutcomes(report: readonly ReportLine[]): Record<Outcome, number> {
  const counts: Record<Outcome, number> = { became: 0, "no equivalent": 0, "not imported": 0, note: 0 };
  for (const line of report) counts[line.outcome]++;
  return counts;
}
