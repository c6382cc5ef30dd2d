import type { TokenProfile } from "../helpers/tokens.js";
import { TEST_AUDIENCE } from "../helpers/tokens.js";
import { SeededRandom } from "./seeded-random.js";

// One differential case: a token (described by its claims, times relative to minting) and
// a request, sent both to scitokens-cpp's enforcer and to the service's Check.

export const AUDIENCE = TEST_AUDIENCE;
export const SECOND_AUDIENCE = "https://datafind.example.org";
export const OTHER_AUDIENCE = "https://other.example.org";
/** The special audiences of SEMANTICS §5. */
export const SCITOKENS_ANY = "ANY";
export const WLCG_ANY = "https://wlcg.cern.ch/jwt/v1/any";

/**
 * Accepted-audience configurations: the service's `audiences` (one service per entry) and
 * the audience list given to scitokens-cpp's `enforcer_create`.
 */
export const AUDIENCE_CONFIGS = {
  single: [AUDIENCE],
  "with-any": [AUDIENCE, SCITOKENS_ANY],
  two: [AUDIENCE, SECOND_AUDIENCE],
  none: [],
} as const satisfies Record<string, readonly string[]>;
export type AudienceConfig = keyof typeof AUDIENCE_CONFIGS;

/**
 * Token profiles by version claim (SEMANTICS §1). Beyond the three the service mints, the
 * other spellings the contract accepts: `scitokens:2.0`, `ver: "scitokens:1.0"`, the
 * integer `ver: 1`, and a WLCG `1.x` other than `1.0`.
 */
export const PROFILES = {
  scitokens2: { mint: "scitokens2", claims: {} },
  "scitokens2-plural": { mint: "scitokens2", claims: { ver: "scitokens:2.0" } },
  scitokens1: { mint: "scitokens1", claims: {} },
  "scitokens1-ver": { mint: "scitokens1", claims: { ver: "scitokens:1.0" } },
  "scitokens1-integer-ver": { mint: "scitokens1", claims: { ver: 1 } },
  wlcg: { mint: "wlcg1", claims: {} },
  "wlcg-1.2": { mint: "wlcg1", claims: { "wlcg.ver": "1.2" } },
} as const satisfies Record<string, { mint: TokenProfile; claims: Record<string, unknown> }>;
export type ProfileName = keyof typeof PROFILES;

/** The time claims, in seconds relative to the moment the token is minted; absent: no claim. */
export interface CaseTimes {
  label: string;
  iat?: number;
  nbf?: number;
  exp: number;
}

export interface DiffCase {
  id: number;
  profile: ProfileName;
  /** The token's `aud`; `undefined`: no `aud` claim. */
  aud: string | string[] | undefined;
  scopes: string[];
  /** `scp` (the SciTokens 1 legacy list) instead of `scope`. */
  scopeClaim: "scope" | "scp";
  /** Adds `wlcg.groups` (an unknown claim for SciTokens). */
  groups: boolean;
  times: CaseTimes;
  audienceConfig: AudienceConfig;
  /** scitokens-cpp's authz; the service gets GET for read, PUT for write. */
  authz: "read" | "write";
  path: string;
}

export function methodOf(c: Pick<DiffCase, "authz">): "GET" | "PUT" {
  return c.authz === "read" ? "GET" : "PUT";
}

export function isWlcg(c: Pick<DiffCase, "profile">): boolean {
  return PROFILES[c.profile].mint === "wlcg1";
}

const SEGMENTS = ["foo", "foobar", "fo", "bar", "data", "run1"] as const;

const TIMES: ReadonlyArray<readonly [number, CaseTimes]> = [
  [72, { label: "valid", iat: -10, nbf: -10, exp: 600 }],
  [8, { label: "valid, no nbf", iat: -10, exp: 600 }],
  [5, { label: "expired an hour ago", iat: -7200, nbf: -7200, exp: -3600 }],
  [5, { label: "expired 30 s ago", iat: -630, nbf: -630, exp: -30 }],
  [4, { label: "nbf in an hour", iat: -10, nbf: 3600, exp: 7200 }],
  [4, { label: "nbf in 30 s", iat: -10, nbf: 30, exp: 600 }],
  [3, { label: "iat in 30 s", iat: 30, nbf: -10, exp: 600 }],
  [3, { label: "iat in an hour", iat: 3600, nbf: -10, exp: 7200 }],
  [2, { label: "no iat", nbf: -10, exp: 600 }],
];

const PROFILE_WEIGHTS: ReadonlyArray<readonly [number, ProfileName]> = [
  [35, "scitokens2"],
  [5, "scitokens2-plural"],
  [20, "scitokens1"],
  [5, "scitokens1-ver"],
  [2, "scitokens1-integer-ver"],
  [30, "wlcg"],
  [3, "wlcg-1.2"],
];

