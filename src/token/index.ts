export { extractBearer } from "./bearer.js";
export { type TokenProfile, type VerifiedToken, checkTime, detectProfile, readClaims } from "./claims.js";
export { type KeyVersion, NegativeCache } from "./negative-cache.js";
export { type ParsedScope, parseScopes, splitScopeString } from "./scopes.js";
export { type KeyRecheck, type KeyResolver, TokenVerifier, type TokenVerifierOptions } from "./verify.js";
