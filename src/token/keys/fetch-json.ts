import { KeySourceError } from "./key-source-error.js";
import { keyUrlProblem } from "./key-url.js";
import { parseJsonObject } from "./parse-json-object.js";

/** Limits every key-related HTTP fetch runs under. */
export interface FetchLimits {
  /** The fetch implementation (a seam for tests; normally `globalThis.fetch`). */
  readonly fetch: typeof globalThis.fetch;
  /** Abort the whole exchange (redirects and body included) after this many ms. */
  readonly timeoutMs: number;
  /** Largest body accepted, enforced while streaming, before parsing. */
  readonly maxBytes: number;
  /** Aborts the fetch early, e.g. when the key store closes. */
  readonly signal?: AbortSignal;
}

const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/**
 * GET `url` and return its body parsed as a JSON object.
 *
 * Redirects are followed by hand (`redirect: "manual"`, at most 5 hops) so that every
 * hop passes {@link keyUrlProblem} before any traffic; a hop to a plain-http
 * non-loopback URL fails the fetch. Only HTTP 200 is accepted. Throws a
 * `KeySourceError` naming the URL and what went wrong.
 */
export async function fetchJsonObject(url: string, limits: FetchLimits): Promise<Record<string, unknown>> {
  const response = await fetchBounded(url, limits, { accept: "application/json" });
  if (response.status !== 200) throw new KeySourceError(`${response.url}: HTTP ${response.status}, expected 200`);
  return parseJsonObject(response.body, response.url);
}

/** What {@link fetchBounded} got: a 200 with its body, or a 304 (Not Modified). */
export type BoundedResponse =
  | { readonly status: 200; readonly url: string; readonly body: Uint8Array; readonly etag: string | null }
  | { readonly status: 304; readonly url: string };

/**
 * GET `url` under `limits`, redirects followed by hand as {@link fetchJsonObject} does,
 * with extra request headers (such as If-None-Match). A 200's body is read up to
 * `limits.maxBytes`; a 304 is returned as such; any other status throws KeySourceError.
 */
export async function fetchBounded(url: string, limits: FetchLimits, headers: Readonly<Record<string, string>>): Promise<BoundedResponse> {
  const timeout = AbortSignal.timeout(limits.timeoutMs);
  const signal = limits.signal ? AbortSignal.any([timeout, limits.signal]) : timeout;
  let current = url;
  try {
    for (let hop = 0; ; hop++) {
      const problem = keyUrlProblem(current, url);
      if (problem !== null) throw new KeySourceError(`refusing to fetch ${current}: URL ${problem}`);
      const response = await limits.fetch(current, { redirect: "manual", signal, headers });
      const location = response.headers.get("location");
      if (REDIRECT_STATUSES.has(response.status) && location !== null) {
        await response.body?.cancel();
        if (hop >= MAX_REDIRECTS) throw new KeySourceError(`${url}: more than ${MAX_REDIRECTS} redirects`);
        current = new URL(location, current).href;
        continue;
      }
      if (response.status === 304) {
        await response.body?.cancel();
        return { status: 304, url: current };
      }
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new KeySourceError(`${current}: HTTP ${response.status}, expected 200`);
      }
      const body = await readBounded(response, limits.maxBytes, current);
      return { status: 200, url: current, body, etag: response.headers.get("etag") };
    }
  } catch (err) {
    if (err instanceof KeySourceError) throw err;
    if (timeout.aborted) throw new KeySourceError(`${current}: timed out after ${limits.timeoutMs} ms`);
    if (limits.signal?.aborted) throw new KeySourceError(`${current}: aborted`);
    throw new KeySourceError(`${current}: ${describe(err)}`, { cause: err });
  }
}

async function readBounded(response: Response, maxBytes: number, url: string): Promise<Uint8Array> {
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  if (declared > maxBytes) {
    await response.body?.cancel();
    throw new KeySourceError(`${url}: body of ${declared} bytes exceeds the ${maxBytes} byte limit`);
  }
  if (response.body === null) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw new KeySourceError(`${url}: body exceeds the ${maxBytes} byte limit`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, total);
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
  return `${err.message}${cause}`;
}
