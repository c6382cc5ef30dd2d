export { CONTROL_CHARACTER, type PathResult, normalizeConfiguredPath, normalizeRequestPath, normalizeScopePath, percentDecodeOnce } from "./normalize.js";
