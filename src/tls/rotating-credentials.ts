import type { SecureContextOptions } from "node:tls";
import { ServerCredentials } from "@grpc/grpc-js";

/**
 * Server credentials whose certificate, key and client CAs can be replaced while the
 * server runs. grpc-js (1.14, as package.json requires) builds its HTTP/2 TLS server from the
 * credentials' secure context options and registers a watcher on them; a call to the
 * protected `updateSecureContextOptions` reaches that watcher, which calls Node's
 * `tls.Server.setSecureContext`: connections accepted from then on handshake with the
 * new context, established ones keep theirs. The experimental
 * `createCertificateProviderServerCredentials` uses the same path, but its
 * `FileWatcherCertificateProvider` polls, checks nothing and publishes a failed read as
 * "no credentials" (the listener then drops every new connection); here the caller
 * replaces the context only with files already checked.
 *
 * Whether client certificates are required (mutual TLS) is fixed at construction: it
 * is a server option, not part of the secure context.
 */
export class RotatingServerCredentials extends ServerCredentials {
  constructor(mutual: boolean, context: SecureContextOptions) {
    super({ requestCert: mutual, rejectUnauthorized: mutual }, context);
  }

  /** New connections use `context` from now on; it must already be known to be valid. */
  replace(context: SecureContextOptions): void {
    this.updateSecureContextOptions(context);
  }

  /** grpc-js compares credentials to tell whether a port is bound twice; these are one of a kind. */
  override _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}
