/**
 * A line-numbered reader for the INI files of nginx-scitokens (`authorizer.cfg`, read
 * with Python 2's ConfigParser) and XRootD (`scitokens.cfg`, read with inih). It accepts
 * what both of those readers accept, and reports what they refuse, with the line:
 *
 * - `[section]` headers (the name is everything up to the first `]`: dots, slashes and
 *   colons included, as in `[Issuer https://chtc.cs.wisc.edu/icecube]`);
 * - `key = value` or `key: value` (the first `=` or `:` separates); keys are compared
 *   in lower case; the value is trimmed;
 * - whole-line comments starting with `#` or `;`, and inline comments: a `;` after
 *   whitespace ends the value (a `#` does not);
 * - continuation lines: an indented line after a setting continues its value (each
 *   reader then decides what the value is: Python joins the lines, XRootD's reader keeps
 *   the last);
 * - a UTF-8 byte-order mark at the start.
 *
 * A line that is none of these, a header without `]`, a NUL byte or text that is not
 * UTF-8 is an error; every such line is reported (both readers refuse the whole file), or
 * for bytes that are not text, the first.
 *
 * The npm `ini` package does not fit: it splits section names at dots into nested
 * objects, ends values at `#`, knows no `:` separator or continuation lines, and accepts
 * any line as a key, without line numbers.
 */

/** One `key = value` line (and its continuation lines, if any). */
export interface IniSetting {
  /** The key in lower case, as both readers compare it. */
  readonly key: string;
  /** The key as written. */
  readonly name: string;
  /** The value of the first line, then of each continuation line. */
  readonly parts: readonly IniPart[];
  readonly line: number;
}

export interface IniPart {
  readonly text: string;
  readonly line: number;
}

/** One `[section]` header and the settings under it, up to the next header. */
export interface IniSection {
  /** The name between the brackets, as written. */
  readonly name: string;
  readonly line: number;
  readonly settings: readonly IniSetting[];
}

export interface IniDocument {
  /** Settings before the first header (inih files them under the section ""). */
  readonly preamble: readonly IniSetting[];
  /** Every header in file order; a repeated header is a second entry. */
  readonly sections: readonly IniSection[];
}

/** A problem at a line of the file being read. */
export interface LineProblem {
  readonly line: number;
  readonly message: string;
}

/** The file cannot be read as INI: every offending line, in order. */
export class IniSyntaxError extends Error {
  override readonly name = "IniSyntaxError";
  constructor(readonly problems: readonly LineProblem[]) {
    super(problems.map((p) => `line ${p.line}: ${p.message}`).join("; "));
  }
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Splits bytes into text lines; a NUL byte or text that is not UTF-8 is refused at its first line. */
function textLines(bytes: Uint8Array): string[] {
  const lines: string[] = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i < bytes.length && bytes[i] !== 0x0a) continue;
    const raw = bytes.subarray(start, i);
    const line = lines.length + 1;
    if (raw.includes(0)) throw new IniSyntaxError([{ line, message: "a NUL byte: this is not a text file" }]);
    try {
      lines.push(decoder.decode(raw));
    } catch {
      throw new IniSyntaxError([{ line, message: "bytes that are not UTF-8: this is not a text file" }]);
    }
    start = i + 1;
  }
  return lines;
}

/** Index of the first of `chars`, or of an inline comment (`;` after whitespace), or the length. */
function findCharsOrComment(text: string, chars: string): number {
  let wasSpace = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (chars.includes(c)) return i;
    if (wasSpace && c === ";") return i;
    wasSpace = /\s/.test(c);
  }
  return text.length;
}

/** Shortens a line for an error message. */
function quoteLine(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}...` : text);
}

/**
 * Reads INI bytes. Throws IniSyntaxError listing every line that is not INI (and, with
 * `preambleAllowed: false`, settings before the first header, which Python's
 * ConfigParser refuses).
 */
export function parseIni(bytes: Uint8Array, options: { preambleAllowed: boolean }): IniDocument {
  const lines = textLines(bytes);
  if (lines[0]?.startsWith("\uFEFF")) lines[0] = lines[0].slice(1);
  const preamble: IniSetting[] = [];
  const sections: Array<{ name: string; line: number; settings: IniSetting[] }> = [];
  const problems: LineProblem[] = [];
  let current: IniSetting[] = preamble;
  let last: { parts: IniPart[] } | null = null;

  lines.forEach((raw, index) => {
    const number = index + 1;
    const trimmedEnd = raw.replace(/\s+$/, "");
    const text = trimmedEnd.replace(/^\s+/, "");
    if (text === "" || text.startsWith("#") || text.startsWith(";")) return;
    if (last !== null && text.length < trimmedEnd.length) {
      // An indented line after a setting continues its value.
      const end = findCharsOrComment(text, "");
      last.parts.push({ text: text.slice(0, end).trimEnd(), line: number });
      return;
    }
    if (text.startsWith("[")) {
      const end = findCharsOrComment(text.slice(1), "]") + 1;
      if (text[end] !== "]") {
        problems.push({ line: number, message: `expected a section header like [Global], found ${quoteLine(text)} without its closing ]` });
        return;
      }
      const section = { name: text.slice(1, end), line: number, settings: [] as IniSetting[] };
      sections.push(section);
      current = section.settings;
      last = null;
      return;
    }
    const separator = findCharsOrComment(text, "=:");
    if (separator === text.length || (text[separator] !== "=" && text[separator] !== ":")) {
      problems.push({ line: number, message: `expected a section header like [Global], a setting like "key = value" or a comment, found ${quoteLine(text)}` });
      last = null;
      return;
    }
    const name = text.slice(0, separator).trimEnd();
    const rest = text.slice(separator + 1).trimStart();
    const value = rest.slice(0, findCharsOrComment(rest, "")).trimEnd();
    if (current === preamble && !options.preambleAllowed) {
      problems.push({ line: number, message: `found the setting ${quoteLine(name)} before any [section] header` });
    }
    const setting = { key: name.toLowerCase(), name, parts: [{ text: value, line: number }], line: number };
    current.push(setting);
    last = setting;
  });
  if (problems.length > 0) throw new IniSyntaxError(problems);
  return { preamble, sections };
}
