import { readFile } from "node:fs/promises";
import { type LoadedPolicy, loadPolicy } from "@open-policy-agent/opa-wasm";
import { ConfigError } from "../config/config-error.js";
import { type DenyReason, type OperatorReason, REASON_CODES } from "../reasons/index.js";

/** The entrypoint compiled by `opa build -e` (scripts/setup.mjs). */
export const ENTRYPOINT = "scitokens/authz/decision";

const SERVICE_ONLY: ReadonlySet<string> = new Set(["request_malformed", "route_unknown", "internal_error"]);

/**
 * The reasons a policy may deny with: every deny reason but those only the service can
 * know (a malformed request, an unknown route, its own fault).
 */
export const POLICY_DENY_REASONS = REASON_CODES.filter(
  (code): code is PolicyDenyReason => code !== "allowed" && code !== "passthrough" && !SERVICE_ONLY.has(code),
);

export type PolicyDenyReason = Exclude<DenyReason, "request_malformed" | "route_unknown" | "internal_error">;

const DENY_REASONS: ReadonlySet<string> = new Set(POLICY_DENY_REASONS);

const ENCODER = new TextEncoder();

/** Header names the policy may set or remove: lower-case HTTP tokens, no pseudo-headers. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

/** What the policy decides (policies/README.md, "Decision"), checked against the contract. */
export type PolicyDecision =
  | {
      readonly allow: true;
      readonly reason: "allowed" | "passthrough";
      /** The raw scope entry that granted the request, for the log and the identity headers. */
      readonly scope: string | null;
      /** Headers set on the upstream request (replacing any the client sent). */
      readonly headers: Readonly<Record<string, string>>;
      /** Headers removed from the upstream request. */
      readonly removeHeaders: readonly string[];
    }
  | {
      readonly allow: false;
      /** A reason of the service, or one the operator declared in the data. */
      readonly reason: PolicyDenyReason | OperatorReason;
      /** HTTP status instead of the reason's usual one. */
      readonly status?: number;
      /** Headers added to the client's response. */
      readonly responseHeaders: Readonly<Record<string, string>>;
      /** Body instead of the usual JSON one. */
      readonly body?: string;
    };

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
  /** The entrypoint's number in the module, resolved once at load. */
  readonly #entrypoint: number;
  readonly #operatorReasons: ReadonlyMap<string, number>;

  private constructor(policy: LoadedPolicy, entrypoint: number, operatorReasons: ReadonlyMap<string, number>) {
    this.#policy = policy;
    this.#entrypoint = entrypoint;
    this.#operatorReasons = operatorReasons;
  }

  /** Loads `wasmFile` and sets `data` as its data document. Throws ConfigError naming the file. */
  static async load(wasmFile: string, data: Readonly<Record<string, unknown>>): Promise<PolicyEngine> {
    let bytes: Buffer;
    try {
      bytes = await readFile(wasmFile);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new ConfigError(wasmFile, [
        code === "ENOENT" ? "the compiled policy does not exist (run `npm run build`, or set policy.wasm)" : `cannot be read (${code ?? String(error)})`,
      ]);
    }
    return PolicyEngine.fromBytes(wasmFile, bytes, data);
  }

  /** Loads a compiled policy held in memory (`name`: where it came from, for errors). */
  static async fromBytes(name: string, bytes: Uint8Array, data: Readonly<Record<string, unknown>>): Promise<PolicyEngine> {
    let policy: LoadedPolicy;
    try {
      policy = await loadPolicy(bytes, { initial: 16 });
    } catch (error) {
      throw new ConfigError(name, [`not a loadable OPA WebAssembly policy (${(error as Error).message})`]);
    }
    const entrypoints: Record<string, unknown> = policy.entrypoints ?? {};
    const entrypoint = Object.hasOwn(entrypoints, ENTRYPOINT) ? entrypoints[ENTRYPOINT] : undefined;
    if (typeof entrypoint !== "number") {
      throw new ConfigError(name, [`expected the entrypoint ${ENTRYPOINT}, found ${Object.keys(entrypoints).join(", ") || "none"}`]);
    }
    policy.setData(data as object);
    return new PolicyEngine(policy, entrypoint, declaredReasons(data));
  }

  evaluate(input: object): PolicyDecision {
    return this.evaluateJson(JSON.stringify(input));
  }

  /** {@link evaluate} of an input already serialized (`JSON.stringify` of it). */
  evaluateJson(input: string): PolicyDecision {
    const bytes = ENCODER.encode(input);
    // opa-wasm takes JSON text as an ArrayBuffer holding exactly that text.
    const buffer = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer;
    const results: unknown = this.#policy.evaluate(buffer, this.#entrypoint);
    const result = Array.isArray(results) ? (results[0] as { result?: unknown } | undefined)?.result : undefined;
    if (result === null || typeof result !== "object" || Array.isArray(result)) throw new PolicyFault("the policy returned no decision");
    return checkDecision(result as Record<string, unknown>, this.#operatorReasons);
  }
}

