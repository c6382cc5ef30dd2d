import type { ClassExample } from "../class-examples.js";
import type { Classifier } from "../divergences.js";
import type { Oracle } from "../oracle.js";

/** What every oracle gets to start: a temporary folder of its own and the issuer's key. */
export interface OracleContext {
  /** The test's temporary folder (the oracle makes a subfolder named after its id). */
  dir: string;
  issuer: string;
  kid: string;
  /** The issuer's public key (SPKI PEM), given to the library so it makes no network request. */
  publicKeyPem: string;
}

/** A reference implementation the differential test can run, with its divergence classes. */
export interface OracleSpec {
  id: string;
  label: string;
  /** oracles/<id>.yaml: the documented classes of disagreement. */
  classesFile: string;
  /** One per class of {@link classesFile}, keyed by the same id. */
  classifiers: Readonly<Record<string, Classifier>>;
  /**
   * The least share of the seeded cases that both sides must allow (default 0.1), so that
   * an oracle or a service that denies everything cannot "agree" vacuously. Lower it for a
   * reference that refuses whole kinds of cases (say, every WLCG token), and say why.
   */
  minBothAllowShare?: number;
  /**
   * A class of cases whose reference answer is undefined (a crash, or whatever memory
   * held): its classifier is asked before the answers are compared, and every case it
   * claims is counted there, even when this run's answer happens to match ours, so that
   * the published figures do not move from one run to the next.
   */
  arbitraryClass?: string;
  /** Hand-written cases: at least one per class, plus agreements, run whatever the seed. */
  examples: readonly ClassExample[];
  start(context: OracleContext): Promise<Oracle>;
}
