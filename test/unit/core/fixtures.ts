import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { parse } from "yaml";
import { DenyError, type DenyReason } from "../../../src/reasons/index.js";

/** Absolute path of a file under test/fixtures/unit/. */
export function fixturePath(name: string): string {
  return fileURLToPath(new URL(`../../fixtures/unit/${name}`, import.meta.url));
}

/** Parses a YAML fixture under test/fixtures/unit/ that holds a list of named cases. */
export function loadCases<T extends { name: string }>(name: string): T[] {
  const cases: unknown = parse(readFileSync(fixturePath(name), "utf8"));
  if (!Array.isArray(cases) || cases.length === 0) throw new Error(`${name}: expected a non-empty list of cases`);
  const names = new Set<string>();
  for (const entry of cases as Array<Partial<T>>) {
    if (typeof entry?.name !== "string") throw new Error(`${name}: every case needs a name`);
    if (names.has(entry.name)) throw new Error(`${name}: duplicate case name ${JSON.stringify(entry.name)}`);
    names.add(entry.name);
  }
  return cases as T[];
}

/** Parses a YAML fixture under test/fixtures/unit/ that holds a mapping. */
export function loadDocument<T>(name: string): T {
  const doc: unknown = parse(readFileSync(fixturePath(name), "utf8"));
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) throw new Error(`${name}: expected a mapping`);
  return doc as T;
}

/** Runs `fn` and returns the DenyError it throws, failing the test if it returns or throws anything else. */
export function denyOf(fn: () => unknown): DenyError {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, "expected a DenyError").toBeInstanceOf(DenyError);
  return thrown as DenyError;
}

/** Asserts that `fn` throws a DenyError carrying `code`. */
export function expectDeny(fn: () => unknown, code: DenyReason): void {
  expect(denyOf(fn).code).toBe(code);
}
