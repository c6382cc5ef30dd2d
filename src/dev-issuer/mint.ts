import { randomUUID } from "node:crypto";
import type { CryptoKey, JWTHeaderParameters, KeyObject } from "jose";
import { SignJWT } from "jose";

/**
 * The token profiles of docs/semantics.md §1, named by the version claim they carry:
 * `scitokens2` → `ver: "scitoken:2.0"`, `wlcg1` → `wlcg.ver: "1.0"`,
 * `scitokens1` → no version claim (how SciTokens 1 issuers mint them).
 */
export type TokenProfile = "scitokens2" | "wlcg1" | "scitokens1";

/** Subject used when {@link MintOptions.subject} is omitted. */
export const DEFAULT_SUBJECT = "dev-user";

/** Lifetime used when {@link MintOptions.lifetimeSeconds} is omitted: 10 minutes. */
export const DEFAULT_LIFETIME_SECONDS = 600;

export interface MintOptions {
  /** Private signing key; must suit `alg` (jose rejects the pair otherwise). */
  privateKey: CryptoKey | KeyObject;
  alg: "ES256" | "RS256" | (string & {});
  /** Goes into the protected header when given. */
  kid?: string;
  issuer: string;
  /** Defaults to {@link DEFAULT_SUBJECT}. */
  subject?: string;
  /** Omitted: the token has no `aud` claim. An array is kept as an array, even of one. */
  audience?: string | string[];
  /**
   * Scope entries (`read:/data`, `storage.create:/x`, `dqsegdb.read`), joined with single
   * spaces into `scope`. An empty list omits the claim. Entries must be non-empty and hold
   * no whitespace, since the joined string could not be split back into the same entries.
   */
  scopes: string[];
  /**
   * SciTokens 1 only: `"scp"` writes the scopes as the legacy `scp` list instead of `scope`.
   * Other profiles ignore `scp` (SEMANTICS §1), so asking for it there is an error; put
   * `scp` in {@link extraClaims} to test that it is ignored.
   */
  scopeClaim?: "scope" | "scp";
  /** Defaults to {@link DEFAULT_LIFETIME_SECONDS}; `exp = iat + lifetimeSeconds`. */
  lifetimeSeconds?: number;
  /** The minting clock; defaults to the current time. `iat` is its whole seconds. */
  now?: Date;
  /** Defaults to `scitokens2`. */
  profile?: TokenProfile;
  /** Written as `wlcg.groups` (any profile). */
  groups?: string[];
  /** Defaults to a random UUID. */
  jti?: string;
  /**
   * Applied last, so they replace any claim above. A value of `undefined` removes the
   * claim, e.g. `{ exp: undefined }` for a token without `exp`.
   */
  extraClaims?: Record<string, unknown>;
  /** Adds `nbf` equal to `iat`. */
  nbf?: boolean;
  /**
   * Applied over the header `{alg, kid, typ: "JWT"}`; `undefined` removes a parameter.
   * For tests of header handling (`jku`, `x5u`, `crit`, a missing `typ`). Parameters named
   * in `crit` are declared understood to the signer so that such tokens can be produced.
   */
  extraHeader?: Record<string, unknown>;
}

const VERSION_CLAIMS: Readonly<Record<TokenProfile, Readonly<Record<string, string>>>> = {
  scitokens2: { ver: "scitoken:2.0" },
  wlcg1: { "wlcg.ver": "1.0" },
  scitokens1: {},
};

/**
 * Mints a signed SciTokens/WLCG JWT for development and tests (the CLI's `token create`).
 * The claim set always holds `iss`, `sub`, `iat`, `exp` and `jti`, plus the profile's
 * version claim (SEMANTICS §1); see {@link MintOptions} for the rest.
 */
export async function mintToken(o: MintOptions): Promise<string> {
  const profile = o.profile ?? "scitokens2";
  if (!Object.hasOwn(VERSION_CLAIMS, profile)) {
    throw new TypeError(`unknown token profile "${String(profile)}": expected scitokens2, wlcg1 or scitokens1`);
  }
  const lifetime = o.lifetimeSeconds ?? DEFAULT_LIFETIME_SECONDS;
  if (!Number.isSafeInteger(lifetime)) {
    throw new TypeError(`lifetimeSeconds must be an integer number of seconds, got ${String(lifetime)}`);
  }
  const nowMs = (o.now ?? new Date()).getTime();
  if (!Number.isFinite(nowMs)) {
    throw new TypeError("now must be a valid Date");
  }
  for (const scope of o.scopes) {
    if (scope === "" || /\s/.test(scope)) {
      throw new TypeError(`scope entries must be non-empty and hold no whitespace, got ${JSON.stringify(scope)}`);
    }
  }
  const scopeClaim = o.scopeClaim ?? "scope";
  if (scopeClaim === "scp" && profile !== "scitokens1") {
    throw new TypeError(`scopeClaim "scp" is the SciTokens 1 legacy claim; profile ${profile} uses "scope"`);
  }

  const iat = Math.floor(nowMs / 1000);
  const claims: Record<string, unknown> = {
    iss: o.issuer,
    sub: o.subject ?? DEFAULT_SUBJECT,
    iat,
    exp: iat + lifetime,
    jti: o.jti ?? randomUUID(),
    ...VERSION_CLAIMS[profile],
  };
  if (o.nbf === true) claims["nbf"] = iat;
  if (o.audience !== undefined) claims["aud"] = o.audience;
  if (o.scopes.length > 0) {
    claims[scopeClaim] = scopeClaim === "scp" ? [...o.scopes] : o.scopes.join(" ");
  }
  if (o.groups !== undefined) claims["wlcg.groups"] = [...o.groups];
  applyOverrides(claims, o.extraClaims);

  const header: Record<string, unknown> = { alg: o.alg, typ: "JWT" };
  if (o.kid !== undefined) header["kid"] = o.kid;
  applyOverrides(header, o.extraHeader);

  const crit = header["crit"];
  const understood = Array.isArray(crit)
    ? Object.fromEntries(crit.filter((name): name is string => typeof name === "string").map((name) => [name, true]))
    : undefined;

  return new SignJWT(claims)
    .setProtectedHeader(header as unknown as JWTHeaderParameters)
    .sign(o.privateKey, understood === undefined ? undefined : { crit: understood });
}

function applyOverrides(target: Record<string, unknown>, overrides: Record<string, unknown> | undefined): void {
  if (overrides === undefined) return;
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete target[name];
    else target[name] = value;
  }
}
