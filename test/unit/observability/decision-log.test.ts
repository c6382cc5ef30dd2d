import { existsSync, statSync } from "node:fs";
import { mkdtemp, readFile, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildPolicyInput } from "../../../src/envoy/policy-input.js";
import { type DecisionEvent, DecisionLog, buildDecisionRecord } from "../../../src/observability/decision-log.js";
import { createLogger } from "../../../src/observability/logger.js";

// The decision log writer: lines appended after the Check, reopened on rotation, and a
// file that cannot be written costing one error line a minute, never a Check.

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-authz-decision-log-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function capture(): { logger: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger("info", sink), lines };
}

function event(id: string, method = "GET"): DecisionEvent {
  return {
    decision: { id, reason: "token_missing", tokenPresented: false },
    response: { deniedResponse: { status: { code: 401 }, headers: [], body: "" }, dynamicMetadata: {} } as never,
    route: null,
    method,
    path: "/data/x",
    input: buildPolicyInput({
      method,
      host: "storage.example.org",
      headers: {},
      path: "/data/x",
      segments: ["data", "x"],
      destination: null,
      destinationRemote: false,
      route: null,
      token: { state: "absent" },
    }),
    durationSeconds: 0.0001,
  };
}

/** One turn of the event loop: the log's queued flush (a setImmediate) has run after it. */
const turn = () => new Promise((resolve) => setImmediate(resolve));

/** Resolves once `condition` holds (polled, state-driven), or fails after 5 s. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let polls = 0; polls < 1_000; polls++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`not within 5 s: ${what}`);
}

describe("buildDecisionRecord", () => {
  it("states a denial with its HTTP status and the token state", () => {
    const record = buildDecisionRecord(event("d-1"), "abcdef012345", Date.UTC(2025, 0, 2, 3, 4, 5));
    expect(record).toEqual({
      time: "2025-01-02T03:04:05.000Z",
      decision_id: "d-1",
      policy_revision: "abcdef012345",
      route: null,
      method: "GET",
      host: "storage.example.org",
      path: "/data/x",
      segments: ["data", "x"],
      destination: null,
      destination_remote: false,
      token: { state: "absent" },
      decision: "deny",
      reason: "token_missing",
      status: 401,
      scope: null,
    });
  });
});

describe("DecisionLog", () => {
  it("appends one JSON line per record, and a new file after reopen (rotation)", async () => {
    const file = join(dir, "d.jsonl");
    const { logger } = capture();
    const log = new DecisionLog({ file, logger });
    log.record(event("a"), "r1");
    log.record(event("b"), "r1");
    // Both lines go out in one write, once the file is open.
    await until(() => existsSync(file) && statSync(file).size > 0, "the first lines written");
    await rename(file, `${file}.1`);
    log.reopen();
    log.record(event("c"), "r2");
    await log.close();
    const rotated = (await readFile(`${file}.1`, "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).decision_id);
    const current = (await readFile(file, "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).decision_id);
    expect(rotated).toEqual(["a", "b"]);
    expect(current).toEqual(["c"]);
  });

  it("drops records of a file that cannot be written with one error line a minute, and retries", async () => {
    let now = 1_000_000;
    const { logger, lines } = capture();
    const log = new DecisionLog({ file: join(dir, "missing", "d.jsonl"), logger, now: () => now });
    const errorLines = () => lines.filter((l) => l["level"] === 50);
    await until(() => errorLines().length === 1, "the open failure reported");
    for (let i = 0; i < 5; i++) {
      log.record(event(`x${i}`), "r1");
      await turn();
    }
    expect(errorLines()).toHaveLength(1);
    now += 61_000;
    log.record(event("y"), "r1");
    await turn();
    // A minute later: the drop is reported again and the file is opened again, which fails again.
    await until(() => errorLines().length >= 2, "the next report a minute later");
    log.record(event("z"), "r1");
    await turn();
    const errors = errorLines();
    expect(errors.length).toBeGreaterThanOrEqual(2);
    expect(errors.length).toBeLessThanOrEqual(3);
    expect(errors[0]!["code"]).toBe("ENOENT");
    expect(JSON.stringify(lines)).not.toContain("x1");
    await log.close();
  });
});
