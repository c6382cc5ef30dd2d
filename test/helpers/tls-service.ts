import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { connect } from "node:tls";
import { Metadata, credentials } from "@grpc/grpc-js";
import { buildCheckRequest } from "../../src/cli/check.js";
import { AuthorizationClient, type CheckResponse } from "../../src/gen/envoy/service/auth/v3/external_auth.js";
import type { CertificateFiles, TestCa } from "./certificates.js";

/** A gRPC client of the service over TLS, holding its connection until closed. */
export interface TlsClient {
  /** One Check of GET `path` (with `token` when given). */
  check(path: string, token?: string): Promise<CheckResponse>;
  close(): void;
}

/** Trusts `trust` (CA PEM; null: plaintext) and presents `identity` when given (mutual TLS). */
export function tlsClient(target: string, trust: TestCa | string | null, identity?: CertificateFiles): TlsClient {
  const channel =
    trust === null
      ? credentials.createInsecure()
      : credentials.createSsl(
          Buffer.from(typeof trust === "string" ? trust : trust.cert),
          identity ? Buffer.from(identity.key) : null,
          identity ? Buffer.from(identity.cert) : null,
        );
  const client = new AuthorizationClient(target, channel);
  return {
    check: (path, token) =>
      new Promise((resolve, reject) => {
        const request = buildCheckRequest({ target, method: "GET", path, host: "storage.example.org", ...(token !== undefined ? { token } : {}) });
        client.check(request, new Metadata(), { deadline: Date.now() + 5_000 }, (error, response) => (error ? reject(error) : resolve(response)));
      }),
    close: () => client.close(),
  };
}

/** One Check on a fresh connection, the client closed afterwards. */
export async function checkOnce(target: string, trust: TestCa | string | null, identity?: CertificateFiles, token?: string): Promise<CheckResponse> {
  const client = tlsClient(target, trust, identity);
  try {
    return await client.check("/data/x", token);
  } finally {
    client.close();
  }
}

/** The SHA-256 fingerprint of the certificate a new TLS connection to 127.0.0.1:`port` is shown. */
export function servedFingerprint(port: number, ca: TestCa, identity?: CertificateFiles): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, servername: "localhost", ca: ca.cert, ALPNProtocols: ["h2"], ...(identity ?? {}) }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      resolve(fingerprint);
    });
    socket.once("error", reject);
  });
}

/** Replaces certificate and key as configuration management does: new files renamed over the old, together. */
export async function replaceFiles(dir: string, files: Record<string, string>): Promise<void> {
  const staged = Object.entries(files).map(([name, contents], index) => ({ name, contents, temporary: join(dir, `.staged-${index}-${name}`) }));
  await Promise.all(staged.map((f) => writeFile(f.temporary, f.contents)));
  await Promise.all(staged.map((f) => rename(f.temporary, join(dir, f.name))));
}
