#!/usr/bin/env node
// The compose demo's token issuer, as files: `node demo-issuer.mjs DIR ISSUER` makes an ES256
// key pair once and writes, in DIR,
//   demo-issuer.json        the private key, as the state file `scitokens-authz token create
//                           --state FILE` mints with (mode 0600);
//   demo-issuer.jwks.json   the public key, the JWKS the service reads (`jwks_file`).
// A key already there is kept, so tokens minted earlier stay valid across `compose up`.
// Node's own crypto only: it runs in the image without the project's packages.
import { createHash, generateKeyPairSync } from "node:crypto";
import { existsSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [dir, issuer] = process.argv.slice(2);
if (dir === undefined || issuer === undefined) {
  process.stderr.write("usage: demo-issuer.mjs DIR ISSUER\n");
  process.exit(2);
}
const stateFile = join(dir, "demo-issuer.json");
const jwksFile = join(dir, "demo-issuer.jwks.json");

/** Writes beside the target and renames, so the service never reads half a file. */
function writeAtomically(file, text, mode) {
  const partial = `${file}.partial`;
  writeFileSync(partial, text, { mode });
  renameSync(partial, file);
}

if (existsSync(stateFile) && existsSync(jwksFile)) {
  process.stdout.write(`demo issuer ${issuer}: keeping the key in ${stateFile}\n`);
} else {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const publicJwk = publicKey.export({ format: "jwk" });
  // RFC 7638 thumbprint of the public key as its key id.
  const kid = createHash("sha256")
    .update(JSON.stringify({ crv: publicJwk.crv, kty: publicJwk.kty, x: publicJwk.x, y: publicJwk.y }))
    .digest("base64url");
  const state = { issuer, kid, alg: "ES256", private_jwk: { ...privateKey.export({ format: "jwk" }), kid, alg: "ES256" } };
  const jwks = { keys: [{ ...publicJwk, kid, alg: "ES256", use: "sig" }] };
  writeAtomically(jwksFile, `${JSON.stringify(jwks, null, 2)}\n`, 0o644);
  writeAtomically(stateFile, `${JSON.stringify(state, null, 2)}\n`, 0o600);
  process.stdout.write(`demo issuer ${issuer}: new ES256 key ${kid} in ${stateFile}, public key in ${jwksFile}\n`);
}
