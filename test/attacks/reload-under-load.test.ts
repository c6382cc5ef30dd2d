import { Metadata, type ServiceError, credentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCheckRequest } from "../../src/cli/check.js";
import { AuthorizationClient, type CheckRequest, type CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth.js";
import type { ReloadEvent } from "../../src/server/service.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type ReloadableService, startReloadableService } from "../helpers/policy-files.js";
import { TEST_AUDIENCE, mint } from "../helpers/tokens.js";

// Issue 7: live reload under load. Workers loop Checks against the real service while the
// authorization data flips between two versions several times (edited in place and
// replaced by rename, with a broken version in between). The versions differ in what
// every request kind gets, and in their issuers (so each flip also swaps the key store):
//
//   kind                    version A (issuer 1 on /a)   version B (issuers 1 and 2 on /b)
//   issuer 1, GET /a/file   allowed                      path_outside_base
//   issuer 1, GET /b/file   path_outside_base            allowed
//   issuer 2, GET /b/file   issuer_untrusted             allowed
//   no token, GET /a/file   token_missing                token_missing
//
// Each answer names its generation (policy_revision in the dynamic metadata, and in the
// decision log line): no Check may fail, and every answer must be the one its generation
// gives, so no Check mixed two generations. With the verified-token cache off, every
// Check with a token is in flight across an await that leaves the event loop, so swaps
// land in the middle of Checks.

const WORKERS = 8;
const FLIPS = 8;
/** Answers received between two flips, so that each generation serves under load. */
const ANSWERS_PER_GENERATION = 150;
const MAX_CHECKS_PER_WORKER = 20_000;
const LOAD_TIME_LIMIT_MS = 60_000;
const CALL_DEADLINE_MS = 10_000;

type Version = "A" | "B";

interface Kind {
  readonly name: string;
  readonly request: CheckRequest;
  readonly expected: Readonly<Record<Version, string>>;
}

interface Answer {
  readonly kind: string;
  readonly reason: unknown;
  readonly revision: unknown;
  readonly decisionId: unknown;
}

interface Failure {
  readonly kind: string;
  readonly code: number;
  readonly details: string;
}

function metadataOf(response: CheckResponse): Record<string, unknown> {
  return (response.dynamicMetadata ?? {}) as Record<string, unknown>;
}

/** One Check; resolves with the response or the call's error, never rejects. */
function call(client: AuthorizationClient, request: CheckRequest): Promise<CheckResponse | ServiceError> {
  return new Promise((resolve) => {
    client.check(request, new Metadata(), { deadline: Date.now() + CALL_DEADLINE_MS }, (error, response) => resolve(error ?? response));
  });
}

/** Workers looping Checks over `kinds` until stopped or a bound is reached. */
class Load {
  readonly answers: Answer[] = [];
  readonly failures: Failure[] = [];
  readonly done: Promise<void>;
  readonly #clients: AuthorizationClient[] = [];
  readonly #waiting: Array<() => void> = [];
  #stopped = false;
  #running = 0;

  constructor(target: string, kinds: readonly Kind[]) {
    const deadline = Date.now() + LOAD_TIME_LIMIT_MS;
    const workers: Array<Promise<void>> = [];
    for (let w = 0; w < WORKERS; w++) {
      const client = new AuthorizationClient(target, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
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

  /** Resolves once `count` more answers than now have arrived, or every worker has stopped. */
  more(count: number): Promise<void> {
    const target = this.answers.length + count;
    return new Promise((resolve) => {
      const check = () => {
        if (this.answers.length >= target || this.#running === 0) resolve();
        else this.#waiting.push(check);
      };
      check();
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.done;
    for (const client of this.#clients) client.close();
  }

  async #work(client: AuthorizationClient, kinds: readonly Kind[], worker: number, deadline: number): Promise<void> {
    for (let i = 0; i < MAX_CHECKS_PER_WORKER && Date.now() < deadline && !this.#stopped; i++) {
      const kind = kinds[(worker + i) % kinds.length]!;
      const result = await call(client, kind.request);
      if (result instanceof Error) {
        this.failures.push({ kind: kind.name, code: result.code, details: result.details });
        return;
      }
      const metadata = metadataOf(result);
      this.answers.push({ kind: kind.name, reason: metadata["reason"], revision: metadata["policy_revision"], decisionId: metadata["decision_id"] });
      this.#notify();
    }
  }

  #notify(): void {
    for (const wake of this.#waiting.splice(0)) wake();
  }
}

let key: TestKey;
let first: OidcServer;
let second: OidcServer;
let svc: ReloadableService | undefined;

beforeAll(async () => {
  key = await makeKey("ES256", "key-1");
  first = await startOidcServer({ keys: [key] });
  second = await startOidcServer({ keys: [key], path: "/second" });
});

afterAll(async () => {
  await svc?.close();
  await Promise.all([first?.close(), second?.close()]);
});

describe("live reload under load", () => {
  it("answers every Check, each wholly by the generation it started with, across flips and a refused change", async () => {
    const versions: Record<Version, object> = {
      A: { audiences: [TEST_AUDIENCE], issuers: [{ issuer: first.issuer, base_path: "/a" }] },
      B: {
        audiences: [TEST_AUDIENCE],
        issuers: [
          { issuer: first.issuer, base_path: "/b" },
          { issuer: second.issuer, base_path: "/b" },
        ],
      },
    };
    // Without the verified-token cache every Check awaits a signature check (WebCrypto, in
    // libuv's thread pool), so Checks are in flight across the swaps.
    svc = await startReloadableService(versions.A, { tokens: { cache_entries: 0 } });
    const target = svc.target;
    const [token1, token2] = await Promise.all([mint(key, first.issuer), mint(key, second.issuer)]);
    const request = (path: string, token?: string) => buildCheckRequest({ target, host: "storage.example.org", method: "GET", path, token });
    const kinds: Kind[] = [
      { name: "issuer 1 on /a", request: request("/a/file", token1), expected: { A: "allowed", B: "path_outside_base" } },
      { name: "issuer 1 on /b", request: request("/b/file", token1), expected: { A: "path_outside_base", B: "allowed" } },
      { name: "issuer 2 on /b", request: request("/b/file", token2), expected: { A: "issuer_untrusted", B: "allowed" } },
      { name: "no token", request: request("/a/file"), expected: { A: "token_missing", B: "token_missing" } },
    ];
    const revisions = new Map<string, Version>([[svc.service.revision, "A"]]);
    const events: ReloadEvent[] = [];
    const unsubscribe = svc.service.onReload((event) => events.push(event));

    const load = new Load(target, kinds);
    const started = Date.now();
    try {
      await load.more(ANSWERS_PER_GENERATION);
      let current: Version = "A";
      for (let flip = 1; flip <= FLIPS; flip++) {
        if (flip === FLIPS / 2) {
          // A broken version in the middle: refused, the current generation goes on.
          const refused = svc.nextReload((e) => e.outcome === "refused");
          await svc.replaceData("audiences: [\nissuers: {");
          expect(await refused).toMatchObject({ outcome: "refused", file: svc.dataFile });
          await load.more(ANSWERS_PER_GENERATION);
        }
        const next: Version = current === "A" ? "B" : "A";
        const known = [...revisions].find(([, v]) => v === next)?.[0];
        const swapped = svc.nextReload((e) => e.outcome === "reloaded" && (known === undefined || e.revision === known));
        if (flip % 2 === 0) await svc.writeDataInPlace(versions[next]);
        else await svc.replaceData(versions[next]);
        const event = await swapped;
        expect(event).toMatchObject({ outcome: "reloaded", keys: "replaced" });
        revisions.set(event.revision, next);
        current = next;
        await load.more(ANSWERS_PER_GENERATION);
      }
    } finally {
      await load.stop();
      unsubscribe();
    }
    const elapsedMs = Date.now() - started;

    // No Check failed.
    expect(load.failures).toEqual([]);
    expect(revisions.size).toBe(2);

    // Every answer is the one the generation it names gives.
    const expected = new Map(kinds.map((k) => [k.name, k.expected]));
    const wrong = load.answers.filter((a) => {
      const version = revisions.get(String(a.revision));
      return version === undefined || expected.get(a.kind)![version] !== a.reason;
    });
    expect(wrong.slice(0, 10)).toEqual([]);
    // Both generations served under load.
    for (const [revision] of revisions) {
      expect(load.answers.filter((a) => a.revision === revision).length).toBeGreaterThan(ANSWERS_PER_GENERATION);
    }

    // The decision log agrees: each Check was logged by the generation that answered it.
    const logged = new Map(svc.logs.filter((l) => l["msg"] === "decision").map((l) => [l["decision_id"], l["policy_revision"]]));
    expect(logged.size).toBe(load.answers.length);
    expect(load.answers.filter((a) => logged.get(a.decisionId) !== a.revision)).toEqual([]);

    // Every flip reloaded, the broken version was refused, and no key store was left open:
    // each flip's old store closed once its Checks had answered.
    expect(events.filter((e) => e.outcome === "reloaded")).toHaveLength(FLIPS);
    expect(events.filter((e) => e.outcome === "refused").length).toBeGreaterThanOrEqual(1);
    expect(svc.logs.filter((l) => l["msg"] === "key store of a retired policy closed (no more fetches for it)")).toHaveLength(FLIPS);
    expect(svc.logs.filter((l) => Number(l["level"]) >= 50 && !String(l["msg"]).startsWith("policy reload refused:"))).toEqual([]);
    expect(elapsedMs).toBeLessThan(LOAD_TIME_LIMIT_MS);
  }, 90_000);
});
