import { readFile } from "node:fs/promises";
import { join } from "node:path";

/** Where `explain` took the token from: named, never the token itself. */
export type TokenOrigin = "--token" | "--token-file" | "BEARER_TOKEN" | "BEARER_TOKEN_FILE" | "XDG_RUNTIME_DIR" | "/tmp";

/** A token and where it came from, or none (the request is explained without one). */
export type TokenSource =
  | { readonly token: string; readonly origin: TokenOrigin; readonly file: string | null }
  | { readonly token: null; readonly searched: readonly string[] };

/** A token that was named (an option or a variable) but cannot be read: bad input, exit 2. */
export class TokenSourceError extends Error {
  override readonly name = "TokenSourceError";
}

export interface TokenSourceOptions {
  readonly token?: string | undefined;
  readonly tokenFile?: string | undefined;
  /** `--no-token`: explain the request as one without a token; no discovery. */
  readonly none?: boolean;
  /** Seams for tests and for the caller: default `process.env` and `process.getuid()`. */
  readonly env?: NodeJS.ProcessEnv;
  readonly uid?: number;
}

/**
 * The token to explain: `--token`, `--token-file`, else WLCG Bearer Token Discovery
 * (WLCG Bearer Token Discovery 1.0: `BEARER_TOKEN`, then the file `BEARER_TOKEN_FILE`
 * names, then `$XDG_RUNTIME_DIR/bt_u$UID`, then `/tmp/bt_u$UID`), the first that is
 * set or exists. A file's leading and trailing whitespace is dropped. A file named by an
 * option or by `BEARER_TOKEN_FILE` that cannot be read is an error; the two default
 * locations are only looked at.
 */
export async function findToken(options: TokenSourceOptions): Promise<TokenSource> {
  if (options.none === true) return { token: null, searched: [] };
  if (options.token !== undefined) {
    if (options.token.trim() === "") throw new TokenSourceError("--token: the token is empty");
    return { token: options.token.trim(), origin: "--token", file: null };
  }
  if (options.tokenFile !== undefined) return { token: await readNamed(options.tokenFile, "--token-file"), origin: "--token-file", file: options.tokenFile };
  const env = options.env ?? process.env;
  const fromEnv = env["BEARER_TOKEN"];
  if (fromEnv !== undefined && fromEnv.trim() !== "") return { token: fromEnv.trim(), origin: "BEARER_TOKEN", file: null };
  const named = env["BEARER_TOKEN_FILE"];
  if (named !== undefined && named !== "") return { token: await readNamed(named, "BEARER_TOKEN_FILE"), origin: "BEARER_TOKEN_FILE", file: named };
  const uid = options.uid ?? process.getuid?.() ?? 0;
  const searched: string[] = [];
  const runtimeDir = env["XDG_RUNTIME_DIR"];
  const candidates: Array<[TokenOrigin, string]> = [];
  if (runtimeDir !== undefined && runtimeDir !== "") candidates.push(["XDG_RUNTIME_DIR", join(runtimeDir, `bt_u${uid}`)]);
  candidates.push(["/tmp", `/tmp/bt_u${uid}`]);
  for (const [origin, file] of candidates) {
    searched.push(file);
    const token = await readIfPresent(file);
    if (token !== null && token !== "") return { token, origin, file };
  }
  return { token: null, searched };
}

async function readNamed(file: string, what: string): Promise<string> {
  try {
    const token = (await readFile(file, "utf8")).trim();
    if (token !== "") return token;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new TokenSourceError(`${what}: cannot read the token file ${file} (${code})`);
  }
  throw new TokenSourceError(`${what}: the token file ${file} is empty`);
}

async function readIfPresent(file: string): Promise<string | null> {
  try {
    return (await readFile(file, "utf8")).trim();
  } catch {
    return null;
  }
}
