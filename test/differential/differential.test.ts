import { KeyObject } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type DivergenceClass, classify, followsSemantics, loadDivergences } from "./divergences.js";
import { SEMANTICS_PAGE, docFigures } from "./doc-figures.js";
import { generateCases } from "./generate-cases.js";
import type { Oracle } from "./oracle.js";
import { oraclesOfRun } from "./oracles/index.js";
import type { OracleSpec } from "./oracles/spec.js";
import { OurSide } from "./our-side.js";
import { describeOutcome, shrink } from "./reproducer.js";
import { type CaseRun, type Outcome, type Sides, agree, outcomeOf, runCases, runOutcome } from "./run-case.js";
import { DEFAULT_SEED, seedFromEnv } from "./seeded-random.js";

// Differential test against the SciTokens reference implementations (test/differential/
// oracles/: scitokens-cpp 0.7.3 from Debian, the Python scitokens library that setup puts
// in .tools/python-scitokens, and any other the run switches on): the same
// seeded tokens and requests go to each reference's enforcer and through the real gRPC
// Check of the service. Every disagreement with a reference must belong to a class of that
// reference's oracles/<id>.yaml; any other one fails the test with a shrunk reproducer.

const CASES = 2400;
const KID = "diff-es256";
/** Failing cases shrunk and printed in full (the rest are counted). */
const REPRODUCERS = 5;
const SPECS = oraclesOfRun();

let dir: string;
let key: TestKey;
let oidc: OidcServer;
let ours: OurSide;
let sides: Sides;
const oracles = new Map<string, Oracle>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-differential-"));
  key = await makeKey("ES256", KID);
  oidc = await startOidcServer({ keys: [{ alg: "ES256", kid: KID, publicJwk: key.publicJwk }] });
  const publicKeyPem = KeyObject.from(key.publicKey).export({ type: "spki", format: "pem" }).toString();
  for (const spec of SPECS) oracles.set(spec.id, await spec.start({ dir, issuer: oidc.issuer, kid: KID, publicKeyPem }));
  ours = await OurSide.start(oidc.issuer);
  sides = { key, issuer: oidc.issuer, ours };
}, 120_000);

