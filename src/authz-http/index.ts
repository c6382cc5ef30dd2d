export { DECISION_ID_HEADER, HEADERS_TO_REMOVE_HEADER, type HttpAnswer, REASON_HEADER, REVISION_HEADER, checkResponseToHttp } from "./check-to-http.js";
export {
  type AuthzHttpCall,
  type AuthzHttpMode,
  type AuthzHttpRequest,
  ENVOY_PATH_PREFIX,
  NGINX_PATH,
  ORIGINAL_METHOD_HEADER,
  ORIGINAL_URI_HEADER,
  readAuthzHttpRequest,
} from "./http-to-check.js";
