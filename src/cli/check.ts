import { Metadata, credentials } from "@grpc/grpc-js";
import { AuthorizationClient, type CheckRequest, type CheckResponse } from "../gen/envoy/service/auth/v3/external_auth.js";

export interface CheckOptions {
  readonly target: string;
  readonly method: string;
  readonly path: string;
  readonly host: string;
  readonly token?: string | undefined;
  readonly headers?: Readonly<Record<string, string>>;
  readonly route?: string | undefined;
  readonly timeoutMs?: number;
}

/** Builds a CheckRequest shaped like the one Envoy's ext_authz HTTP filter sends. */
export function buildCheckRequest(o: CheckOptions): CheckRequest {
  const headers: Record<string, string> = {
    ":authority": o.host,
    ":method": o.method,
    ":path": o.path,
    ":scheme": "https",
    ...(o.headers ?? {}),
  };
  if (o.token !== undefined) headers["authorization"] = `Bearer ${o.token}`;
  return CheckRequestOf(o, headers);
}

function CheckRequestOf(o: CheckOptions, headers: Record<string, string>): CheckRequest {
  return {
    attributes: {
      source: undefined,
      destination: undefined,
      request: {
        time: undefined,
        http: {
          id: "1",
          method: o.method,
          headers,
          headerMap: undefined,
          path: o.path,
          host: o.host,
          scheme: "https",
          query: "",
          fragment: "",
          size: 0,
          protocol: "HTTP/1.1",
          body: "",
          rawBody: Buffer.alloc(0),
        },
      },
      contextExtensions: o.route !== undefined ? { route: o.route } : {},
      metadataContext: undefined,
      routeMetadataContext: undefined,
      tlsSession: undefined,
    },
  };
}

/** Sends one Check over plaintext gRPC. */
export function sendCheck(target: string, request: CheckRequest, timeoutMs = 5000): Promise<CheckResponse> {
  const client = new AuthorizationClient(target, credentials.createInsecure());
  return new Promise<CheckResponse>((resolve, reject) => {
    client.check(request, new Metadata(), { deadline: Date.now() + timeoutMs }, (error, response) => {
      client.close();
      if (error) reject(error);
      else resolve(response);
    });
  });
}

/** A short human summary of a CheckResponse; never prints the token. */
export function describeResponse(response: CheckResponse): string {
  const lines: string[] = [];
  const metadata = (response.dynamicMetadata ?? {}) as Record<string, unknown>;
  if (response.status?.code === 0) {
    lines.push(`ALLOWED  reason=${String(metadata["reason"])}  decision_id=${String(metadata["decision_id"])}`);
    for (const h of response.okResponse?.headers ?? []) lines.push(`  upstream header set: ${h.header?.key}: ${h.header?.value}`);
    for (const name of response.okResponse?.headersToRemove ?? []) lines.push(`  upstream header removed: ${name}`);
  } else {
    const denied = response.deniedResponse;
    lines.push(`DENIED   http=${denied?.status?.code ?? "?"} grpc=${response.status?.code ?? "?"} reason=${response.status?.message ?? "?"}`);
    for (const h of denied?.headers ?? []) lines.push(`  ${h.header?.key}: ${h.header?.value}`);
    if (denied?.body) lines.push(`  body: ${denied.body.trim()}`);
  }
  return lines.join("\n");
}
