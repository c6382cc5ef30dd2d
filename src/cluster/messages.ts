import type { ServiceConfig } from "../config/service-config.js";
import type { MetricsSnapshot } from "../observability/metrics.js";
import type { Readiness } from "../observability/readiness.js";

/**
 * The messages between the primary and its workers, over the cluster's IPC channel
 * (`serialization: "advanced"`, so plain objects and byte arrays pass as they are).
 * Every type starts with `authz:`, apart from messages others (Node, prom-client) send.
 */

/** A key document or bundle request a worker asks the primary to make (see fetch-relay.ts). */
export interface RelayRequest {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** What the primary got for a {@link RelayRequest}: the response, or why there is none. */
export type RelayResult =
  | {
      readonly ok: true;
      readonly status: number;
      readonly headers: Readonly<Record<string, string>>;
      /** The body, cut after one byte more than the primary's bound; null without one. */
      readonly body: Uint8Array | null;
    }
  | { readonly ok: false; readonly error: string };

/** What a worker did to reload: SIGHUP (policy, TLS files, decision log reopened), or a watched file changed. */
export type ReloadKind = "sighup" | "policy" | "tls";

export type ToWorker =
  | { readonly type: "authz:start"; readonly config: ServiceConfig }
  | { readonly type: "authz:cluster-ready"; readonly ready: boolean }
  | { readonly type: "authz:reload"; readonly kind: ReloadKind; readonly trigger: string }
  | { readonly type: "authz:readiness-request"; readonly id: number }
  | { readonly type: "authz:metrics-request"; readonly id: number }
  | { readonly type: "authz:fetch-result"; readonly id: number; readonly result: RelayResult }
  | { readonly type: "authz:shutdown" };

/** What a worker reports once it listens, for the primary's "listening on" line. */
export interface WorkerListening {
  readonly address: string;
  readonly port: number;
  readonly authzHttp: string | null;
  readonly revision: string;
  readonly issuers: number;
}

export type FromWorker =
  | ({ readonly type: "authz:listening" } & WorkerListening)
  | { readonly type: "authz:config-error"; readonly file: string; readonly problems: readonly string[] }
  | { readonly type: "authz:start-failed"; readonly message: string }
  | { readonly type: "authz:ready"; readonly ready: boolean }
  | { readonly type: "authz:readiness"; readonly id: number; readonly readiness: Readiness | null }
  | { readonly type: "authz:metrics"; readonly id: number; readonly metrics: MetricsSnapshot | null }
  | ({ readonly type: "authz:fetch"; readonly id: number } & RelayRequest);

/** The environment variable that gives a worker its slot (1 to N). */
export const WORKER_SLOT_VARIABLE = "SCITOKENS_AUTHZ_WORKER_SLOT";

/** Whether `message` is one of ours (anything else on the channel is ignored). */
export function isClusterMessage<T extends { type: string }>(message: unknown): message is T {
  return (
    typeof message === "object" &&
    message !== null &&
    typeof (message as { type?: unknown }).type === "string" &&
    (message as { type: string }).type.startsWith("authz:")
  );
}
