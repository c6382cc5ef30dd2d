import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type PathResult, normalizeRequestPath, normalizeScopePath } from "../../src/paths/normalize.js";
import { anyRawPath, dotLikeSegment, pathWithTraversal, querySuffix, requestPath, scopePath } from "./arbitraries.js";
import { runs } from "./harness.js";

/** Writes a normalized (decoded) path back as a request would carry it: each segment percent-encoded. */
function reencode(result: { segments: readonly string[] }): string {
  return `/${result.segments.map(encodeURIComponent).join("/")}`;
}

function accepted(result: PathResult): { path: string; segments: string[] } {
  expect(result.ok, result.ok ? "" : `refused: ${result.why}`).toBe(true);
  return result as { ok: true; path: string; segments: string[] };
}

/** What both normalizers promise of an accepted path (policies/README.md "Input"). */
function expectNormalForm(result: { path: string; segments: string[] }): void {
  expect(result.path).toBe(result.segments.length === 0 ? "/" : `/${result.segments.join("/")}`);
  for (const s of result.segments) expect(["", ".", ".."]).not.toContain(s);
}

describe("request paths (SEMANTICS §7)", () => {
  it("normalizes every spelling of a valid path to its decoded segments", () => {
    fc.assert(
      fc.property(requestPath({ maxSegments: 5 }), fc.option(querySuffix, { nil: "" }), (written, query) => {
        expect(normalizeRequestPath(written.raw + query)).toEqual({ ok: true, path: written.path, segments: written.segments });
      }),
      runs(600),
    );
  });

  it("is idempotent: an accepted path, re-encoded or (when nothing needs decoding) as is, normalizes to itself", () => {
    fc.assert(
      fc.property(anyRawPath, (raw) => {
        const first = normalizeRequestPath(raw);
        if (!first.ok) return;
        expectNormalForm(first);
        expect(normalizeRequestPath(reencode(first))).toEqual(first);
        if (!/[%?#]/.test(first.path)) expect(normalizeRequestPath(first.path)).toEqual(first);
      }),
      runs(1500),
    );
  });

  it("never accepts a dot segment or an encoded separator, however it is spelled", () => {
    fc.assert(
      fc.property(pathWithTraversal("request"), fc.option(querySuffix, { nil: "" }), ({ raw }, query) => {
        expect(normalizeRequestPath(raw + query).ok).toBe(false);
      }),
      runs(800),
    );
  });

  it("never accepts a segment that some server resolves as a dot segment (path parameter, trailing dots or spaces, NFKC)", () => {
    fc.assert(
      fc.property(pathWithTraversal("request", dotLikeSegment), fc.option(querySuffix, { nil: "" }), ({ raw }, query) => {
        expect(normalizeRequestPath(raw + query).ok).toBe(false);
        expect(normalizeScopePath(raw).ok).toBe(false);
      }),
      runs(500),
    );
  });
});

describe("scope paths (SEMANTICS §6)", () => {
  it("normalizes every spelling of a valid scope path to its decoded segments", () => {
    fc.assert(
      fc.property(scopePath({ maxSegments: 5 }), (written) => {
        expect(normalizeScopePath(written.raw)).toEqual({ ok: true, path: written.path, segments: written.segments });
      }),
      runs(600),
    );
  });

  it("is idempotent, and lands where the same path sent as a request lands", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          scopePath().map((p) => p.raw),
          anyRawPath,
        ),
        (raw) => {
          const first = normalizeScopePath(raw);
          if (!first.ok) return;
          expectNormalForm(first);
          // A decoded scope path never holds a %, so it needs no decoding.
          expect(normalizeScopePath(first.path)).toEqual(first);
          expect(normalizeScopePath(reencode(first))).toEqual(first);
          expect(accepted(normalizeRequestPath(reencode(first)))).toEqual(first);
        },
      ),
      runs(1500),
    );
  });

  it("never accepts a dot segment or an encoded separator, however it is spelled", () => {
    fc.assert(
      fc.property(pathWithTraversal("scope"), ({ raw }) => {
        expect(normalizeScopePath(raw).ok).toBe(false);
      }),
      runs(800),
    );
  });
});
