import type { VerifiedToken } from "../token/claims.js";

/**
 * The policy input (policies/README.md): opa-envoy's names where they exist, kept small
 * because it is serialized into WASM memory on every request.
 */
export interface PolicyInput {
  readonly attributes: { readonly request: { readonly http: { readonly method: string; readonly host: string } } };
  readonly path: string;
  readonly parsed_path: readonly string[];
  readonly destination: string | null;
  readonly route: string | null;
  readonly token: {
    readonly iss: string;
    readonly profile: string;
    readonly aud: readonly string[] | null;
    readonly scopes: VerifiedToken["scopes"];
  };
}

export interface InputParts {
  readonly method: string;
  readonly host: string;
  readonly path: string;
  readonly segments: readonly string[];
  readonly destination: string | null;
  readonly route: string | null;
  readonly token: VerifiedToken;
}

export function buildPolicyInput(parts: InputParts): PolicyInput {
  return {
    attributes: { request: { http: { method: parts.method, host: parts.host } } },
    path: parts.path,
    parsed_path: parts.segments,
    destination: parts.destination,
    route: parts.route,
    token: {
      iss: parts.token.iss,
      profile: parts.token.profile,
      aud: parts.token.aud,
      scopes: parts.token.scopes,
    },
  };
}
