import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { type AuthzData, DEFAULT_VERBS } from "../../src/config/authz-data.js";
import type { PolicyEngine } from "../../src/policy/engine.js";
import { DenyError } from "../../src/reasons/index.js";
import { parseScopes } from "../../src/token/scopes.js";
import {
  GRANTING_AUTHZ,
  isOrdinarySegment,
  malformedScope,
  pathWithTraversal,
  querySuffix,
  requestPath,
  requestSpelling,
  scopePath,
  siblingTail,
  wellFormedScope,
} from "./arbitraries.js";
import { ISSUERS, type Outcome, RESTRICTED_ISSUER, decide, loadPolicy, runs, tokenWith, underBase } from "./harness.js";

let data: AuthzData;
let engine: PolicyEngine;
/** Every method some rule of fixtures/authz-data.yaml maps. */
let mappedMethods: string[];

beforeAll(async () => {
  ({ data, engine } = await loadPolicy());
  const policy = data.policyData as { verbs: Record<string, string[]>; named_scopes: Record<string, { methods: string[] }> };
  mappedMethods = [...new Set([...Object.values(policy.verbs).flat(), ...Object.values(policy.named_scopes).flatMap((n) => n.methods)])].sort();
});

/** A token that may do anything anywhere under its issuer's base path. */
const EVERYTHING = ["read", "write", "storage.read:/", "storage.create:/", "storage.modify:/", "storage.stage:/", "dqsegdb.read", "gracedb.read"];

const issuer = fc.constantFrom(...ISSUERS);
const method = () => fc.constantFrom(...mappedMethods);
const segmentsOf = (path: string): string[] => path.split("/").filter((s) => s !== "");
/** A Destination is an absolute path; `//host/…` would be a network-path reference. */
const oneLeadingSlash = (path: string): string => path.replace(/^\/+/, "/");
const ALLOWED: Outcome = { allow: true, reason: "allowed" };

describe("dot segments and encoded separators (SEMANTICS §7), through normalization and the compiled policy", () => {
  it("the everything token is allowed on every valid path under its base (so a deny below comes from the path)", () => {
    fc.assert(
      fc.property(issuer, requestPath(), fc.option(querySuffix, { nil: "" }), method(), (iss, path, query, m) => {
        const rawPath = `${iss.base === "/" ? "" : iss.base}${path.raw}${query}`;
        const request = { method: m, rawPath, destination: oneLeadingSlash(rawPath) };
        expect(decide(engine, request, tokenWith(data, iss.iss, EVERYTHING))).toEqual(ALLOWED);
      }),
      runs(300),
    );
  });

  it("never allows a request path with one, even to the everything token", () => {
    fc.assert(
      fc.property(issuer, pathWithTraversal("request"), fc.option(querySuffix, { nil: "" }), method(), (iss, path, query, m) => {
        const rawPath = `${iss.base === "/" ? "" : iss.base}${path.raw}${query}`;
        const outcome = decide(engine, { method: m, rawPath, destination: `${iss.base}/ok` }, tokenWith(data, iss.iss, EVERYTHING));
        expect(outcome).toEqual({ allow: false, reason: "path_invalid" });
      }),
      runs(500),
    );
  });

  it("never allows a MOVE or COPY whose Destination has one", () => {
    fc.assert(
      fc.property(issuer, pathWithTraversal("request"), fc.constantFrom("MOVE", "COPY"), (iss, destination, m) => {
        const request = { method: m, rawPath: `${iss.base}/ok`, destination: `${iss.base === "/" ? "" : iss.base}${destination.raw}` };
        expect(decide(engine, request, tokenWith(data, iss.iss, EVERYTHING))).toEqual({ allow: false, reason: "path_invalid" });
      }),
      runs(200),
    );
  });
});

