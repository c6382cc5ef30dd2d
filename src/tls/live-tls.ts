import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { ConfigError } from "../config/config-error.js";
import type { TlsSettings } from "../config/service-config.js";
import { type CertificateSummary, type TlsMaterial, readTlsFiles } from "./read-tls-files.js";
import { RotatingServerCredentials } from "./rotating-credentials.js";

/** The outcome of one TLS reload, as {@link LiveTls.reload} and `onReload` report it. */
export type TlsReloadEvent =
  | {
      readonly outcome: "reloaded";
      readonly certificate: CertificateSummary;
      readonly previous: CertificateSummary;
      readonly trigger: string;
    }
  | {
      /** The files hold what is already in use. */
      readonly outcome: "unchanged";
      readonly certificate: CertificateSummary;
      readonly trigger: string;
    }
  | {
      readonly outcome: "refused";
      readonly problems: readonly string[];
      /** The certificate that goes on serving. */
      readonly certificate: CertificateSummary;
      readonly trigger: string;
    };

/**
 * The gRPC listener's TLS credentials, reloaded from their files on request (file
 * changes, SIGHUP). A reload reads and checks the files as start-up does, and only
 * then hands them to the listener: connections accepted afterwards use them, open ones
 * keep theirs. A broken replacement (unreadable, not PEM, a key that is not the
 * certificate's, an expired certificate…) is refused with one error line, and the
 * credentials in use stay. Reloads run one at a time.
 */
export class LiveTls {
  readonly credentials: RotatingServerCredentials;
  readonly #settings: TlsSettings;
  readonly #configFile: string;
  readonly #logger: Logger;
  readonly #events = new EventEmitter();
  #current: TlsMaterial;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(settings: TlsSettings, configFile: string, logger: Logger, material: TlsMaterial) {
    this.#settings = settings;
    this.#configFile = configFile;
    this.#logger = logger;
    this.#current = material;
    this.credentials = new RotatingServerCredentials(settings.clientCaFile !== null, contextOf(material));
    this.#events.setMaxListeners(0);
  }

  /** Reads and checks the files; a ConfigError (every problem listed) stops the start-up. */
  static async start(settings: TlsSettings, configFile: string, logger: Logger): Promise<LiveTls> {
    const live = new LiveTls(settings, configFile, logger, await readTlsFiles(settings, configFile));
    live.#logLoaded("start");
    return live;
  }

  /** Whether clients must present a certificate signed by `client_ca_file`. */
  get mutual(): boolean {
    return this.#settings.clientCaFile !== null;
  }

  /** The server certificate new connections get. */
  get certificate(): CertificateSummary {
    return this.#current.certificate;
  }

  /** Reads the files again and applies them when they are valid and changed. Never rejects. */
  reload(trigger: string): Promise<TlsReloadEvent> {
    const done = this.#queue.then(() => this.#reloadOnce(trigger));
    this.#queue = done;
    return done;
  }

  onReload(listener: (event: TlsReloadEvent) => void): () => void {
    this.#events.on("reload", listener);
    return () => this.#events.off("reload", listener);
  }

  /** Resolves with the next reload outcome (matching `filter`, when given). */
  nextReload(filter: (event: TlsReloadEvent) => boolean = () => true): Promise<TlsReloadEvent> {
    return new Promise((resolve) => {
      const off = this.onReload((event) => {
        if (!filter(event)) return;
        off();
        resolve(event);
      });
    });
  }

  async #reloadOnce(trigger: string): Promise<TlsReloadEvent> {
    const previous = this.#current;
    let event: TlsReloadEvent;
    try {
      const material = await readTlsFiles(this.#settings, this.#configFile);
      if (material.digest === previous.digest) {
        this.#logger.info({ trigger, certificate: previous.certificate }, "TLS files unchanged: nothing to reload");
        event = { outcome: "unchanged", certificate: previous.certificate, trigger };
      } else {
        this.credentials.replace(contextOf(material));
        this.#current = material;
        this.#logLoaded(trigger);
        event = { outcome: "reloaded", certificate: material.certificate, previous: previous.certificate, trigger };
      }
    } catch (error) {
      const problems = error instanceof ConfigError ? error.problems : [`the reload failed (${error instanceof Error ? error.message : String(error)})`];
      const serving = previous.certificate;
      this.#logger.error(
        { file: this.#configFile, problems, trigger, certificate: serving },
        `TLS reload refused: ${problems.join("; ")}; new connections still get certificate ${serving.serial} (${serving.subject}, valid until ${serving.notAfter})`,
      );
      event = { outcome: "refused", problems, certificate: serving, trigger };
    }
    try {
      this.#events.emit("reload", event);
    } catch (error) {
      this.#logger.error({ err: error }, "a TLS reload listener failed");
    }
    return event;
  }

  #logLoaded(trigger: string): void {
    const { certificate, clientCas } = this.#current;
    this.#logger.info(
      {
        trigger,
        certificate,
        mutual_tls: this.mutual,
        ...(this.mutual ? { client_ca_file: this.#settings.clientCaFile, client_cas: clientCas } : {}),
        cert_file: this.#settings.certFile,
      },
      `TLS credentials loaded: certificate ${certificate.serial} (${certificate.subject}, valid until ${certificate.notAfter})${
        this.mutual ? `; client certificates required, signed by one of ${clientCas} CA certificate${clientCas === 1 ? "" : "s"}` : ""
      }`,
    );
  }
}

function contextOf(material: TlsMaterial) {
  return { cert: material.cert, key: material.key, ...(material.ca !== undefined ? { ca: material.ca } : {}) };
}
