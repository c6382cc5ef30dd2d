import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { jwksOf } from "./keys.js";
import { AUDIENCE, type Workload } from "./workloads.js";

/** scitokens-authz's default scope → method rules (docs/semantics.md §9), which the Rego side needs spelled out. */
const VERBS: Readonly<Record<string, readonly string[]>> = {
  read: ["GET", "HEAD", "OPTIONS", "PROPFIND"],
  "storage.read": ["GET", "HEAD", "OPTIONS", "PROPFIND"],
  write: ["PUT", "POST", "PATCH", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK"],
  "storage.modify": ["PUT", "POST", "PATCH", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK"],
  "storage.create": ["PUT", "MKCOL"],
  "storage.stage": [],
};

const REALM = "scitokens-authz";

/**
 * Writes the workload's authorization data for both servers into `dir`: for
 * scitokens-authz a data file whose issuers take their keys from jwks_file (no network),
 * for OPA-Envoy the same issuers, keys, audience and rules as data.bench. Returns the two
 * data files.
 */
export function writeServerData(workload: Workload, dir: string): { ours: string; opa: string } {
  const issuers = workload.issuers.map((issuer, i) => {
    const jwksFile = `issuer-${i}.jwks.json`;
    writeFileSync(join(dir, jwksFile), jwksOf(issuer.key));
    return { issuer: issuer.iss, base_path: issuer.basePaths.length === 1 ? issuer.basePaths[0] : issuer.basePaths, jwks_file: jwksFile };
  });
  const ours = join(dir, "data.yaml");
  const data: Record<string, unknown> = { audiences: [AUDIENCE], issuers };
  if (Object.keys(workload.namedScopes).length > 0) data["named_scopes"] = workload.namedScopes;
  writeFileSync(ours, `# Written by the benchmark (npm run bench): workload ${workload.name}.\n${stringify(data, { lineWidth: 0 })}`);
  const opa = join(dir, "data.json");
  writeFileSync(
    opa,
    JSON.stringify({
      bench: {
        audience: AUDIENCE,
        realm: REALM,
        verbs: VERBS,
        issuers: Object.fromEntries(workload.issuers.map((issuer) => [issuer.iss, { jwks: jwksOf(issuer.key), base_path: issuer.basePaths }])),
        named_scopes: workload.namedScopes,
      },
    }),
  );
  return { ours, opa };
}
