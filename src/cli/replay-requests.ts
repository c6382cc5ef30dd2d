import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { parseDestination } from "../envoy/destination.js";
import type { LoggedToken } from "../observability/decision-record.js";
import { normalizeRequestPath } from "../paths/normalize.js";
import { DenyError } from "../reasons/index.js";
import { type ParsedScope, parseScopes, splitScopeString } from "../token/scopes.js";
import { DiffInputError } from "./policy-side.js";

/**
 * The token of a request to re-evaluate, as given (its state is never checked again):
 * what the decision log keeps of a token, less the hash of its `jti`.
 */
export type ReplayToken = Exclude<LoggedToken, { readonly state: "verified" }> | Omit<Extract<LoggedToken, { readonly state: "verified" }>, "jti_sha256">;

/** One request to decide under both policies. */
export interface ReplayCase {
  /** The table entry's name, or `decision_id` of a log line. */
  readonly name: string;
  readonly method: string;
  readonly host: string;
  readonly path: string;
  readonly segments: readonly string[];
  readonly destination: string | null;
  readonly destinationRemote: boolean;
  readonly route: string | null;
  readonly token: ReplayToken;
  /** Table only: the reason the head policy is expected to give. */
  readonly expect?: string;
  /** Table only, `expect: {decision, reason, status}`: the decision and HTTP status expected too. */
  readonly expectDecision?: "allow" | "deny";
  readonly expectStatus?: number;
}

export interface ReplayRequests {
  readonly cases: readonly ReplayCase[];
  /** Log lines decided by the service before the policy (a bad path, an unknown route): not re-evaluated. */
  readonly notReplayable: number;
}

const DEFAULT_HOST = "storage.example.org";

/**
 * Reads the requests of `policy diff`: a decision log (JSON lines, `log.decisions`) when
 * the file starts with `{`, else a decision table (YAML, policies/README.md "Decision
 * tables for policy diff"). Throws DiffInputError naming the line or entry at fault.
 */
