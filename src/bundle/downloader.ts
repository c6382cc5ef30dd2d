import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { ConfigError } from "../config/config-error.js";
import type { PolicySource } from "../config/service-config.js";
import { writePrivateFile } from "../fs/write-private-file.js";
import { fetchBounded } from "../token/keys/fetch-json.js";
import { PERSISTED_BUNDLE, type PolicyBytes, bundleRevision, readPolicyBytes } from "./snapshot.js";

export type BundleUrlSource = Extract<PolicySource, { kind: "bundle-url" }>;

/** The name of the last good bundle in `persist_dir`. */
export { PERSISTED_BUNDLE } from "./snapshot.js";

/** What a download reports to the policy in force: reload with the new bytes, say whether they went live. */
export type ActivateBundle = (trigger: string) => Promise<{ readonly activated: boolean; readonly revision: string }>;

export interface BundleDownloaderSeams {
  readonly logger: Logger;
  readonly fetch?: typeof globalThis.fetch;
  /** A number in [0, 1) for the polling jitter. */
  readonly random?: () => number;
}

/** The delay before the next download: uniform in [min, max] for `random` in [0, 1). */
export function pollDelayMs(minMs: number, maxMs: number, random: number): number {
  return minMs + Math.floor(random * (maxMs - minMs + 1));
}

/**
 * Keeps a bundle server's bundle, as OPA's bundle plugin does: downloads it with the
 * ETag of the bundle in force (`If-None-Match`, so an unchanged bundle costs a 304),
 * every `min_delay_seconds` to `max_delay_seconds` (a random delay in between, so that
 * many replicas do not poll in step); hands a new one to the policy in force, which
 * verifies and checks it before it goes live; and keeps the last bundle that went live
 * in `persist_dir`, to start from when the server cannot be reached. A download that
 * fails or a bundle that is refused changes nothing; the next poll tries again.
 */
export class BundleDownloader {
  readonly #source: BundleUrlSource;
  readonly #seams: BundleDownloaderSeams;
  /** The bytes of the bundle in force, and the ETag they came with. */
  #active: { bytes: Buffer; etag: string | null } | null = null;
  /** A downloaded bundle being tried; what `read` returns while it is. */
  #candidate: Buffer | null = null;
  #timer: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;
  #abort = new AbortController();
  #closed = false;

  constructor(source: BundleUrlSource, seams: BundleDownloaderSeams) {
    this.#source = source;
    this.#seams = seams;
  }

  /** The bytes the policy is built from: a candidate being tried, else the bundle in force. */
  readonly read = (): Promise<PolicyBytes> => readPolicyBytes(this.#source, this.#candidate ?? this.#active?.bytes ?? null);

  /**
   * The bundle to start from: the persisted one when there is one, else a download
   * (bounded by `timeout_seconds`). Throws ConfigError when there is neither.
   */
  async initial(): Promise<"persisted" | "downloaded"> {
    const persisted = await this.#readPersisted();
    if (persisted !== null) {
      this.#active = { bytes: persisted, etag: null };
      return "persisted";
    }
    await this.download();
    return "downloaded";
  }

  /** Downloads the bundle to start from (the persisted one was refused, or there is none). */
  async download(): Promise<void> {
    const downloaded = await this.#download(null).catch((error: unknown) => {
      const where = this.#source.persistDir !== null ? `, and no bundle is kept in ${this.#source.persistDir} yet` : " (policy.bundle.persist_dir is not set)";
      throw new ConfigError(this.#source.url, [`cannot download the bundle: ${(error as Error).message}${where}`]);
    });
    if (downloaded === null) throw new ConfigError(this.#source.url, ["the bundle server answered 304 Not Modified to a request without an ETag"]);
    this.#active = downloaded;
  }

  /** After start-up: the bundle in force went live; persist it and poll from now on. */
  async started(activate: ActivateBundle, from: "persisted" | "downloaded"): Promise<void> {
    if (from === "downloaded") await this.#persist();
    this.#schedule(activate, from === "persisted" ? 0 : this.#delay());
  }

  /** Downloads now (SIGHUP), outside the schedule; resolves when done. */
  pollNow(activate: ActivateBundle): Promise<void> {
    clearTimeout(this.#timer);
    return this.#poll(activate);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#abort.abort();
  }

  #delay(): number {
    return pollDelayMs(this.#source.pollMinMs, this.#source.pollMaxMs, (this.#seams.random ?? Math.random)());
  }

  #schedule(activate: ActivateBundle, delayMs: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#poll(activate), delayMs);
    this.#timer.unref();
  }

  #poll(activate: ActivateBundle): Promise<void> {
    this.#polling ??= this.#pollOnce(activate).finally(() => {
      this.#polling = undefined;
      this.#schedule(activate, this.#delay());
    });
    return this.#polling;
  }

  async #pollOnce(activate: ActivateBundle): Promise<void> {
    const { logger } = this.#seams;
    let downloaded: { bytes: Buffer; etag: string | null } | null;
    try {
      downloaded = await this.#download(this.#active?.etag ?? null);
    } catch (error) {
      if (this.#closed) return;
      logger.warn({ url: this.#source.url, err: (error as Error).message }, "bundle download failed: the bundle in force stays");
      return;
    }
    if (downloaded === null || this.#closed) {
      logger.debug({ url: this.#source.url }, "bundle not modified");
      return;
    }
    if (this.#active !== null && bundleRevision(downloaded.bytes) === bundleRevision(this.#active.bytes)) {
      this.#active = downloaded;
      return;
    }
    this.#candidate = downloaded.bytes;
    try {
      const outcome = await activate(`bundle download (${downloaded.etag !== null ? `ETag ${downloaded.etag}` : "no ETag"})`);
      if (!outcome.activated) return;
      this.#active = downloaded;
    } finally {
      this.#candidate = null;
    }
    await this.#persist();
  }

  /** One GET; null for 304 Not Modified. */
  async #download(etag: string | null): Promise<{ bytes: Buffer; etag: string | null } | null> {
    const response = await fetchBounded(
      this.#source.url,
      { fetch: this.#seams.fetch ?? globalThis.fetch, timeoutMs: this.#source.timeoutMs, maxBytes: this.#source.maxBytes, signal: this.#abort.signal },
      { accept: "application/gzip, application/octet-stream", ...(etag !== null ? { "if-none-match": etag } : {}) },
    );
    if (response.status === 304) return null;
    return { bytes: Buffer.from(response.body), etag: response.etag };
  }

  async #readPersisted(): Promise<Buffer | null> {
    if (this.#source.persistDir === null) return null;
    const file = join(this.#source.persistDir, PERSISTED_BUNDLE);
    try {
      return await readFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
        this.#seams.logger.warn({ file, err: (error as Error).message }, "cannot read the persisted bundle: downloading instead");
      }
      return null;
    }
  }

  async #persist(): Promise<void> {
    if (this.#source.persistDir === null || this.#active === null) return;
    const file = join(this.#source.persistDir, PERSISTED_BUNDLE);
    try {
      await writePrivateFile(file, this.#active.bytes);
    } catch (error) {
      this.#seams.logger.error({ file, err: (error as Error).message }, "cannot persist the bundle in force: a restart without the bundle server would fail");
    }
  }
}
