import { type TokenProfile, mintToken, readDevIssuerState } from "../dev-issuer/index.js";

export interface TokenCreateOptions {
  readonly stateFile: string;
  readonly scopes: readonly string[];
  readonly audiences: readonly string[];
  readonly lifetimeSeconds: number;
  readonly profile: TokenProfile;
  readonly subject?: string | undefined;
  readonly groups: readonly string[];
  /** Overrides `iss` (the token is still signed with the development key), e.g. to try an untrusted issuer. */
  readonly issuer?: string | undefined;
}

/** `token create`: mints a token with the running development issuer's key. */
export async function tokenCreate(o: TokenCreateOptions): Promise<string> {
  const state = await readDevIssuerState(o.stateFile);
  return mintToken({
    privateKey: state.privateKey,
    alg: state.alg,
    kid: state.kid,
    issuer: o.issuer ?? state.issuer,
    scopes: [...o.scopes],
    ...(o.audiences.length === 1 ? { audience: o.audiences[0]! } : o.audiences.length > 1 ? { audience: [...o.audiences] } : {}),
    lifetimeSeconds: o.lifetimeSeconds,
    profile: o.profile,
    ...(o.subject !== undefined ? { subject: o.subject } : {}),
    ...(o.groups.length > 0 ? { groups: [...o.groups] } : {}),
  });
}
