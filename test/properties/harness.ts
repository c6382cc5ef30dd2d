import { fileURLToPath } from "node:url";
import { type AuthzData, loadAuthzData } from "../../src/config/authz-data.js";
import { BUILT_POLICY_FILE } from "../../src/config/service-config.js";
import { buildPolicyInput, verifiedPolicyToken } from "../../src/envoy/policy-input.js";
import { normalizeRequestPath } from "../../src/paths/normalize.js";
import { PolicyEngine } from "../../src/policy/engine.js";
import type { OperatorReason, ReasonCode } from "../../src/reasons/index.js";
import { type VerifiedToken, readClaims } from "../../src/token/claims.js";

/**
 * fast-check parameters: a fixed seed so CI is reproducible. To explore, run with
 * PROPERTY_SEED=<n> (and PROPERTY_RUNS_SCALE=<k> for k times more runs, with vitest's
 * --testTimeout raised); a failure prints the seed and path that replay it.
 */
export function runs(numRuns: number): { seed: number; numRuns: number } {
  const seed = Number(process.env["PROPERTY_SEED"] ?? 20_240_611);
  const scale = Number(process.env["PROPERTY_RUNS_SCALE"] ?? 1);
  return { seed, numRuns: Math.max(1, Math.round(numRuns * scale)) };
}

export const AUDIENCE = "https://storage.example.org";

/** The issuers of fixtures/authz-data.yaml and their single base path. */
export const ISSUERS = [
  { iss: "https://root.example", base: "/" },
  { iss: "https://store.example", base: "/store" },
] as const;

/** The issuer of fixtures/authz-data.yaml with several base paths and a restricted path. */
export const RESTRICTED_ISSUER = { iss: "https://restricted.example", bases: ["/store", "/archive"], restricted: ["/public"] } as const;

/** `join(b, p)` of policies/README.md: scope paths are relative to the base path. */
export function underBase(base: string, path: string): string {
  if (base === "/") return path;
  return path === "/" ? base : `${base}${path}`;
}

/**
 * The fixture data and the compiled policy (build/policy.wasm, or PROPERTY_POLICY_WASM to
 * check that the properties catch a deliberately broken policy).
 */
export async function loadPolicy(): Promise<{ data: AuthzData; engine: PolicyEngine }> {
  const data = await loadAuthzData(fileURLToPath(new URL("fixtures/authz-data.yaml", import.meta.url)));
  const engine = await PolicyEngine.load(process.env["PROPERTY_POLICY_WASM"] ?? BUILT_POLICY_FILE, data.policyData);
  return { data, engine };
}

/**
 * The verified form of a SciTokens 2 token from `iss` whose `scope` claim holds
 * `entries`, read by the service's own claim reader (so scope_invalid is thrown here).
 */
export function tokenWith(data: AuthzData, iss: string, entries: readonly string[]): VerifiedToken {
  const issuer = data.issuers.get(iss);
  if (!issuer) throw new Error(`${iss} is not an issuer of ${data.file}`);
  const claims = { iss, sub: "alice", aud: AUDIENCE, ver: "scitokens:2.0", scope: entries.join(" "), iat: 1_900_000_000, exp: 2_000_000_000 };
  return readClaims(claims, issuer);
}

export interface RawRequest {
  readonly method: string;
  /** `:path` as Envoy sends it (path plus query). */
  readonly rawPath: string;
  /** The path of a MOVE/COPY `Destination` header: an absolute path with one leading `/` (not a URI). */
  readonly destination?: string;
}

export interface Outcome {
  readonly allow: boolean;
  readonly reason: ReasonCode | OperatorReason;
}

/**
 * What the service decides for a request carrying an already verified token: the same
 * steps as Authorizer (src/decision/authorizer.ts), path normalization in front of the
 * compiled policy, without the token signature and the response.
 */
export function decide(engine: PolicyEngine, request: RawRequest, token: VerifiedToken): Outcome {
  const path = normalizeRequestPath(request.rawPath);
  if (!path.ok) return { allow: false, reason: "path_invalid" };
  let destination: string | null = null;
  if ((request.method === "MOVE" || request.method === "COPY") && request.destination !== undefined) {
    const normalized = normalizeRequestPath(request.destination);
    if (!normalized.ok) return { allow: false, reason: "path_invalid" };
    destination = normalized.path;
  }
  const input = buildPolicyInput({
    method: request.method,
    host: "storage.example.org",
    headers: {},
    path: path.path,
    segments: path.segments,
    destination,
    destinationRemote: false,
    route: null,
    token: verifiedPolicyToken(token),
  });
  const decision = engine.evaluate(input);
  return { allow: decision.allow, reason: decision.reason };
}
