import type { DenyReason } from "../reasons/index.js";
import type { VerifiedToken } from "../token/claims.js";

/**
 * The token's state as the policy sees it (policies/README.md, "Input"): absent, invalid
 * with the reason verification gave, or verified with its claims. Never the raw token.
 */
export type PolicyToken =
  | { readonly state: "absent" }
  | { readonly state: "invalid"; readonly reason: DenyReason }
  | {
      readonly state: "verified";
      readonly iss: string;
      readonly sub: string | null;
      readonly jti: string | null;
      readonly profile: string;
      readonly aud: readonly string[] | null;
      readonly scopes: VerifiedToken["scopes"];
      readonly groups: readonly string[];
      readonly claims: Readonly<Record<string, unknown>>;
    };

/**
 * The policy input: opa-envoy's names where they exist (`attributes.request.http`,
 * `parsed_path`), plus what the service has already established: the normalized path,
 * the Destination, the route and the token's state.
 */
export interface PolicyInput {
  readonly attributes: {
    readonly request: {
      readonly http: {
        readonly method: string;
        readonly host: string;
        /** The headers the policy may read (CORS and the data's `policy_headers`), lower case. */
        readonly headers: Readonly<Record<string, string>>;
      };
    };
  };
  readonly path: string;
  readonly parsed_path: readonly string[];
  /** A MOVE/COPY Destination on this server, normalized like `path`; else null. */
  readonly destination: string | null;
  /** True when a MOVE/COPY Destination names another host. */
  readonly destination_remote: boolean;
  readonly route: string | null;
  readonly token: PolicyToken;
}

export interface InputParts {
  readonly method: string;
  readonly host: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly path: string;
  readonly segments: readonly string[];
  readonly destination: string | null;
  readonly destinationRemote: boolean;
  readonly route: string | null;
  readonly token: PolicyToken;
}

export function buildPolicyInput(parts: InputParts): PolicyInput {
  return {
    attributes: { request: { http: { method: parts.method, host: parts.host, headers: parts.headers } } },
    path: parts.path,
    parsed_path: parts.segments,
    destination: parts.destination,
    destination_remote: parts.destinationRemote,
    route: parts.route,
    token: parts.token,
  };
}

type VerifiedPolicyToken = Extract<PolicyToken, { state: "verified" }>;

// One policy view per verified token: a token from the verified-token cache serves many
// Checks, and its part of the input is built and serialized once (see policyInputJson).
const VIEWS = new WeakMap<VerifiedToken, VerifiedPolicyToken>();
const TOKEN_JSON = new WeakMap<PolicyToken, string>();
const INVALID = new Map<DenyReason, PolicyToken>();

/** The verified token as the policy sees it: one frozen object per verified token. */
export function verifiedPolicyToken(token: VerifiedToken): VerifiedPolicyToken {
  let view = VIEWS.get(token);
  if (view === undefined) {
    view = Object.freeze({
      state: "verified",
      iss: token.iss,
      sub: token.sub,
      jti: token.jti,
      profile: token.profile,
      aud: token.aud,
      scopes: token.scopes,
      groups: token.groups,
      claims: token.claims,
    });
    VIEWS.set(token, view);
  }
  return view;
}

/** An invalid token as the policy sees it: one frozen object per reason. */
export function invalidPolicyToken(reason: DenyReason): PolicyToken {
  let view = INVALID.get(reason);
  if (view === undefined) {
    view = Object.freeze({ state: "invalid", reason });
    INVALID.set(reason, view);
  }
  return view;
}

/**
 * `JSON.stringify(input)`, with the token's part serialized once per token view (see
 * {@link verifiedPolicyToken}): the request's part is serialized every time, the
 * token's (the bulk, with its claims) is not.
 */
export function policyInputJson(input: PolicyInput): string {
  const { token, ...request } = input;
  let tokenJson = TOKEN_JSON.get(token);
  if (tokenJson === undefined) {
    tokenJson = JSON.stringify(token);
    if (Object.isFrozen(token)) TOKEN_JSON.set(token, tokenJson);
  }
  // `token` comes last in the input, as buildPolicyInput writes it.
  return `${JSON.stringify(request).slice(0, -1)},"token":${tokenJson}}`;
}

/**
 * The request headers the policy reads: those a CORS preflight is recognised by (§10),
 * and those the data lists in `policy_headers` (never the credential).
 */
export function policyHeaders(header: (name: string) => string | undefined, listed: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of CORS_HEADERS) {
    const value = header(name);
    if (value !== undefined) headers[name] = value;
  }
  for (const name of listed) {
    const value = header(name);
    if (value !== undefined) headers[name] = value;
  }
  return headers;
}

const CORS_HEADERS: readonly string[] = ["origin", "access-control-request-method"];
