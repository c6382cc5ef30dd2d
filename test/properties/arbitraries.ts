import fc from "fast-check";
import { PATH_AUTHZ } from "../../src/config/authz-data.js";

/**
 * Path arbitraries: a path is generated as decoded segments (the model), then written
 * out the way a client or an issuer might send it: each character raw or
 * percent-encoded (upper or lower case hex, UTF-8 bytes), segments joined by one or
 * more `/`, with or without a trailing `/`. The model is what normalization must find.
 */

export type Kind = "request" | "scope";

/** One decoded character and how it is written. */
interface Piece {
  readonly ch: string;
  readonly encode: boolean;
  readonly lower: boolean;
}
type Segment = readonly Piece[];
interface PathSpec {
  readonly parts: ReadonlyArray<{ readonly sep: string; readonly segment: Segment }>;
  readonly trail: string;
  /** Scope paths only: written without the leading `/` (SEMANTICS §6 makes it absolute). */
  readonly relative: boolean;
}

/** A path as written (`raw`) and what it must normalize to. */
export interface WrittenPath {
  readonly raw: string;
  readonly path: string;
  readonly segments: readonly string[];
}

const PLAIN = [..."abcxyzABXYZ0189"];
// `.`, `;` and the space are here on purpose: `.a`, `a.` and `a;..` are ordinary names.
const PUNCTUATION = [..."-_~.!$&'()*+,;=:@ "];
// Besides letters and emoji: a combining mark, invisible characters and compatibility dots (`a．` is a name).
const UNICODE = ["é", "ß", "ø", "日", "本", "😀", "\u0301", "\u00a0", "\u200d", "\u2024", "\ufe52", "\uff0e", "\ufeff"];
/** Characters that a written request path must percent-encode (`%` and the query and fragment delimiters). */
const REQUEST_MUST_ENCODE = new Set(["%", "?", "#"]);
/** A space separates scope entries, so a scope path must encode it; `%` cannot appear decoded in a scope path. */
const SCOPE_MUST_ENCODE = new Set([" "]);

// eslint-disable-next-line no-control-regex
const NOT_A_SEGMENT_CHARACTER = /[/\\\u0000-\u001f\u007f-\u009f]/;

/**
 * True for a decoded segment that no server could take for anything but a name: not
 * only never `.` or `..` (SEMANTICS §7), but also nothing a server might resolve as one
 * (`..;x` with a path parameter, `. .` or `...` with Windows trimming, the full-width
 * `．．` after NFKC), and, in a request path, no `%` followed by two hex digits (a
 * second decoding would change it). The service may refuse these; valid paths avoid them.
 */
export function isOrdinarySegment(decoded: string, kind: Kind): boolean {
  if (decoded === "") return false;
  for (const form of [decoded, decoded.normalize("NFKC")]) {
    const stem = form.split(";", 1)[0] ?? "";
    if (/^[. ]*$/.test(stem) && stem.includes(".")) return false;
  }
  return !(kind === "request" && /%[0-9A-Fa-f]{2}/.test(decoded));
}

function decodedCharacter(extra: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.constantFrom(...PLAIN), weight: 6 },
    { arbitrary: fc.constantFrom(...PUNCTUATION), weight: 3 },
    { arbitrary: fc.constantFrom(...UNICODE), weight: 2 },
    { arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 1 }).filter((c) => !NOT_A_SEGMENT_CHARACTER.test(c) && c !== "%"), weight: 1 },
    { arbitrary: fc.constantFrom(...extra), weight: 1 },
  );
}

/** Percent-encodes the UTF-8 bytes of `ch`, hex digits in one case. */
export function percentEncode(ch: string, lower: boolean): string {
  return [...Buffer.from(ch, "utf8")]
    .map((byte) => {
      const hex = byte.toString(16).padStart(2, "0");
      return `%${lower ? hex.toLowerCase() : hex.toUpperCase()}`;
    })
    .join("");
}

const decodedOf = (segment: Segment): string => segment.map((p) => p.ch).join("");

function writeSegment(segment: Segment, mustEncode: ReadonlySet<string>): string {
  return segment.map((p) => (p.encode || mustEncode.has(p.ch) ? percentEncode(p.ch, p.lower) : p.ch)).join("");
}

function piecesOf(decoded: fc.Arbitrary<string>): fc.Arbitrary<Piece> {
  return fc.record({ ch: decoded, encode: fc.boolean(), lower: fc.boolean() });
}

/** A segment whose characters come from `word`, each raw or encoded. */
function segmentSpelling(word: string): fc.Arbitrary<Segment> {
  return fc.tuple(...[...word].map((ch) => piecesOf(fc.constant(ch))));
}

const separator = fc.constantFrom("/", "/", "/", "/", "//", "///");
const trailing = fc.constantFrom("", "", "", "/", "//");

/** A valid decoded segment ({@link isOrdinarySegment}); a scope path never holds a decoded `%`. */
function segment(kind: Kind, maxLength = 5): fc.Arbitrary<Segment> {
  const extra = kind === "request" ? ["%", "?", "#"] : ["?", "#"];
  return fc.array(piecesOf(decodedCharacter(extra)), { minLength: 1, maxLength }).filter((s) => isOrdinarySegment(decodedOf(s), kind));
}

