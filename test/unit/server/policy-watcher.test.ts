import { writeFileSync } from "node:fs";
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogger } from "../../../src/observability/logger.js";
import { type PolicyWatcher, watchPolicyFiles } from "../../../src/server/policy-watcher.js";

// The watcher behind live reload: it sees the watched files changed in place and replaced
// by rename, ignores the other names in their folders, and gathers a burst of events into
// one call. Tests wait for calls, never for time: a burst is shown to be one call by a
// later change to another file, whose call must come next.

const DEBOUNCE = { quietMs: 50, maxDelayMs: 1_000 };

let dir: string;
let data: string;
let bundle: string;
let watcher: PolicyWatcher | undefined;
let calls: Array<readonly string[]>;
let waiting: Array<() => void>;

/** Resolves once `count` calls have been made in all. */
function calledTimes(count: number): Promise<void> {
  return new Promise((resolve) => {
    const check = () => (calls.length >= count ? resolve() : waiting.push(check));
    check();
  });
}

function start(): void {
  watcher = watchPolicyFiles(
    [data, bundle],
    (changed) => {
      calls.push([...changed].sort());
      for (const wake of waiting.splice(0)) wake();
    },
    { logger: createLogger("silent"), debounce: DEBOUNCE },
  );
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-authz-watch-"));
  data = join(dir, "authz.yaml");
  bundle = join(dir, "policy.wasm");
  await writeFile(data, "a: 1\n");
  await writeFile(bundle, "wasm");
  calls = [];
  waiting = [];
});

afterEach(async () => {
  watcher?.close();
  watcher = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe("watchPolicyFiles", () => {
  it("sees a file edited in place", async () => {
    start();
    await writeFile(data, "a: 2\n");
    await calledTimes(1);
    expect(calls).toEqual([[data]]);
  });

  it("sees a file replaced by rename, and goes on seeing the new file", async () => {
    start();
    await writeFile(join(dir, "authz.yaml.tmp"), "a: 3\n");
    await rename(join(dir, "authz.yaml.tmp"), data);
    await calledTimes(1);
    await writeFile(data, "a: 4\n");
    await calledTimes(2);
    expect(calls).toEqual([[data], [data]]);
  });

  it("gathers a burst of writes into one call, and ignores other names in the folder", async () => {
    start();
    // Written synchronously: every event is queued before the watcher reads any.
    for (let i = 0; i < 10; i++) {
      writeFileSync(data, `a: ${i}\n`);
      writeFileSync(join(dir, "unrelated.txt"), `${i}`);
    }
    await calledTimes(1);
    // The burst's call came; a change to the other file now must be the very next call.
    await writeFile(bundle, "wasm 2");
    await calledTimes(2);
    expect(calls).toEqual([[data], [bundle]]);
  });

  it("sees a Kubernetes ConfigMap update (the ..data link swapped by rename) as a change of every file", async () => {
    await mkdir(join(dir, "..2024_01"));
    await symlink("..2024_01", join(dir, "..data"));
    start();
    await mkdir(join(dir, "..2024_02"));
    await symlink("..2024_02", join(dir, "..data_tmp"));
    await rename(join(dir, "..data_tmp"), join(dir, "..data"));
    await calledTimes(1);
    expect(calls[0]).toEqual([data, bundle].sort());
  });

  it("makes no call once closed", async () => {
    start();
    watcher!.close();
    // Another watcher on the same folder sees the change; the closed one must not call.
    const seen: Array<readonly string[]> = [];
    const other = watchPolicyFiles([data], (changed) => seen.push(changed), { logger: createLogger("silent"), debounce: DEBOUNCE });
    try {
      await writeFile(data, "a: 5\n");
      await new Promise<void>((resolve) => {
        const poll = () => (seen.length > 0 ? resolve() : setImmediate(poll));
        poll();
      });
      expect(calls).toEqual([]);
    } finally {
      other.close();
    }
  });
});
