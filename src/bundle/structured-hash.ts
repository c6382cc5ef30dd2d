import { createHash } from "node:crypto";

/**
 * The digest OPA's bundle signatures give a structured file (`.manifest`, `data.json`):
 * not of its bytes but of its JSON value written canonically (object keys in code point
 * order, no whitespace, strings and numbers as Go's encoding/json writes them), so that
 * reformatting the file keeps the signature. Numbers keep their literal text where the
 * runtime's JSON.parse exposes it (Node 22+); elsewhere they are written as JavaScript
 * writes them, which is the literal for what `opa build` writes. A file OPA would hash
 * differently fails verification: the difference fails closed.
 */
export function structuredDigest(algorithm: string, text: string): Buffer {
  const hash = createHash(algorithm);
  walk(parseKeepingNumbers(text), (chunk) => hash.update(chunk, "utf8"));
  return hash.digest();
}

/** A JSON number with the text it was written as. */
class NumberLiteral {
  constructor(readonly text: string) {}
}

type Value = null | boolean | string | NumberLiteral | Value[] | { [key: string]: Value };

interface ReviverContext {
  readonly source?: string;
}

function parseKeepingNumbers(text: string): Value {
  return JSON.parse(text, (_key, value: unknown, context?: ReviverContext) => {
    if (typeof value !== "number") return value;
    return new NumberLiteral(context?.source ?? JSON.stringify(value));
  }) as Value;
}

function walk(value: Value, write: (chunk: string) => void): void {
  if (value instanceof NumberLiteral) {
    write(value.text);
  } else if (Array.isArray(value)) {
    write("[");
    value.forEach((element, i) => {
      if (i > 0) write(",");
      walk(element, write);
    });
    write("]");
  } else if (value !== null && typeof value === "object") {
    write("{");
    Object.keys(value)
      .sort(byCodePoint)
      .forEach((key, i) => {
        if (i > 0) write(",");
        write(goString(key));
        write(":");
        walk(value[key]!, write);
      });
    write("}");
  } else if (typeof value === "string") {
    write(goString(value));
  } else {
    write(JSON.stringify(value));
  }
}

/** Go sorts strings by their UTF-8 bytes, which is code point order (not UTF-16's). */
function byCodePoint(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/**
 * A string as Go's encoder writes it without HTML escaping: as JSON.stringify does, but
 * U+2028 and U+2029 escaped, and a lone surrogate (which Go decodes to U+FFFD) as U+FFFD.
 */
function goString(value: string): string {
  return JSON.stringify(value.toWellFormed()).replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}
