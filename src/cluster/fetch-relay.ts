import type { RelayRequest, RelayResult } from "./messages.js";

/**
 * Key fetches across workers. Each worker keeps its own key store (its own refresh timer,
 * cooldowns and decisions about what to fetch, with every URL check made there), but the
 * HTTP requests themselves go through the primary: a worker's fetch seam sends the
 * request over IPC, and the primary makes it, one hop at a time (redirects stay the
 * worker's to check and follow). A request for a URL the primary is already fetching
 * (same URL, same request headers) joins that fetch instead of making another, exactly
 * as a key store's own single flight does: N workers starting together cost an issuer
 * one discovery and one JWKS request, not N. A request arriving after a fetch ended
 * makes a new one, so no worker ever gets an answer older than its own request; at
 * worst (workers out of step) an issuer sees N times one process's traffic, each
 * worker bounded as one process is (README "Keys").
 */

/** Response headers a worker's fetch reads (fetch-json.ts): redirects, ETag, the size bound. */
const RELAYED_HEADERS = ["location", "etag", "content-length", "content-type"] as const;

/** Statuses whose response has no body (the Fetch standard's null body statuses). */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

export interface FetchRelayOptions {
  /** The network (default globalThis.fetch); the primary's own seam for tests. */
  readonly fetch?: typeof globalThis.fetch;
  /** The whole exchange's time limit: the longest of the workers' own (keys, bundle). */
  readonly timeoutMs: number;
  /** The largest body kept: the largest the workers accept; they check their own bound. */
  readonly maxBytes: number;
  /** Told of each request: whether it made a fetch or joined one already running. */
  readonly onRequest?: (outcome: "fetched" | "joined") => void;
}

/** The primary's side: makes the workers' requests, sharing those already in flight. */
export class FetchRelay {
  readonly #options: FetchRelayOptions;
  readonly #inflight = new Map<string, Promise<RelayResult>>();
  readonly #closing = new AbortController();

  constructor(options: FetchRelayOptions) {
    this.#options = options;
  }

  /** Resolves with the response or the reason there is none; never rejects. */
  request(request: RelayRequest): Promise<RelayResult> {
    const key = JSON.stringify([request.url, Object.entries(request.headers).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))]);
    const running = this.#inflight.get(key);
    if (running !== undefined) {
      this.#options.onRequest?.("joined");
      return running;
    }
    this.#options.onRequest?.("fetched");
    const fetched = this.#fetch(request).finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, fetched);
    return fetched;
  }

  /** Aborts the fetches in flight (shutdown). */
  close(): void {
    this.#closing.abort();
  }

  async #fetch({ url, headers }: RelayRequest): Promise<RelayResult> {
    // The worker checked the URL (https, or http to loopback) before asking: only the scheme again here.
    if (!/^https?:\/\//i.test(url)) return { ok: false, error: `refusing to fetch ${url}: not an http(s) URL` };
    const { maxBytes, timeoutMs } = this.#options;
    const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), this.#closing.signal]);
    try {
      const response = await (this.#options.fetch ?? globalThis.fetch)(url, { redirect: "manual", headers, signal });
      const kept: Record<string, string> = {};
      for (const name of RELAYED_HEADERS) {
        const value = response.headers.get(name);
        if (value !== null) kept[name] = value;
      }
      const declared = Number(response.headers.get("content-length") ?? Number.NaN);
      if (NULL_BODY_STATUSES.has(response.status) || response.body === null || declared > maxBytes) {
        await response.body?.cancel();
        return { ok: true, status: response.status, headers: kept, body: null };
      }
      return { ok: true, status: response.status, headers: kept, body: await readAtMost(response.body, maxBytes + 1) };
    } catch (error) {
      return { ok: false, error: signal.aborted ? (this.#closing.signal.aborted ? "aborted" : `timed out after ${timeoutMs} ms`) : describe(error) };
    }
  }
}

/** Reads up to `limit` bytes, then stops reading: a longer body is the worker's to refuse. */
async function readAtMost(body: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.byteLength;
    if (total >= limit) {
      await reader.cancel();
      break;
    }
  }
  const all = Buffer.concat(chunks, total);
  return all.subarray(0, Math.min(total, limit));
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.cause instanceof Error ? error.cause.message : error.message;
}

/** A worker's side: a `fetch` for the key store and the bundle downloader that asks the primary. */
export class RelayedFetch {
  readonly #send: (id: number, request: RelayRequest) => void;
  readonly #pending = new Map<number, { resolve: (response: Response) => void; reject: (error: unknown) => void }>();
  #next = 0;

  constructor(send: (id: number, request: RelayRequest) => void) {
    this.#send = send;
  }

  /** What fetch-json.ts calls: one GET, redirects not followed (`redirect: "manual"`). */
  readonly fetch: typeof globalThis.fetch = (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const signal = init?.signal ?? undefined;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const headers = Object.fromEntries(new Headers(init?.headers).entries());
    const id = ++this.#next;
    return new Promise<Response>((resolve, reject) => {
      const onAbort = () => {
        this.#pending.delete(id);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#pending.set(id, {
        resolve: (response) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(response);
        },
        reject: (error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
      });
      this.#send(id, { url, headers });
    });
  };

  /** The primary's answer to request `id` (an answer to a request given up is dropped). */
  settle(id: number, result: RelayResult): void {
    const pending = this.#pending.get(id);
    if (pending === undefined) return;
    this.#pending.delete(id);
    if (!result.ok) {
      // As the platform's fetch fails: a TypeError whose cause says why.
      pending.reject(new TypeError("fetch failed", { cause: new Error(result.error) }));
      return;
    }
    try {
      const body = NULL_BODY_STATUSES.has(result.status) ? null : (result.body ?? new Uint8Array(0));
      pending.resolve(new Response(body, { status: result.status, headers: result.headers }));
    } catch (error) {
      pending.reject(new TypeError("fetch failed", { cause: error }));
    }
  }

  /** Fails every request still waiting (the primary is gone). */
  close(): void {
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id);
      pending.reject(new TypeError("fetch failed", { cause: new Error("the cluster primary is gone") }));
    }
  }
}
