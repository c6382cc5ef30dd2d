export { ConfigError } from "./config-error.js";
export {
  type AuthzData,
  type IssuerPolicy,
  type RouteSettings,
  type PathAuthz,
  ASYMMETRIC_ALGORITHMS,
  DEFAULT_ALGORITHMS,
  DEFAULT_VERBS,
  PATH_AUTHZ,
  isFetchableUrl,
  loadAuthzData,
  parseAuthzData,
} from "./authz-data.js";
export {
  type ListenAddress,
  type ServiceConfig,
  BUILT_POLICY_FILE,
  DEMO_DATA_FILE,
  PACKAGE_ROOT,
  loadServiceConfig,
  parseListen,
  parseServiceConfig,
} from "./service-config.js";
