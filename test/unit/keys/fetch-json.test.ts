import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type FetchLimits, fetchJsonObject } from "../../../src/token/keys/fetch-json.js";
import { type IssuerServer, endless, hang, json, startIssuerServer } from "./issuer-server.js";

let server: IssuerServer;
const fetchSpy = vi.fn((input: string | URL | Request, init?: RequestInit) => globalThis.fetch(input, init));
const limits = (overrides: Partial<FetchLimits> = {}): FetchLimits => ({
  fetch: fetchSpy,
  timeoutMs: 5_000,
  maxBytes: 1024 * 1024,
  ...overrides,
});

beforeEach(async () => {
  server = await startIssuerServer();
  fetchSpy.mockClear();
});
afterEach(() => server.close());

describe("fetchJsonObject", () => {
  it("returns a JSON object served with 200", async () => {
    server.routes.set("/doc", json({ keys: [] }));
    await expect(fetchJsonObject(`${server.origin}/doc`, limits())).resolves.toEqual({ keys: [] });
    expect(fetchSpy).toHaveBeenCalledWith(`${server.origin}/doc`, expect.objectContaining({ redirect: "manual" }));
  });

  it.each([
    ["HTTP 500", json({ keys: [] }, 500), /HTTP 500, expected 200/],
    ["HTTP 204", (_req, res) => res.writeHead(204).end(), /HTTP 204/],
    ["not JSON", json("<html>oops</html>"), /not valid JSON/],
    ["invalid UTF-8", (_req, res) => res.end(Buffer.from([0x7b, 0xff, 0x7d])), /not valid JSON/],
    ["a JSON array", json([1, 2]), /not a JSON object/],
    ["JSON null", json("null"), /not a JSON object/],
  ] satisfies Array<[string, Parameters<IssuerServer["routes"]["set"]>[1], RegExp]>)("fails on %s", async (_name, handler, message) => {
    server.routes.set("/doc", handler);
    await expect(fetchJsonObject(`${server.origin}/doc`, limits())).rejects.toThrow(message);
  });

  it("refuses a declared content-length over the limit", async () => {
    server.routes.set("/doc", json({ keys: [], pad: "x".repeat(2000) }));
    await expect(fetchJsonObject(`${server.origin}/doc`, limits({ maxBytes: 1000 }))).rejects.toThrow(/exceeds the 1000 byte limit/);
  });

  it("stops reading an endless body at the limit (enforced while streaming)", async () => {
    server.routes.set("/doc", endless);
    await expect(fetchJsonObject(`${server.origin}/doc`, limits({ timeoutMs: 30_000 }))).rejects.toThrow(/body exceeds the 1048576 byte limit/);
  });

  it("times out when no response comes", async () => {
    server.routes.set("/doc", hang);
    await expect(fetchJsonObject(`${server.origin}/doc`, limits({ timeoutMs: 100 }))).rejects.toThrow(/timed out after 100 ms/);
  });

  it("times out when the body stalls", async () => {
    server.routes.set("/doc", (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"keys": [');
    });
    await expect(fetchJsonObject(`${server.origin}/doc`, limits({ timeoutMs: 100 }))).rejects.toThrow(/timed out after 100 ms/);
  });

  it("refuses a plain-http non-loopback URL without any traffic", async () => {
    await expect(fetchJsonObject("http://example.org/jwks", limits())).rejects.toThrow(/refusing to fetch/);
    expect(fetchSpy).not.toHaveBeenCalled();
  });

  it("follows a redirect to another loopback URL", async () => {
    server.routes.set("/old", (_req, res) => res.writeHead(302, { location: "/new" }).end());
    server.routes.set("/new", json({ keys: [] }));
    await expect(fetchJsonObject(`${server.origin}/old`, limits())).resolves.toEqual({ keys: [] });
    expect([server.hits("/old"), server.hits("/new")]).toEqual([1, 1]);
  });

  it("refuses a redirect to a plain-http non-loopback URL before following it", async () => {
    server.routes.set("/old", (_req, res) => res.writeHead(301, { location: "http://example.org/jwks" }).end());
    await expect(fetchJsonObject(`${server.origin}/old`, limits())).rejects.toThrow(/refusing to fetch http:\/\/example.org\/jwks/);
    expect(fetchSpy.mock.calls.map(([url]) => String(url))).toEqual([`${server.origin}/old`]);
  });

  it("gives up after 5 redirects", async () => {
    server.routes.set("/loop", (_req, res) => res.writeHead(307, { location: "/loop" }).end());
    await expect(fetchJsonObject(`${server.origin}/loop`, limits())).rejects.toThrow(/more than 5 redirects/);
    expect(server.hits("/loop")).toBe(6);
  });

  it("reports a refused connection with the URL", async () => {
    // Port 1 (tcpmux) is privileged and unused: the connection is refused at once.
    await expect(fetchJsonObject("http://127.0.0.1:1/doc", limits())).rejects.toThrow(/^http:\/\/127\.0\.0\.1:1\/doc: fetch failed/);
  });
});
