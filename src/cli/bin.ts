#!/usr/bin/env node
/**
 * The `scitokens-authz` command (package.json `bin`, `npm start`). On a Node older than
 * package.json's `engines` (22.12) it runs itself again with the Node 24 that setup installs
 * in .tools/node (scripts/node-runtime.mjs), so the README's `npx scitokens-authz …` works on
 * such a machine too; otherwise it runs the command line (./main.ts) in this process. Until
 * then it loads nothing but the checkout's plain-JavaScript runtime helper.
 */
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

interface NodeRuntime {
  useSupportedNode(): Promise<void>;
}

const runtime = join(resolve(fileURLToPath(import.meta.url), "..", "..", ".."), "scripts", "node-runtime.mjs");
const { useSupportedNode } = (await import(pathToFileURL(runtime).href)) as NodeRuntime;
await useSupportedNode();
await import("./main.js");
