/**
 * Readiness decided outside this process, which the gRPC health service also follows: in
 * a cluster worker, whether every worker is ready (the primary opens and closes it), so
 * that each worker's `grpc.health.v1` answers what the primary's /readyz answers. A
 * worker's health is SERVING only when it is ready itself and the gate is open.
 */
export class ReadinessGate {
  #open: boolean;
  readonly #listeners = new Set<() => void>();

  constructor(open = false) {
    this.#open = open;
  }

  get open(): boolean {
    return this.#open;
  }

  /** Opens or closes the gate; listeners hear a change, not a repeat. */
  set(open: boolean): void {
    if (open === this.#open) return;
    this.#open = open;
    for (const listener of this.#listeners) listener();
  }

  /** Calls `listener` after every change; returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
