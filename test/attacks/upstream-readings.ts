/**
 * The ways an upstream server might read a request path that the authorizer allowed:
 * percent-decoding once or twice (also overlong UTF-8, as old decoders did), NFKC
 * normalization before or after decoding, `\` as a separator, Windows' best-fit
 * mapping of slash look-alikes, `;params` and trailing dots or spaces stripped from
 * segments, truncation at NUL, then dot segments resolved
 * (RFC 3986 §5.2.4) and repeated `/` collapsed. The path attack tests assert that every
 * reading of an allowed path stays inside the granted subtree.
 */

type Reading = (path: string) => string;

const OVERLONG: Readonly<Record<string, string>> = { c0ae: ".", c0af: "/", c15c: "\\", e080ae: ".", e080af: "/" };

/** Percent-decodes every well-formed escape; invalid UTF-8 becomes U+FFFD (a lenient server). */
function decodeLenient(path: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < path.length; ) {
    if (path[i] === "%" && /^[0-9a-fA-F]{2}$/.test(path.slice(i + 1, i + 3))) {
      bytes.push(Number.parseInt(path.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      const code = path.codePointAt(i)!;
      bytes.push(...Buffer.from(String.fromCodePoint(code), "utf8"));
      i += code > 0xffff ? 2 : 1;
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/** Decodes overlong UTF-8 escapes for `.`, `/` and `\` as old decoders did. */
function decodeOverlong(path: string): string {
  return path.replace(/%(?:c0%(?:ae|af)|c1%5c|e0%80%(?:ae|af))/gi, (encoded) => OVERLONG[encoded.replaceAll("%", "").toLowerCase()] ?? encoded);
}

const perSegment =
  (f: (segment: string) => string): Reading =>
  (path) =>
    path.split("/").map(f).join("/");

export const READINGS: Readonly<Record<string, Reading>> = {
  decode: decodeLenient,
  overlong: decodeOverlong,
  nfkc: (path) => path.normalize("NFKC"),
  backslash: (path) => path.replaceAll("\\", "/"),
  params: perSegment((segment) => segment.split(";", 1)[0]!),
  windows: perSegment((segment) => (/^[. ]+$/.test(segment) ? segment : segment.replace(/[. ]+$/, ""))),
  nul: (path) => path.split("\u0000", 1)[0]!,
  bestfit: (path) => path.replace(/[\u2044\u2215\u29f8]/g, "/").replace(/[\u2216\u29f9]/g, "\\"),
};

/** RFC 3986 §5.2.4 on `/`-separated segments, with empty segments collapsed. */
export function resolveDotSegments(path: string): string {
  const out: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") out.pop();
    else out.push(segment);
  }
  return `/${out.join("/")}`;
}

/**
 * Every path an upstream might act on for `rawPath` (its query dropped): each chain of
 * up to `depth` readings, resolved.
 */
export function upstreamReadings(rawPath: string, depth = 3): Set<string> {
  const q = rawPath.indexOf("?");
  let frontier = new Set([q === -1 ? rawPath : rawPath.slice(0, q)]);
  const seen = new Set(frontier);
  for (let level = 0; level < depth; level++) {
    const next = new Set<string>();
    for (const path of frontier) {
      for (const read of Object.values(READINGS)) {
        const read1 = read(path);
        if (!seen.has(read1)) {
          seen.add(read1);
          next.add(read1);
        }
      }
    }
    frontier = next;
  }
  return new Set([...seen].map(resolveDotSegments));
}

/** True when `path` is `subtree` or lies below it, on whole segments. */
export function within(subtree: string, path: string): boolean {
  return subtree === "/" || path === subtree || path.startsWith(`${subtree}/`);
}
