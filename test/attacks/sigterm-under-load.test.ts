import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Metadata, type ServiceError, credentials, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCheckRequest } from "../../src/cli/check.js";
import { PACKAGE_ROOT } from "../../src/config/service-config.js";
import { GrpcCode } from "../../src/envoy/decision-to-response.js";
import { AuthorizationClient, type CheckRequest, type CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth.js";
import { type ServedProcess, killAllServed, spawnServe } from "../helpers/cli-process.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { mint } from "../helpers/tokens.js";

// Issue 6: SIGTERM in the middle of a load run. The real CLI (`serve --config`) runs in a
// child process; 16 workers loop Checks of four kinds against it while a few Checks wait
// inside the service on key fetches that their issuers hold. SIGTERM arrives once every
// held fetch has reached its issuer; the fetches are let go once the service says it is
// shutting down. Every Check the service decided must reach its client with the right
// decision, calls it never received fail UNAVAILABLE, and the process exits 0 by itself.

const AUDIENCE = "https://storage.example.org";
const WORKERS = 16;
/** Issuers whose key fetch is held: one in-flight Check each, provably inside the service. */
const SLOW_ISSUERS = 3;
/** Answers received before the slow Checks start, so the load is in full swing. */
const WARM_UP_ANSWERS = 500;
const MAX_CHECKS_PER_WORKER = 3_000;
const LOAD_TIME_LIMIT_MS = 30_000;
const CALL_DEADLINE_MS = 8_000;
const EXIT_LIMIT_MS = 10_000;

interface Expected {
  readonly grpc: number;
  readonly http: number | null;
  readonly reason: string;
}

interface Kind {
  readonly name: string;
  readonly request: CheckRequest;
  readonly expected: Expected;
}

interface Answer {
  readonly kind: string;
  readonly decisionId: string;
  readonly grpc: number | undefined;
  readonly http: number | null;
  readonly reason: unknown;
  readonly afterSigterm: boolean;
}

interface Failure {
  readonly kind: string;
  readonly code: number;
  readonly details: string;
  readonly afterSigterm: boolean;
}

/** Whether the built service config knows `keys.check_wait_seconds` (the bounded wait for a key fetch). */
async function supportsCheckWait(): Promise<boolean> {
  const built = (await import(
    pathToFileURL(join(PACKAGE_ROOT, "dist", "config", "service-config.js")).href
  )) as typeof import("../../src/config/service-config.js");
  const probe = { grpc: { listen: "127.0.0.1:0" } };
  built.parseServiceConfig("probe.yaml", probe);
  try {
    built.parseServiceConfig("probe.yaml", { ...probe, keys: { check_wait_seconds: 5 } });
    return true;
  } catch {
    return false;
  }
}

function metadataOf(response: CheckResponse): Record<string, unknown> {
  return (response.dynamicMetadata ?? {}) as Record<string, unknown>;
}

/** One Check; resolves with the response or the call's error, never rejects. */
function call(client: AuthorizationClient, request: CheckRequest): Promise<CheckResponse | ServiceError> {
  return new Promise((resolve) => {
    try {
      client.check(request, new Metadata(), { deadline: Date.now() + CALL_DEADLINE_MS }, (error, response) => resolve(error ?? response));
    } catch (error) {
      resolve(error as ServiceError); // a closed client throws at once
    }
  });
}

function isError(result: CheckResponse | ServiceError): result is ServiceError {
  return result instanceof Error;
}

/** A client with its own connection, so the workers' calls meet the shutdown on several. */
function newClient(target: string): AuthorizationClient {
  return new AuthorizationClient(target, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
}

/** Workers looping Checks over `kinds` until their first failed call, or a bound. */
class Load {
  readonly answers: Answer[] = [];
  readonly failures: Failure[] = [];
  readonly #clients: AuthorizationClient[] = [];
  readonly #progress: Array<() => void> = [];
  #sigtermSent = false;
  #stopped = false;
  #running = 0;
  readonly done: Promise<void>;

  constructor(target: string, kinds: readonly Kind[]) {
    const deadline = Date.now() + LOAD_TIME_LIMIT_MS;
    const workers: Array<Promise<void>> = [];
    for (let w = 0; w < WORKERS; w++) {
      const client = newClient(target);
      this.#clients.push(client);
      this.#running++;
      workers.push(
        this.#work(client, kinds, w, deadline).finally(() => {
          this.#running--;
          this.#notify();
        }),
      );
    }
    this.done = Promise.all(workers).then(() => undefined);
  }

  get sigtermSent(): boolean {
    return this.#sigtermSent;
  }

  markSigterm(): void {
    this.#sigtermSent = true;
  }

  /** Resolves once `count` answers have arrived, or every worker has stopped. */
  answered(count: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const check = () => {
        if (this.answers.length >= count || this.#running === 0) resolve();
        else this.#progress.push(check);
      };
      check();
    });
  }

  /** Records a Check's outcome; a failure ends the caller's loop. */
  record(kind: string, result: CheckResponse | ServiceError): boolean {
    const afterSigterm = this.#sigtermSent;
    if (isError(result)) {
      this.failures.push({ kind, code: result.code, details: result.details, afterSigterm });
      return false;
    }
    this.answers.push({
      kind,
      decisionId: String(metadataOf(result)["decision_id"]),
      grpc: result.status?.code,
      http: result.deniedResponse?.status?.code ?? null,
      reason: metadataOf(result)["reason"],
      afterSigterm,
    });
    this.#notify();
    return true;
  }

  /** Ends every loop after its current call, then closes the clients. */
  async close(): Promise<void> {
    this.#stopped = true;
    await this.done;
    for (const client of this.#clients) client.close();
  }

  async #work(client: AuthorizationClient, kinds: readonly Kind[], worker: number, deadline: number): Promise<void> {
    for (let i = 0; i < MAX_CHECKS_PER_WORKER && Date.now() < deadline && !this.#stopped; i++) {
      const kind = kinds[(worker + i) % kinds.length]!;
      if (!this.record(kind.name, await call(client, kind.request))) return;
    }
  }

  #notify(): void {
    const waiting = this.#progress.splice(0);
    for (const wake of waiting) wake();
  }
}

