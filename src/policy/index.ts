export { ENTRYPOINT, type PolicyDecision, PolicyEngine, PolicyFault } from "./engine.js";
