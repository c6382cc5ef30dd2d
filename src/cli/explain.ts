import { resolve } from "node:path";
import { readPolicyOffline } from "../bundle/snapshot.js";
import type { AuthzData, RouteSettings } from "../config/authz-data.js";
import { BUILT_POLICY_FILE, DEMO_DATA_FILE, type ServiceConfig, loadServiceConfig, parseServiceConfig } from "../config/service-config.js";
import { DENY_SHAPES } from "../envoy/decision-to-response.js";
import { moveDestination } from "../envoy/destination.js";
import { type PolicyToken, buildPolicyInput, policyHeaders, verifiedPolicyToken } from "../envoy/policy-input.js";
import { normalizeRequestPath } from "../paths/normalize.js";
import { type PolicyDecision, PolicyEngine, PolicyFault } from "../policy/engine.js";
import { DenyError, type DenyReason } from "../reasons/index.js";
import { extractBearer } from "../token/bearer.js";
import type { VerifiedToken } from "../token/claims.js";
import { splitScopeString } from "../token/scopes.js";
import { type ScopeVerdict, scopeVerdicts } from "./explain-scopes.js";
import type { TokenSource } from "./explain-token-source.js";
import { type SignatureCheck, verifyOffline } from "./explain-verify.js";
import { DEMO } from "./serve.js";
import { EMBEDDED_CONFIG } from "./validate.js";

export interface ExplainRequest {
  readonly method: string;
  readonly path: string;
  readonly host: string;
  readonly route: string | null;
  readonly destination: string | null;
  /** Request headers the policy may read (CORS, the data's policy_headers), lower case. */
  readonly headers: Readonly<Record<string, string>>;
}

/** The claims that matter to a decision, from the token (verified or only decoded). */
export interface ShownClaims {
  readonly iss: unknown;
  readonly sub: unknown;
  readonly aud: unknown;
  readonly profile: string | null;
  readonly iat: unknown;
  readonly nbf: unknown;
  readonly exp: unknown;
  readonly groups: unknown;
  readonly scope: unknown;
}

/** Everything `explain` found: the text and the `--json` output show the same facts. */
export interface Explanation {
  readonly config: string;
  readonly request: ExplainRequest & { readonly normalizedPath: string | null };
  readonly decision: {
    readonly allow: boolean;
    readonly reason: string;
    /** The HTTP status of a denial. */
    readonly status: number | null;
    /** The scope that granted the request. */
    readonly scope: string | null;
    /** Why, in a sentence (never token material). */
    readonly why: string | null;
    /** Allowed: the headers the upstream would get. */
    readonly headers: Readonly<Record<string, string>>;
  };
  readonly token: {
    readonly origin: string | null;
    readonly file: string | null;
    /** Where discovery looked when it found no token. */
    readonly searched: readonly string[];
    readonly state: "absent" | "invalid" | "verified";
    readonly reason: string | null;
    readonly signature: SignatureCheck;
    readonly claims: ShownClaims | null;
    readonly header: Readonly<{ alg?: unknown; kid?: unknown }> | null;
  };
  /** The accepted audiences for this token's issuer on this route, when the issuer is trusted. */
  readonly acceptedAudiences: readonly string[] | null;
  readonly basePaths: readonly string[] | null;
  /** Each scope entry of the token, in token order. */
  readonly scopes: readonly ScopeVerdict[];
  /** True when the scope verdicts assume a token that is in fact unusable (expired, say). */
  readonly scopesHypothetical: boolean;
  /** The clock the time checks used, ms since the epoch. */
  readonly now: number;
  readonly leewaySeconds: number;
}

export interface ExplainOptions {
  readonly configFile?: string | undefined;
  readonly token: TokenSource;
  readonly request: ExplainRequest;
  /** Clock seam, ms since the epoch. */
  readonly now?: number;
}

/**
 * `scitokens-authz explain`: what `serve` would answer to one request, and why, offline.
 * It loads the same service config, authorization data and compiled policy as `serve`,
 * takes the request through the same steps (route, path, Destination, bearer, token
 * verification, policy input, the policy's `decision`), and fetches nothing: the
 * signature is checked only with keys on disk (see {@link verifyOffline}); otherwise
 * the answer is the one `serve` would give if the signature is good, and says so.
 * Throws ConfigError when the configuration cannot be loaded.
 */