afterAll(async () => {
  await ours?.close();
  for (const oracle of oracles.values()) await oracle.close();
  await oidc?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function oracleOf(spec: OracleSpec): Oracle {
  const oracle = oracles.get(spec.id);
  if (oracle === undefined) throw new Error(`${spec.label} did not start`);
  return oracle;
}

describe.each(SPECS)("scitokens-authz versus $label", (spec) => {
  const classes = loadDivergences(spec.classesFile);

  it("lists the same classes in its YAML file and its classifiers, each once", () => {
    const ids = classes.map((cls) => cls.id);
    expect(new Set(ids).size, `duplicate ids in ${spec.classesFile}`).toBe(ids.length);
    expect([...ids].sort()).toEqual(Object.keys(spec.classifiers).sort());
  });

  it("has a hand-written example for every class", () => {
    const exemplified = new Set(spec.examples.map((example) => example.expected));
    expect(classes.map((cls) => cls.id).filter((id) => !exemplified.has(id))).toEqual([]);
  });

  it.each(spec.examples)("$name", async ({ case: c, expected }) => {
    const outcome = await runOutcome(sides, oracleOf(spec), c);
    const found = agree(outcome) ? (followsSemantics(outcome) ? null : "off-contract") : (classify(outcome, classes, spec.classifiers) ?? "unexplained");
    expect(found, describeOutcome(outcome, oidc.issuer, spec.label, "hand-written example")).toBe(expected);
  });
});

describe(`${CASES} seeded cases through every reference implementation`, () => {
  const seed = seedFromEnv();
  let runs: CaseRun[] = [];
  let runMs = 0;

  beforeAll(async () => {
    const started = Date.now();
    runs = await runCases(sides, [...oracles.values()], generateCases(seed, CASES));
    runMs = Date.now() - started;
  }, 300_000);

  it("the service follows SEMANTICS §6/§7 on every case", async () => {
    expect(runs).toHaveLength(CASES);
    const offContract = runs.filter((run) => !followsSemantics(run));
    const first = SPECS[0];
    const shrunk =
      first === undefined
        ? ""
        : await reproducers(
            offContract.map((run) => outcomeOf(run, first.id)),
            (o) => !followsSemantics(o),
            first,
            seed,
          );
    expect(offContract.length, `${offContract.length} case(s) where the service does not follow SEMANTICS; the first ones, shrunk:\n\n${shrunk}\n`).toBe(0);
  });

  it.each(SPECS)("agree with $label except for its documented divergences", async (spec) => {
    const classes = loadDivergences(spec.classesFile);
    const outcomes = runs.map((run) => outcomeOf(run, spec.id));
    const perClass = new Map<string, number>(classes.map((cls) => [cls.id, 0]));
    const unexplained: Outcome[] = [];
    let bothAllow = 0;
    let bothDeny = 0;
    const arbitrary = spec.arbitraryClass !== undefined ? spec.classifiers[spec.arbitraryClass] : undefined;
    for (const outcome of outcomes) {
      if (arbitrary?.(outcome) && spec.arbitraryClass !== undefined) {
        perClass.set(spec.arbitraryClass, (perClass.get(spec.arbitraryClass) ?? 0) + 1);
        continue;
      }
      if (agree(outcome)) {
        if (outcome.ours.allowed) bothAllow++;
        else bothDeny++;
        continue;
      }
      const id = classify(outcome, classes, spec.classifiers);
      if (id === undefined) unexplained.push(outcome);
      else perClass.set(id, (perClass.get(id) ?? 0) + 1);
    }

    const width = Math.max(...classes.map((cls) => cls.id.length), "unexplained".length);
    const disagreements = outcomes.length - bothAllow - bothDeny;
    console.log(
      [
        `differential test against ${spec.label}: DIFF_SEED=${seed}, ${outcomes.length} cases (all references together in ${runMs} ms)`,
        `  agreements:    ${bothAllow + bothDeny} (${pct(bothAllow + bothDeny, outcomes.length)}): both allow ${bothAllow}, both deny ${bothDeny}`,
        `  disagreements: ${disagreements} (${pct(disagreements, outcomes.length)})`,
        ...classes.map((cls) => `    ${cls.id.padEnd(width)}  ${cls.kind.padEnd(10)}  ${perClass.get(cls.id)}`),
        `    ${"unexplained".padEnd(width)}  ${"".padEnd(10)}  ${unexplained.length}`,
      ].join("\n"),
    );

    expect(outcomes).toHaveLength(CASES);
    // A harness or a service that denies everything would "agree" vacuously.
    expect(bothAllow, "both sides should allow a good share of the cases").toBeGreaterThan(CASES * (spec.minBothAllowShare ?? 0.1));
    const isUnexplained = (o: Outcome): boolean => !agree(o) && classify(o, classes, spec.classifiers) === undefined;
    expect(
      unexplained.length,
      `${unexplained.length} disagreement(s) with ${spec.label} outside ${spec.classesFile}; the first ones, shrunk:\n\n${await reproducers(unexplained, isUnexplained, spec, seed)}\n`,
    ).toBe(0);
    // docs/semantics.md publishes the default seed's figures: they must be these.
    if (seed === DEFAULT_SEED)
      expect(publishedFigures(spec.id, classes), SEMANTICS_PAGE).toEqual({ bothAllow, bothDeny, disagreements, perClass: kinded(classes, perClass) });
  });
});

/** Class id → `kind count`, the shape in which measured and published figures are compared. */
function kinded(classes: readonly DivergenceClass[], perClass: ReadonlyMap<string, number>): Record<string, string> {
  return Object.fromEntries(classes.map((cls) => [cls.id, `${cls.kind} ${perClass.get(cls.id) ?? "missing"}`]));
}

/** What docs/semantics.md says of the default seed's run against `id`. */
function publishedFigures(id: string, classes: readonly DivergenceClass[]): unknown {
  const figures = docFigures(id);
  if (typeof figures === "string") return figures;
  const published = Object.fromEntries([...figures.perClass].map(([classId, n]) => [classId, `${figures.kindOf.get(classId)} ${n}`]));
  for (const cls of classes) published[cls.id] ??= `${cls.kind} missing`;
  return { bothAllow: figures.bothAllow, bothDeny: figures.bothDeny, disagreements: figures.disagreements, perClass: published };
}

/** Shrinks and describes the first {@link REPRODUCERS} failing outcomes. */
async function reproducers(failing: readonly Outcome[], stillFailing: (o: Outcome) => boolean, spec: OracleSpec, seed: number): Promise<string> {
  const described: string[] = [];
  for (const outcome of failing.slice(0, REPRODUCERS)) {
    const shrunk = await shrink(outcome, stillFailing, (c) => runOutcome(sides, oracleOf(spec), c));
    described.push(describeOutcome(shrunk, oidc.issuer, spec.label, `DIFF_SEED=${seed}`));
  }
  return described.join("\n\n");
}

function pct(part: number, whole: number): string {
  return `${((100 * part) / whole).toFixed(1)} %`;
}
