import { describe, expect, it } from "vitest";
import { type WorkerSlotState, assessClusterReadiness } from "../../../src/cluster/cluster-readiness.js";
import type { Readiness } from "../../../src/observability/readiness.js";

// Issue 11, readiness across workers: /readyz of the primary is ready only when every
// worker is, and says why per worker when not.

const ready: Readiness = { ready: true, status: "ready", policy_revision: "0123456789ab", issuers: [] };
const keysUnusable: Readiness = { ready: false, status: "issuer_keys_unusable", policy_revision: "0123456789ab", issuers: [] };
const newerRevision: Readiness = { ...ready, policy_revision: "ba9876543210" };

function slot(worker: number, state: WorkerSlotState["state"], readiness: Readiness | null): WorkerSlotState {
  return { worker, pid: state === "restarting" ? null : 1000 + worker, state, readiness };
}

describe("assessClusterReadiness", () => {
  it.each([
    ["every worker ready", [slot(1, "running", ready), slot(2, "running", ready)], false, "ready", "0123456789ab"],
    ["a worker still starting", [slot(1, "running", ready), slot(2, "starting", null)], false, "starting", "0123456789ab"],
    ["a worker waiting to be restarted", [slot(1, "running", ready), slot(2, "restarting", null)], false, "worker_unavailable", "0123456789ab"],
    ["a running worker that did not answer", [slot(1, "running", null), slot(2, "running", ready)], false, "worker_unavailable", "0123456789ab"],
    ["a worker without usable keys", [slot(1, "running", ready), slot(2, "running", keysUnusable)], false, "issuer_keys_unusable", "0123456789ab"],
    ["workers on two revisions (a reload under way)", [slot(1, "running", ready), slot(2, "running", newerRevision)], false, "ready", null],
    ["shutting down", [slot(1, "running", ready), slot(2, "stopped", null)], true, "shutting_down", "0123456789ab"],
  ] as const)("%s", (_name, slots, closing, status, revision) => {
    const readiness = assessClusterReadiness({ closing, slots });
    expect(readiness.status).toBe(status);
    expect(readiness.ready).toBe(status === "ready");
    expect(readiness.policy_revision).toBe(revision);
    expect(readiness.workers.map((w) => w.worker)).toEqual(slots.map((s) => s.worker));
  });

  it("gives each worker's own answer, and a reason for each one that has none", () => {
    const readiness = assessClusterReadiness({
      closing: false,
      slots: [slot(1, "running", keysUnusable), slot(2, "restarting", null), slot(3, "starting", null)],
    });
    expect(readiness.workers).toEqual([
      { worker: 1, pid: 1001, ...keysUnusable },
      { worker: 2, pid: null, ready: false, status: "worker_unavailable", detail: "the worker exited unexpectedly and is being restarted" },
      { worker: 3, pid: 1003, ready: false, status: "starting", detail: "the worker is starting" },
    ]);
  });
});
