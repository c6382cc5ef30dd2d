import { GrpcCode } from "../envoy/decision-to-response.js";
import type { HeaderValueOption } from "../gen/envoy/config/core/v3/base.js";
import type { CheckResponse } from "../gen/envoy/service/auth/v3/external_auth.js";

/** The endpoint's answer: status, headers (lower-case names, values as bytes in latin1 strings), body. */
export interface HttpAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/**
 * Headers Envoy's http_service removes from the upstream request when an allow lists
 * them here (comma-separated); nginx reads the list too (deploy/nginx/nginx.conf).
 */
export const HEADERS_TO_REMOVE_HEADER = "x-envoy-auth-headers-to-remove";

/** The decision's id, reason and policy revision, on every answer (access logs, nginx's denial body). */
export const DECISION_ID_HEADER = "x-scitokens-authz-decision-id";
export const REASON_HEADER = "x-scitokens-authz-reason";
export const REVISION_HEADER = "x-scitokens-authz-revision";

/**
 * Headers that frame the HTTP message itself: a policy header of one of these names
 * cannot be carried as a response header (it would change the answer's own framing),
 * so it is left out.
 */
const FRAMING: ReadonlySet<string> = new Set([
  "connection",
  "content-length",
  "host",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  HEADERS_TO_REMOVE_HEADER,
  DECISION_ID_HEADER,
  REASON_HEADER,
  REVISION_HEADER,
]);

// What Node refuses in a header value once it is bytes (RFC 9110 field-value).
const NOT_FIELD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/** A header value as bytes in a latin1 string, which Node writes one byte per character: UTF-8 on the wire. */
function wireValue(value: string): string | null {
  const bytes = Buffer.from(value, "utf8").toString("latin1");
  return NOT_FIELD_VALUE.test(bytes) ? null : bytes;
}

function addAll(into: Record<string, string>, options: readonly HeaderValueOption[]): void {
  for (const option of options) {
    const name = option.header?.key.toLowerCase();
    if (name === undefined || name === "" || FRAMING.has(name)) continue;
    const value = wireValue(option.header!.value);
    if (value !== null) into[name] = value;
  }
}

function metadata(response: CheckResponse): Record<string, string> {
  const out: Record<string, string> = {};
  const fields = (response.dynamicMetadata ?? {}) as Record<string, unknown>;
  for (const [header, key] of [
    [DECISION_ID_HEADER, "decision_id"],
    [REASON_HEADER, "reason"],
    [REVISION_HEADER, "policy_revision"],
  ] as const) {
    const value = fields[key];
    if (typeof value === "string" && wireValue(value) !== null) out[header] = wireValue(value)!;
  }
  return out;
}

const FAULT_BODY = `${JSON.stringify({ error: "internal", reason: "internal_error" })}\n`;

/**
 * Maps the Authorizer's CheckResponse to the endpoint's HTTP answer. Pure, tested with
 * tables. Allowed: 200 (Envoy's http_service takes only 200 as an allow), the headers
 * the upstream request gets as response headers (nginx copies them with
 * `auth_request_set`, Envoy with `allowed_upstream_headers`), and those it loses listed
 * in `x-envoy-auth-headers-to-remove`. Denied: the status, headers and body the gRPC
 * path puts in `denied_response`. Every answer names its decision (id, reason, revision).
 */
export function checkResponseToHttp(response: CheckResponse): HttpAnswer {
  const headers = metadata(response);
  const ok = response.status?.code === GrpcCode.OK ? response.okResponse : undefined;
  if (ok !== undefined) {
    addAll(headers, ok.headers);
    const removed = ok.headersToRemove.map((name) => name.toLowerCase()).filter((name) => !NOT_FIELD_VALUE.test(name) && !name.includes(","));
    if (removed.length > 0) headers[HEADERS_TO_REMOVE_HEADER] = removed.join(",");
    return { status: 200, headers, body: "" };
  }
  const denied = response.deniedResponse;
  if (denied === undefined) return { status: 500, headers: { ...headers, "content-type": "application/json" }, body: FAULT_BODY };
  const answer: Record<string, string> = {};
  addAll(answer, denied.headers);
  const status = denied.status?.code ?? 403;
  return { status: status >= 400 && status <= 599 ? status : 403, headers: { ...answer, ...headers }, body: denied.body };
}
