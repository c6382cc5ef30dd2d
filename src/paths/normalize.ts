/**
 * Path handling shared by request paths (SEMANTICS §7), scope paths (§6) and configured
 * base/restricted paths (§8). Every function is pure and returns either a normalized
 * absolute path (no empty, `.` or `..` segments, no trailing slash except `/` itself) or
 * the reason the input is refused.
 */

export type PathResult = { ok: true; path: string; segments: string[] } | { ok: false; why: string };

/** C0 controls, DEL and C1 controls: never valid in a path, a scope or a header value. */
// eslint-disable-next-line no-control-regex
export const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;
const CONTROL = CONTROL_CHARACTER;
// Encoded separators, and what a second decoding would turn into a dot segment, a
// separator or a path parameter.
const ENCODED_SEPARATOR = /%(2f|5c)/i;
const DOUBLE_ENCODED = /%(2e|2f|5c|3b)/i;

/** Percent-decodes once; `null` when an escape is not `%` followed by two hex digits or the bytes are not UTF-8. */
export function percentDecodeOnce(raw: string): string | null {
  if (!raw.includes("%")) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}

/**
 * True for segments that some server resolves as `.` or `..`: the plain ones, with a
 * path parameter (`..;x`: Tomcat and Jetty strip `;…`), with trailing spaces or extra
 * dots (Windows strips them). So: a segment whose part before `;` is only dots and
 * spaces, with at least one dot. {@link segmentProblem} also asks it of the NFKC form
 * (full-width `．．` is `..` there).
 */
function isDotSegment(segment: string): boolean {
  const stem = segment.split(";", 1)[0]!;
  return stem.includes(".") && /^[. ]+$/.test(stem);
}

const NON_ASCII = /[^\u0000-\u007f]/;

/**
 * Slashes that no Unicode normalization changes but that Windows' best-fit code-page
 * conversion (and a reader) takes for `/` or `\`: division and fraction slash, set minus,
 * big solidus and reverse solidus.
 */
const SEPARATOR_LOOKALIKE = /[\u2044\u2215\u2216\u29f8\u29f9]/;

const ESCAPE = /%[0-9A-Fa-f]{2}/g;

/** How many `%XX` escapes `text` holds. */
function escapes(text: string): number {
  return text.match(ESCAPE)?.length ?? 0;
}

function count(text: string, character: string): number {
  let n = 0;
  for (let i = text.indexOf(character); i !== -1; i = text.indexOf(character, i + 1)) n += 1;
  return n;
}

/**
 * Why one segment is refused, or null. Besides dot segments, a server applying NFKC
 * would see what the raw segment hides: a separator (full-width `／`, small `﹨`, `℀`…),
 * a dot segment (`．．`, `‥`), a new `%` (full-width `％`), or an escape completed from a
 * `%` that was already there (`%２e` folds to `%2e`). NFKC is computed once, and only
 * for segments that are not ASCII.
 */
function segmentProblem(segment: string): string | null {
  if (isDotSegment(segment)) return `a ${JSON.stringify(segment.slice(0, 16))} segment`;
  if (!NON_ASCII.test(segment)) return null;
  if (SEPARATOR_LOOKALIKE.test(segment)) return "a character that looks like a separator";
  const folded = segment.normalize("NFKC");
  if (folded === segment) return null;
  if (isDotSegment(folded)) return `a ${JSON.stringify(segment.slice(0, 16))} segment (a dot segment under NFKC)`;
  if (folded.includes("/") || folded.includes("\\")) return "a character that NFKC turns into a separator";
  if (count(folded, "%") > count(segment, "%")) return "a character that NFKC turns into %";
  if (escapes(folded) > escapes(segment)) return "a character that NFKC turns into a hex digit after % (an escape)";
  return null;
}

function splitSegments(decoded: string): { segments: string[] } | { why: string } {
  const segments: string[] = [];
  for (const segment of decoded.split("/")) {
    if (segment === "") continue;
    const problem = segmentProblem(segment);
    if (problem !== null) return { why: problem };
    segments.push(segment);
  }
  return { segments };
}

function joinSegments(segments: string[]): string {
  return segments.length === 0 ? "/" : `/${segments.join("/")}`;
}

/**
 * Normalizes an HTTP request path (SEMANTICS §7): drops the query, refuses what an
 * authorizer must not guess about (dot segments raw or encoded, encoded or raw `\`,
 * encoded `/`, control characters, bad escapes, double-encoded dots and separators,
 * compatibility characters that NFKC turns into separators, dots or `%`, and a raw `#`:
 * a request target never holds a fragment, and one would hide what follows it), decodes
 * once and collapses repeated `/`.
 */
export function normalizeRequestPath(raw: string): PathResult {
  if (raw.includes("#")) return { ok: false, why: "a raw #" };
  const q = raw.indexOf("?");
  const path = q === -1 ? raw : raw.slice(0, q);
  if (!path.startsWith("/")) return { ok: false, why: "the path does not start with /" };
  if (CONTROL.test(path)) return { ok: false, why: "a control character" };
  // U+FFFD stands for bytes that were not UTF-8 (gRPC's string decoding puts it there):
  // what they were, and how an upstream would read them, is unknown.
  if (path.includes("\uFFFD")) return { ok: false, why: "bytes that are not UTF-8" };
  if (path.includes("\\")) return { ok: false, why: "a backslash" };
  if (ENCODED_SEPARATOR.test(path)) return { ok: false, why: "an encoded / or \\" };
  const decoded = percentDecodeOnce(path);
  if (decoded === null) return { ok: false, why: "invalid percent-encoding" };
  if (CONTROL.test(decoded)) return { ok: false, why: "an encoded control character" };
  if (DOUBLE_ENCODED.test(decoded)) return { ok: false, why: "a double-encoded dot or separator" };
  const split = splitSegments(decoded);
  if ("why" in split) return { ok: false, why: split.why };
  return { ok: true, path: joinSegments(split.segments), segments: split.segments };
}

/**
 * Normalizes the path of a path-style scope (SEMANTICS §6): decoded once, made absolute,
 * collapsed. Dot segments, encoded separators, NUL (or any control character) and a `%`
 * remaining after decoding make the scope, and so the whole token, invalid.
 */
export function normalizeScopePath(raw: string): PathResult {
  if (ENCODED_SEPARATOR.test(raw)) return { ok: false, why: "an encoded / or \\" };
  const decoded = percentDecodeOnce(raw);
  if (decoded === null) return { ok: false, why: "invalid percent-encoding" };
  if (CONTROL.test(decoded)) return { ok: false, why: "a control character" };
  if (decoded.includes("%")) return { ok: false, why: "a % remaining after decoding" };
  if (decoded.includes("\\")) return { ok: false, why: "a backslash" };
  const split = splitSegments(decoded);
  if ("why" in split) return { ok: false, why: split.why };
  return { ok: true, path: joinSegments(split.segments), segments: split.segments };
}

/**
 * Normalizes an operator-configured path (base_path, restricted_path, named-scope
 * prefixes): must be absolute; not decoded (configuration is written decoded).
 */
export function normalizeConfiguredPath(raw: string): PathResult {
  if (!raw.startsWith("/")) return { ok: false, why: "it does not start with /" };
  if (CONTROL.test(raw)) return { ok: false, why: "it contains a control character" };
  if (raw.includes("\\")) return { ok: false, why: "it contains a backslash" };
  const split = splitSegments(raw);
  if ("why" in split) return { ok: false, why: `it contains ${split.why}` };
  return { ok: true, path: joinSegments(split.segments), segments: split.segments };
}
