import type { IssuerKeyStatus } from "../token/keys/index.js";

/** What readiness is judged from. */
export interface ReadinessInput {
  /** The policy revision in force; null while none is loaded (start-up). */
  readonly revision: string | null;
  /** The service has begun to shut down. */
  readonly closing: boolean;
  /** The key state of every trusted issuer of the policy in force. */
  readonly keys: readonly IssuerKeyStatus[];
  /** `keys.max_stale_seconds`, in ms. */
  readonly maxStaleMs: number;
  /** Now, in ms since the epoch (the service's clock). */
  readonly nowMs: number;
}

/**
 * One issuer's part in readiness. `reason`: `keys_usable` (fresh, or stale but within
 * `keys.max_stale_seconds`), `no_keys` (none fetched yet), `keys_too_stale` (older than
 * that). `detail` says it in words, with the last fetch error when there is one.
 */
export interface IssuerReadiness {
  readonly issuer: string;
  readonly ready: boolean;
  readonly reason: "keys_usable" | "no_keys" | "keys_too_stale";
  readonly detail: string;
  readonly source: IssuerKeyStatus["source"];
  readonly keys: number;
  /** When the keys held were fetched (ISO 8601), null without keys. */
  readonly fetched_at: string | null;
  readonly age_seconds: number | null;
  readonly last_error: string | null;
}

/** The body of /readyz, and what the gRPC health status follows. */
export interface Readiness {
  readonly ready: boolean;
  /** `ready`, `starting` (no policy loaded yet), `shutting_down` or `issuer_keys_unusable`. */
  readonly status: "ready" | "starting" | "shutting_down" | "issuer_keys_unusable";
  readonly policy_revision: string | null;
  readonly issuers: readonly IssuerReadiness[];
}

/**
 * Ready when a policy is loaded, the service is not shutting down, and every trusted
 * issuer of the policy in force has usable keys: held and not older than
 * `keys.max_stale_seconds` (the keys a Check would be verified with; README "Keys").
 * Pure: the caller passes the key state and the clock.
 */
export function assessReadiness(input: ReadinessInput): Readiness {
  const issuers = input.keys.map((status) => issuerReadiness(status, input));
  const status =
    input.revision === null ? "starting" : input.closing ? "shutting_down" : issuers.every((issuer) => issuer.ready) ? "ready" : "issuer_keys_unusable";
  return { ready: status === "ready", status, policy_revision: input.revision, issuers };
}

function issuerReadiness(status: IssuerKeyStatus, input: ReadinessInput): IssuerReadiness {
  const age = status.fetchedAt === null ? null : Math.max(0, (input.nowMs - status.fetchedAt) / 1000);
  const lastError = status.lastError === null ? "" : `; the last fetch failed: ${status.lastError}`;
  const common = {
    issuer: status.issuer,
    source: status.source,
    keys: status.keys,
    fetched_at: status.fetchedAt === null ? null : new Date(status.fetchedAt).toISOString(),
    age_seconds: age === null ? null : Math.round(age),
    last_error: status.lastError,
  };
  if (status.usable) {
    return {
      ...common,
      ready: true,
      reason: "keys_usable",
      detail: `${status.keys} keys fetched ${Math.round(age ?? 0)} s ago from ${status.from}${lastError}`,
    };
  }
  if (status.fetchedAt === null) {
    const why = status.lastError !== null ? `the last fetch failed: ${status.lastError}` : status.fetching ? "the first fetch is running" : "not fetched yet";
    return { ...common, ready: false, reason: "no_keys", detail: `no keys: ${why}` };
  }
  return {
    ...common,
    ready: false,
    reason: "keys_too_stale",
    detail: `the keys held were fetched ${Math.round(age ?? 0)} s ago, beyond keys.max_stale_seconds (${input.maxStaleMs / 1000} s)${lastError}`,
  };
}

/**
 * When readiness may next change by time alone: the earliest moment (ms since the epoch)
 * an issuer's usable keys pass `keys.max_stale_seconds`; null when none will.
 */
export function nextStaleAt(input: ReadinessInput): number | null {
  let next: number | null = null;
  for (const status of input.keys) {
    if (!status.usable || status.fetchedAt === null) continue;
    const at = status.fetchedAt + input.maxStaleMs + 1;
    if (next === null || at < next) next = at;
  }
  return next;
}
