import type { z } from "zod";

/** One problem of a document: the key's path and the text after `key: `. */
export interface KeyProblem {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

type Issue = z.core.$ZodIssue & { readonly input?: unknown };

/**
 * Turns a schema issue into what an operator can act on: what was expected and the
 * value found, never the validator's own wording ("Invalid input: …"). A message the
 * schema wrote (they start with "expected") is kept, with the value found added when
 * it does not say it. An unknown key names the keys the mapping takes, with a "did you
 * mean" when one is close. `schema` is the document's root schema, for those keys.
 */
export function issueProblems(issue: Issue, schema: z.ZodType): KeyProblem[] {
  const found = "input" in issue ? describeValue(issue.input) : null;
  if (issue.code === "unrecognized_keys") {
    const known = keysAt(schema, issue.path);
    return issue.keys.map((key) => ({ path: [...issue.path, key], message: unknownKey(key, known) }));
  }
  const message = issue.message;
  if (message.startsWith("expected")) {
    if ("input" in issue && issue.input === undefined) return [{ path: issue.path, message: `required: ${message}` }];
    const says = /\b(got|found)\b/.test(message);
    return [{ path: issue.path, message: says || found === null ? message : `${message}, found ${found}` }];
  }
  return [{ path: issue.path, message: defaultText(issue, found) }];
}

function defaultText(issue: Issue, found: string | null): string {
  const tail = found === null ? "" : `, found ${found}`;
  switch (issue.code) {
    case "invalid_type":
      return "input" in issue && issue.input === undefined ? `required: expected ${typeName(issue.expected)}` : `expected ${typeName(issue.expected)}${tail}`;
    case "invalid_value":
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}${tail}`;
    case "too_small":
      return `expected ${bound(issue.origin, "at least", issue.minimum, issue.inclusive)}${tail}`;
    case "too_big":
      return `expected ${bound(issue.origin, "at most", issue.maximum, issue.inclusive)}${tail}`;
    case "invalid_format":
      return `expected ${issue.format === "url" ? "a URL" : `a ${issue.format}`}${tail}`;
    case "not_multiple_of":
      return `expected a multiple of ${String(issue.divisor)}${tail}`;
    case "invalid_union":
      return `expected one of the accepted forms${tail}`;
    case "invalid_key":
      return `expected a valid key${tail}`;
    default:
      return `not valid${tail}`;
  }
}

function bound(origin: string, word: string, limit: unknown, inclusive: boolean | undefined): string {
  const n = Number(limit);
  switch (origin) {
    case "string":
      return word === "at least" && n === 1 ? "a non-empty string" : `a string of ${word} ${n} characters`;
    case "array":
    case "set":
      return word === "at least" && n === 1 ? "a non-empty list" : `a list of ${word} ${n} entries`;
    default:
      return inclusive === false ? `a number ${word === "at least" ? "above" : "below"} ${n}` : `a number ${word} ${n}`;
  }
}

function typeName(expected: string): string {
  switch (expected) {
    case "object":
      return "a mapping";
    case "array":
      return "a list";
    case "string":
      return "a string";
    case "number":
      return "a number";
    case "int":
      return "a whole number";
    case "boolean":
      return "true or false";
    default:
      return expected;
  }
}

/** A value as an operator wrote it, short: `nothing`, `"text"`, `12`, `a list`, `a mapping`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null (an empty value)";
  if (Array.isArray(value)) return `a list (${value.length} entr${value.length === 1 ? "y" : "ies"})`;
  if (typeof value === "object") return "a mapping";
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}

function unknownKey(key: string, known: readonly string[] | null): string {
  if (known === null || known.length === 0) return "unknown key";
  const close = closest(key, known);
  const hint = close !== null ? `; did you mean "${close}"?` : "";
  return `unknown key${hint} (expected one of: ${known.join(", ")})`;
}

/** The known key closest to `key` (case, separators and a few typos apart), if any is close. */
export function closest(key: string, known: readonly string[]): string | null {
  const norm = (s: string) => s.toLowerCase().replace(/[-_ ]/g, "");
  let best: string | null = null;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const distance = norm(candidate) === norm(key) ? 0 : editDistance(norm(key), norm(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best !== null && bestDistance <= Math.max(1, Math.floor(key.length / 4)) ? best : null;
}

/** Edits (insert, delete, replace, swap of neighbours) from `a` to `b`: "prot" is one from "port". */
function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = best;
    }
  }
  return rows[a.length]![b.length]!;
}

/** The parts of a zod schema's definition that the walks over a schema read (zod's `_zod.def`). */
export interface ZodDef {
  readonly type: string;
  readonly shape?: Record<string, z.ZodType>;
  readonly innerType?: z.ZodType;
  readonly in?: z.ZodType;
  readonly element?: z.ZodType;
  readonly valueType?: z.ZodType;
  readonly keyType?: z.ZodType;
  readonly entries?: Record<string, string | number>;
  readonly options?: readonly z.ZodType[];
  readonly defaultValue?: unknown;
}

export const zodDef = (schema: z.ZodType): ZodDef => (schema as unknown as { _zod: { def: ZodDef } })._zod.def;
const defOf = zodDef;

/** The keys the mapping at `path` takes, following the schema through wrappers, lists and records. */
function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] | null {
  let current: z.ZodType | undefined = unwrap(schema);
  for (const part of path) {
    if (current === undefined) return null;
    const def = defOf(current);
    if (def.type === "object" && def.shape) current = def.shape[String(part)];
    else if (def.type === "array") current = def.element;
    else if (def.type === "record") current = def.valueType;
    else return null;
    current = current && unwrap(current);
  }
  if (current === undefined) return null;
  const def = defOf(current);
  if (def.type === "object" && def.shape) return Object.keys(def.shape);
  // A record whose keys are an enum (verbs: the path-style scope names).
  const keyDef = def.type === "record" && def.keyType ? defOf(unwrap(def.keyType)) : undefined;
  return keyDef?.type === "enum" && keyDef.entries ? Object.values(keyDef.entries).map(String) : null;
}

function unwrap(schema: z.ZodType): z.ZodType {
  let current = schema;
  for (let depth = 0; depth < 16; depth++) {
    const def = defOf(current);
    const inner = def.innerType ?? (def.type === "pipe" ? def.in : undefined);
    if (inner === undefined) return current;
    current = inner;
  }
  return current;
}
