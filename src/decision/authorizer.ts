import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { AuthzData, RouteSettings } from "../config/authz-data.js";
import { type Decision, type ResponseSettings, decisionToResponse } from "../envoy/decision-to-response.js";
import { moveDestination } from "../envoy/destination.js";
import { type HttpRequestView, readHttpRequest } from "../envoy/http-request.js";
import {
  type PolicyInput,
  type PolicyToken,
  buildPolicyInput,
  invalidPolicyToken,
  policyHeaders,
  policyInputJson,
  verifiedPolicyToken,
} from "../envoy/policy-input.js";
import type { CheckRequest, CheckResponse } from "../gen/envoy/service/auth/v3/external_auth.js";
import type { DecisionEvent } from "../observability/decision-log.js";
import { LogLimiter } from "../observability/log-limiter.js";
import { unredacted } from "../observability/logger.js";
import { normalizeRequestPath } from "../paths/normalize.js";
import type { PolicyDecision, PolicyEngine } from "../policy/engine.js";
import { DenyError } from "../reasons/index.js";
import { extractBearer } from "../token/bearer.js";
import type { VerifiedToken } from "../token/claims.js";
import type { TokenVerifier } from "../token/verify.js";

export interface AuthorizerParts {
  readonly data: AuthzData;
  readonly verifier: TokenVerifier;
  readonly engine: PolicyEngine;
  readonly maxTokenBytes: number;
  readonly logger: Logger;
  readonly newId?: () => string;
  /** Clock seam (ms since the epoch) for log rate limits; default `Date.now`. */
  readonly now?: () => number;
  /** Called with every decision and its response (the decision log); must not throw. */
  readonly onDecision?: (event: DecisionEvent) => void;
}

/** A route's settings with its response settings prepared once. */
interface Route {
  readonly settings: RouteSettings;
  readonly response: ResponseSettings;
}

function prepareRoute(settings: RouteSettings): Route {
  return { settings, response: Object.freeze({ realm: settings.realm }) };
}

const ABSENT: PolicyToken = Object.freeze({ state: "absent" });

// A denial's detail can quote what the client sent (a crit parameter name, a scope name):
// kept short, so a request cannot make its own log line large.
const MAX_DETAIL_CHARS = 200;

function capped(detail: string): string {
  return detail.length <= MAX_DETAIL_CHARS ? detail : `${detail.slice(0, MAX_DETAIL_CHARS)}…`;
}

/** What the caller allows one Check. */
export interface CheckBudget {
  /** When the caller stops waiting, in ms since the epoch (the gRPC deadline). */
  readonly deadlineMs?: number;
}

function keyWait(budget: CheckBudget): { maxKeyWaitMs?: number } {
  if (budget.deadlineMs === undefined || !Number.isFinite(budget.deadlineMs)) return {};
  return { maxKeyWaitMs: Math.max(0, (budget.deadlineMs - Date.now()) / 2) };
}

// An unknown route is logged at most once a minute per name, not once per request.
const UNKNOWN_ROUTE_LOG_INTERVAL_MS = 60_000;

/**
 * One Check, from CheckRequest to CheckResponse: headers → route → path → bearer →
 * verified token → policy. This is the one place that draws the line between deny and
 * error, and it draws it on the side of deny: a client's bad input (DenyError) is a
 * denied response with its reason, and so is every fault of the deployment or the
 * service (an unknown route: `route_unknown`; anything unexpected: `internal_error`,
 * both 500). `check` never rejects, so no request can reach Envoy's
 * `failure_mode_allow`; that only applies when the service cannot be reached in time.
 */
export class Authorizer {
  readonly #parts: AuthorizerParts;
  readonly #newId: () => string;
  readonly #default: Route;
  readonly #routes: ReadonlyMap<string, Route>;
  readonly #unknownRoutes: LogLimiter;
  /** The logger of the decision line (fixed fields, no secret: no redaction pass). */
  readonly #decisionLine: Logger;

  constructor(parts: AuthorizerParts) {
    this.#parts = parts;
    this.#decisionLine = unredacted(parts.logger);
    this.#newId = parts.newId ?? randomUUID;
    this.#unknownRoutes = new LogLimiter({ intervalMs: UNKNOWN_ROUTE_LOG_INTERVAL_MS, ...(parts.now ? { now: parts.now } : {}) });
    this.#default = prepareRoute(parts.data.defaultRoute);
    this.#routes = new Map([...parts.data.routes].map(([name, settings]) => [name, prepareRoute(settings)]));
  }

