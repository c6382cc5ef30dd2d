import { readFile } from "node:fs/promises";
import { type LoadedPolicy, loadPolicy } from "@open-policy-agent/opa-wasm";
import { ConfigError } from "../config/config-error.js";
import type { DenyReason } from "../reasons/index.js";

/** The entrypoint compiled by `opa build -e` (scripts/setup.mjs). */
export const ENTRYPOINT = "scitokens/authz/decision";

/** The reasons a policy may deny with; any other answer is a fault, never an allow. */
export const POLICY_DENY_REASONS = [
  "issuer_untrusted",
  "audience_mismatch",
  "path_outside_base",
  "method_unmapped",
  "scope_insufficient",
] as const satisfies readonly DenyReason[];

export type PolicyDenyReason = (typeof POLICY_DENY_REASONS)[number];

const DENY_REASONS: ReadonlySet<string> = new Set(POLICY_DENY_REASONS);

/** What policies/authz.rego decides (policies/README.md). */
export type PolicyDecision =
  | {
      readonly allow: true;
      /** The raw scope entry that granted the request. */
      readonly scope: string | null;
      /** True when only `storage.create` granted the request: an upload gets `If-None-Match: *`. */
      readonly createOnly: boolean;
    }
  | { readonly allow: false; readonly reason: PolicyDenyReason };

/** The policy returned something outside its contract: an internal fault, not a deny. */
export class PolicyFault extends Error {
  override readonly name = "PolicyFault";
}

/**
 * The compiled Rego policy with its data loaded: prepared once, then evaluated
 * synchronously per request (opa-wasm's evaluate resets the heap each time).
 */
export class PolicyEngine {
  readonly #policy: LoadedPolicy;

  private constructor(policy: LoadedPolicy) {
    this.#policy = policy;
  }

  /** Loads `wasmFile` and sets `data` as its data document. Throws ConfigError naming the file. */
  static async load(wasmFile: string, data: Readonly<Record<string, unknown>>): Promise<PolicyEngine> {
    let bytes: Buffer;
    try {
      bytes = await readFile(wasmFile);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new ConfigError(wasmFile, [
        code === "ENOENT"
          ? "the compiled policy does not exist (run `npm run build`, or set policy.bundle)"
          : `cannot be read (${code ?? String(error)})`,
      ]);
    }
    let policy: LoadedPolicy;
    try {
      policy = await loadPolicy(bytes, { initial: 16 });
    } catch (error) {
      throw new ConfigError(wasmFile, [`not a loadable OPA WebAssembly policy (${(error as Error).message})`]);
    }
    const entrypoints = Object.keys(policy.entrypoints ?? {});
    if (!entrypoints.includes(ENTRYPOINT)) {
      throw new ConfigError(wasmFile, [`expected the entrypoint ${ENTRYPOINT}, found ${entrypoints.join(", ") || "none"}`]);
    }
    policy.setData(data as object);
    return new PolicyEngine(policy);
  }

  evaluate(input: object): PolicyDecision {
    const results: unknown = this.#policy.evaluate(input, ENTRYPOINT);
    const result = Array.isArray(results) ? (results[0] as { result?: unknown } | undefined)?.result : undefined;
    if (result === null || typeof result !== "object") throw new PolicyFault("the policy returned no decision");
    const { allow, reason, scope, create_only: createOnly } = result as Record<string, unknown>;
    if (allow === true && reason === "allowed") {
      return { allow: true, scope: typeof scope === "string" ? scope : null, createOnly: createOnly === true };
    }
    if (allow === false && typeof reason === "string" && DENY_REASONS.has(reason)) {
      return { allow: false, reason: reason as PolicyDenyReason };
    }
    throw new PolicyFault(`the policy returned allow=${String(allow)} with reason ${JSON.stringify(reason)}`);
  }
}
