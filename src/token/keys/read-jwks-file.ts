import { open } from "node:fs/promises";
import { KeySourceError } from "./key-source-error.js";
import { parseJsonObject } from "./parse-json-object.js";

/** Read a whole file, refusing one larger than `maxBytes` without reading it all. */
export async function readBoundedFile(path: string, maxBytes: number): Promise<Uint8Array> {
  const file = await open(path, "r");
  try {
    const { size } = await file.stat();
    if (size > maxBytes) throw new KeySourceError(`${path}: ${size} bytes exceeds the ${maxBytes} byte limit`);
    const bytes = await file.readFile();
    if (bytes.byteLength > maxBytes) throw new KeySourceError(`${path}: exceeds the ${maxBytes} byte limit`);
    return bytes;
  } finally {
    await file.close();
  }
}

/** Read a static JWKS file (`jwks_file`, for air-gapped sites) as a JSON object. */
export async function readJwksFile(path: string, maxBytes: number): Promise<Record<string, unknown>> {
  let bytes: Uint8Array;
  try {
    bytes = await readBoundedFile(path, maxBytes);
  } catch (err) {
    if (err instanceof KeySourceError) throw err;
    throw new KeySourceError(`${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return parseJsonObject(bytes, path);
}
