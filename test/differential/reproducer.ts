import { AUDIENCE_CONFIGS, type DiffCase, methodOf } from "./generate-cases.js";
import { describeRef } from "./oracle.js";
import { claimsOf } from "./our-side.js";
import type { Outcome } from "./run-case.js";
import { semanticsDecision } from "./semantics-model.js";

/**
 * Shrinks a failing outcome: drops scope entries one by one, then the optional extras
 * (groups, odd times), keeping each step only while `failing` still holds for the new
 * outcome. `rerun` runs a case on both sides again.
 */
export async function shrink(outcome: Outcome, failing: (o: Outcome) => boolean, rerun: (c: DiffCase) => Promise<Outcome>): Promise<Outcome> {
  let current = outcome;
  const attempt = async (candidate: DiffCase): Promise<boolean> => {
    const next = await rerun(candidate);
    if (!failing(next)) return false;
    current = next;
    return true;
  };
  for (let i = 0; i < current.case.scopes.length; ) {
    const scopes = current.case.scopes.filter((_, index) => index !== i);
    if (!(await attempt({ ...current.case, scopes }))) i++;
  }
  if (current.case.groups) await attempt({ ...current.case, groups: false });
  if (current.case.times.label !== "valid") await attempt({ ...current.case, times: { label: "valid", iat: -10, nbf: -10, exp: 600 } });
  return current;
}

/**
 * A self-contained description of a case: the claims, the request, both results.
 * `refLabel` names the reference implementation; `origin` says where the case comes from,
 * e.g. `DIFF_SEED=1`, so that it can be replayed.
 */
export function describeOutcome(o: Outcome, issuer: string, refLabel: string, origin: string): string {
  const c = o.case;
  return [
    `case #${c.id} (${origin}), profile ${c.profile}, times: ${c.times.label}`,
    `  claims (iat/nbf/exp in seconds relative to minting): ${JSON.stringify(claimsOf(c, issuer, 0))}`,
    `  accepted audiences (service and the reference's enforcer): ${JSON.stringify(AUDIENCE_CONFIGS[c.audienceConfig])}`,
    `  request: ${methodOf(c)} ${JSON.stringify(c.path)}  (reference: authz "${c.authz}", resource ${JSON.stringify(c.path)})`,
    `  scitokens-authz: ${o.ours.allowed ? "ALLOW" : "DENY"} reason=${o.ours.reason}${o.ours.scope !== undefined ? ` scope=${o.ours.scope}` : ""}`,
    `  ${refLabel}: ${describeRef(o.ref)}`,
    `  SEMANTICS §6/§7 for these scopes and path (semantics-model.ts): ${semanticsDecision(c)}`,
  ].join("\n");
}
