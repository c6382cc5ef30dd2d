import { readFile } from "node:fs/promises";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { ConfigError } from "./config-error.js";
import { issueProblems } from "./issue-text.js";

/** Formats a zod issue path the way operators write keys: `issuers[0].base_path`. */
export function formatKey(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out === "" ? "(top level)" : out;
}

/** Reads a YAML file into plain data, reporting syntax errors (and duplicate keys) with line numbers. */
export async function readYamlFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(file, [code === "ENOENT" ? "the file does not exist" : `cannot be read (${code ?? String(error)})`]);
  }
  return parseYamlText(file, text);
}

/** Parses YAML text read from `file` into plain data, as readYamlFile does. */
export function parseYamlText(file: string, text: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => `YAML syntax: ${e.message.split("\n")[0] ?? e.message}`),
    );
  }
  return doc.toJS() ?? {};
}

/**
 * Validates `value` against `schema`, throwing one ConfigError listing every issue: the
 * schema's and `extra` (checks across keys, found by the caller), in one pass.
 */
export function validate<S extends z.ZodType>(
  file: string,
  schema: S,
  value: unknown,
  extra: ReadonlyArray<{ path: readonly PropertyKey[]; message: string }> = [],
): z.output<S> {
  const result = schema.safeParse(value, { reportInput: true });
  if (result.success && extra.length === 0) return result.data;
  const issues = [...(result.success ? [] : result.error.issues.flatMap((issue) => issueProblems(issue, schema))), ...extra];
  throw new ConfigError(file, [...new Set(issues.map((issue) => `${formatKey(issue.path)}: ${issue.message}`))]);
}