export async function readReplayRequests(file: string): Promise<ReplayRequests> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new DiffInputError(`--requests ${file}: cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  return text.trimStart().startsWith("{") ? fromDecisionLog(file, text) : fromTable(file, text);
}

const scopeSchema = z.strictObject({ authz: z.string(), path: z.string().nullable(), raw: z.string() });
const loggedToken = z.discriminatedUnion("state", [
  z.object({ state: z.literal("absent") }),
  z.object({ state: z.literal("invalid"), reason: z.string() }),
  z.object({
    state: z.literal("verified"),
    iss: z.string(),
    sub: z.string().nullable(),
    profile: z.string(),
    aud: z.array(z.string()).nullable(),
    scopes: z.array(scopeSchema),
    groups: z.array(z.string()),
  }),
]);
const logLine = z.object({
  decision_id: z.string(),
  route: z.string().nullable(),
  method: z.string().nullable(),
  host: z.string().nullable(),
  path: z.string().nullable(),
  segments: z.array(z.string()).nullable(),
  destination: z.string().nullable(),
  destination_remote: z.boolean(),
  token: loggedToken.nullable(),
});

function fromDecisionLog(file: string, text: string): ReplayRequests {
  const cases: ReplayCase[] = [];
  let notReplayable = 0;
  const lines = text.split("\n");
  for (const [index, line] of lines.entries()) {
    if (line.trim() === "") continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      throw new DiffInputError(`${file}:${index + 1}: not a JSON line of a decision log`);
    }
    const parsed = logLine.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new DiffInputError(`${file}:${index + 1}: not a decision log record (${issue?.path.join(".") || "(line)"}: ${issue?.message ?? "invalid"})`);
    }
    const r = parsed.data;
    if (r.token === null || r.method === null || r.path === null || r.segments === null) {
      notReplayable++;
      continue;
    }
    cases.push({
      name: r.decision_id,
      method: r.method,
      host: r.host ?? DEFAULT_HOST,
      path: r.path,
      segments: r.segments,
      destination: r.destination,
      destinationRemote: r.destination_remote,
      route: r.route,
      token: r.token,
    });
  }
  return { cases, notReplayable };
}

const oneOrMany = z.union([z.string(), z.array(z.string())]);
const tableToken = z.union([
  z.null(),
  z.strictObject({ state: z.literal("absent") }),
  z.strictObject({ state: z.literal("invalid"), reason: z.string() }),
  z.strictObject({
    state: z.literal("verified").optional(),
    iss: z.string().min(1),
    sub: z.string().nullable().optional(),
    profile: z.enum(["scitokens:2.0", "wlcg:1", "scitokens:1"]).optional(),
    aud: oneOrMany.nullable().optional(),
    scope: oneOrMany.optional(),
    groups: z.array(z.string()).optional(),
  }),
]);
const reasonCode = z.string().regex(/^[a-z][a-z0-9_]*$/, "expected a reason code (allowed, scope_insufficient, …)");
const tableEntry = z.strictObject({
  name: z.string().min(1),
  request: z.strictObject({
    method: z.string().min(1),
    path: z.string().min(1),
    host: z.string().min(1).optional(),
    destination: z.string().min(1).optional(),
    route: z.string().min(1).nullable().optional(),
  }),
  token: tableToken.optional(),
  expect: z
    .union([
      reasonCode,
      z.strictObject({ decision: z.enum(["allow", "deny"]).optional(), reason: reasonCode, status: z.number().int().min(100).max(599).optional() }),
    ])
    .optional(),
});

function fromTable(file: string, text: string): ReplayRequests {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw new DiffInputError(`${file}: not YAML (${(error as Error).message.split("\n")[0]})`);
  }
  if (!Array.isArray(doc))
    throw new DiffInputError(`${file}: expected a decision table (a YAML list of {name, request, token, expect}) or a decision log (JSON lines)`);
  const cases = doc.map((raw, index) => {
    const parsed = tableEntry.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new DiffInputError(`${file}: [${index}].${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`);
    }
    return tableCase(file, index, parsed.data);
  });
  return { cases, notReplayable: 0 };
}

function tableCase(file: string, index: number, entry: z.infer<typeof tableEntry>): ReplayCase {
  const where = `${file}: [${index}] (${entry.name})`;
  const host = entry.request.host ?? DEFAULT_HOST;
  const method = entry.request.method.toUpperCase();
  const normalized = normalizeRequestPath(entry.request.path);
  if (!normalized.ok) throw new DiffInputError(`${where}: request.path is refused before any policy (path_invalid: ${normalized.why})`);
  let destination: string | null = null;
  let destinationRemote = false;
  if (entry.request.destination !== undefined) {
    const parsed = entry.request.destination.startsWith("/")
      ? ({ local: true, path: entry.request.destination } as const)
      : parseDestination(entry.request.destination, host);
    if (parsed.local) {
      const dest = normalizeRequestPath(parsed.path);
      if (!dest.ok) throw new DiffInputError(`${where}: request.destination is refused before any policy (path_invalid: ${dest.why})`);
      destination = dest.path;
    } else destinationRemote = true;
  }
  return {
    name: entry.name,
    method,
    host,
    path: normalized.path,
    segments: normalized.segments,
    destination,
    destinationRemote,
    route: entry.request.route ?? null,
    token: tableTokenOf(where, entry.token),
    ...expectOf(entry.expect),
  };
}

function expectOf(expect: z.infer<typeof tableEntry>["expect"]): Pick<ReplayCase, "expect" | "expectDecision" | "expectStatus"> {
  if (expect === undefined) return {};
  if (typeof expect === "string") return { expect };
  return {
    expect: expect.reason,
    ...(expect.decision !== undefined ? { expectDecision: expect.decision } : {}),
    ...(expect.status !== undefined ? { expectStatus: expect.status } : {}),
  };
}

function tableTokenOf(where: string, token: z.infer<typeof tableToken> | undefined): ReplayToken {
  if (token === undefined || token === null || token.state === "absent") return { state: "absent" };
  if (token.state === "invalid") return { state: "invalid", reason: token.reason };
  const entries = token.scope === undefined ? [] : typeof token.scope === "string" ? splitScopeString(token.scope) : token.scope;
  let scopes: ParsedScope[];
  try {
    scopes = parseScopes(entries);
  } catch (error) {
    if (error instanceof DenyError)
      throw new DiffInputError(
        `${where}: token.scope: ${error.code}${error.detail ? ` (${error.detail})` : ""}; give {state: invalid, reason: ${error.code}} instead`,
      );
    throw error;
  }
  const aud = token.aud === undefined || token.aud === null ? null : typeof token.aud === "string" ? [token.aud] : token.aud;
  return {
    state: "verified",
    iss: token.iss,
    sub: token.sub ?? null,
    profile: token.profile ?? "scitokens:2.0",
    aud,
    scopes,
    groups: token.groups ?? [],
  };
}
