import { AUDIENCE, type DiffCase } from "./generate-cases.js";

/** A case with the service's usual token: SciTokens 2, our audience, read:/data, valid now. */
export function exampleCase(overrides: Partial<DiffCase>): DiffCase {
  return {
    id: 0,
    profile: "scitokens2",
    aud: AUDIENCE,
    scopes: ["read:/data"],
    scopeClaim: "scope",
    groups: false,
    times: { label: "valid", iat: -10, nbf: -10, exp: 600 },
    audienceConfig: "single",
    authz: "read",
    path: "/data/file.h5",
    ...overrides,
  };
}

export interface ClassExample {
  name: string;
  case: DiffCase;
  /** The divergence class the disagreement belongs to; `null`: both sides agree. */
  expected: string | null;
}
