import { describe, expect, it } from "vitest";
import { restartDelay } from "../../../src/cluster/restart-backoff.js";

// Issue 11: a worker that dies is restarted with a backoff, not in a tight loop.

describe("restartDelay", () => {
  it.each([
    ["the first exit", 0, 5_000, 500, 1],
    ["the second in a row", 1, 5_000, 1_000, 2],
    ["the third in a row", 2, 100, 2_000, 3],
    ["the seventh in a row: at the cap", 6, 100, 30_000, 7],
    ["the fiftieth in a row: still at the cap", 49, 100, 30_000, 50],
    ["an exit after a minute of running: afresh", 6, 60_000, 500, 1],
  ])("%s", (_name, failuresBefore, ranMs, delayMs, failures) => {
    expect(restartDelay(failuresBefore, ranMs)).toEqual({ delayMs, failures });
  });
});
