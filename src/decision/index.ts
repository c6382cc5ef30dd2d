export { Authorizer, type AuthorizerParts, type CheckBudget } from "./authorizer.js";
export { DenyError, type DenyReason, INVALID_TOKEN_REASONS, REASON_CODES, type ReasonCode, isReasonCode } from "./reasons.js";
