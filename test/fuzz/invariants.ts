/**
 * What every fuzz target checks, written from the contract (SEMANTICS §6, §7, §10 and
 * docs/semantics.md), not from the implementation: a violation throws, and jazzer.js
 * reports the input as a finding. Messages show the input as JSON so that invisible and
 * compatibility characters are readable in the report.
 */
import { CONTROL_CHARACTER } from "../../src/paths/normalize.js";

export class InvariantViolation extends Error {
  override readonly name = "InvariantViolation";
  constructor(what: string, input: unknown) {
    super(`${what}; input: ${show(input)}`);
  }
}

export function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 600 ? `${text.slice(0, 600)}… (${text.length} characters)` : text;
}

export function ensure(condition: boolean, what: string, input: unknown): asserts condition {
  if (!condition) throw new InvariantViolation(what, input);
}

/** Calls `f`, turning anything it throws into a violation: these parsers decide, they never fail. */
export function total<T>(name: string, f: () => T, input: unknown): T {
  try {
    return f();
  } catch (error) {
    throw new InvariantViolation(`${name} threw ${describe(error)}`, input);
  }
}

export function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : show(error);
}

/**
 * A segment that some server resolves as `.` or `..`: before a `;` path parameter
 * (Tomcat, Jetty), nothing but dots and spaces (Windows strips trailing ones), at least
 * one dot.
 */
export function resolvesAsDotSegment(segment: string): boolean {
  const stem = segment.split(";", 1)[0] ?? "";
  return stem.includes(".") && /^[. ]+$/.test(stem);
}

/** The forms of a segment that a server behind the authorizer might act on. */
function foldedForms(segment: string): string[] {
  return [segment, segment.normalize("NFKC")];
}

function decodeOrNull(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

export interface NormalPath {
  readonly path: string;
  readonly segments: readonly string[];
}

/**
 * What an accepted path promises (src/paths/normalize.ts): absolute, the segments joined
 * by "/" give the path, no empty, dot, `\` or control-character segment, and none that
 * NFKC turns into a separator or a dot segment. For decoded paths (request and scope
 * paths), a second percent-decoding reveals no separator or dot segment either (a
 * double-encoded `%252e` is refused).
 */
export function ensureNormalPath(result: NormalPath, kind: string, input: unknown, decoded: boolean): void {
  const { path, segments } = result;
  ensure(path.startsWith("/"), `${kind}: accepted path ${show(path)} is not absolute`, input);
  ensure(path === (segments.length === 0 ? "/" : `/${segments.join("/")}`), `${kind}: segments ${show(segments)} do not join to ${show(path)}`, input);
  for (const segment of segments) {
    ensure(segment !== "", `${kind}: empty segment in ${show(path)}`, input);
    ensure(!CONTROL_CHARACTER.test(segment), `${kind}: control character in ${show(path)}`, input);
    for (const form of foldedForms(segment)) {
      ensure(!form.includes("/") && !form.includes("\\"), `${kind}: segment ${show(segment)} is or becomes (NFKC) a separator`, input);
      ensure(!resolvesAsDotSegment(form), `${kind}: segment ${show(segment)} is or becomes (NFKC) a dot segment`, input);
      if (!decoded || !form.includes("%")) continue;
      const again = decodeOrNull(form);
      if (again === null) continue;
      ensure(
        !again.includes("/") && !again.includes("\\") && !resolvesAsDotSegment(again),
        `${kind}: segment ${show(segment)} decodes a second time to ${show(again)}`,
        input,
      );
    }
  }
}

export function samePath(a: NormalPath, b: NormalPath): boolean {
  return a.path === b.path && a.segments.length === b.segments.length && a.segments.every((s, i) => s === b.segments[i]);
}

/**
 * Writes decoded segments back as a client sends them (encodeURI-like): `%` escaped (so
 * that a decoded `%41` stays literal), the `?` and `#` that would otherwise end the path,
 * and every non-ASCII character as its UTF-8 escapes (a raw U+FFFD in a request stands
 * for bytes that were not UTF-8). Null for a lone surrogate, which has no UTF-8 form.
 */
export function reencode(segments: readonly string[]): string | null {
  try {
    return `/${segments.map((s) => s.replace(/[%?#]|[^\u0000-\u007f]+/g, encodeURIComponent)).join("/")}`;
  } catch {
    return null;
  }
}

/** The same, every segment fully escaped (`encodeURIComponent`); null for a lone surrogate, which has no UTF-8 form. */
export function reencodeFully(segments: readonly string[]): string | null {
  try {
    return `/${segments.map(encodeURIComponent).join("/")}`;
  } catch {
    return null;
  }
}
