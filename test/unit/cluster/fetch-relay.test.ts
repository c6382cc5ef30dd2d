import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FetchRelay, RelayedFetch } from "../../../src/cluster/fetch-relay.js";
import { type FetchLimits, fetchBounded, fetchJsonObject } from "../../../src/token/keys/fetch-json.js";
import { type IssuerServer, endless, hang, json, startIssuerServer } from "../keys/issuer-server.js";

// Issue 11, key fetching across workers: a worker's key requests go through the primary
// (src/cluster/fetch-relay.ts). Here both sides run in one process, wired as the IPC
// channel would wire them, under the key store's real fetch code (fetch-json.ts): the
// answers and failures are the ones a worker fetching on its own would see, and requests
// for a URL already being fetched share that fetch.

let server: IssuerServer;
let relay: FetchRelay;
let outcomes: string[];

/** A worker's fetch, its requests made by `relay` (what the IPC round trip does). */
function workerFetch(): RelayedFetch {
  const client: RelayedFetch = new RelayedFetch((id, request) => {
    void relay.request(structuredClone(request)).then((result) => client.settle(id, structuredClone(result)));
  });
  return client;
}

const limits = (overrides: Partial<FetchLimits> = {}): FetchLimits => ({ fetch: workerFetch().fetch, timeoutMs: 5_000, maxBytes: 1024 * 1024, ...overrides });

beforeEach(async () => {
  server = await startIssuerServer();
  outcomes = [];
  relay = new FetchRelay({ timeoutMs: 5_000, maxBytes: 2 * 1024 * 1024, onRequest: (outcome) => outcomes.push(outcome) });
});
afterEach(async () => {
  relay.close();
  await server.close();
});

describe("a worker's key fetch through the primary", () => {
  it("returns a JSON object served with 200", async () => {
    server.routes.set("/doc", json({ keys: [] }));
    await expect(fetchJsonObject(`${server.origin}/doc`, limits())).resolves.toEqual({ keys: [] });
    expect(outcomes).toEqual(["fetched"]);
  });

  it.each([
    ["HTTP 500", json({ keys: [] }, 500), /HTTP 500, expected 200/],
    ["HTTP 204", (_req, res) => res.writeHead(204).end(), /HTTP 204/],
    ["not JSON", json("<html>oops</html>"), /not valid JSON/],
    ["a declared length over the worker's limit", json({ keys: [], pad: "x".repeat(2000) }), /exceeds the 1000 byte limit/],
  ] satisfies Array<[string, Parameters<IssuerServer["routes"]["set"]>[1], RegExp]>)("fails on %s as on its own", async (_name, handler, message) => {
    server.routes.set("/doc", handler);
    await expect(fetchJsonObject(`${server.origin}/doc`, limits({ maxBytes: 1000 }))).rejects.toThrow(message);
  });

  it("stops an endless body at the primary's bound; the worker refuses it at its own", async () => {
    server.routes.set("/doc", endless);
    await expect(fetchJsonObject(`${server.origin}/doc`, limits({ timeoutMs: 30_000 }))).rejects.toThrow(/body exceeds the 1048576 byte limit/);
  });

  it("times out as the worker's own limit says", async () => {
    server.routes.set("/doc", hang);
    await expect(fetchJsonObject(`${server.origin}/doc`, limits({ timeoutMs: 100 }))).rejects.toThrow(/timed out after 100 ms/);
  });

  it("follows a redirect hop by hop, each hop checked by the worker", async () => {
    server.routes.set("/old", (_req, res) => res.writeHead(302, { location: "/new" }).end());
    server.routes.set("/new", json({ keys: [] }));
    await expect(fetchJsonObject(`${server.origin}/old`, limits())).resolves.toEqual({ keys: [] });
    expect([server.hits("/old"), server.hits("/new")]).toEqual([1, 1]);
    server.routes.set("/away", (_req, res) => res.writeHead(301, { location: "http://example.org/jwks" }).end());
    await expect(fetchJsonObject(`${server.origin}/away`, limits())).rejects.toThrow(/refusing to fetch http:\/\/example.org\/jwks/);
    expect(outcomes).toEqual(["fetched", "fetched", "fetched"]);
  });

  it("passes request headers on and a 304 back (the bundle downloader's If-None-Match)", async () => {
    server.routes.set("/bundle", (req, res) => {
      if (req.headers["if-none-match"] === '"v1"') res.writeHead(304, { etag: '"v1"' }).end();
      else res.writeHead(200, { etag: '"v1"' }).end("bytes");
    });
    const first = await fetchBounded(`${server.origin}/bundle`, limits(), {});
    expect(first).toMatchObject({ status: 200, etag: '"v1"' });
    expect(Buffer.from((first as { body: Uint8Array }).body).toString()).toBe("bytes");
    await expect(fetchBounded(`${server.origin}/bundle`, limits(), { "if-none-match": '"v1"' })).resolves.toMatchObject({ status: 304 });
  });

  it("reports a refused connection with the URL and the cause", async () => {
    const closed = await startIssuerServer();
    await closed.close();
    const url = `${closed.origin}/doc`;
    await expect(fetchJsonObject(url, limits())).rejects.toThrow(`${url}: fetch failed: connect ECONNREFUSED`);
  });

  it("shares a fetch in flight between workers, and fetches again once it has ended", async () => {
    let answer = () => {};
    const held = new Promise<void>((resolve) => (answer = resolve));
    server.routes.set("/jwks", (_req, res) => void held.then(() => json({ keys: [] })(_req, res)));
    const asked = [
      fetchJsonObject(`${server.origin}/jwks`, limits()),
      fetchJsonObject(`${server.origin}/jwks`, limits()),
      fetchJsonObject(`${server.origin}/jwks`, limits()),
    ];
    answer();
    await expect(Promise.all(asked)).resolves.toEqual([{ keys: [] }, { keys: [] }, { keys: [] }]);
    expect(server.hits("/jwks")).toBe(1);
    expect(outcomes).toEqual(["fetched", "joined", "joined"]);
    await fetchJsonObject(`${server.origin}/jwks`, limits());
    expect(server.hits("/jwks")).toBe(2);
  });

  it("does not share requests with different headers", async () => {
    server.routes.set("/bundle", json({}));
    await Promise.all([fetchBounded(`${server.origin}/bundle`, limits(), { "if-none-match": '"a"' }), fetchBounded(`${server.origin}/bundle`, limits(), {})]);
    expect(server.hits("/bundle")).toBe(2);
  });

  it("lets a worker give up on its request (its key store closing) without waiting for the primary", async () => {
    server.routes.set("/doc", hang);
    const closing = new AbortController();
    const fetching = fetchJsonObject(`${server.origin}/doc`, limits({ signal: closing.signal, timeoutMs: 30_000 }));
    closing.abort();
    await expect(fetching).rejects.toThrow(/aborted/);
  });
});