export async function explain(options: ExplainOptions): Promise<Explanation> {
  const now = options.now ?? Date.now();
  const configName = options.configFile === undefined ? EMBEDDED_CONFIG : resolve(options.configFile);
  const config = options.configFile === undefined ? embeddedConfig() : await loadServiceConfig(configName);
  const snapshot = await (await readPolicyOffline(config.policy)).parse();
  const data = snapshot.data;
  const engine = await PolicyEngine.fromBytes(snapshot.wasmName, snapshot.wasm, data.policyData);
  const request = options.request;
  const source = options.token;

  const explanation = {
    config: configName,
    now,
    leewaySeconds: config.tokens.leewaySeconds,
    acceptedAudiences: null as readonly string[] | null,
    basePaths: null as readonly string[] | null,
    scopes: [] as ScopeVerdict[],
    scopesHypothetical: false,
  };
  const token: { -readonly [K in keyof Explanation["token"]]: Explanation["token"][K] } = {
    origin: source.token === null ? null : source.origin,
    file: source.token === null ? null : source.file,
    searched: source.token === null ? source.searched : [],
    state: "absent",
    reason: null,
    signature: { status: "no_token" },
    claims: null,
    header: null,
  };
  let normalizedPath: string | null = null;
  const denied = (reason: DenyReason, why: string | null): Explanation => ({
    ...explanation,
    request: { ...request, normalizedPath },
    decision: { allow: false, reason, status: DENY_SHAPES[reason].http, scope: null, why, headers: {} },
    token,
  });

  // The steps of Authorizer.check, in its order; a DenyError here is the service's own answer.
  let route: RouteSettings;
  try {
    route = routeOf(data, request.route);
    const normalized = normalizeRequestPath(request.path);
    if (!normalized.ok) throw new DenyError("path_invalid", normalized.why);
    normalizedPath = normalized.path;
    const destination = moveDestination(request.method, request.destination ?? undefined, request.host);
    let state: PolicyToken = { state: "absent" };
    let detail: string | null = null;
    let claimsToken: VerifiedToken | null = null;
    if (source.token !== null) {
      try {
        const bearer = extractBearer(`Bearer ${source.token}`, config.tokens.maxBytes);
        if (bearer === null) throw new DenyError("token_malformed", "not a bearer token");
        const verification = await verifyOffline(bearer, data, config, route.allowedIssuers, now);
        state = verification.state;
        detail = verification.detail;
        claimsToken = verification.claimsToken;
        token.signature = verification.signature;
        token.header = verification.header;
        token.claims = shownClaims(verification.payload, claimsToken);
      } catch (error) {
        if (!(error instanceof DenyError) || error.code === "request_malformed") throw error;
        state = { state: "invalid", reason: error.code };
        detail = error.detail ?? null;
        token.signature = { status: "not_checked", why: `the token is refused before its signature is checked (${error.code})` };
      }
      token.state = state.state;
      token.reason = state.state === "invalid" ? state.reason : null;
    }
    const input = buildPolicyInput({
      method: request.method,
      host: request.host,
      headers: policyHeaders((name) => request.headers[name], data.policyHeaders),
      path: normalized.path,
      segments: normalized.segments,
      destination: destination.path,
      destinationRemote: destination.remote,
      route: route.name,
      token: state,
    });
    const iss = claimsToken?.iss ?? (typeof token.claims?.iss === "string" ? token.claims.iss : null);
    const issuer = iss !== null ? data.issuers.get(iss) : undefined;
    if (issuer !== undefined && (route.allowedIssuers === null || route.allowedIssuers.has(issuer.issuer))) {
      explanation.acceptedAudiences = acceptedAudiences(data, route, issuer.issuer);
      explanation.basePaths = basePaths(data, route, issuer.issuer);
    }
    let result: PolicyDecision;
    try {
      result = engine.evaluate(input);
    } catch (error) {
      if (!(error instanceof PolicyFault)) throw error;
      return denied("internal_error", `the policy answered outside its contract: ${error.message}`);
    }
    // Each scope's verdict: of the token as it is, or, when only its time (or a signature
    // that cannot be checked offline) stands in the way, of the token as if it were usable.
    const verifiedToken = state.state === "verified" ? state : claimsToken !== null ? { ...verifiedPolicyToken(claimsToken) } : null;
    if (verifiedToken !== null) {
      explanation.scopesHypothetical = state.state !== "verified";
      explanation.scopes.push(...scopeVerdicts(engine, { ...input, token: verifiedToken }, verifiedToken, data.policyData));
      explanation.scopes.push(...droppedScopes(token.claims?.scope, claimsToken));
    } else {
      explanation.scopes.push(...notEvaluated(token.claims?.scope, state));
    }
    const why = result.allow
      ? null
      : whyDenied(result.reason, {
          detail,
          data,
          route,
          token,
          explanation,
          input: { method: request.method, path: normalized.path, destinationRemote: destination.remote },
        });
    return {
      ...explanation,
      request: { ...request, normalizedPath },
      decision: result.allow
        ? { allow: true, reason: result.reason, status: null, scope: result.scope, why: null, headers: result.headers }
        : { allow: false, reason: result.reason, status: result.status ?? statusOf(result.reason), scope: null, why, headers: {} },
      token,
    };
  } catch (error) {
    if (!(error instanceof DenyError)) throw error;
    return denied(error.code, error.detail ?? null);
  }
}

