import { KeySourceError } from "./key-source-error.js";

/** Parse UTF-8 JSON that must be an object (not an array, not a scalar). */
export function parseJsonObject(bytes: Uint8Array, where: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new KeySourceError(`${where}: body is not valid JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new KeySourceError(`${where}: body is not a JSON object`);
  }
  return value as Record<string, unknown>;
}
