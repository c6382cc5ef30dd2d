import { type Readiness, type ReadinessInput, assessReadiness, nextStaleAt } from "../observability/readiness.js";

// setTimeout takes at most 2^31 - 1 ms; a later deadline is looked at again then. At least
// a second apart, so that a clock that does not move (a test's) cannot make it spin.
const MAX_TIMER_MS = 2 ** 31 - 1;
const MIN_TIMER_MS = 1000;

/**
 * Readiness as it changes: assessed from the service's state whenever something that can
 * change it happens (a key fetch ends, a reload ends, shutdown begins, /readyz is asked)
 * and when the first usable keys are due to pass `keys.max_stale_seconds`. Listeners (the
 * gRPC health service) hear each change of ready ↔ not ready, not every assessment.
 */
export class ReadinessMonitor {
  readonly #input: () => ReadinessInput;
  readonly #listeners = new Set<(ready: boolean) => void>();
  // Not ready until assessed otherwise (the gRPC health service starts NOT_SERVING).
  #ready = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(input: () => ReadinessInput) {
    this.#input = input;
  }

  /** Readiness now; tells the listeners when it differs from the last assessment. */
  assess(): Readiness {
    const input = this.#input();
    const readiness = assessReadiness(input);
    this.#schedule(input);
    if (readiness.ready !== this.#ready) {
      this.#ready = readiness.ready;
      for (const listener of this.#listeners) listener(readiness.ready);
    }
    return readiness;
  }

  /** Calls `listener` with every change from now on; returns the unsubscribe. */
  onChange(listener: (ready: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops the staleness timer; later assessments schedule none. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(input: ReadinessInput): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const at = this.#closed ? null : nextStaleAt(input);
    if (at === null) return;
    this.#timer = setTimeout(() => this.assess(), Math.min(MAX_TIMER_MS, Math.max(MIN_TIMER_MS, at - input.nowMs)));
    this.#timer.unref();
  }
}
