import { isAbsolute } from "node:path";

/** The variable naming the service configuration file when `--config` is not given. */
export const CONFIG_VARIABLE = "SCITOKENS_AUTHZ_CONFIG";

/**
 * Settings a container sets without editing the configuration file, each from one
 * variable. A variable that is set replaces the file's value (a command-line flag
 * replaces both); an empty one is ignored. Paths must be absolute; a number written in
 * decimal digits is passed on as a number (anything else as the text, which the schema
 * then refuses, naming the variable).
 */
export const ENVIRONMENT_OVERRIDES = [
  { variable: "SCITOKENS_AUTHZ_LISTEN", key: ["grpc", "listen"], path: false },
  { variable: "SCITOKENS_AUTHZ_HTTP_LISTEN", key: ["http", "listen"], path: false },
  { variable: "SCITOKENS_AUTHZ_AUTHZ_HTTP_LISTEN", key: ["authz_http", "listen"], path: false },
  { variable: "SCITOKENS_AUTHZ_LOG_LEVEL", key: ["log", "level"], path: false },
  { variable: "SCITOKENS_AUTHZ_KEYS_CACHE_DIR", key: ["keys", "cache_dir"], path: true },
  { variable: "SCITOKENS_AUTHZ_DECISION_LOG", key: ["log", "decisions", "file"], path: true },
  { variable: "SCITOKENS_AUTHZ_WORKERS", key: ["workers"], path: false, number: true },
] as const;

export type Environment = Readonly<Record<string, string | undefined>>;

/** The config file to use: `--config`, else `SCITOKENS_AUTHZ_CONFIG`, else none (the embedded default). */
export function configFileFrom(flag: string | undefined, env: Environment = process.env): string | undefined {
  if (flag !== undefined) return flag;
  const fromEnv = env[CONFIG_VARIABLE];
  return fromEnv !== undefined && fromEnv !== "" ? fromEnv : undefined;
}

/**
 * Applies the overrides set in `env` to a parsed configuration document (a copy), and
 * lists the problems of their values (a relative path), each naming the variable.
 */
export function applyEnvironment(raw: unknown, env: Environment): { raw: unknown; problems: string[]; applied: Map<string, string> } {
  const applied = new Map<string, string>();
  const problems: string[] = [];
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return { raw, problems, applied };
  const out = structuredClone(raw) as Record<string, unknown>;
  for (const override of ENVIRONMENT_OVERRIDES) {
    const { variable, key, path } = override;
    const value = env[variable];
    if (value === undefined || value === "") continue;
    if (path && !isAbsolute(value)) {
      problems.push(`${variable}: expected an absolute path, found ${JSON.stringify(value)}`);
      continue;
    }
    let node = out;
    for (const part of key.slice(0, -1)) {
      const next = node[part];
      node[part] = next !== null && typeof next === "object" && !Array.isArray(next) ? { ...(next as object) } : {};
      node = node[part] as Record<string, unknown>;
    }
    node[key.at(-1)!] = "number" in override && /^\d{1,9}$/.test(value) ? Number(value) : value;
    applied.set(key.join("."), variable);
  }
  return { raw: out, problems, applied };
}