const TOKEN_AUDIENCES: ReadonlyArray<readonly [number, () => string | string[] | undefined]> = [
  [100, () => AUDIENCE],
  [8, () => [OTHER_AUDIENCE, AUDIENCE]],
  [6, () => SECOND_AUDIENCE],
  [8, () => OTHER_AUDIENCE],
  [9, () => SCITOKENS_ANY],
  [7, () => WLCG_ANY],
  [3, () => [OTHER_AUDIENCE, SCITOKENS_ANY]],
  [12, () => undefined],
  [2, () => []],
];

const AUDIENCE_CONFIG_WEIGHTS: ReadonlyArray<readonly [number, AudienceConfig]> = [
  [50, "single"],
  [25, "with-any"],
  [17, "two"],
  [8, "none"],
];

/** Scope kinds by profile: mostly the profile's own vocabulary, sometimes the other's. */
const SCITOKENS_AUTHZ: ReadonlyArray<readonly [number, string]> = [
  [45, "read"],
  [35, "write"],
  [6, "storage.read"],
  [4, "storage.create"],
  [4, "storage.modify"],
  [2, "dqsegdb.read"],
  [2, "Read"],
];
const WLCG_AUTHZ: ReadonlyArray<readonly [number, string]> = [
  [35, "storage.read"],
  [20, "storage.create"],
  [20, "storage.modify"],
  [5, "storage.stage"],
  [8, "read"],
  [8, "write"],
  [2, "compute.read"],
  [2, "storage.Read"],
];

function cleanPath(rng: SeededRandom): string {
  const depth = rng.weighted([
    [1, 0],
    [5, 1],
    [3, 2],
  ] as const);
  const segments: string[] = [];
  for (let i = 0; i < depth; i++) segments.push(rng.pick(SEGMENTS));
  return `/${segments.join("/")}`;
}

/** Percent-encodes one letter of the path (`o` → `%6F`), a valid escape both sides keep. */
function encodeOneLetter(rng: SeededRandom, path: string): string {
  const letters = [...path].flatMap((char, index) => (/[a-z0-9]/.test(char) ? [index] : []));
  if (letters.length === 0) return `${path}%61`;
  const index = rng.pick(letters);
  const hex = (path.codePointAt(index) ?? 0).toString(16).toUpperCase();
  return `${path.slice(0, index)}%${rng.chance(0.5) ? hex : hex.toLowerCase()}${path.slice(index + 1)}`;
}

/** Percent-encodes one letter twice (`o` → `%25%36F`): a second decoding gives `%6F`, a third `o`. */
function encodeOneLetterTwice(rng: SeededRandom, path: string): string {
  const letters = [...path].flatMap((char, index) => (/[a-z0-9]/.test(char) ? [index] : []));
  if (letters.length === 0) return `${path}%2561`;
  const index = rng.pick(letters);
  const hex = (path.codePointAt(index) ?? 0).toString(16).toUpperCase();
  const twice = [...hex].map((digit) => `%${(digit.codePointAt(0) ?? 0).toString(16).toUpperCase()}`).join("");
  return `${path.slice(0, index)}%25${twice}${path.slice(index + 1)}`;
}

function lastSlash(path: string): number {
  return path.endsWith("/") ? path.slice(0, -1).lastIndexOf("/") : path.lastIndexOf("/");
}

type Mutation = (rng: SeededRandom, path: string) => string;

const trimmed = (path: string): string => (path === "/" ? "" : path.replace(/\/$/, ""));

/** Request-path mutations (SEMANTICS §7 and the sibling-prefix trap of §7's matching rule). */
const REQUEST_MUTATIONS: ReadonlyArray<readonly [number, Mutation]> = [
  [55, (_rng, path) => path],
  [20, (rng, path) => `${trimmed(path)}/${rng.pick([...SEGMENTS, "file.h5"])}`],
  [10, (rng, path) => (path === "/" ? `/${rng.pick(SEGMENTS)}` : `${trimmed(path)}${rng.pick(["bar", "x", "-1"])}`)],
  [5, (_rng, path) => path.slice(0, Math.max(1, lastSlash(path)))],
  [5, (_rng, path) => `${trimmed(path)}/`],
  [5, (_rng, path) => path.replace("/", "//")],
  [4, (rng, path) => rng.pick([`${trimmed(path)}/.`, `/.${path}`, path.replace("/", "/./")])],
  [5, (rng, path) => rng.pick([`${trimmed(path)}/x/../${rng.pick(SEGMENTS)}`, `${trimmed(path)}/..`, `/${rng.pick(SEGMENTS)}/..${path}`])],
  [2, (_rng, path) => `/..${path}`],
  [6, (rng, path) => encodeOneLetter(rng, path)],
  [3, (rng, path) => `${trimmed(path)}/${rng.pick(SEGMENTS)}${rng.pick(["%2F", "%2f", "%5C"])}${rng.pick(SEGMENTS)}`],
  [2, (rng, path) => `${trimmed(path)}/${rng.pick(["%2e%2e", "%2E", ".%2e", "%252e%252e"])}/${rng.pick(SEGMENTS)}`],
  [3, (_rng, path) => path.toUpperCase()],
  [1, (rng, path) => `${trimmed(path)}/${rng.pick(SEGMENTS)}${rng.pick(["%00", "%0A", "%7F"])}`],
];

