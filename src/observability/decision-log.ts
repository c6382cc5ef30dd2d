import { type WriteStream, createWriteStream } from "node:fs";
import type { Logger } from "pino";
import { type DecisionEvent, buildDecisionRecord } from "./decision-record.js";
import { LogLimiter } from "./log-limiter.js";

export { type DecisionEvent, type DecisionRecord, type LoggedToken, buildDecisionRecord, hashJti } from "./decision-record.js";

export interface DecisionLogOptions {
  /** The file JSON lines are appended to (created with mode 0640). */
  readonly file: string;
  /** Where the decision log's own faults go (one line a minute at most). */
  readonly logger: Logger;
  /** Clock seam (ms since the epoch): record times, the error-line limit, reopen attempts. */
  readonly now?: () => number;
  /** Above this many bytes waiting for the disk, records are dropped (and counted). */
  readonly maxBufferedBytes?: number;
}

/** A fault writing the decision log is logged at most once a minute, and opening is retried as often. */
const ERROR_INTERVAL_MS = 60_000;
const DEFAULT_MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
/** Records gathered within one turn of the event loop, beyond which they are dropped. */
const MAX_PENDING_RECORDS = 100_000;

interface Pending {
  readonly event: DecisionEvent;
  readonly revision: string;
  readonly timeMs: number;
}

/**
 * The opt-in decision log (`log.decisions.file`): one JSON line per Check, appended to a
 * file. A Check only queues its event; the line is built and written after the Check has
 * answered, gathered per turn of the event loop into one write to a buffered stream, so
 * no Check waits for the disk. When the file cannot be written, records are dropped,
 * one error line a minute says so (with the count), opening is retried as often, and
 * Checks go on being decided. {@link reopen} (on SIGHUP) starts a new file after rotation.
 */
export class DecisionLog {
  readonly file: string;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #maxBuffered: number;
  readonly #errors: LogLimiter;
  #stream: WriteStream | undefined;
  #fault: Error | undefined;
  #openedAt = 0;
  #pending: Pending[] = [];
  #scheduled: NodeJS.Immediate | undefined;
  #dropped = 0;
  #closed = false;

  constructor(options: DecisionLogOptions) {
    this.file = options.file;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    this.#maxBuffered = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    this.#errors = new LogLimiter({ intervalMs: ERROR_INTERVAL_MS, now: this.#now });
    this.#open();
  }

  /** Queues the record of one Check decided by the generation `revision`; never throws. */
  record(event: DecisionEvent, revision: string): void {
    if (this.#closed) return;
    if (this.#pending.length >= MAX_PENDING_RECORDS) {
      this.#dropped++;
      return;
    }
    this.#pending.push({ event, revision, timeMs: this.#now() });
    this.#scheduled ??= setImmediate(() => this.#flush());
  }

  /** Closes the file and opens it again (log rotation: SIGHUP after the file was renamed). */
  reopen(): void {
    if (this.#closed) return;
    this.#flush();
    this.#stream?.end();
    this.#open();
  }

  /** Writes what is queued and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    const stream = this.#stream;
    this.#stream = undefined;
    if (stream === undefined || stream.destroyed) return;
    await new Promise<void>((resolve) => {
      stream.once("close", resolve);
      stream.end();
    });
  }

  #open(): void {
    this.#fault = undefined;
    this.#openedAt = this.#now();
    const stream = createWriteStream(this.file, { flags: "a", mode: 0o640 });
    stream.on("error", (error) => {
      if (this.#stream !== stream) return;
      this.#fault = error;
      this.#report();
    });
    this.#stream = stream;
  }

  #flush(): void {
    if (this.#scheduled !== undefined) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#pending = [];
    if (this.#fault !== undefined && this.#now() - this.#openedAt >= ERROR_INTERVAL_MS) this.#open();
    const stream = this.#stream;
    if (this.#fault !== undefined || stream === undefined || stream.destroyed || stream.writableLength > this.#maxBuffered) {
      this.#dropped += batch.length;
      this.#report();
      return;
    }
    let lines = "";
    for (const { event, revision, timeMs } of batch) {
      try {
        lines += `${JSON.stringify(buildDecisionRecord(event, revision, timeMs))}\n`;
      } catch {
        this.#dropped++;
      }
    }
    stream.write(lines);
  }

  /** One error line a minute at most, with the records dropped since the last one. */
  #report(): void {
    if (this.#errors.admit("decision-log") === null) return;
    const fault = this.#fault;
    const dropped = this.#dropped;
    this.#dropped = 0;
    this.#logger.error(
      { file: this.file, code: (fault as NodeJS.ErrnoException | undefined)?.code ?? null, dropped },
      `decision log cannot be written (${fault?.message ?? "the disk is not keeping up"}): records are dropped, Checks are decided as usual`,
    );
  }
}
