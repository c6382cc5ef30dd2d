export {
  ASYMMETRIC_ALGORITHMS,
  type AuthzData,
  DEFAULT_ALGORITHMS,
  DEFAULT_VERBS,
  type IssuerPolicy,
  PATH_AUTHZ,
  type PathAuthz,
  type RouteSettings,
  isFetchableUrl,
  loadAuthzData,
  parseAuthzData,
} from "./authz-data.js";
export { ConfigError } from "./config-error.js";
export {
  BUILT_POLICY_FILE,
  DEMO_DATA_FILE,
  type ListenAddress,
  PACKAGE_ROOT,
  type ServiceConfig,
  loadServiceConfig,
  parseListen,
  parseServiceConfig,
} from "./service-config.js";
