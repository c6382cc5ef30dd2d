import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { type CryptoKey, type JWK, SignJWT, exportJWK, generateKeyPair } from "jose";

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A real loopback HTTP server whose routes a test sets and whose traffic it counts. */
export interface IssuerServer {
  /** `http://127.0.0.1:{port}` */
  readonly origin: string;
  /** Path (without query) → handler; unknown paths answer 404. */
  readonly routes: Map<string, Handler>;
  /** Requests received per path. */
  hits(path: string): number;
  /** All requests received. */
  total(): number;
  close(): Promise<void>;
}

export async function startIssuerServer(): Promise<IssuerServer> {
  const routes = new Map<string, Handler>();
  const counts = new Map<string, number>();
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    counts.set(path, (counts.get(path) ?? 0) + 1);
    const handler = routes.get(path);
    if (handler === undefined) {
      res.writeHead(404).end();
      return;
    }
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    routes,
    hits: (path) => counts.get(path) ?? 0,
    total: () => [...counts.values()].reduce((a, b) => a + b, 0),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

/** Answer with a JSON body (or raw text) and a status. */
export function json(body: unknown, status = 200): Handler {
  return (_req, res) => {
    res.writeHead(status, { "content-type": "application/json" }).end(typeof body === "string" ? body : JSON.stringify(body));
  };
}

/** Never answer (the request hangs until the client gives up or the server closes). */
export const hang: Handler = () => {};

/** Stream an endless body without content-length until the client goes away. */
export const endless: Handler = (_req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  let open = true;
  res.on("close", () => {
    open = false;
  });
  const pump = (): void => {
    while (open && res.write(chunk));
    if (open) res.once("drain", pump);
  };
  res.write("[");
  pump();
};

export interface TestKey {
  readonly kid: string | undefined;
  readonly alg: "ES256" | "RS256";
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
}

export async function makeKey(alg: "ES256" | "RS256", kid: string | undefined): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const jwk = { ...(await exportJWK(publicKey)), ...(kid === undefined ? {} : { kid }), use: "sig" };
  return { kid, alg, privateKey, jwk };
}

export function jwksOf(...keys: TestKey[]): { keys: JWK[] } {
  return { keys: keys.map((key) => key.jwk) };
}

/** Serve OIDC discovery for `issuer` (which must live on `server`) pointing at `/jwks`. */
export function serveDiscovery(server: IssuerServer, issuer: string, jwks: unknown): void {
  const path = new URL(issuer).pathname.replace(/\/$/, "");
  server.routes.set(`${path}/.well-known/openid-configuration`, json({ issuer, jwks_uri: `${server.origin}/jwks` }));
  server.routes.set("/jwks", json(jwks));
}

export async function signToken(key: TestKey, issuer: string): Promise<string> {
  return new SignJWT({ scope: "read:/" })
    .setProtectedHeader(key.kid === undefined ? { alg: key.alg } : { alg: key.alg, kid: key.kid })
    .setIssuer(issuer)
    .setIssuedAt()
    .setExpirationTime("5m")
    .sign(key.privateKey);
}

/** A handler that holds its requests until the test releases them. */
export interface Gate {
  readonly handler: Handler;
  /** Resolves once `count` requests (default 1) have reached the gate. */
  arrived(count?: number): Promise<void>;
  /** Answers every held request, and every later one at once, with the inner handler. */
  release(): void;
}

/**
 * Wraps `inner` so that requests wait until {@link Gate.release}: a slow issuer whose
 * slowness the test ends by an event, not by a timer.
 */
export function gated(inner: Handler): Gate {
  const held: Array<() => void> = [];
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  let seen = 0;
  let open = false;
  const notify = () => {
    for (const waiter of waiters.filter((w) => seen >= w.count)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  };
  return {
    handler(req, res) {
      seen += 1;
      notify();
      if (open) inner(req, res);
      else held.push(() => inner(req, res));
    },
    arrived(count = 1) {
      return new Promise<void>((resolve) => {
        waiters.push({ count, resolve });
        notify();
      });
    },
    release() {
      open = true;
      for (const answer of held.splice(0)) answer();
    },
  };
}
