/**
 * Reason codes and the error that carries one: the bottom of the import graph, so that
 * every stage of a Check (envoy/, paths/, token/, policy/, decision/) can name a reason
 * without importing another stage.
 */
export { DenyError, type DenyReason, type OperatorReason, REASON_CODES, type ReasonCode, isReasonCode } from "./reasons.js";