describe("path matching is by whole components (SEMANTICS §7, §8)", () => {
  /** A granting path-style authz and one of its methods. */
  const grant = fc.constantFrom(...GRANTING_AUTHZ).chain((authz) => fc.tuple(fc.constant(authz), fc.constantFrom(...DEFAULT_VERBS[authz])));

  const setup = fc
    .record({
      iss: issuer,
      grant,
      scope: scopePath({ minSegments: 1, maxSegments: 3 }),
      tail: siblingTail("request"),
      below: fc.array(fc.constantFrom("child", "x y", "é", "%", "a.b", "a;b", ".x"), { minLength: 1, maxLength: 2 }),
    })
    // The sibling's last segment must itself be an ordinary name (" " + "." would be a dot-like segment).
    .filter((s) => isOrdinarySegment(`${s.scope.segments.at(-1) ?? ""}${s.tail.path}`, "request"))
    .chain((s) => {
      const under = segmentsOf(underBase(s.iss.base, s.scope.path));
      const last = under.length - 1;
      const sibling = [...under.slice(0, last), `${under[last]}${s.tail.path}`];
      const baseSibling = [`${segmentsOf(s.iss.base)[0] ?? ""}${s.tail.path}`, ...s.scope.segments];
      return fc.record({
        setup: fc.constant(s),
        exact: requestSpelling(under),
        child: requestSpelling([...under, ...s.below]),
        sibling: requestSpelling(sibling),
        siblingChild: requestSpelling([...sibling, ...s.below]),
        baseSibling: requestSpelling(baseSibling),
      });
    });

  it("a scope covers its path and what is below it, never a sibling that shares its prefix", () => {
    fc.assert(
      fc.property(setup, ({ setup: s, exact, child, sibling, siblingChild, baseSibling }) => {
        const [authz, m] = s.grant;
        const token = tokenWith(data, s.iss.iss, [`${authz}:${s.scope.raw}`]);
        const at = (rawPath: string): Outcome => decide(engine, { method: m, rawPath, destination: oneLeadingSlash(rawPath) }, token);
        expect(at(exact), `${authz}:${s.scope.raw} on ${exact}`).toEqual(ALLOWED);
        expect(at(child), `${authz}:${s.scope.raw} on ${child}`).toEqual(ALLOWED);
        const denied: Outcome = { allow: false, reason: "scope_insufficient" };
        expect(at(sibling), `${authz}:${s.scope.raw} on ${sibling}`).toEqual(denied);
        expect(at(siblingChild), `${authz}:${s.scope.raw} on ${siblingChild}`).toEqual(denied);
        if (s.iss.base !== "/") {
          expect(at(baseSibling), `base ${s.iss.base} on ${baseSibling}`).toEqual({ allow: false, reason: "path_outside_base" });
        }
      }),
      runs(300),
    );
  });
});

describe("scopes only add (SEMANTICS §6)", () => {
  /** Few words, so that generated scopes and requests often meet (and `/dq`, `/store` reach the configured prefixes). */
  const WORDS = ["a", "é", "x y", "dq", "store", "public"];
  /** An issuer and its base paths: also the one with several bases and a restricted path. */
  const anyIssuer = fc.oneof(
    { arbitrary: issuer.map((i): { iss: string; bases: readonly string[] } => ({ iss: i.iss, bases: [i.base] })), weight: 2 },
    { arbitrary: fc.constant({ iss: RESTRICTED_ISSUER.iss, bases: RESTRICTED_ISSUER.bases }), weight: 1 },
  );
  /** A path under one of the issuer's bases most of the time (the rest: mostly path_outside_base). */
  const pathFor = (bases: readonly string[]) =>
    fc
      .tuple(fc.constantFrom(...bases), fc.boolean(), fc.boolean(), requestPath({ words: WORDS, maxSegments: 3 }))
      .map(([base, inside, also, path]) => (inside || also ? underBase(base, path.raw) : path.raw));
  const request = () =>
    anyIssuer.chain((iss) =>
      fc.record({
        iss: fc.constant(iss),
        method: fc.constantFrom(...mappedMethods, "FROB", "get"),
        path: pathFor(iss.bases),
        destination: pathFor(iss.bases).map(oneLeadingSlash),
      }),
    );
  const scopes = fc.array(wellFormedScope(WORDS), { maxLength: 5 });

  it("adding a well-formed scope never turns an allow into a deny, nor changes a deny that is not about scopes", () => {
    fc.assert(
      fc.property(request(), scopes, wellFormedScope(WORDS), fc.nat(), (r, base, added, at) => {
        const entries = [...base];
        entries.splice(at % (base.length + 1), 0, added);
        const raw = { method: r.method, rawPath: r.path, destination: r.destination };
        const before = decide(engine, raw, tokenWith(data, r.iss.iss, base));
        const after = decide(engine, raw, tokenWith(data, r.iss.iss, entries));
        if (before.allow) expect(after, `adding ${added}`).toEqual(ALLOWED);
        else if (before.reason !== "scope_insufficient") expect(after, `adding ${added}`).toEqual(before);
      }),
      runs(1000),
    );
  });

  it("adding a path-style or named scope with a dot segment or an encoded separator invalidates the whole token", () => {
    fc.assert(
      fc.property(scopes, malformedScope, fc.nat(), (base, bad, at) => {
        const entries = [...base];
        entries.splice(at % (base.length + 1), 0, bad);
        expect(() => parseScopes(base)).not.toThrow();
        let thrown: unknown;
        try {
          parseScopes(entries);
        } catch (error) {
          thrown = error;
        }
        expect(thrown, `${JSON.stringify(entries)} must be refused`).toBeInstanceOf(DenyError);
        expect((thrown as DenyError).code).toBe("scope_invalid");
        expect(() => tokenWith(data, ISSUERS[0].iss, entries)).toThrow(thrown as DenyError);
      }),
      runs(800),
    );
  });
});