  /**
   * Decides one Check. `budget.deadlineMs` (ms since the epoch) is when the caller (Envoy)
   * stops waiting: a key fetch is then waited for at most half of the time left, so a
   * slow issuer makes a Check fail closed (`key_unavailable`) rather than run past
   * Envoy's timeout, which `failure_mode_allow: true` would turn into an allow.
   */
  async check(request: CheckRequest, budget: CheckBudget = {}): Promise<CheckResponse> {
    const started = process.hrtime.bigint();
    const id = this.#newId();
    let route = this.#default;
    let http: HttpRequestView | undefined;
    let decision: Decision;
    let token: VerifiedToken | undefined;
    let tokenPresented = false;
    let path: string | undefined;
    let input: PolicyInput | undefined;
    try {
      http = readHttpRequest(request);
      route = this.#route(http);
      const normalized = normalizeRequestPath(http.rawPath);
      if (!normalized.ok) throw new DenyError("path_invalid", normalized.why);
      path = normalized.path;
      const destination = moveDestination(http.method, http.destination, http.host);
      // The token's state for the policy: what is wrong with it is the policy's input,
      // not yet a decision (on_invalid may pass it through).
      let state: PolicyToken = ABSENT;
      let detail: string | undefined;
      try {
        const bearer = this.#bearer(http, () => (tokenPresented = true));
        if (bearer !== null) {
          token = await this.#parts.verifier.verify(bearer, route.settings.allowedIssuers, keyWait(budget));
          state = verifiedPolicyToken(token);
        }
      } catch (error) {
        if (!(error instanceof DenyError) || error.code === "request_malformed") throw error;
        state = invalidPolicyToken(error.code);
        detail = error.detail ? `${error.code}: ${error.detail}` : error.code;
      }
      input = buildPolicyInput({
        method: http.method,
        host: http.host,
        headers: policyHeaders(http.header, this.#parts.data.policyHeaders),
        path: normalized.path,
        segments: normalized.segments,
        destination: destination.path,
        destinationRemote: destination.remote,
        route: route.settings.name,
        token: state,
      });
      decision = this.#fromPolicy(id, this.#parts.engine.evaluateJson(policyInputJson(input)), tokenPresented, token, detail);
    } catch (error) {
      decision = error instanceof DenyError ? { id, reason: error.code, tokenPresented, detail: error.detail } : this.#fault(id, error, tokenPresented);
    }
    const durationSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.#log(decision, http, route.settings, path, token, durationSeconds);
    const response = decisionToResponse(decision, route.response);
    this.#parts.onDecision?.({ decision, response, route: route.settings.name, method: http?.method ?? null, path: path ?? null, input, durationSeconds });
    return response;
  }

  /**
   * The answer when even {@link check}'s own bookkeeping failed (the gRPC layer's last
   * resort): `internal_error`, denied.
   */
  faultResponse(): CheckResponse {
    return decisionToResponse({ id: this.#newId(), reason: "internal_error", tokenPresented: false }, this.#default.response);
  }

  /**
   * The route section named by the `route` context extension (Envoy's per-route
   * check_settings), or the top-level one. A name the data does not define is a
   * deployment fault: `route_unknown`, denied whatever Envoy's failure mode, and logged
   * once a minute per name.
   */
  #route(http: HttpRequestView): Route {
    const name = http.contextExtensions["route"];
    if (name === undefined) return this.#default;
    const route = this.#routes.get(name);
    if (route) return route;
    const suppressed = this.#unknownRoutes.admit(name);
    if (suppressed !== null) {
      this.#parts.logger.error(
        { route: name, suppressed_since_last: suppressed },
        "context_extensions.route names a route the authorization data does not define: requests on it are denied (route_unknown)",
      );
    }
    throw new DenyError("route_unknown", `route ${JSON.stringify(name)} is not defined`);
  }

  #fault(id: string, error: unknown, tokenPresented: boolean): Decision {
    this.#parts.logger.error({ err: error, decision_id: id }, "fault inside the service: request denied (internal_error)");
    return { id, reason: "internal_error", tokenPresented };
  }

  #bearer(http: HttpRequestView, presented: () => void): string | null {
    if (http.authorization === undefined) return null;
    try {
      const bearer = extractBearer(http.authorization, this.#parts.maxTokenBytes);
      if (bearer !== null) presented();
      return bearer;
    } catch (error) {
      presented();
      throw error;
    }
  }

  #fromPolicy(id: string, result: PolicyDecision, tokenPresented: boolean, token: VerifiedToken | undefined, detail: string | undefined): Decision {
    if (result.allow) {
      return {
        id,
        reason: result.reason,
        tokenPresented,
        ...(result.reason === "allowed" && token ? { token, scope: result.scope } : {}),
        upstreamHeaders: result.headers,
        removeHeaders: result.removeHeaders,
        detail,
      };
    }
    return {
      id,
      reason: result.reason,
      tokenPresented,
      ...(token ? { token } : {}),
      ...(result.status !== undefined ? { status: result.status } : {}),
      responseHeaders: result.responseHeaders,
      ...(result.body !== undefined ? { body: result.body } : {}),
      detail,
    };
  }

  #log(
    decision: Decision,
    http: HttpRequestView | undefined,
    route: RouteSettings,
    path: string | undefined,
    token: VerifiedToken | undefined,
    durationSeconds: number,
  ): void {
    const micros = Math.trunc(durationSeconds * 1e6);
    this.#decisionLine.info(
      {
        decision_id: decision.id,
        reason: decision.reason,
        allowed: decision.reason === "allowed" || decision.reason === "passthrough",
        route: route.name,
        method: http?.method ?? null,
        path: path ?? null,
        iss: token?.iss ?? null,
        sub: token?.sub ?? null,
        scope: decision.scope ?? null,
        ...(decision.detail !== undefined ? { detail: capped(decision.detail) } : {}),
        duration_us: micros,
      },
      "decision",
    );
  }
}
