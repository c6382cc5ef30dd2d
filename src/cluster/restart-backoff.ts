/**
 * Restarting a worker that exited unexpectedly: after `firstDelayMs`, doubled at each
 * further exit of the same slot, at most `maxDelayMs`; a worker that ran `stableAfterMs`
 * starts the doubling afresh.
 */
export const RESTART_BACKOFF = Object.freeze({ firstDelayMs: 500, maxDelayMs: 30_000, stableAfterMs: 60_000 });

/**
 * The delay before a slot's next worker, and how many exits in a row that makes, for a
 * worker that ran `ranMs` after `failuresBefore` exits in a row.
 */
export function restartDelay(failuresBefore: number, ranMs: number): { readonly delayMs: number; readonly failures: number } {
  const failures = (ranMs >= RESTART_BACKOFF.stableAfterMs ? 0 : failuresBefore) + 1;
  return { delayMs: Math.min(RESTART_BACKOFF.maxDelayMs, RESTART_BACKOFF.firstDelayMs * 2 ** (failures - 1)), failures };
}
