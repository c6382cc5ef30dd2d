export { DENY_SHAPES, type Decision, GrpcCode, type ResponseSettings, decisionToResponse } from "./decision-to-response.js";
export { type Destination, parseDestination } from "./destination.js";
export { type HttpRequestView, SINGLE_VALUED_HEADERS, readHttpRequest } from "./http-request.js";
export {
  type InputParts,
  type PolicyInput,
  type PolicyToken,
  buildPolicyInput,
  invalidPolicyToken,
  policyInputJson,
  verifiedPolicyToken,
} from "./policy-input.js";
