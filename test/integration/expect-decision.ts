import { expect } from "vitest";
import { GrpcCode } from "../../src/envoy/decision-to-response.js";
import type { CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth.js";
import { reasonOf, responseHeader } from "../helpers/service.js";

export { GrpcCode };

/** RFC 6750 challenges the default realm produces. */
export const CHALLENGE = {
  none: 'Bearer realm="scitokens-authz"',
  invalidToken: 'Bearer realm="scitokens-authz", error="invalid_token"',
  insufficientScope: 'Bearer realm="scitokens-authz", error="insufficient_scope"',
} as const;

/** What a denied Check must carry (SEMANTICS §11). */
export interface ExpectedDeny {
  grpc: number;
  http: number;
  reason: string;
  /** The exact WWW-Authenticate value, or `null` when the response must have none. */
  wwwAuthenticate?: string | null;
}

function metadata(response: CheckResponse): Record<string, unknown> {
  return (response.dynamicMetadata ?? {}) as Record<string, unknown>;
}

/**
 * Asserts a denied Check: gRPC status and message, HTTP status, the reason in dynamic
 * metadata and in the JSON body, the decision id in both, and the challenge.
 */
export function expectDenied(response: CheckResponse, expected: ExpectedDeny): void {
  expect({ grpc: response.status?.code, message: response.status?.message, reason: reasonOf(response) }).toEqual({
    grpc: expected.grpc,
    message: expected.reason,
    reason: expected.reason,
  });
  expect(response.okResponse).toBeUndefined();
  expect(response.deniedResponse?.status?.code).toBe(expected.http);
  expect(responseHeader(response, "content-type")).toBe("application/json");
  const body = JSON.parse(response.deniedResponse?.body ?? "{}") as Record<string, unknown>;
  expect(body["reason"]).toBe(expected.reason);
  expect(body["decision_id"]).toBe(metadata(response)["decision_id"]);
  expect(metadata(response)["decision_id"]).toMatch(/^[0-9a-f-]{36}$/);
  if (expected.wwwAuthenticate !== undefined) {
    expect(responseHeader(response, "www-authenticate")).toBe(expected.wwwAuthenticate ?? undefined);
  }
}

/** Asserts an allowed Check and returns the upstream headers it sets, by name. */
export function expectAllowed(response: CheckResponse): Record<string, string> {
  expect({ grpc: response.status?.code, reason: reasonOf(response) }).toEqual({ grpc: GrpcCode.OK, reason: "allowed" });
  expect(response.deniedResponse).toBeUndefined();
  expect(metadata(response)["decision_id"]).toMatch(/^[0-9a-f-]{36}$/);
  const headers: Record<string, string> = {};
  for (const option of response.okResponse?.headers ?? []) {
    if (option.header) headers[option.header.key] = option.header.value;
  }
  return headers;
}

/** A 401 for a presented token (the usual shape of a token-level denial). */
export function unauthenticated(reason: string): ExpectedDeny {
  return { grpc: GrpcCode.UNAUTHENTICATED, http: 401, reason, wwwAuthenticate: CHALLENGE.invalidToken };
}

/** A 403 for a valid token that does not grant the request. */
export function forbidden(reason: string): ExpectedDeny {
  return { grpc: GrpcCode.PERMISSION_DENIED, http: 403, reason, wwwAuthenticate: CHALLENGE.insufficientScope };
}
