import type { Readiness } from "../observability/readiness.js";

/** What the primary knows of one worker slot when /readyz is asked. */
export interface WorkerSlotState {
  /** The slot, 1 to N (a restarted worker keeps its slot). */
  readonly worker: number;
  /** The pid of the process in the slot, null while none runs (waiting to restart). */
  readonly pid: number | null;
  /**
   * `starting`: forked, not yet listening; `running`: listening; `restarting`: it exited
   * unexpectedly and the next one waits for its backoff; `stopped`: it drained and exited
   * (shutdown).
   */
  readonly state: "starting" | "running" | "restarting" | "stopped";
  /** Its own readiness as it answered just now; null when it did not answer in time. */
  readonly readiness: Readiness | null;
}

/** One worker's part in the cluster's /readyz body. */
export type WorkerReadiness =
  | (Readiness & { readonly worker: number; readonly pid: number | null })
  | {
      readonly worker: number;
      readonly pid: number | null;
      readonly ready: false;
      readonly status: "starting" | "worker_unavailable";
      readonly detail: string;
    };

/** The /readyz body of a service running several workers. */
export interface ClusterReadiness {
  readonly ready: boolean;
  /**
   * `ready` (every worker is), `starting`, `shutting_down`, `worker_unavailable` (a
   * worker is being restarted or does not answer), or the first not-ready worker's own
   * status (`issuer_keys_unusable`).
   */
  readonly status: Readiness["status"] | "worker_unavailable";
  /** The revision every worker that answered is on; null while they differ (a reload under way) or none is loaded. */
  readonly policy_revision: string | null;
  readonly workers: readonly WorkerReadiness[];
}

/**
 * Ready when the service is not shutting down and every worker slot has a running worker
 * that answered ready; otherwise a reason per worker. Pure: the primary gathers the
 * workers' answers first.
 */
export function assessClusterReadiness(input: { readonly closing: boolean; readonly slots: readonly WorkerSlotState[] }): ClusterReadiness {
  const workers = input.slots.map(workerReadiness);
  const revisions = new Set(workers.flatMap((w) => ("policy_revision" in w ? [w.policy_revision] : [])));
  const revision = revisions.size === 1 ? [...revisions][0]! : null;
  const firstNotReady = workers.find((w) => !w.ready);
  const status: ClusterReadiness["status"] = input.closing
    ? "shutting_down"
    : firstNotReady === undefined
      ? "ready"
      : workers.some((w) => w.status === "starting")
        ? "starting"
        : workers.some((w) => w.status === "worker_unavailable")
          ? "worker_unavailable"
          : firstNotReady.status;
  return { ready: status === "ready", status, policy_revision: revision, workers };
}

function workerReadiness(slot: WorkerSlotState): WorkerReadiness {
  const { worker, pid } = slot;
  if (slot.state === "restarting") {
    return { worker, pid, ready: false, status: "worker_unavailable", detail: "the worker exited unexpectedly and is being restarted" };
  }
  if (slot.state === "stopped") return { worker, pid, ready: false, status: "worker_unavailable", detail: "the worker has stopped (shutdown)" };
  if (slot.readiness === null) {
    return slot.state === "starting"
      ? { worker, pid, ready: false, status: "starting", detail: "the worker is starting" }
      : { worker, pid, ready: false, status: "worker_unavailable", detail: "the worker did not answer in time" };
  }
  return { worker, pid, ...slot.readiness };
}
