import { CheckRequest } from "../src/gen/envoy/service/auth/v3/external_auth.js";
import type { BenchRequest } from "./workloads.js";
import { HOST } from "./workloads.js";

/**
 * The CheckRequest Envoy's ext_authz HTTP filter sends for `r` (gRPC mode, default
 * settings): the downstream and upstream peers, the request's time, its pseudo-headers and
 * the headers a client such as curl or an XRootD HTTP client sends, plus those Envoy adds
 * (x-forwarded-proto, x-request-id). `n` makes the request id unique.
 */
export function checkRequestOf(r: BenchRequest, n: number): CheckRequest {
  const requestId = `bench-${n.toString(16).padStart(8, "0")}-0000-4000-8000-000000000000`;
  const headers: Record<string, string> = {
    ":authority": HOST,
    ":method": r.method,
    ":path": r.path,
    ":scheme": "https",
    "user-agent": "curl/8.5.0",
    accept: "*/*",
    "x-forwarded-proto": "https",
    "x-request-id": requestId,
  };
  if (r.method === "PUT") headers["content-length"] = "1048576";
  if (r.authorization !== undefined) headers["authorization"] = r.authorization;
  const time = new Date(Math.floor(Date.now() / 1000) * 1000);
  return CheckRequest.fromPartial({
    attributes: {
      source: { address: { socketAddress: { address: `10.1.${(n >> 8) & 255}.${n & 255}`, portValue: 40_000 + (n % 20_000) } } },
      destination: { address: { socketAddress: { address: "10.0.0.10", portValue: 8443 } } },
      request: {
        time,
        http: {
          id: String(n),
          method: r.method,
          headers,
          path: r.path,
          host: HOST,
          scheme: "https",
          protocol: "HTTP/2",
          size: r.method === "PUT" ? 1_048_576 : 0,
        },
      },
      contextExtensions: {},
    },
  });
}

/** Each request's protobuf encoding, once. */
export function encodeRequests(requests: readonly BenchRequest[]): Buffer[] {
  return requests.map((r, n) => Buffer.from(CheckRequest.encode(checkRequestOf(r, n)).finish()));
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let v = value;
  while (v > 0x7f) {
    bytes.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

/**
 * ghz's binary call data (`--binary-file`): count-delimited messages (each preceded by
 * its length as a varint), which ghz sends round-robin. The sequence starts at `offset`
 * and wraps around.
 */
export function ghzCallData(encoded: readonly Buffer[], sequence: Uint32Array, offset = 0): Buffer {
  const parts: Buffer[] = [];
  const lengths = encoded.map((message) => varint(message.length));
  for (let i = 0; i < sequence.length; i += 1) {
    const index = sequence[(offset + i) % sequence.length]!;
    parts.push(lengths[index]!, encoded[index]!);
  }
  return Buffer.concat(parts);
}
