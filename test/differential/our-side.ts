import { Metadata, credentials } from "@grpc/grpc-js";
import { buildCheckRequest } from "../../src/cli/check.js";
import { AuthorizationClient, type CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth.js";
import type { TestKey } from "../helpers/keys.js";
import { type TestService, reasonOf, responseHeader, startTestService } from "../helpers/service.js";
import { mint } from "../helpers/tokens.js";
import { AUDIENCE_CONFIGS, type AudienceConfig, type DiffCase, PROFILES, methodOf } from "./generate-cases.js";

/** The service's decision, reduced to what the comparison and the classifiers need. */
export interface OurResult {
  allowed: boolean;
  /** The reason code (SEMANTICS §12) from the dynamic metadata. */
  reason: string;
  /** The granting scope (`x-scitokens-scope`) of an allowed Check. */
  scope?: string;
}

/** The claims of a case's token, minted `nowSeconds`. */
export function claimsOf(c: DiffCase, issuer: string, nowSeconds: number): Record<string, unknown> {
  const at = (offset: number | undefined): number | undefined => (offset === undefined ? undefined : nowSeconds + offset);
  return {
    iss: issuer,
    sub: "diff-user",
    ...(c.aud !== undefined ? { aud: c.aud } : {}),
    ...(c.scopes.length > 0 ? { [c.scopeClaim]: c.scopeClaim === "scp" ? [...c.scopes] : c.scopes.join(" ") } : {}),
    ...(c.groups ? { "wlcg.groups": ["/diff"] } : {}),
    ...Object.fromEntries(Object.entries({ iat: at(c.times.iat), nbf: at(c.times.nbf), exp: at(c.times.exp) }).filter(([, v]) => v !== undefined)),
    jti: `diff-${c.id}`,
    ...(PROFILES[c.profile].mint === "scitokens2" ? { ver: "scitoken:2.0" } : {}),
    ...(PROFILES[c.profile].mint === "wlcg1" ? { "wlcg.ver": "1.0" } : {}),
    ...PROFILES[c.profile].claims,
  };
}

/** Mints the case's token with the issuer's key: exactly {@link claimsOf}, nothing else. */
export function mintCase(c: DiffCase, key: TestKey, issuer: string, nowSeconds: number): Promise<string> {
  const claims = claimsOf(c, issuer, nowSeconds);
  const absent = Object.fromEntries(["sub", "iat", "exp", "jti", "aud", "ver", "wlcg.ver"].map((name) => [name, undefined]));
  return mint(key, issuer, {
    profile: PROFILES[c.profile].mint,
    scopes: [],
    audience: undefined,
    extraClaims: { ...absent, ...claims },
  });
}

/**
 * The service under test, as Envoy reaches it: one in-process instance per audience
 * configuration (all trusting the one loopback issuer with `base_path: /`), and one gRPC
 * client each, reused for every Check.
 */
export class OurSide {
  private constructor(private readonly services: Map<AudienceConfig, { service: TestService; client: AuthorizationClient }>) {}

  static async start(issuer: string): Promise<OurSide> {
    const services = new Map<AudienceConfig, { service: TestService; client: AuthorizationClient }>();
    try {
      for (const config of Object.keys(AUDIENCE_CONFIGS) as AudienceConfig[]) {
        const service = await startTestService({ audiences: [...AUDIENCE_CONFIGS[config]], issuers: [{ issuer, base_path: "/" }] });
        services.set(config, { service, client: new AuthorizationClient(service.target, credentials.createInsecure()) });
      }
    } catch (error) {
      await new OurSide(services).close();
      throw error;
    }
    return new OurSide(services);
  }

  /** One Check: GET for read, PUT for write, the case's path as Envoy's `:path`. */
  async check(c: DiffCase, token: string): Promise<OurResult> {
    const entry = this.services.get(c.audienceConfig);
    if (entry === undefined) throw new Error(`no service for audience configuration ${c.audienceConfig}`);
    const request = buildCheckRequest({ target: entry.service.target, host: "storage.example.org", method: methodOf(c), path: c.path, token });
    const response = await new Promise<CheckResponse>((resolve, reject) => {
      entry.client.check(request, new Metadata(), { deadline: Date.now() + 10_000 }, (error, answer) => (error ? reject(error) : resolve(answer)));
    });
    const allowed = response.status?.code === 0;
    const scope = allowed ? responseHeader(response, "x-scitokens-scope") : undefined;
    return { allowed, reason: String(reasonOf(response)), ...(scope !== undefined ? { scope } : {}) };
  }

  async close(): Promise<void> {
    for (const { service, client } of this.services.values()) {
      client.close();
      await service.close();
    }
  }
}
