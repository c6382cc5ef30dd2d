import { readFile, rm } from "node:fs/promises";
import type { CryptoKey, JWK } from "jose";
import { importJWK } from "jose";
import { writePrivateFile } from "../fs/write-private-file.js";

/**
 * What a running development issuer leaves on disk so that a separate process (the
 * CLI's `token create`) can mint tokens that the running service accepts. It holds a
 * private key: the file is written with mode 0600 and removed when the issuer stops.
 */
export interface DevIssuerStateFile {
  issuer: string;
  kid: string;
  alg: string;
  private_jwk: JWK;
}

/** The state of a running development issuer, with its key imported for signing. */
export interface DevIssuerState {
  issuer: string;
  kid: string;
  alg: string;
  privateKey: CryptoKey;
}

/** Raised by {@link readDevIssuerState}; `file` names the state file that was read. */
export class DevIssuerStateError extends Error {
  override readonly name = "DevIssuerStateError";
  readonly file: string;

  constructor(file: string, problem: string, options?: ErrorOptions) {
    super(`the development issuer is not running: start the service with \`npm start\` (${file}: ${problem})`, options);
    this.file = file;
  }
}

const SIGNING_ALGS = new Set(["ES256", "RS256"]);

/** Writes the state atomically (temp file in the same folder, then rename), mode 0600. */
export async function writeDevIssuerState(file: string, state: DevIssuerStateFile): Promise<void> {
  await writePrivateFile(file, `${JSON.stringify(state, null, 2)}\n`);
}

/**
 * Removes the state file if it still describes the issuer with key `kid`, so that an
 * issuer shutting down does not delete the file of one that replaced it.
 */
export async function removeDevIssuerState(file: string, kid: string): Promise<void> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if (isErrno(err, "ENOENT")) return;
    throw err;
  }
  let owner: unknown;
  try {
    owner = (JSON.parse(text) as { kid?: unknown }).kid;
  } catch {
    return;
  }
  if (owner === kid) await rm(file, { force: true });
}

/**
 * Reads the state file of a running development issuer and imports its private key.
 * Throws {@link DevIssuerStateError}, naming the file, when it is missing or unusable.
 */
export async function readDevIssuerState(file: string): Promise<DevIssuerState> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    const problem = isErrno(err, "ENOENT") ? "no such file" : "cannot be read";
    throw new DevIssuerStateError(file, problem, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new DevIssuerStateError(file, "not valid JSON", { cause: err });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new DevIssuerStateError(file, "not a JSON object");
  }
  const { issuer, kid, alg, private_jwk: jwk } = parsed as Partial<Record<keyof DevIssuerStateFile, unknown>>;
  if (typeof issuer !== "string" || issuer === "") throw new DevIssuerStateError(file, '"issuer" is missing');
  if (typeof kid !== "string" || kid === "") throw new DevIssuerStateError(file, '"kid" is missing');
  if (typeof alg !== "string" || !SIGNING_ALGS.has(alg)) {
    throw new DevIssuerStateError(file, '"alg" must be ES256 or RS256');
  }
  if (typeof jwk !== "object" || jwk === null || typeof (jwk as JWK).d !== "string") {
    throw new DevIssuerStateError(file, '"private_jwk" is not a private JWK');
  }
  let privateKey: CryptoKey | Uint8Array;
  try {
    privateKey = await importJWK(jwk as JWK, alg);
  } catch (err) {
    throw new DevIssuerStateError(file, `"private_jwk" is not a usable ${alg} key`, { cause: err });
  }
  if (privateKey instanceof Uint8Array) {
    throw new DevIssuerStateError(file, `"private_jwk" is not a usable ${alg} key`);
  }
  return { issuer, kid, alg, privateKey };
}

function isErrno(err: unknown, code: string): boolean {
  return typeof err === "object" && err !== null && (err as NodeJS.ErrnoException).code === code;
}
