import type { PolicyInput, PolicyToken } from "../envoy/policy-input.js";
import { type PolicyDecision, type PolicyEngine, PolicyFault } from "../policy/engine.js";
import type { ParsedScope } from "../token/scopes.js";

/** One scope of the token and whether it grants the request on its own. */
export interface ScopeVerdict {
  /** The entry as written in the token. */
  readonly scope: string;
  readonly grants: boolean;
  /** Why it grants, or why not, in a sentence. */
  readonly why: string;
}

type VerifiedPolicyToken = Extract<PolicyToken, { state: "verified" }>;

/**
 * Each scope's verdict, decided by the compiled policy itself: the `decision` entrypoint
 * evaluated with the token reduced to that one scope. A scope grants when that decision
 * is `allowed` by it. We evaluate `decision`, not a second `grant` entrypoint, because
 * it is the one answer `serve` acts on: it includes the site rules (a site `deny` comes
 * before every scope, a site `grant` can allow what no scope does) and the MOVE/COPY
 * Destination checks, and it works with any `policy.bundle` an operator builds, which
 * must export only `decision`. The policy says *whether*; the sentence saying *why not*
 * is read from the same data the policy reads (verbs, named scopes, base and restricted
 * paths, the route's overrides) and never changes a verdict.
 */
export function scopeVerdicts(engine: PolicyEngine, input: PolicyInput, token: VerifiedPolicyToken, data: Readonly<Record<string, unknown>>): ScopeVerdict[] {
  return token.scopes.map((scope) => {
    const reduced: PolicyInput = { ...input, token: { ...token, scopes: [scope] } };
    let result: PolicyDecision;
    try {
      result = engine.evaluate(reduced);
    } catch (error) {
      if (!(error instanceof PolicyFault)) throw error;
      return { scope: scope.raw, grants: false, why: `the policy answered outside its contract (${error.message})` };
    }
    if (result.allow && result.reason === "allowed" && result.scope === scope.raw) {
      return { scope: scope.raw, grants: true, why: grantSentence(scope, input) };
    }
    if (result.allow && result.reason === "allowed") {
      return { scope: scope.raw, grants: false, why: `grants nothing by itself; ${result.scope ?? "a site rule"} allows the request` };
    }
    if (result.allow) return { scope: scope.raw, grants: false, why: "not needed: the request passes through without identity" };
    if (result.reason !== "scope_insufficient") {
      return { scope: scope.raw, grants: false, why: `not reached: the request is denied ${result.reason} before any scope is looked at` };
    }
    return { scope: scope.raw, grants: false, why: whyNot(scope, input, token, data) };
  });
}

function grantSentence(scope: ParsedScope, input: PolicyInput): string {
  const method = input.attributes.request.http.method;
  const create = scope.authz === "storage.create" && method === "PUT" ? " (create only: If-None-Match: *)" : "";
  const destination = input.destination !== null ? ` and ${input.destination}` : "";
  return `grants ${method} ${input.path}${destination}${create}`;
}

/** The data the policy reads, as far as the explanation needs it. */
interface GrantData {
  readonly verbs: Readonly<Record<string, readonly string[]>>;
  readonly named: Readonly<Record<string, { readonly methods: readonly string[]; readonly paths: readonly string[] | null }>>;
  readonly bases: readonly string[];
  readonly restricted: readonly string[] | null;
}

function grantData(input: PolicyInput, token: VerifiedPolicyToken, data: Readonly<Record<string, unknown>>): GrantData {
  const record = (value: unknown): Record<string, unknown> =>
    value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  const route = input.route === null ? {} : record(record(data["routes"])[input.route]);
  const issuer = record(record(data["issuers"])[token.iss]);
  const override = (key: string): unknown => (route[key] === null ? undefined : route[key]);
  return {
    verbs: record(data["verbs"]) as GrantData["verbs"],
    named: record(override("named_scopes") ?? data["named_scopes"]) as GrantData["named"],
    bases: (override("base_path") ?? issuer["base_path"] ?? []) as readonly string[],
    restricted: (issuer["restricted_path"] ?? null) as readonly string[] | null,
  };
}

/** §7 covers(P, R), as in policies/authz.rego. */
function covers(prefix: string, path: string): boolean {
  return prefix === "/" || path === prefix || path.startsWith(`${prefix}/`);
}

/** §7 join(b, p), as in policies/authz.rego. */
function join(base: string, path: string): string {
  if (base === "/") return path;
  if (path === "/") return base;
  return base + path;
}

const list = (items: readonly string[]): string => (items.length === 0 ? "none" : items.join(", "));

/** Why a scope that the policy says does not grant the request does not. */
function whyNot(scope: ParsedScope, input: PolicyInput, token: VerifiedPolicyToken, data: Readonly<Record<string, unknown>>): string {
  const method = input.attributes.request.http.method;
  if ((method === "MOVE" || method === "COPY") && input.destination_remote) return "the Destination names another host, which no scope grants";
  const d = grantData(input, token, data);
  const targets = input.destination !== null ? [input.path, input.destination] : [input.path];
  const routeNote = input.route === null ? "" : ` of route ${input.route}`;
  const restrictedNote = (p: string) =>
    `${p} is outside the issuer's restricted_path (${list(d.bases.flatMap((b) => (d.restricted ?? []).map((r) => join(b, r))))})`;
  const methods = d.verbs[scope.authz];
  if (methods !== undefined) {
    if (!methods.includes(method)) return `wrong method: ${scope.authz} allows ${list(methods)}, not ${method}`;
    if (typeof scope.path !== "string") return "its path is not usable";
    for (const p of targets) {
      const under = d.bases.filter((b) => covers(join(b, scope.path!), p));
      if (under.length === 0) return `${p} is not under ${list(d.bases.map((b) => join(b, scope.path!)))} (base path + scope path)`;
      if (d.restricted !== null && !under.some((b) => d.restricted!.some((r) => covers(join(b, r), p)))) return restrictedNote(p);
    }
    return "the policy does not grant it (a site rule?)";
  }
  const named = d.named[scope.authz];
  if (named === undefined) return `${scope.authz} is not a configured scope (not in verbs, nor in named_scopes${routeNote}): ignored`;
  if (!named.methods.includes(method)) return `wrong method: the named scope ${scope.authz} allows ${list(named.methods)}, not ${method}`;
  for (const p of targets) {
    if (named.paths !== null && !named.paths.some((prefix) => covers(prefix, p))) return `${p} is not under the named scope's paths (${list(named.paths)})`;
    const under = d.bases.filter((b) => covers(b, p));
    if (under.length === 0) return `${p} is not under the base path (${list(d.bases)})`;
    if (d.restricted !== null && !under.some((b) => d.restricted!.some((r) => covers(join(b, r), p)))) return restrictedNote(p);
  }
  return "the policy does not grant it (a site rule?)";
}
