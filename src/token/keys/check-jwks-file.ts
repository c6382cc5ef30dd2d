import { KeySourceError } from "./key-source-error.js";
import { prepareKeySet } from "./prepared-key-set.js";
import { readJwksFile } from "./read-jwks-file.js";

/**
 * Reads a static key file (`jwks_file`) as the key store would: the number of usable
 * public signing keys, or what is wrong, worded for the operator (`expected …, found …`).
 * A file without one usable key would deny every token of its issuer `key_unavailable`.
 */
export async function checkJwksFile(file: string, maxBytes: number): Promise<number | string> {
  let document: Record<string, unknown>;
  try {
    document = await readJwksFile(file, maxBytes);
  } catch (error) {
    const code = ((error as Error).cause as NodeJS.ErrnoException | undefined)?.code;
    if (code === "ENOENT") return `expected a JWKS file, found nothing at ${file}`;
    const message = error instanceof Error ? error.message : String(error);
    return `expected a JWKS (a JSON object with a "keys" array) in ${file}, found: ${message.startsWith(`${file}: `) ? message.slice(file.length + 2) : message}`;
  }
  const skipped: string[] = [];
  try {
    const keys = await prepareKeySet(document, (reason) => skipped.push(reason));
    if (keys.jwks.keys.length > 0) return keys.jwks.keys.length;
  } catch (error) {
    if (!(error instanceof KeySourceError)) throw error;
    return `expected a JWKS (a JSON object with a "keys" array) in ${file}, found: ${error.message}`;
  }
  const why = skipped.length === 0 ? "an empty keys array" : skipped.slice(0, 3).join("; ") + (skipped.length > 3 ? `; and ${skipped.length - 3} more` : "");
  return `expected at least one usable public signing key in ${file}, found none (${why})`;
}
