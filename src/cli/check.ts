import { readFile } from "node:fs/promises";
import { type ChannelCredentials, type ChannelOptions, Metadata, credentials } from "@grpc/grpc-js";
import { ConfigError } from "../config/config-error.js";
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

/** How `check` reaches the service: plaintext, or TLS with these files (`--tls-*`). */
export interface ClientTlsOptions {
  /** CA certificates (PEM) trusted for the server's certificate; absent: the system's. */
  readonly caFile?: string | undefined;
  /** A client certificate chain and its key (PEM), for mutual TLS: both or neither. */
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  /** The name the server certificate must carry, when it is not the target's host. */
  readonly serverName?: string | undefined;
}

/** The channel for `check`: TLS when any `--tls-*` option is given, else plaintext. */
export interface CheckChannel {
  readonly credentials: ChannelCredentials;
  readonly options: ChannelOptions;
}

const PLAINTEXT: CheckChannel = { credentials: credentials.createInsecure(), options: {} };

/** Reads the `--tls-*` files (a missing or unreadable one is a ConfigError naming the option). */
export async function checkChannel(tls: ClientTlsOptions = {}): Promise<CheckChannel> {
  const { caFile, certFile, keyFile, serverName } = tls;
  if (caFile === undefined && certFile === undefined && serverName === undefined) return PLAINTEXT;
  const read = async (file: string | undefined, option: string, what: string): Promise<Buffer | null> => {
    if (file === undefined) return null;
    try {
      return await readFile(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new ConfigError(option, [`expected ${what}, ${code === "ENOENT" ? `found nothing at ${file}` : `cannot read ${file} (${code ?? String(error)})`}`]);
    }
  };
  const [ca, cert, key] = await Promise.all([
    read(caFile, "--tls-ca", "CA certificates (PEM)"),
    read(certFile, "--tls-cert", "a client certificate chain (PEM)"),
    read(keyFile, "--tls-key", "the client certificate's private key (PEM)"),
  ]);
  return {
    credentials: credentials.createSsl(ca, key, cert),
    options: serverName !== undefined ? { "grpc.ssl_target_name_override": serverName, "grpc.default_authority": serverName } : {},
  };
}

/**
 * Sends one Check; `target` is "host:port" or "unix:/path/to.sock". Over plaintext gRPC
 * unless `channel` says otherwise (see {@link checkChannel}).
 */
export function sendCheck(target: string, request: CheckRequest, timeoutMs = 5000, channel: CheckChannel = PLAINTEXT): Promise<CheckResponse> {
  const client = new AuthorizationClient(target, channel.credentials, channel.options);
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
