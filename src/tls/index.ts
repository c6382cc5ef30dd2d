export { LiveTls, type TlsReloadEvent } from "./live-tls.js";
export { type CertificateSummary, MAX_TLS_FILE_BYTES, type TlsMaterial, readTlsFiles, tlsFiles } from "./read-tls-files.js";
export { RotatingServerCredentials } from "./rotating-credentials.js";