/** What `serve` uses without --config (src/cli/serve.ts): the demo data and the built policy. */
function embeddedConfig(): ServiceConfig {
  return parseServiceConfig(EMBEDDED_CONFIG, { grpc: { listen: DEMO.listen }, policy: { data: DEMO_DATA_FILE, wasm: BUILT_POLICY_FILE } });
}

function routeOf(data: AuthzData, name: string | null): RouteSettings {
  if (name === null) return data.defaultRoute;
  const route = data.routes.get(name);
  if (route === undefined)
    throw new DenyError("route_unknown", `route ${JSON.stringify(name)} is not defined (routes: ${[...data.routes.keys()].join(", ") || "none"})`);
  return route;
}

function statusOf(reason: string): number {
  return (DENY_SHAPES as Readonly<Record<string, { http: number }>>)[reason]?.http ?? 403;
}

function shownClaims(payload: Readonly<Record<string, unknown>> | null, token: VerifiedToken | null): ShownClaims | null {
  if (payload === null) return null;
  return {
    iss: payload["iss"],
    sub: payload["sub"],
    aud: payload["aud"],
    profile: token?.profile ?? null,
    iat: payload["iat"],
    nbf: payload["nbf"],
    exp: payload["exp"],
    groups: payload["wlcg.groups"],
    scope: payload["scope"] ?? payload["scp"],
  };
}

/** The scope entries as written (a string, or SciTokens 1's `scp` list). */
function rawEntries(scope: unknown): string[] {
  if (typeof scope === "string") return splitScopeString(scope);
  if (Array.isArray(scope)) return scope.filter((s): s is string => typeof s === "string").flatMap(splitScopeString);
  return [];
}

/** Entries the scope parser drops: `storage.*` without a path (WLCG requires one). */
function droppedScopes(scope: unknown, token: VerifiedToken | null): ScopeVerdict[] {
  const kept = new Set(token?.scopes.map((s) => s.raw) ?? []);
  return rawEntries(scope)
    .filter((raw) => !kept.has(raw))
    .map((raw) => ({ scope: raw, grants: false, why: "ignored: a storage.* scope without a path grants nothing (WLCG requires one)" }));
}

function notEvaluated(scope: unknown, state: PolicyToken): ScopeVerdict[] {
  const why = state.state === "invalid" ? `not evaluated: the token is unusable (${state.reason})` : "not evaluated";
  return rawEntries(scope).map((raw) => ({ scope: raw, grants: false, why }));
}

