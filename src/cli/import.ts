import { readFile, writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  IMPORT_SOURCES,
  ImportInputError,
  type ImportResult,
  type ImportSource,
  countOutcomes,
  formatReportLine,
  importConfig,
  inLineOrder,
} from "../migration/index.js";

export const IMPORT_USAGE = "usage: scitokens-authz import nginx-scitokens|xrootd FILE [--output FILE]";

/** Exit codes: converted, or bad input (options, an unreadable or malformed file, nothing to import). */
export const IMPORT_EXIT = { imported: 0, badInput: 2 } as const;

class ImportUsageError extends Error {}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** The report's last line: where the data went, and how many settings had each outcome. */
export function summaryLine(source: ImportSource, output: string | undefined, result: ImportResult): string {
  const counts = countOutcomes(result.report);
  const where = output !== undefined ? `wrote ${output}` : "wrote the authorization data to stdout";
  return `scitokens-authz import ${source}: ${where}: ${plural(result.issuers, "issuer")}; ${counts.became} became authorization data, ${counts["no equivalent"]} without equivalent, ${counts["not imported"]} not imported, ${plural(counts.note, "note")}`;
}

/**
 * `scitokens-authz import nginx-scitokens|xrootd FILE [--output FILE]`: the authorization
 * data on stdout (or in the output file), and on stderr what became of each setting of
 * FILE, one line each (`FILE:LINE: [Section] key: …`), then a summary.
 */
export async function importCommand(args: readonly string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  let prefix = "scitokens-authz import";
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: { output: { type: "string", short: "o" }, help: { type: "boolean", short: "h", default: false } },
      strict: true,
    });
    if (values.help) {
      out.write(`${IMPORT_USAGE}\n`);
      return IMPORT_EXIT.imported;
    }
    const [source, file, ...extra] = positionals;
    if (source === undefined || !(IMPORT_SOURCES as readonly string[]).includes(source)) {
      throw new ImportUsageError(`expected the kind of file first, ${IMPORT_SOURCES.join(" or ")}, found ${JSON.stringify(source ?? "")}`);
    }
    prefix = `scitokens-authz import ${source}`;
    if (file === undefined) throw new ImportUsageError("expected the file to convert");
    if (extra.length > 0) throw new ImportUsageError(`expected one file, found also ${extra.map((e) => JSON.stringify(e)).join(" ")}`);
    if (values.output !== undefined && resolve(values.output) === resolve(file)) {
      throw new ImportUsageError("--output names the file being converted: give another file");
    }

    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      err.write(`${prefix}: ${file}: ${code === "ENOENT" ? "the file does not exist" : `cannot be read (${code ?? String(error)})`}\n`);
      return IMPORT_EXIT.badInput;
    }
    let result: ImportResult;
    try {
      result = importConfig(source as ImportSource, bytes, file);
    } catch (error) {
      if (!(error instanceof ImportInputError)) throw error;
      for (const line of inLineOrder(error.report)) err.write(`${formatReportLine(file, line)}\n`);
      for (const problem of error.problems) err.write(`${prefix}: ${file}${problem.line !== null ? `:${problem.line}` : ""}: ${problem.message}\n`);
      return IMPORT_EXIT.badInput;
    }
    for (const line of result.report) err.write(`${formatReportLine(file, line)}\n`);
    if (values.output !== undefined) {
      try {
        await writeFile(values.output, result.yaml);
      } catch (error) {
        err.write(`${prefix}: ${values.output}: cannot be written (${(error as NodeJS.ErrnoException).code ?? String(error)})\n`);
        return IMPORT_EXIT.badInput;
      }
    } else out.write(result.yaml);
    err.write(`${summaryLine(source as ImportSource, values.output, result)}\n`);
    return IMPORT_EXIT.imported;
  } catch (error) {
    const usage = error instanceof ImportUsageError || String((error as { code?: unknown }).code ?? "").startsWith("ERR_PARSE_ARGS");
    if (!usage) throw error;
    err.write(`${prefix}: ${(error as Error).message}\n${IMPORT_USAGE}\n`);
    return IMPORT_EXIT.badInput;
  }
}
