/**
 * The program of a cluster worker (src/cluster/primary.ts forks it with `node:cluster`);
 * not a command of its own.
 */
import { runWorker } from "./worker.js";

runWorker().catch((error: unknown) => {
  process.stderr.write(`scitokens-authz worker: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
