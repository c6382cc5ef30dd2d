export { Authorizer, type AuthorizerParts, type CheckBudget } from "./authorizer.js";
