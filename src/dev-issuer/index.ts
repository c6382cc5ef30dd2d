export { mintToken, DEFAULT_LIFETIME_SECONDS, DEFAULT_SUBJECT } from "./mint.js";
export type { MintOptions, TokenProfile } from "./mint.js";
export { startDevIssuer, readDevIssuerState, DevIssuerStateError } from "./server.js";
export type { DevIssuer, DevIssuerOptions, DevIssuerState, DevIssuerStateFile } from "./server.js";
export { isLoopbackHost } from "./loopback.js";
