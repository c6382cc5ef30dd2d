import { describe, expect, it } from "vitest";
import { pollDelayMs } from "../../../src/bundle/downloader.js";

// Issue 7, bundle polling: each delay is drawn at random between the configured bounds
// (OPA's min_delay_seconds and max_delay_seconds), so that replicas do not poll in step.

describe("pollDelayMs", () => {
  it.each([
    [0, 60_000],
    [0.5, 90_000],
    [0.999_999_9, 120_000],
  ])("random %d gives %d ms between 60 and 120 s", (random, expected) => {
    expect(pollDelayMs(60_000, 120_000, random)).toBe(expected);
  });

  it("spreads replicas over the whole interval", () => {
    const delays = Array.from({ length: 1000 }, (_, i) => pollDelayMs(60_000, 120_000, i / 1000));
    expect(Math.min(...delays)).toBe(60_000);
    expect(Math.max(...delays)).toBeGreaterThan(119_900);
    expect(new Set(delays.map((d) => Math.floor(d / 10_000))).size).toBe(6);
  });

  it("is the fixed delay when the bounds are equal", () => {
    expect(pollDelayMs(30_000, 30_000, 0.7)).toBe(30_000);
  });
});
