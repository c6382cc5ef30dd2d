/**
 * Lets a repeated log line through at most once per interval and key, counting what it
 * held back, so a fault hit by every request (an unknown route, say) shows in the log
 * without flooding it. Keys are bounded: past `maxKeys` the oldest is forgotten.
 */
export class LogLimiter {
  readonly #intervalMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  readonly #seen = new Map<string, { at: number; suppressed: number }>();

  constructor(options: { intervalMs: number; maxKeys?: number; now?: () => number }) {
    this.#intervalMs = options.intervalMs;
    this.#maxKeys = options.maxKeys ?? 1000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * `null` when the line for `key` was let through less than an interval ago (counted
   * as suppressed); otherwise the number of lines suppressed since then, to log now.
   */
  admit(key: string): number | null {
    const now = this.#now();
    const entry = this.#seen.get(key);
    if (entry !== undefined && now - entry.at < this.#intervalMs) {
      entry.suppressed += 1;
      return null;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.#seen.delete(key);
    if (this.#seen.size >= this.#maxKeys) this.#seen.delete(this.#seen.keys().next().value!);
    this.#seen.set(key, { at: now, suppressed: 0 });
    return suppressed;
  }
}
