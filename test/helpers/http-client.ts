import { type Agent, type IncomingHttpHeaders, request } from "node:http";
import type { Readable } from "node:stream";

/** Where a request goes: a TCP port on loopback, or a Unix socket. */
export type HttpTarget = { readonly port: number } | { readonly socketPath: string };

export interface HttpCall {
  readonly method?: string;
  readonly path: string;
  /** Names and values alternating, sent as they are (repeats stay repeats). */
  readonly headers?: readonly string[];
  /** A body: bytes, or a stream (sent chunked unless headers give its length). */
  readonly body?: Buffer | Readable;
  readonly agent?: Agent;
}

export interface HttpResult {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Names and values alternating, as received. */
  readonly rawHeaders: readonly string[];
  readonly body: Buffer;
}

/** One HTTP/1.1 request; resolves with the whole answer. */
export function httpCall(target: HttpTarget, call: HttpCall): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...("socketPath" in target ? { socketPath: target.socketPath } : { host: "127.0.0.1", port: target.port }),
        method: call.method ?? "GET",
        path: call.path,
        headers: [...(call.headers ?? [])],
        ...(call.agent ? { agent: call.agent } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }));
      },
    );
    req.on("error", reject);
    if (call.body === undefined) req.end();
    else if (Buffer.isBuffer(call.body)) req.end(call.body);
    else call.body.pipe(req);
  });
}

/** Every value of the response header `name` (lower case), as received. */
export function headerValues(result: HttpResult, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < result.rawHeaders.length; i += 2) if (result.rawHeaders[i]!.toLowerCase() === name) out.push(result.rawHeaders[i + 1]!);
  return out;
}
