import { Metadata, credentials } from "@grpc/grpc-js";
import { AuthorizationClient, type CheckRequest, type CheckResponse } from "../src/gen/envoy/service/auth/v3/external_auth.js";
import type { BenchRequest, Expected } from "./workloads.js";

/** gRPC status OK in CheckResponse.status: the request is allowed. */
const GRPC_OK = 0;
const IN_FLIGHT = 32;

/** A decision as the comparison sees it: allowed (200) or the denied response's HTTP status; a gRPC error is its own outcome. */
export type Outcome = Expected | { readonly error: string };

function outcomeOf(response: CheckResponse): Outcome {
  if (response.status?.code === GRPC_OK) return { allowed: true, status: 200 };
  return { allowed: false, status: response.deniedResponse?.status?.code ?? 0 };
}

const show = (o: Outcome) => ("error" in o ? `gRPC error ${o.error}` : o.allowed ? "allowed" : `denied ${o.status}`);
const same = (a: Outcome, b: Outcome) => show(a) === show(b);

/** Sends every request once to `target` and returns the outcomes, in order. */
export async function decide(target: string, requests: readonly CheckRequest[]): Promise<Outcome[]> {
  const client = new AuthorizationClient(target, credentials.createInsecure());
  const outcomes: Outcome[] = new Array(requests.length);
  let next = 0;
  const worker = async () => {
    while (next < requests.length) {
      const i = next++;
      outcomes[i] = await new Promise<Outcome>((resolve) => {
        client.check(requests[i]!, new Metadata(), { deadline: Date.now() + 30_000 }, (error, response) => {
          resolve(error ? { error: `${error.code} ${error.details}` } : outcomeOf(response));
        });
      });
    }
  };
  try {
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  } finally {
    client.close();
  }
  return outcomes;
}

export interface Agreement {
  readonly requests: number;
  /** Requests per kind and outcome, e.g. `{"token_expired": {"denied 401": 100}}`. */
  readonly outcomes: Record<string, Record<string, number>>;
  /** The first disagreements (with each other or with the expected outcome); the token is never shown. */
  readonly problems: string[];
  readonly disagreements: number;
}

/**
 * Compares the two servers' outcomes with each other and with what the workload expects,
 * request by request. Any difference is a problem: the measurement would compare
 * different work.
 */
export function compare(requests: readonly BenchRequest[], ours: readonly Outcome[], theirs: readonly Outcome[]): Agreement {
  const outcomes: Record<string, Record<string, number>> = {};
  const problems: string[] = [];
  let disagreements = 0;
  requests.forEach((r, i) => {
    const a = ours[i]!;
    const b = theirs[i]!;
    const byKind = outcomes[r.kind] ?? {};
    byKind[show(a)] = (byKind[show(a)] ?? 0) + 1;
    outcomes[r.kind] = byKind;
    if (!same(a, b) || !same(a, r.expect)) {
      disagreements += 1;
      if (problems.length < 10) {
        problems.push(`request ${i} (${r.kind}: ${r.method} ${r.path}): scitokens-authz ${show(a)}, OPA-Envoy ${show(b)}, expected ${show(r.expect)}`);
      }
    }
  });
  return { requests: requests.length, outcomes, problems, disagreements };
}