/** Scope-path decorations (SEMANTICS §6: decoded once, unsafe paths invalidate the token). */
const SCOPE_DECORATIONS: ReadonlyArray<readonly [number, Mutation]> = [
  [110, (_rng, path) => path],
  [6, (_rng, path) => `${trimmed(path)}/`],
  [5, (_rng, path) => path.slice(1)],
  [3, (_rng, path) => path.replace("/", "//")],
  [3, (rng, path) => rng.pick([`${trimmed(path)}/.`, path.replace("/", "/./")])],
  [4, (rng, path) => rng.pick([`${trimmed(path)}/x/..`, `/${rng.pick(SEGMENTS)}/..${path}`])],
  [1, (_rng, path) => `/..${path}`],
  [5, (rng, path) => encodeOneLetter(rng, path)],
  [2, (rng, path) => `${trimmed(path)}/${rng.pick(SEGMENTS)}${rng.pick(["%2F", "%5c"])}${rng.pick(SEGMENTS)}`],
  [1, (_rng, path) => `${trimmed(path)}/%2e%2e`],
  [1, (rng, path) => `${trimmed(path)}/${rng.pick(SEGMENTS)}%00`],
  [2, (rng, path) => encodeOneLetterTwice(rng, path)],
  [1, (rng, path) => `${trimmed(path)}/${rng.pick(SEGMENTS)}${rng.pick(["%01", "%1F"])}`],
];

function scopeEntry(rng: SeededRandom, vocabulary: ReadonlyArray<readonly [number, string]>): { entry: string; base: string } {
  const authz = rng.weighted(vocabulary);
  const base = cleanPath(rng);
  const form = rng.weighted([
    [88, "path"],
    [8, "none"],
    [4, "empty"],
  ] as const);
  if (form === "none") return { entry: authz, base: "/" };
  if (form === "empty") return { entry: `${authz}:`, base: "/" };
  return { entry: `${authz}:${rng.weighted(SCOPE_DECORATIONS)(rng, base)}`, base };
}

/** The access a scope entry is about: reads for read scopes, writes for the others. */
function accessOf(entry: string): "read" | "write" {
  return /^(storage\.)?read(:|$)/.test(entry) ? "read" : "write";
}

/** Generates `count` cases from `seed`; the same seed always gives the same cases. */
export function generateCases(seed: number, count: number): DiffCase[] {
  const rng = new SeededRandom(seed);
  const cases: DiffCase[] = [];
  for (let id = 0; id < count; id++) {
    const profile = rng.weighted(PROFILE_WEIGHTS);
    const scopeCount = rng.weighted([
      [3, 0],
      [45, 1],
      [30, 2],
      [15, 3],
      [7, 4],
    ] as const);
    const vocabulary = PROFILES[profile].mint === "wlcg1" ? WLCG_AUTHZ : SCITOKENS_AUTHZ;
    const entries = Array.from({ length: scopeCount }, () => scopeEntry(rng, vocabulary));
    // Mostly ask about a scope's own subtree, with the scope's kind of access, so that
    // grants (and the near misses around them) are common rather than rare.
    const focus = entries.length > 0 && rng.chance(0.8) ? rng.pick(entries) : undefined;
    const requestBase = focus?.base ?? cleanPath(rng);
    let path = rng.weighted(REQUEST_MUTATIONS)(rng, requestBase);
    if (rng.chance(0.15)) path = rng.weighted(REQUEST_MUTATIONS)(rng, path);
    cases.push({
      id,
      profile,
      aud: rng.weighted(TOKEN_AUDIENCES)(),
      scopes: entries.map(({ entry }) => entry),
      scopeClaim: PROFILES[profile].mint === "scitokens1" && rng.chance(0.1) ? "scp" : "scope",
      groups: rng.chance(0.06),
      times: rng.weighted(TIMES),
      audienceConfig: rng.weighted(AUDIENCE_CONFIG_WEIGHTS),
      authz: focus !== undefined && rng.chance(0.7) ? accessOf(focus.entry) : rng.chance(0.6) ? "read" : "write",
      path,
    });
  }
  return cases;
}
