import { readFile } from "node:fs/promises";
import { type LoadedPolicy, loadPolicy } from "@open-policy-agent/opa-wasm";
import { ConfigError } from "../config/config-error.js";
import { type ReasonCode, isReasonCode } from "../decision/reasons.js";

/** The entrypoint compiled by `opa build -e` (scripts/setup.mjs). */
export const ENTRYPOINT = "scitokens/authz/decision";

/** What policies/authz.rego decides (policies/README.md). */
export interface PolicyDecision {
  readonly allow: boolean;
  readonly reason: ReasonCode;
  /** The raw scope entry that granted the request, when allowed. */
  readonly scope: string | null;
  /** True when only `storage.create` granted the request: the upstream gets `If-None-Match: *`. */
  readonly createOnly: boolean;
}

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
    if (typeof allow !== "boolean" || !isReasonCode(reason)) {
      throw new PolicyFault("the policy decision lacks a boolean allow or a known reason code");
    }
    if (allow !== (reason === "allowed")) throw new PolicyFault(`the policy returned allow=${allow} with reason ${reason}`);
    return {
      allow,
      reason,
      scope: typeof scope === "string" ? scope : null,
      createOnly: createOnly === true,
    };
  }
}