/** As policies/authz.rego's _accepted_audiences: the route's, else the issuer's, else the global list. */
function acceptedAudiences(data: AuthzData, route: RouteSettings, issuer: string): readonly string[] {
  const routeData = route.name === null ? undefined : (data.policyData["routes"] as Record<string, Record<string, unknown>> | undefined)?.[route.name];
  const fromRoute = routeData?.["audiences"];
  if (Array.isArray(fromRoute)) return fromRoute as string[];
  return data.issuers.get(issuer)?.audiences ?? (data.policyData["audiences"] as string[] | undefined) ?? [];
}

function basePaths(data: AuthzData, route: RouteSettings, issuer: string): readonly string[] {
  const routeData = route.name === null ? undefined : (data.policyData["routes"] as Record<string, Record<string, unknown>> | undefined)?.[route.name];
  const fromRoute = routeData?.["base_path"];
  if (Array.isArray(fromRoute)) return fromRoute as string[];
  return data.issuers.get(issuer)?.basePaths ?? [];
}

interface WhyContext {
  readonly detail: string | null;
  readonly data: AuthzData;
  readonly route: RouteSettings;
  readonly token: Explanation["token"];
  readonly explanation: {
    readonly acceptedAudiences: readonly string[] | null;
    readonly basePaths: readonly string[] | null;
    readonly scopes: readonly ScopeVerdict[];
    readonly now: number;
    readonly leewaySeconds: number;
  };
  readonly input: { readonly method: string; readonly path: string; readonly destinationRemote: boolean };
}

/** A sentence for a denial, from what the service and the data know; null when the reason says it all. */
function whyDenied(reason: string, c: WhyContext): string | null {
  const claims = c.token.claims;
  switch (reason) {
    case "token_missing":
      return c.token.searched.length > 0
        ? `no token was given, and none was found (BEARER_TOKEN, BEARER_TOKEN_FILE, ${c.token.searched.join(", ")})`
        : "no token";
    case "issuer_untrusted": {
      const iss = JSON.stringify(claims?.iss);
      if (typeof claims?.iss === "string" && c.data.issuers.has(claims.iss)) {
        return `${iss} is trusted, but not on route ${c.route.name ?? "(none)"} (its issuers: ${[...(c.route.allowedIssuers ?? [])].join(", ")})`;
      }
      return `${iss} is not a trusted issuer (trusted: ${[...c.data.issuers.keys()].join(", ") || "none"})`;
    }
    case "audience_mismatch":
      return `aud ${JSON.stringify(claims?.aud ?? null)} is not accepted here (accepted: ${c.explanation.acceptedAudiences?.join(", ") || "none"}${claims?.aud === undefined ? "; a token without aud is accepted only for SciTokens 1 when that list is empty" : ""})`;
    case "path_outside_base":
      return `${c.input.path} is not under the base path (${c.explanation.basePaths?.join(", ") ?? "?"})`;
    case "method_unmapped":
      return `${c.input.method} is in no verbs list and no named scope's methods`;
    case "scope_insufficient": {
      if (c.input.destinationRemote) return "the Destination names another host (a third-party copy), which no scope grants";
      const n = c.explanation.scopes.length;
      return n === 0 ? "the token has no scope" : `none of the token's ${n} scope${n === 1 ? "" : "s"} grants ${c.input.method} ${c.input.path} (below)`;
    }
    case "token_expired":
      return `exp ${typeof claims?.exp === "number" ? utc(claims.exp) : "?"} has passed (leeway ${c.explanation.leewaySeconds} s)`;
    case "token_not_yet_valid":
      return `nbf ${typeof claims?.nbf === "number" ? utc(claims.nbf) : "?"} is still ahead (leeway ${c.explanation.leewaySeconds} s)`;
    case "token_issued_in_future":
      return `iat ${typeof claims?.iat === "number" ? utc(claims.iat) : "?"} is ahead of this clock (leeway ${c.explanation.leewaySeconds} s)`;
    default:
      return c.detail;
  }
}

function utc(seconds: number): string {
  return `${new Date(seconds * 1000)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "")} UTC`;
}
