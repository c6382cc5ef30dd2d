import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";

/** How the server answers one request. */
export type Answer = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * A misbehaving key server on loopback: an OIDC issuer (discovery at
 * `{issuer}/.well-known/openid-configuration`, keys at `{issuer}/jwks`) whose answers a
 * test replaces, holds and counts. Faults the friendly test issuer cannot produce live
 * here: bodies streamed without end, a Content-Length that lies, answers held until the
 * test lets them go (an event, never a timer).
 */
export interface KeyFaultServer {
  /** `http://127.0.0.1:<port>`, also the issuer. */
  readonly issuer: string;
  readonly jwksUri: string;
  /** The path of every request received, in order. */
  readonly requests: readonly string[];
  /** JWKS requests received so far. */
  jwksRequests(): number;
  /** Resolves once `count` JWKS requests have been received in all. */
  jwksRequestsReach(count: number): Promise<void>;
  /** Resolves once `count` requests of any kind have been received in all. */
  requestsReach(count: number): Promise<void>;
  /** How `/jwks` answers from now on. */
  answerJwks(answer: Answer): void;
  /** How the discovery document answers from now on. */
  answerDiscovery(answer: Answer): void;
  /**
   * Holds every JWKS request received from now on; the returned function lets them go,
   * each answered as {@link answerJwks} says at that moment, and stops holding.
   */
  holdJwks(): () => void;
  /** Stops the server, cutting held and endless answers. Idempotent. */
  close(): Promise<void>;
}

const JWKS_PATH = "/jwks";
const DISCOVERY_PATH = "/.well-known/openid-configuration";

export async function startKeyFaultServer(jwks: unknown): Promise<KeyFaultServer> {
  const requests: string[] = [];
  const waiters: Array<{ done: () => boolean; resolve: () => void }> = [];
  let held: Array<() => void> | undefined;
  let jwksAnswer: Answer = json(jwks);
  let discoveryAnswer: Answer = () => {
    throw new Error("discovery answer used before the server listened");
  };
  const jwksRequests = () => requests.filter((path) => path === JWKS_PATH).length;
  const notify = () => {
    for (const waiter of waiters.filter((w) => w.done())) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  };
  const until = (done: () => boolean) =>
    new Promise<void>((resolve) => {
      waiters.push({ done, resolve });
      notify();
    });

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    requests.push(path);
    notify();
    if (path === DISCOVERY_PATH) discoveryAnswer(req, res);
    else if (path !== JWKS_PATH) json({ error: "not_found" }, 404)(req, res);
    else if (held !== undefined) held.push(() => jwksAnswer(req, res));
    else jwksAnswer(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const jwksUri = `${issuer}${JWKS_PATH}`;
  discoveryAnswer = json({ issuer, jwks_uri: jwksUri });

  let closing: Promise<void> | undefined;
  return {
    issuer,
    jwksUri,
    requests,
    jwksRequests,
    jwksRequestsReach: (count) => until(() => jwksRequests() >= count),
    requestsReach: (count) => until(() => requests.length >= count),
    answerJwks(answer) {
      jwksAnswer = answer;
    },
    answerDiscovery(answer) {
      discoveryAnswer = answer;
    },
    holdJwks() {
      const mine: Array<() => void> = [];
      held = mine;
      return () => {
        if (held === mine) held = undefined;
        for (const answer of mine.splice(0)) answer();
      };
    },
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** A JSON body (or a string as it is) with `status` and an honest Content-Length. */
export function json(body: unknown, status = 200): Answer {
  return (_req, res) => {
    if (res.destroyed) return;
    const text = typeof body === "string" ? body : JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
  };
}

/** Never answers; the client gives up (its timeout) or the server closes. */
export const hang: Answer = () => {};

/**
 * 200 without Content-Length, streaming the start of a JSON array and then whitespace
 * without end: only a size limit enforced while reading stops it.
 */
export const endless: Answer = (_req, res) => {
  if (res.destroyed) return;
  res.writeHead(200, { "content-type": "application/json" });
  const chunk = Buffer.alloc(16 * 1024, 0x20);
  let open = true;
  res.on("close", () => {
    open = false;
  });
  const pump = (): void => {
    while (open && res.write(chunk));
    if (open) res.once("drain", pump);
  };
  res.write('{"keys":[');
  pump();
};

/**
 * A Content-Length of `declared` bytes over a body of `sent` bytes, written straight to
 * the socket (Node's own server refuses to lie), then the connection is closed.
 */
export function lyingLength(declared: number, sent: number): Answer {
  return (req) => {
    const socket = req.socket;
    if (socket.destroyed) return;
    socket.on("error", () => {}); // the client may cut the connection mid-body
    socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${declared}\r\nconnection: close\r\n\r\n`);
    const body = Buffer.alloc(sent, 0x20);
    body.write('{"keys":[');
    socket.end(body);
  };
}
