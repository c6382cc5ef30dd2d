export { ENTRYPOINT, POLICY_DENY_REASONS, type PolicyDecision, type PolicyDenyReason, PolicyEngine, PolicyFault } from "./engine.js";
