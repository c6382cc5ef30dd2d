/**
 * Issuer key sets: where each trusted issuer's keys come from, how they are fetched,
 * cached and refreshed, and which key verifies a token (docs/semantics.md §2–§3).
 */
export {
  type IssuerKeySource,
  type IssuerKeyStatus,
  KEY_STORE_DEFAULTS,
  type KeyLookupOptions,
  KeyStore,
  type KeyStoreOptions,
} from "./key-store.js";
export { keyUrlProblem } from "./key-url.js";