function pathSpec(kind: Kind, segments: fc.Arbitrary<Segment>, minLength: number, maxLength: number): fc.Arbitrary<PathSpec> {
  return fc.record({
    parts: fc.array(fc.record({ sep: separator, segment: segments }), { minLength, maxLength }),
    trail: trailing,
    relative: kind === "scope" ? fc.boolean() : fc.constant(false),
  });
}

function write(spec: PathSpec, kind: Kind): WrittenPath {
  const mustEncode = kind === "request" ? REQUEST_MUST_ENCODE : SCOPE_MUST_ENCODE;
  let body = spec.parts.map((p) => p.sep + writeSegment(p.segment, mustEncode)).join("");
  if (spec.relative) body = body.replace(/^\/+/, "");
  else if (body === "") body = "/";
  const segments = spec.parts.map((p) => decodedOf(p.segment));
  return { raw: body + spec.trail, path: `/${segments.join("/")}`, segments };
}

export interface PathOptions {
  readonly minSegments?: number;
  readonly maxSegments?: number;
  /** Decoded segments to choose from (so that generated scopes and requests overlap). */
  readonly words?: readonly string[];
}

function writtenPath(kind: Kind, options: PathOptions): fc.Arbitrary<WrittenPath> {
  const segments = options.words ? fc.constantFrom(...options.words).chain(segmentSpelling) : segment(kind);
  return pathSpec(kind, segments, options.minSegments ?? 0, options.maxSegments ?? 4).map((spec) => write(spec, kind));
}

/** A valid request path in any spelling, without query. */
export const requestPath = (options: PathOptions = {}): fc.Arbitrary<WrittenPath> => writtenPath("request", options);

/** A valid scope path in any spelling (possibly relative). */
export const scopePath = (options: PathOptions = {}): fc.Arbitrary<WrittenPath> => writtenPath("scope", options);

/** Any spelling of a request path made of these decoded segments. */
export function requestSpelling(segments: readonly string[]): fc.Arbitrary<string> {
  return fc
    .record({
      parts: fc.tuple(...segments.map((word) => fc.record({ sep: separator, segment: segmentSpelling(word) }))),
      trail: trailing,
      relative: fc.constant(false),
    })
    .map((spec) => write(spec, "request").raw);
}

/** A decoded tail for a sibling name: at least one character, no `/`. */
export const siblingTail = (kind: Kind): fc.Arbitrary<WrittenPath> =>
  segment(kind, 3).map((s) => {
    const raw = writeSegment(s, kind === "request" ? REQUEST_MUST_ENCODE : SCOPE_MUST_ENCODE);
    return { raw, path: decodedOf(s), segments: [decodedOf(s)] };
  });

/**
 * A query that must not change anything, including dot segments and encoded separators.
 * (No `#`: a request target never holds a fragment, and a raw `#` is refused.)
 */
export const querySuffix: fc.Arbitrary<string> = fc
  .array(fc.constantFrom("a", "=", "&", "/", "..", "/../", "%2f", "%2E%2e", "%5C", "%", "%zz", "\\", "?", "é", " ", "%00"), { maxLength: 6 })
  .map((rest) => `?${rest.join("")}`);

/** Anything a client might send as a path: mostly junk around the interesting escapes. */
export const anyRawPath: fc.Arbitrary<string> = fc.oneof(
  requestPath().map((p) => p.raw),
  fc
    .tuple(
      fc.constantFrom("/", "/", "/", "//", ""),
      fc.array(
        fc.oneof(
          fc.constantFrom(
            "/",
            "//",
            ".",
            "..",
            "%2e",
            "%2E",
            "%2f",
            "%2F",
            "%5c",
            "%5C",
            "%25",
            "%252e",
            "%252F",
            "%",
            "%zz",
            "%4",
            "%41",
            "%c3%a9",
            "%C3%A9",
            "%e6%97%a5",
            "%f0%9f%98%80",
            "%ff",
            "%c0%ae",
            "%ed%a0%80",
            "\\",
            "?",
            "#",
            "%3f",
            "%23",
            "%20",
            "%00",
            "%7f",
            "%c2%85",
            "\u0085",
            "\t",
          ),
          decodedCharacter(["%", "?", "#"]),
        ),
        { maxLength: 12 },
      ),
    )
    .map(([lead, tokens]) => lead + tokens.join("")),
);

/**
 * Ways of writing `.`: raw or encoded once (most often), and what a second decoding or
 * a lenient UTF-8 decoder (overlong sequences) would turn into a dot.
 */
const DOT = fc.oneof(
  { arbitrary: fc.constantFrom(".", "%2e", "%2E"), weight: 3 },
  { arbitrary: fc.constantFrom("%252e", "%252E", "%25%32%65", "%c0%ae", "%C0%AE", "%e0%80%ae"), weight: 1 },
);
/** Ways of writing an encoded `/` or `\`: once (most often), twice, or as an overlong UTF-8 sequence. */
const ENCODED_SEPARATOR = fc.oneof(
  { arbitrary: fc.constantFrom("%2f", "%2F", "%5c", "%5C"), weight: 3 },
  { arbitrary: fc.constantFrom("%252f", "%252F", "%255c", "%255C", "%25%32%66", "%c0%af", "%C0%AF", "%c1%9c"), weight: 1 },
);