/** The operator's reasons the data declares (`reasons`), with their HTTP status. */
function declaredReasons(data: Readonly<Record<string, unknown>>): ReadonlyMap<string, number> {
  const reasons = data["reasons"];
  const out = new Map<string, number>();
  if (reasons === null || typeof reasons !== "object") return out;
  for (const [name, entry] of Object.entries(reasons)) {
    const status = (entry as { status?: unknown } | null)?.status;
    out.set(name, typeof status === "number" ? status : 403);
  }
  return out;
}

/**
 * Checks a decision against the contract; anything outside it is a PolicyFault, never an
 * allow. A deny may carry one of the service's reasons or one the data declares.
 */
function checkDecision(result: Record<string, unknown>, operatorReasons: ReadonlyMap<string, number>): PolicyDecision {
  const { allow, reason } = result;
  if (allow === true && (reason === "allowed" || reason === "passthrough")) {
    const scope = result["scope"];
    return {
      allow: true,
      reason,
      scope: typeof scope === "string" ? scope : null,
      headers: headerMap(result["headers"], "headers"),
      removeHeaders: headerNames(result["remove_headers"], "remove_headers"),
    };
  }
  const declaredStatus = typeof reason === "string" ? operatorReasons.get(reason) : undefined;
  if (allow === false && typeof reason === "string" && (DENY_REASONS.has(reason) || declaredStatus !== undefined)) {
    const status = result["status"];
    const body = result["body"];
    if (status !== undefined && status !== null && !(Number.isInteger(status) && (status as number) >= 400 && (status as number) <= 599)) {
      throw new PolicyFault(`the policy returned status ${JSON.stringify(status)}, expected an HTTP status from 400 to 599`);
    }
    if (body !== undefined && body !== null && typeof body !== "string") throw new PolicyFault("the policy returned a body that is not a string");
    const finalStatus = typeof status === "number" ? status : declaredStatus;
    return {
      allow: false,
      reason: reason as PolicyDenyReason | OperatorReason,
      ...(finalStatus !== undefined ? { status: finalStatus } : {}),
      responseHeaders: headerMap(result["response_headers"], "response_headers"),
      ...(typeof body === "string" ? { body } : {}),
    };
  }
  throw new PolicyFault(`the policy returned allow=${String(allow)} with reason ${JSON.stringify(reason)}`);
}

function headerMap(value: unknown, what: string): Readonly<Record<string, string>> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw new PolicyFault(`the policy returned ${what} that is not an object`);
  for (const [name, v] of Object.entries(value)) {
    if (!HEADER_NAME.test(name)) throw new PolicyFault(`the policy returned ${what} with the header name ${JSON.stringify(name)}`);
    if (typeof v !== "string") throw new PolicyFault(`the policy returned ${what}.${name} that is not a string`);
  }
  return value as Record<string, string>;
}

function headerNames(value: unknown, what: string): readonly string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((n): n is string => typeof n === "string" && HEADER_NAME.test(n))) {
    throw new PolicyFault(`the policy returned ${what} that is not a list of header names`);
  }
  return value;
}
