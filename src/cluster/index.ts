export { ClusterMetrics } from "./cluster-metrics.js";
export { type ClusterReadiness, type WorkerReadiness, type WorkerSlotState, assessClusterReadiness } from "./cluster-readiness.js";
export { FetchRelay, RelayedFetch } from "./fetch-relay.js";
export { type LineSink, forwardLines } from "./forward-lines.js";
export { type ClusterOptions, type RunningCluster, startCluster } from "./primary.js";
export { RESTART_BACKOFF, restartDelay } from "./restart-backoff.js";