/** A `.` or `..` segment, each dot spelled any way. */
export const dotSegment: fc.Arbitrary<string> = fc.array(DOT, { minLength: 1, maxLength: 2 }).map((dots) => dots.join(""));

/**
 * A segment that is not `.` or `..` but that some server resolves as one: a path
 * parameter (`..;x`, Tomcat, Jetty), spaces or extra dots (Windows trims them), or
 * compatibility dots (NFKC: `．`, `․`, `﹒`, `‥`, `…`). Beyond SEMANTICS §7, which names only
 * `.` and `..`; the service refuses them too (src/paths/normalize.ts isDotSegment).
 */
export const dotLikeSegment: fc.Arbitrary<string> = fc
  .tuple(
    fc
      .array(
        fc.oneof(
          { arbitrary: DOT.map((dot) => ({ dot: true, text: dot })), weight: 3 },
          {
            arbitrary: fc.constantFrom("\uff0e", "\u2024", "\ufe52", "\u2025", "\u2026", "%ef%bc%8e", "%E2%80%A4").map((dot) => ({ dot: true, text: dot })),
            weight: 1,
          },
          { arbitrary: fc.constantFrom(" ", "%20").map((space) => ({ dot: false, text: space })), weight: 1 },
        ),
        { minLength: 1, maxLength: 4 },
      )
      .filter((pieces) => pieces.some((p) => p.dot)),
    fc.constantFrom("", "", ";", ";x", ";jsessionid=1", "%3b", "%3Bx", "%253b"),
  )
  .map(([pieces, parameter]) => pieces.map((p) => p.text).join("") + parameter)
  .filter((segment) => !/^(\.|%2e|%2E){1,2}$/.test(segment));

/** A segment holding an encoded separator, possibly next to dots (`..%2f`). */
export function separatorSegment(kind: Kind): fc.Arbitrary<string> {
  const around = fc.oneof(
    fc.constant(""),
    fc.constant(".."),
    segment(kind, 3).map((s) => writeSegment(s, kind === "request" ? REQUEST_MUST_ENCODE : SCOPE_MUST_ENCODE)),
  );
  return fc.tuple(around, ENCODED_SEPARATOR, around).map((parts) => parts.join(""));
}

/** A written path with a dot segment or an encoded separator somewhere in it. */
export function pathWithTraversal(kind: Kind, bad = fc.oneof(dotSegment, separatorSegment(kind))): fc.Arbitrary<{ raw: string; bad: string }> {
  return fc
    .record({
      before: fc.array(segment(kind, 3), { maxLength: 3 }),
      bad,
      after: fc.array(segment(kind, 3), { maxLength: 3 }),
      trail: trailing,
      relative: kind === "scope" ? fc.boolean() : fc.constant(false),
    })
    .map(({ before, bad, after, trail, relative }) => {
      const mustEncode = kind === "request" ? REQUEST_MUST_ENCODE : SCOPE_MUST_ENCODE;
      const segments = [...before.map((s) => writeSegment(s, mustEncode)), bad, ...after.map((s) => writeSegment(s, mustEncode))];
      return { raw: `${relative ? "" : "/"}${segments.join("/")}${trail}`, bad };
    });
}

/** Path-style authorizations that map to at least one method by default (all but storage.stage). */
export const GRANTING_AUTHZ = PATH_AUTHZ.filter((a) => a !== "storage.stage");

/** Named scopes: configured ones, unknown ones, and near-misses of path-style names (case-sensitive). */
const NAMED_SCOPES = ["dqsegdb.read", "gracedb.read", "compute.read", "storage.readx", "Read", "WRITE", "storage.Read"];

/** A well-formed scope entry (parseScopes accepts it), over a small set of words so that it often meets the request. */
export function wellFormedScope(words: readonly string[]): fc.Arbitrary<string> {
  const pathStyle = fc
    .tuple(fc.constantFrom(...PATH_AUTHZ), fc.option(scopePath({ words, maxSegments: 2 }), { nil: undefined }))
    .map(([authz, path]) => (path === undefined ? authz : `${authz}:${path.raw}`));
  const named = fc
    .tuple(fc.constantFrom(...NAMED_SCOPES), fc.option(fc.constantFrom("/", "/dq", "/a", "anything", "a:b"), { nil: undefined }))
    .map(([name, suffix]) => (suffix === undefined ? name : `${name}:${suffix}`));
  return fc.oneof({ arbitrary: pathStyle, weight: 3 }, { arbitrary: named, weight: 1 });
}

/** A path-style or named scope entry whose path has a dot segment or an encoded separator (SEMANTICS §6: scope_invalid). */
export const malformedScope: fc.Arbitrary<string> = fc
  .tuple(fc.constantFrom(...PATH_AUTHZ, ...NAMED_SCOPES), pathWithTraversal("scope"))
  .map(([authz, path]) => `${authz}:${path.raw}`);
