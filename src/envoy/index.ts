export { type Decision, DENY_SHAPES, GrpcCode, IDENTITY_HEADERS, type ResponseSettings, decisionToResponse } from "./decision-to-response.js";
export { type Destination, parseDestination } from "./destination.js";
export { type HttpRequestView, SINGLE_VALUED_HEADERS, readHttpRequest } from "./http-request.js";
export { type InputParts, type PolicyInput, buildPolicyInput } from "./policy-input.js";
