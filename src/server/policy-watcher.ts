import { type FSWatcher, watch } from "node:fs";
import { basename, dirname } from "node:path";
import type { Logger } from "pino";

/** How a burst of file events is gathered into one reload. */
export interface DebounceOptions {
  /** Quiet time after the last event before the reload starts. */
  readonly quietMs: number;
  /** Longest delay after the first event of a burst, so endless writes still reload. */
  readonly maxDelayMs: number;
}

/** An editor writes a file several times within milliseconds; config management renames once. */
export const POLICY_WATCH_DEBOUNCE: DebounceOptions = Object.freeze({ quietMs: 200, maxDelayMs: 2_000 });

// Kubernetes mounts a ConfigMap as symlinks through `..data`, which it replaces by rename:
// the watched name itself never shows up in an event then.
const KUBERNETES_SWAP_LINK = "..data";

export interface PolicyWatcher {
  close(): void;
}

/**
 * Watches `files` for changes made in place or by replacing them (rename over, delete
 * and create), as editors and configuration management do. It watches the parent
 * folders, not the files, because a watch on a file follows the inode that a rename
 * replaces. Events for other names in those folders are ignored. A burst of events
 * calls `onChange` once, with the files named in it.
 */
export function watchPolicyFiles(
  files: readonly string[],
  onChange: (changed: readonly string[]) => void,
  options: {
    readonly logger: Logger;
    readonly debounce?: DebounceOptions;
    /** What the files are, for the log lines (default "policy"; "TLS" for the listener's). */
    readonly what?: string;
  },
): PolicyWatcher {
  const what = options.what ?? "policy";
  const debounce = options.debounce ?? POLICY_WATCH_DEBOUNCE;
  const byFolder = new Map<string, Map<string, string>>();
  for (const file of files) {
    const names = byFolder.get(dirname(file)) ?? new Map<string, string>();
    names.set(basename(file), file);
    byFolder.set(dirname(file), names);
  }
  const watchers: FSWatcher[] = [];
  const pending = new Set<string>();
  let quiet: NodeJS.Timeout | undefined;
  let burstStarted = 0;
  let closed = false;

  const fire = () => {
    clearTimeout(quiet);
    quiet = undefined;
    const changed = [...pending];
    pending.clear();
    if (!closed && changed.length > 0) onChange(changed);
  };

  const noted = (changed: readonly string[]) => {
    if (closed) return;
    if (pending.size === 0) burstStarted = Date.now();
    for (const file of changed) pending.add(file);
    clearTimeout(quiet);
    const wait = Math.max(0, Math.min(debounce.quietMs, burstStarted + debounce.maxDelayMs - Date.now()));
    quiet = setTimeout(fire, wait);
  };

  for (const [folder, names] of byFolder) {
    try {
      const watcher = watch(folder, { persistent: false }, (_event, name) => {
        // Without a name (some platforms), any event in the folder may be ours.
        const file = name === null ? undefined : names.get(name.toString());
        if (file !== undefined) noted([file]);
        else if (name === null || name.toString() === KUBERNETES_SWAP_LINK) noted([...names.values()]);
      });
      watcher.on("error", (error) => {
        options.logger.warn({ folder, err: error.message }, `${what} file watch failed: changes there are applied on SIGHUP only`);
      });
      watchers.push(watcher);
    } catch (error) {
      options.logger.warn({ folder, err: (error as Error).message }, `cannot watch ${what} folder: changes there are applied on SIGHUP only`);
    }
  }

  return {
    close() {
      closed = true;
      clearTimeout(quiet);
      for (const watcher of watchers) watcher.close();
    },
  };
}
