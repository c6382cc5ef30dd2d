import type { z } from "zod";
import { zodDef } from "../../../src/config/issue-text.js";

/** One key a configuration document may hold, and its default when the schema has one. */
export interface SchemaKey {
  /** Dotted, as operators write keys: `grpc.listen`, `issuers[].base_path`, `routes.<name>.realm`. */
  readonly path: string;
  readonly default?: unknown;
}

const defOf = zodDef;

/**
 * Every key of a configuration schema, walked through its wrappers: mappings by key,
 * lists as `[]`, records as `<name>` (or their enum keys), with the schema's default.
 */
export function schemaKeys(schema: z.ZodType, prefix = ""): SchemaKey[] {
  const out: SchemaKey[] = [];
  let current = schema;
  let defaultValue: unknown;
  for (let depth = 0; depth < 16; depth++) {
    const def = defOf(current);
    if ((def.type === "default" || def.type === "prefault") && defaultValue === undefined) defaultValue = def.defaultValue;
    const inner = def.innerType ?? (def.type === "pipe" ? def.in : undefined);
    if (inner === undefined) break;
    current = inner;
  }
  if (prefix !== "") out.push(defaultValue === undefined ? { path: prefix } : { path: prefix, default: defaultValue });
  const def = defOf(current);
  const join = (key: string) => (prefix === "" ? key : `${prefix}.${key}`);
  if (def.type === "object" && def.shape) {
    for (const [key, child] of Object.entries(def.shape)) out.push(...schemaKeys(child, join(key)));
  } else if (def.type === "array" && def.element) {
    const element = defOf(def.element);
    if (element.type === "object" || element.type === "union") out.push(...schemaKeys(def.element, `${prefix}[]`).filter((k) => k.path !== `${prefix}[]`));
  } else if (def.type === "record" && def.valueType) {
    const keyDef = def.keyType ? defOf(def.keyType) : undefined;
    const names = keyDef?.type === "enum" && keyDef.entries ? Object.values(keyDef.entries).map(String) : ["<name>"];
    for (const name of names) out.push(...schemaKeys(def.valueType, join(name)));
  } else if (def.type === "union" && def.options) {
    for (const option of def.options) out.push(...schemaKeys(option, prefix).filter((k) => k.path !== prefix));
  }
  return out;
}