function wrongDecisions(answers: readonly Answer[], expected: ReadonlyMap<string, Expected>): object[] {
  return answers
    .filter((a) => {
      const e = expected.get(a.kind)!;
      return a.grpc !== e.grpc || a.http !== e.http || a.reason !== e.reason;
    })
    .map((a) => ({ ...a, expected: expected.get(a.kind) }));
}

let dir: string;
let keyA: TestKey;
let lateKey: TestKey;
let forged: TestKey;
let issuer: OidcServer;
const slowIssuers: OidcServer[] = [];
let served: ServedProcess | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-sigterm-"));
  [keyA, lateKey, forged] = await Promise.all([makeKey("ES256", "key-a"), makeKey("ES256", "key-late"), makeKey("ES256", "key-a")]);
  issuer = await startOidcServer({ keys: [keyA] });
  for (let i = 0; i < SLOW_ISSUERS; i++) slowIssuers.push(await startOidcServer({ keys: [keyA] }));
});

afterAll(async () => {
  killAllServed();
  await Promise.all([issuer, ...slowIssuers].filter(Boolean).map((s) => s.close()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("SIGTERM in the middle of a load run", () => {
  it("answers every Check it decided, right, refuses the rest as UNAVAILABLE, and exits 0", async () => {
    const dataFile = join(dir, "data.yaml");
    await writeFile(
      dataFile,
      JSON.stringify({
        audiences: [AUDIENCE],
        issuers: [issuer, ...slowIssuers].map((s) => ({ issuer: s.issuer, base_path: "/data" })),
      }),
    );
    // With the bounded wait for key fetches (default 0.15 s), the held Checks must outwait
    // the hold; without it they wait for the fetch anyway.
    const keys = (await supportsCheckWait()) ? { keys: { check_wait_seconds: 5 } } : {};
    const configFile = join(dir, "service.yaml");
    await writeFile(configFile, JSON.stringify({ grpc: { listen: "127.0.0.1:0" }, policy: { data: dataFile }, log: { level: "info" }, ...keys }));

    const token = await mint(keyA, issuer.issuer, { scopes: ["read:/"] });
    const badSignature = await mint({ ...forged, kid: keyA.kid }, issuer.issuer, { scopes: ["read:/"] });
    const request = (method: string, bearer?: string) =>
      buildCheckRequest({ target: "", host: "storage.example.org", method, path: "/data/file", token: bearer });
    const kinds: Kind[] = [
      { name: "allowed", request: request("GET", token), expected: { grpc: GrpcCode.OK, http: null, reason: "allowed" } },
      { name: "forbidden", request: request("PUT", token), expected: { grpc: GrpcCode.PERMISSION_DENIED, http: 403, reason: "scope_insufficient" } },
      { name: "no token", request: request("GET"), expected: { grpc: GrpcCode.UNAUTHENTICATED, http: 401, reason: "token_missing" } },
      { name: "bad signature", request: request("GET", badSignature), expected: { grpc: GrpcCode.UNAUTHENTICATED, http: 401, reason: "signature_invalid" } },
    ];
    const expected = new Map<string, Expected>([...kinds.map((k) => [k.name, k.expected] as const), ["held", kinds[0]!.expected]]);
    // Signed with a key each slow issuer publishes only later: an unknown kid, so a key fetch.
    const heldRequests = await Promise.all(slowIssuers.map(async (s) => request("GET", await mint(lateKey, s.issuer, { scopes: ["read:/"] }))));

    served = spawnServe(["--config", configFile]);
    const [, port] = await served.waitFor(/"msg":"listening on 127\.0\.0\.1:(\d+)"/);
    const target = `127.0.0.1:${port}`;
    const load = new Load(target, kinds);
    const heldClient = newClient(target);
    let release = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    try {
      await load.answered(WARM_UP_ANSWERS);
      expect(load.failures).toEqual([]);

      // Each slow issuer now publishes the late key but holds its JWKS answer.
      const fetchesArrived = slowIssuers.map((s) => {
        s.hold("jwks", gate);
        s.setKeys([keyA, lateKey]);
        return s.nextRequest("jwks");
      });
      const held = heldRequests.map((r) => call(heldClient, r));
      // A JWKS request at every slow issuer: every held Check is inside the service.
      await Promise.all(
        fetchesArrived.map((arrived, i) =>
          Promise.race([
            arrived,
            held[i]!.then((result) => {
              throw new Error(
                `held Check ${i} ended before its key fetch reached the issuer: ${isError(result) ? result.message : String(metadataOf(result)["reason"])}`,
              );
            }),
          ]),
        ),
      );

      load.markSigterm();
      const sigtermAt = Date.now();
      served.child.kill("SIGTERM");
      await served.waitFor(/"msg":"shutting down"/);
      release();
      const heldResults = await Promise.all(held);

      const exit = await Promise.race([served.closed, new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), EXIT_LIMIT_MS).unref())]);
      const exitMs = Date.now() - sigtermAt;
      await load.done;

      // The process drained and exited by itself, in time, with code 0.
      expect(exit).toEqual({ code: 0, signal: null });
      expect(exitMs).toBeLessThan(EXIT_LIMIT_MS);

      // The held Checks were in flight at SIGTERM; each was answered, allowed.
      const heldFailures = heldResults.filter(isError).map((e) => ({ code: e.code, details: e.details }));
      expect(heldFailures).toEqual([]);
      for (const result of heldResults) load.record("held", result);

      // No wrong decision, before or after SIGTERM.
      expect(wrongDecisions(load.answers, expected)).toEqual([]);

      // Calls the service never received fail UNAVAILABLE, and only once shutdown began.
      // Each worker was still looping at SIGTERM and ended at its first refused call.
      expect(load.failures.filter((f) => f.code !== status.UNAVAILABLE || !f.afterSigterm)).toEqual([]);
      expect(load.failures).toHaveLength(WORKERS);

      // Checks were answered after SIGTERM: draining, not cutting.
      expect(load.answers.filter((a) => a.afterSigterm).length).toBeGreaterThanOrEqual(SLOW_ISSUERS);

      // Every decision the service logged reached its client, with the logged reason.
      const logged = served.lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
      const decisionLines = logged.filter((l) => l["msg"] === "decision");
      const decisions = new Map(decisionLines.map((l) => [String(l["decision_id"]), l["reason"]]));
      const answered = new Map(load.answers.map((a) => [a.decisionId, a.reason]));
      expect(answered.size).toBe(load.answers.length); // decision ids are unique
      expect(decisions.size).toBe(decisionLines.length);
      expect(decisionLines.length).toBe(load.answers.length);
      expect([...decisions].filter(([id, reason]) => answered.get(id) !== reason)).toEqual([]);

      expect(logged.filter((l) => l["msg"] === "shutting down").map((l) => l["signal"])).toEqual(["SIGTERM"]);
      // The service decided the held Checks after it began shutting down.
      const shutdownLine = logged.findIndex((l) => l["msg"] === "shutting down");
      const heldIds = new Set(heldResults.filter((r): r is CheckResponse => !isError(r)).map((r) => String(metadataOf(r)["decision_id"])));
      const heldLines = logged.flatMap((l, i) => (l["msg"] === "decision" && heldIds.has(String(l["decision_id"])) ? [i] : []));
      expect(heldLines).toHaveLength(SLOW_ISSUERS);
      expect(heldLines.every((i) => i > shutdownLine)).toBe(true);
      expect(logged.filter((l) => Number(l["level"]) >= 50)).toEqual([]);
    } finally {
      release();
      if (served.child.exitCode === null && served.child.signalCode === null) served.child.kill("SIGKILL");
      await load.close();
      heldClient.close();
    }
  }, 60_000);
});
