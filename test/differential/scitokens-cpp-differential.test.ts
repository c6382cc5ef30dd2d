import { KeyObject } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { CLASS_EXAMPLES } from "./class-examples.js";
import { CppHarness, compileHarness } from "./cpp-harness.js";
import { CLASSIFIERS, type DivergenceClass, classify, followsSemantics, loadDivergences } from "./divergences.js";
import { generateCases } from "./generate-cases.js";
import { OurSide } from "./our-side.js";
import { describeOutcome, shrink } from "./reproducer.js";
import { type Outcome, type Sides, agree, runCase, runCases } from "./run-case.js";
import { seedFromEnv } from "./seeded-random.js";

// Differential test against the SciTokens reference implementation, scitokens-cpp (Debian's
// libscitokens-dev 0.7.3): the same seeded tokens and requests go to a small C harness
// (scitoken_deserialize, enforcer_create, enforcer_test) and through the real gRPC Check of
// the service. Every disagreement must belong to a class of divergences.yaml; any other one
// fails the test with a shrunk reproducer.

const CASES = 2400;
const KID = "diff-es256";
/** Failing cases shrunk and printed in full (the rest are counted). */
const REPRODUCERS = 5;

let dir: string;
let key: TestKey;
let oidc: OidcServer;
let harness: CppHarness;
let ours: OurSide;
let sides: Sides;
let classes: DivergenceClass[];

beforeAll(async () => {
  classes = loadDivergences();
  dir = await mkdtemp(join(tmpdir(), "scitokens-cpp-differential-"));
  key = await makeKey("ES256", KID);
  oidc = await startOidcServer({ keys: [{ alg: "ES256", kid: KID, publicJwk: key.publicJwk }] });
  const pem = KeyObject.from(key.publicKey).export({ type: "spki", format: "pem" }).toString();
  harness = await CppHarness.start(await compileHarness(dir), dir, oidc.issuer, KID, pem);
  ours = await OurSide.start(oidc.issuer);
  sides = { key, issuer: oidc.issuer, harness, ours };
}, 60_000);

afterAll(async () => {
  await ours?.close();
  await harness?.close();
  await oidc?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("divergences.yaml and the classifiers", () => {
  it("list the same classes, each once", () => {
    const ids = classes.map((cls) => cls.id);
    expect(new Set(ids).size, "duplicate ids in divergences.yaml").toBe(ids.length);
    expect([...ids].sort()).toEqual(Object.keys(CLASSIFIERS).sort());
  });

  it("have a hand-written example for every class", () => {
    const exemplified = new Set(CLASS_EXAMPLES.map((example) => example.expected));
    expect(classes.map((cls) => cls.id).filter((id) => !exemplified.has(id))).toEqual([]);
  });
});

describe("scitokens-authz versus scitokens-cpp 0.7.3", () => {
  it.each(CLASS_EXAMPLES)("$name", async ({ case: c, expected }) => {
    const outcome = await runCase(sides, c);
    const found = agree(outcome) ? (followsSemantics(outcome) ? null : "off-contract") : (classify(outcome, classes) ?? "unexplained");
    expect(found, describeOutcome(outcome, oidc.issuer, "hand-written example")).toBe(expected);
  });

  it(`agrees on ${CASES} seeded cases except for the documented divergences`, async () => {
    const seed = seedFromEnv();
    const cases = generateCases(seed, CASES);
    const started = Date.now();
    const outcomes = await runCases(sides, cases);

    const perClass = new Map<string, number>(classes.map((cls) => [cls.id, 0]));
    const unexplained: Outcome[] = [];
    const offContract: Outcome[] = [];
    let bothAllow = 0;
    let bothDeny = 0;
    for (const outcome of outcomes) {
      if (agree(outcome)) {
        if (outcome.ours.allowed) bothAllow++;
        else bothDeny++;
        if (!followsSemantics(outcome)) offContract.push(outcome);
        continue;
      }
      const id = classify(outcome, classes);
      if (id === undefined) unexplained.push(outcome);
      else perClass.set(id, (perClass.get(id) ?? 0) + 1);
    }

    const width = Math.max(...classes.map((cls) => cls.id.length));
    const disagreements = outcomes.length - bothAllow - bothDeny;
    console.log(
      [
        `differential test against scitokens-cpp 0.7.3: DIFF_SEED=${seed}, ${outcomes.length} cases in ${Date.now() - started} ms`,
        `  agreements:    ${bothAllow + bothDeny} (${pct(bothAllow + bothDeny, outcomes.length)}): both allow ${bothAllow}, both deny ${bothDeny}`,
        `  disagreements: ${disagreements} (${pct(disagreements, outcomes.length)})`,
        ...classes.map((cls) => `    ${cls.id.padEnd(width)}  ${cls.kind.padEnd(13)}  ${perClass.get(cls.id)}`),
        `    ${"unexplained".padEnd(width)}  ${"".padEnd(13)}  ${unexplained.length}`,
        `  agreements where the service departs from SEMANTICS §6/§7: ${offContract.length}`,
      ].join("\n"),
    );

    expect(outcomes).toHaveLength(CASES);
    // A harness or a service that denies everything would "agree" vacuously.
    expect(bothAllow, "both sides should allow a good share of the cases").toBeGreaterThan(CASES / 10);
    const isUnexplained = (o: Outcome): boolean => !agree(o) && classify(o, classes) === undefined;
    expect(
      unexplained.length,
      `${unexplained.length} disagreement(s) outside divergences.yaml; the first ones, shrunk:\n\n${await reproducers(unexplained, isUnexplained, seed)}\n`,
    ).toBe(0);
    // Both sides may agree and still be wrong: the service must also follow SEMANTICS (§6, §7).
    const isOffContract = (o: Outcome): boolean => agree(o) && !followsSemantics(o);
    expect(
      offContract.length,
      `${offContract.length} agreement(s) where the service does not follow SEMANTICS; the first ones, shrunk:\n\n${await reproducers(offContract, isOffContract, seed)}\n`,
    ).toBe(0);
  }, 120_000);
});

/** Shrinks and describes the first {@link REPRODUCERS} failing outcomes. */
async function reproducers(failing: readonly Outcome[], stillFailing: (o: Outcome) => boolean, seed: number): Promise<string> {
  const described: string[] = [];
  for (const outcome of failing.slice(0, REPRODUCERS)) {
    described.push(describeOutcome(await shrink(outcome, stillFailing, (c) => runCase(sides, c)), oidc.issuer, `DIFF_SEED=${seed}`));
  }
  return described.join("\n\n");
}

function pct(part: number, whole: number): string {
  return `${((100 * part) / whole).toFixed(1)} %`;
}
