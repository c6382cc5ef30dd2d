export { demoDataFor } from "./demo-data.js";
export { isLoopbackHost } from "./loopback.js";
export type { MintOptions, TokenProfile } from "./mint.js";
export { DEFAULT_LIFETIME_SECONDS, DEFAULT_SUBJECT, mintToken } from "./mint.js";
export type { DevIssuer, DevIssuerOptions, DevIssuerState, DevIssuerStateFile } from "./server.js";
export { DevIssuerStateError, readDevIssuerState, startDevIssuer } from "./server.js";
