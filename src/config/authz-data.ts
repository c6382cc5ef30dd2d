import { dirname, resolve } from "node:path";
import { z } from "zod";
import { CONTROL_CHARACTER, normalizeConfiguredPath } from "../paths/normalize.js";
import { REASON_CODES } from "../reasons/index.js";
import { keyUrlProblem } from "../token/keys/key-url.js";
import { ConfigError } from "./config-error.js";
import { readYamlFile, validate } from "./read-yaml.js";

/** Path-style authorizations (SEMANTICS §6) and their default methods (§9). */
export const DEFAULT_VERBS = {
  read: ["GET", "HEAD", "OPTIONS", "PROPFIND"],
  write: ["PUT", "POST", "PATCH", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK"],
  "storage.read": ["GET", "HEAD", "OPTIONS", "PROPFIND"],
  "storage.create": ["PUT", "MKCOL"],
  "storage.modify": ["PUT", "POST", "PATCH", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK"],
  "storage.stage": [],
} as const satisfies Record<string, readonly string[]>;

export type PathAuthz = keyof typeof DEFAULT_VERBS;
export const PATH_AUTHZ = Object.keys(DEFAULT_VERBS) as PathAuthz[];

/** Asymmetric JWS algorithms an issuer may be configured with (none and HMAC never). */
export const ASYMMETRIC_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"] as const;
export const DEFAULT_ALGORITHMS = ["RS256", "ES256"] as const;

/** True when a URL may be fetched for keys: HTTPS, or HTTP to a loopback host (SEMANTICS §3). */
export function isFetchableUrl(value: string): boolean {
  return keyUrlProblem(value) === null;
}

const configuredPath = z.string().transform((raw, ctx) => {
  const result = normalizeConfiguredPath(raw);
  if (!result.ok) {
    ctx.addIssue({ code: "custom", message: `expected an absolute path like "/data", got ${JSON.stringify(raw)}: ${result.why}` });
    return z.NEVER;
  }
  return result.path;
});

/** One path or a non-empty list of them; a single path is reported without an index. */
const pathList = z.unknown().transform((value, ctx): string[] => {
  const items = typeof value === "string" ? [value] : value;
  if (!Array.isArray(items) || items.length === 0) {
    ctx.addIssue({ code: "custom", message: 'expected a path like "/data" or a non-empty list of paths' });
    return [];
  }
  const paths: string[] = [];
  items.forEach((item, i) => {
    const result = typeof item === "string" ? normalizeConfiguredPath(item) : { ok: false as const, why: "it is not a string" };
    if (result.ok) paths.push(result.path);
    else {
      ctx.addIssue({
        code: "custom",
        path: typeof value === "string" ? [] : [i],
        message: `expected an absolute path like "/data", got ${JSON.stringify(item)}: ${result.why}`,
      });
    }
  });
  return paths;
});

const method = z.string().regex(/^[A-Z][A-Z0-9_-]*$/, "expected an HTTP method in upper case, like GET or PROPFIND");
const audience = z.string().min(1, "expected a non-empty audience string");
const fetchableUrl = z.string().refine(isFetchableUrl, "expected an https:// URL (http:// only for loopback hosts: 127.0.0.0/8, [::1], localhost)");
const seconds = z.number().int("expected a whole number of seconds").positive("expected a positive number of seconds");

const issuerSchema = z.strictObject({
  issuer: z.string().min(1, "expected the exact `iss` value of the issuer's tokens"),
  jwks_uri: fetchableUrl.optional(),
  jwks_file: z.string().min(1).optional(),
  base_path: pathList,
  restricted_path: z.array(configuredPath).min(1, "expected at least one path, or leave restricted_path out").optional(),
  audiences: z.array(audience).optional(),
  algorithms: z
    .array(z.enum(ASYMMETRIC_ALGORITHMS, { error: `expected one of ${ASYMMETRIC_ALGORITHMS.join(", ")} (none and HMAC are never allowed)` }))
    .min(1)
    .optional(),
  max_lifetime: seconds.optional(),
});

const namedScopeSchema = z.strictObject({
  methods: z.array(method).min(1, "expected at least one method"),
  paths: z.array(configuredPath).min(1).optional(),
});

const headerPrefix = z.string().regex(/^[a-z0-9][a-z0-9-]*$/, "expected a lower-case header-name prefix like x-scitokens-");

const headersSchema = z.strictObject({
  prefix: headerPrefix.default("x-scitokens-"),
  remove_authorization: z.boolean().default(false),
});

const realm = z
  .string()
  .regex(/^[^"\\]+$/, "expected a realm without quotes or backslashes")
  .refine((value) => !CONTROL_CHARACTER.test(value), "expected a realm without control characters");

/** A request header the policy may read: a lower-case name, never the credential. */
const policyHeader = z
  .string()
  .regex(/^[a-z0-9!#$%&'*+.^_`|~-]+$/, "expected a lower-case header name, like x-forwarded-for")
  .refine((name) => name !== "authorization" && name !== "proxy-authorization", "expected a header other than the credential (authorization)");

/** An operator's deny reason: a new code (checked in crossChecks), and the HTTP status its denials get. */
const OPERATOR_REASON_NAME = /^[a-z][a-z0-9_]*$/;
const operatorReason = z.strictObject({
  status: z
    .number()
    .int("expected an HTTP status")
    .min(400, "expected an HTTP status from 400 to 599")
    .max(599, "expected an HTTP status from 400 to 599")
    .default(403),
});

const onMissing = z.enum(["deny", "passthrough"]);
const onInvalid = z.enum(["deny", "passthrough"]);
const corsPreflight = z.enum(["allow", "deny"]);
const usernameClaim = z.string().regex(/^[^\s]+$/, "expected a claim name, like sub or preferred_username");

/** A route section (SEMANTICS §10, issue "per-route settings"): overrides for the requests Envoy tags with its name. */
const routeSchema = z.strictObject({
  audiences: z.array(audience).optional(),
  issuers: z.array(z.string().min(1)).min(1, "expected at least one issuer, or leave issuers out").optional(),
  base_path: pathList.optional(),
  named_scopes: z.record(z.string(), namedScopeSchema).optional(),
  headers: z.strictObject({ prefix: headerPrefix.optional(), remove_authorization: z.boolean().optional() }).optional(),
  realm: realm.optional(),
  on_missing: onMissing.optional(),
  on_invalid: onInvalid.optional(),
  cors_preflight: corsPreflight.optional(),
  username_claim: usernameClaim.optional(),
});

export const authzDataSchema = z.strictObject({
  audiences: z.array(audience, { error: 'expected a list of audience strings (may be empty; "ANY" allowed)' }),
  issuers: z.array(issuerSchema).min(1, "expected at least one trusted issuer"),
  verbs: z.partialRecord(z.enum(PATH_AUTHZ), z.array(method)).optional(),
  named_scopes: z.record(z.string(), namedScopeSchema).optional(),
  headers: headersSchema.optional(),
  realm: realm.default("scitokens-authz"),
  on_missing: onMissing.default("deny"),
  on_invalid: onInvalid.default("deny"),
  cors_preflight: corsPreflight.default("allow"),
  username_claim: usernameClaim.default("sub"),
  routes: z.record(z.string().min(1, "expected a route name"), routeSchema).optional(),
  policy_headers: z.array(policyHeader).optional(),
  reasons: z.record(z.string(), operatorReason).optional(),
});

type Problem = { path: PropertyKey[]; message: string };

function namedScopeNameProblems(namedScopes: unknown, at: PropertyKey[]): Problem[] {
  if (!isRecord(namedScopes)) return [];
  const problems: Problem[] = [];
  for (const name of Object.keys(namedScopes)) {
    if ((PATH_AUTHZ as string[]).includes(name)) {
      problems.push({ path: [...at, name], message: "is a path-style scope: configure its methods under verbs" });
    } else if (!/^[^\s:]+$/.test(name)) {
      problems.push({ path: [...at, name], message: "expected a scope name without spaces or colons" });
    }
  }
  return problems;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * Checks that relate several keys. They run on the raw document beside the schema, not
 * after it, so that they are reported together with every type error at once.
 */
function crossChecks(raw: Record<string, unknown>): Problem[] {
  const problems: Problem[] = [];
  if (isRecord(raw["reasons"])) {
    for (const name of Object.keys(raw["reasons"])) {
      if (!OPERATOR_REASON_NAME.test(name)) {
        problems.push({ path: ["reasons", name], message: "expected a reason code in lower case with underscores, like group_required" });
      } else if ((REASON_CODES as readonly string[]).includes(name)) {
        problems.push({ path: ["reasons", name], message: "expected a new reason code, not one the service defines" });
      }
    }
  }
  const seen = new Map<string, number>();
  const issuers = Array.isArray(raw["issuers"]) ? raw["issuers"] : [];
  issuers.forEach((entry: unknown, i) => {
    if (!isRecord(entry) || typeof entry["issuer"] !== "string") return;
    const iss = entry["issuer"];
    const first = seen.get(iss);
    if (first !== undefined) problems.push({ path: ["issuers", i, "issuer"], message: `duplicate of issuers[${first}]` });
    else seen.set(iss, i);
    const hasUri = entry["jwks_uri"] !== undefined;
    const hasFile = entry["jwks_file"] !== undefined;
    if (hasUri && hasFile) problems.push({ path: ["issuers", i, "jwks_file"], message: "give jwks_uri or jwks_file, not both" });
    if (!hasUri && !hasFile && iss !== "" && !isFetchableUrl(iss)) {
      problems.push({
        path: ["issuers", i, "issuer"],
        message: "OIDC discovery needs an https:// issuer (http:// only on loopback); or set jwks_uri or jwks_file",
      });
    }
  });
  problems.push(...namedScopeNameProblems(raw["named_scopes"], ["named_scopes"]));
  if (isRecord(raw["routes"])) {
    for (const [name, route] of Object.entries(raw["routes"])) {
      if (!isRecord(route)) continue;
      problems.push(...namedScopeNameProblems(route["named_scopes"], ["routes", name, "named_scopes"]));
      if (Array.isArray(route["issuers"])) {
        route["issuers"].forEach((iss: unknown, i) => {
          if (typeof iss === "string" && !seen.has(iss)) {
            problems.push({ path: ["routes", name, "issuers", i], message: `${JSON.stringify(iss)} is not one of the issuers listed under issuers` });
          }
        });
      }
    }
  }
  return problems;
}

export interface IssuerPolicy {
  readonly issuer: string;
  readonly jwksUri?: string;
  /** Absolute path, resolved against the data file's folder. */
  readonly jwksFile?: string;
  readonly basePaths: readonly string[];
  readonly restrictedPaths: readonly string[] | null;
  readonly audiences: readonly string[] | null;
  readonly algorithms: readonly string[];
  readonly maxLifetime: number | null;
}

/** What TypeScript applies for one route (the top-level section or a named one), prepared once. */
export interface RouteSettings {
  /** null for the top-level section (requests without a `route` context extension). */
  readonly name: string | null;
  /** Issuers whose tokens this route accepts; null: every configured issuer. */
  readonly allowedIssuers: ReadonlySet<string> | null;
  readonly onMissing: "deny" | "passthrough";
  readonly onInvalid: "deny" | "passthrough";
  readonly corsPreflight: "allow" | "deny";
  /** The claim sent upstream as the subject header. */
  readonly usernameClaim: string;
  readonly headerPrefix: string;
  readonly removeAuthorization: boolean;
  readonly realm: string;
}

/** Authorization data after validation: what TypeScript needs, and the document Rego sees. */
export interface AuthzData {
  readonly file: string;
  readonly issuers: ReadonlyMap<string, IssuerPolicy>;
  readonly headerPrefix: string;
  readonly removeAuthorization: boolean;
  readonly realm: string;
  readonly onMissing: "deny" | "passthrough";
  readonly onInvalid: "deny" | "passthrough";
  /** Settings for requests without a `route` context extension. */
  readonly defaultRoute: RouteSettings;
  /** Named route sections, selected by the `route` context extension. */
  readonly routes: ReadonlyMap<string, RouteSettings>;
  /** Request headers the policy may read besides the CORS ones (`policy_headers`). */
  readonly policyHeaders: readonly string[];
  /** Deny reasons the operator's policy may give, with their HTTP status (`reasons`). */
  readonly operatorReasons: ReadonlyMap<string, { readonly status: number }>;
  /** The data document given to the WASM policy (policies/README.md). */
  readonly policyData: Readonly<Record<string, unknown>>;
}

/**
 * Validates authorization data (already parsed from YAML) read from `file`. Relative
 * `jwks_file` paths resolve against `base`: the file's folder unless given (a bundle's
 * data resolves them against the service configuration's folder).
 */
export function parseAuthzData(file: string, raw: unknown, base: string = dirname(file)): AuthzData {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(file, ["(top level): expected a mapping with audiences and issuers"]);
  }
  const data = validate(file, authzDataSchema, raw, isRecord(raw) ? crossChecks(raw) : []);
  const issuers = new Map<string, IssuerPolicy>();
  const policyIssuers: Record<string, unknown> = {};
  for (const entry of data.issuers) {
    const policy: IssuerPolicy = {
      issuer: entry.issuer,
      ...(entry.jwks_uri !== undefined ? { jwksUri: entry.jwks_uri } : {}),
      ...(entry.jwks_file !== undefined ? { jwksFile: resolve(base, entry.jwks_file) } : {}),
      basePaths: entry.base_path,
      restrictedPaths: entry.restricted_path ?? null,
      audiences: entry.audiences ?? null,
      algorithms: entry.algorithms ?? [...DEFAULT_ALGORITHMS],
      maxLifetime: entry.max_lifetime ?? null,
    };
    issuers.set(entry.issuer, Object.freeze(policy));
    policyIssuers[entry.issuer] = {
      base_path: policy.basePaths,
      restricted_path: policy.restrictedPaths,
      audiences: policy.audiences,
    };
  }
  const verbs: Record<string, readonly string[]> = { ...DEFAULT_VERBS, ...(data.verbs ?? {}) };
  const namedScopes = namedScopesData(data.named_scopes ?? {});
  const headers = data.headers ?? { prefix: "x-scitokens-", remove_authorization: false };
  const defaultRoute: RouteSettings = Object.freeze({
    name: null,
    allowedIssuers: null,
    onMissing: data.on_missing,
    onInvalid: data.on_invalid,
    corsPreflight: data.cors_preflight,
    usernameClaim: data.username_claim,
    headerPrefix: headers.prefix,
    removeAuthorization: headers.remove_authorization,
    realm: data.realm,
  });
  const routes = new Map<string, RouteSettings>();
  const policyRoutes: Record<string, unknown> = {};
  for (const [name, route] of Object.entries(data.routes ?? {})) {
    routes.set(
      name,
      Object.freeze({
        name,
        allowedIssuers: route.issuers ? new Set(route.issuers) : null,
        onMissing: route.on_missing ?? defaultRoute.onMissing,
        onInvalid: route.on_invalid ?? defaultRoute.onInvalid,
        corsPreflight: route.cors_preflight ?? defaultRoute.corsPreflight,
        usernameClaim: route.username_claim ?? defaultRoute.usernameClaim,
        headerPrefix: route.headers?.prefix ?? defaultRoute.headerPrefix,
        removeAuthorization: route.headers?.remove_authorization ?? defaultRoute.removeAuthorization,
        realm: route.realm ?? defaultRoute.realm,
      }),
    );
    policyRoutes[name] = {
      issuers: route.issuers ?? null,
      audiences: route.audiences ?? null,
      base_path: route.base_path ?? null,
      named_scopes: route.named_scopes ? namedScopesData(route.named_scopes) : null,
      ...settingsData(routes.get(name)!),
    };
  }
  return Object.freeze({
    file,
    issuers,
    headerPrefix: defaultRoute.headerPrefix,
    removeAuthorization: defaultRoute.removeAuthorization,
    realm: defaultRoute.realm,
    onMissing: defaultRoute.onMissing,
    onInvalid: defaultRoute.onInvalid,
    defaultRoute,
    routes,
    policyHeaders: Object.freeze([...(data.policy_headers ?? [])]),
    operatorReasons: new Map(Object.entries(data.reasons ?? {}).map(([name, reason]) => [name, Object.freeze({ status: reason.status })])),
    policyData: deepFreeze({
      audiences: data.audiences,
      issuers: policyIssuers,
      verbs,
      named_scopes: namedScopes,
      routes: policyRoutes,
      settings: settingsData(defaultRoute),
      reasons: data.reasons ?? {},
    }),
  });
}

/** A route's resolved settings as the policy reads them (policies/README.md, "Data"). */
function settingsData(route: RouteSettings): Record<string, unknown> {
  return {
    on_missing: route.onMissing,
    on_invalid: route.onInvalid,
    cors_preflight: route.corsPreflight,
    username_claim: route.usernameClaim,
    header_prefix: route.headerPrefix,
    remove_authorization: route.removeAuthorization,
  };
}

function namedScopesData(scopes: Record<string, { methods: string[]; paths?: string[] | undefined }>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, scope] of Object.entries(scopes)) out[name] = { methods: scope.methods, paths: scope.paths ?? null };
  return out;
}

/** Reads and validates an authorization data YAML file. */
export async function loadAuthzData(file: string): Promise<AuthzData> {
  return parseAuthzData(file, await readYamlFile(file));
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
