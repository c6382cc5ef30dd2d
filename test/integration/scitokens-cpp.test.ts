import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { JWK } from "jose";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type TestService, startTestService } from "../helpers/service.js";
import { TEST_AUDIENCE } from "../helpers/tokens.js";
import { expectAllowed, expectDenied, forbidden, unauthenticated } from "./expect-decision.js";

// Interoperability with tokens minted by another JWT implementation: scitokens-cpp's
// `scitokens-create` (Debian package scitokens-cpp), the reference SciTokens library
// that storage services (XRootD, dCache plug-ins) are built on. It signs ES256 only.

const exec = promisify(execFile);
const TOOL = "scitokens-create";
const KID = "cpp-key-1";

interface PemKeyPair {
  privatePath: string;
  publicPath: string;
  publicJwk: JWK;
}

let dir: string;
let ec: PemKeyPair;
let otherEc: PemKeyPair; // never published: signs under KID to check the signature is verified
let rsa: PemKeyPair;
let issuer: OidcServer;
let svc: TestService;

async function writePemPair(name: string, type: "ec" | "rsa"): Promise<PemKeyPair> {
  const { privateKey, publicKey } =
    type === "ec" ? generateKeyPairSync("ec", { namedCurve: "prime256v1" }) : generateKeyPairSync("rsa", { modulusLength: 2048 });
  const privatePath = join(dir, `${name}.key.pem`);
  const publicPath = join(dir, `${name}.pub.pem`);
  await writeFile(privatePath, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  await writeFile(publicPath, publicKey.export({ type: "spki", format: "pem" }));
  return { privatePath, publicPath, publicJwk: publicKey.export({ format: "jwk" }) as JWK };
}

/** Fails (never skips) when the tool is missing: CI must exercise this interop. */
async function requireTool(): Promise<void> {
  try {
    await exec(TOOL, ["--help"]);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new Error(
        `${TOOL} is not on PATH. It comes from the Debian package scitokens-cpp, which the test runner ` +
          "(npm test → scripts/test.mjs) installs; locally run `sudo apt-get install scitokens-cpp`.",
      );
    }
    throw error;
  }
}

interface CreateOptions {
  profile: "scitokens2" | "scitokens1" | "wlcg";
  claims: Record<string, string>;
  key?: PemKeyPair;
}

/** Runs `scitokens-create` (no shell) and returns the token it prints. */
async function create(o: CreateOptions): Promise<string> {
  const key = o.key ?? ec;
  const args = ["--cred", key.publicPath, "--key", key.privatePath, "--keyid", KID, "--issuer", issuer.issuer];
  for (const [name, value] of Object.entries(o.claims)) args.push("--claim", `${name}=${value}`);
  args.push("--profile", o.profile);
  const { stdout } = await exec(TOOL, args);
  const token = stdout.trim();
  expect(token.split(".")).toHaveLength(3);
  return token;
}

beforeAll(async () => {
  await requireTool();
  dir = await mkdtemp(join(tmpdir(), "scitokens-cpp-interop-"));
  [ec, otherEc, rsa] = await Promise.all([writePemPair("ec", "ec"), writePemPair("other-ec", "ec"), writePemPair("rsa", "rsa")]);
  issuer = await startOidcServer({ keys: [{ alg: "ES256", kid: KID, publicJwk: { ...ec.publicJwk, kid: KID, alg: "ES256", use: "sig" } }] });
  svc = await startTestService({ audiences: [TEST_AUDIENCE], issuers: [{ issuer: issuer.issuer, base_path: "/" }] });
});

afterAll(async () => {
  await svc?.close();
  await issuer?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const SCITOKENS2_SCOPE = "read:/data write:/up";

describe("tokens from scitokens-cpp's scitokens-create", () => {
  it("writes SciTokens 2 claims the way the service expects them", async () => {
    const token = await create({ profile: "scitokens2", claims: { aud: TEST_AUDIENCE, scope: SCITOKENS2_SCOPE } });
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: "ES256", kid: KID });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ iss: issuer.issuer, aud: TEST_AUDIENCE, scope: SCITOKENS2_SCOPE, ver: "scitoken:2.0" });
    expect(typeof claims.exp).toBe("number");
    expect(typeof claims.iat).toBe("number");
    expect(claims.nbf).toBe(claims.iat);
  });

  it.each([
    { name: "GET under read:/data", method: "GET", path: "/data/run1/file.h5", scope: "read:/data" },
    { name: "GET of the scope path itself", method: "GET", path: "/data", scope: "read:/data" },
    { name: "PUT under write:/up", method: "PUT", path: "/up/new.h5", scope: "write:/up" },
    { name: "DELETE under write:/up", method: "DELETE", path: "/up/old.h5", scope: "write:/up" },
  ])("SciTokens 2: allows $name", async ({ method, path, scope }) => {
    const token = await create({ profile: "scitokens2", claims: { aud: TEST_AUDIENCE, scope: SCITOKENS2_SCOPE } });
    const response = await svc.check({ method, path, token });
    const headers = expectAllowed(response);
    expect(headers["x-scitokens-scope"]).toBe(scope);
    expect(headers["x-scitokens-issuer"]).toBe(issuer.issuer);
    expect(headers["x-scitokens-jti"]).toBe(decodeJwt(token).jti);
    expect(headers["if-none-match"]).toBeUndefined();
    // scitokens-create writes no `sub`: the header is stripped, never left as the client sent it.
    expect(response.okResponse?.headersToRemove).toContain("x-scitokens-subject");
  });

  it.each([
    { name: "a write outside write:/up", method: "PUT", path: "/data/run1/file.h5" },
    { name: "a write to a sibling of /up", method: "PUT", path: "/upload/file" },
    { name: "a read under write:/up only", method: "GET", path: "/up/new.h5" },
    { name: "a read of a sibling of /data", method: "GET", path: "/database" },
  ])("SciTokens 2: denies $name with 403 scope_insufficient", async ({ method, path }) => {
    const token = await create({ profile: "scitokens2", claims: { aud: TEST_AUDIENCE, scope: SCITOKENS2_SCOPE } });
    expectDenied(await svc.check({ method, path, token }), forbidden("scope_insufficient"));
  });

  it("SciTokens 2: denies a token created for another audience with 401 audience_mismatch", async () => {
    const token = await create({ profile: "scitokens2", claims: { aud: "https://other.example.org", scope: SCITOKENS2_SCOPE } });
    expectDenied(await svc.check({ method: "GET", path: "/data/file", token }), unauthenticated("audience_mismatch"));
  });

  it("denies a token signed by another key under the published kid with signature_invalid", async () => {
    const token = await create({ profile: "scitokens2", claims: { aud: TEST_AUDIENCE, scope: SCITOKENS2_SCOPE }, key: otherEc });
    expectDenied(await svc.check({ method: "GET", path: "/data/file", token }), unauthenticated("signature_invalid"));
  });

  it("--profile wlcg writes wlcg.ver 1.0 and no ver; storage.read:/data grants reads only", async () => {
    const token = await create({ profile: "wlcg", claims: { aud: TEST_AUDIENCE, scope: "storage.read:/data" } });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ iss: issuer.issuer, aud: TEST_AUDIENCE, scope: "storage.read:/data", "wlcg.ver": "1.0" });
    expect(claims).not.toHaveProperty("ver");

    const headers = expectAllowed(await svc.check({ method: "GET", path: "/data/run1/file.h5", token }));
    expect(headers["x-scitokens-scope"]).toBe("storage.read:/data");
    expectDenied(await svc.check({ method: "PUT", path: "/data/run1/file.h5", token }), forbidden("scope_insufficient"));
    expectDenied(await svc.check({ method: "GET", path: "/other", token }), forbidden("scope_insufficient"));
  });

  it("--profile wlcg with storage.create: an allowed PUT is made create-only (If-None-Match: *)", async () => {
    const token = await create({ profile: "wlcg", claims: { aud: TEST_AUDIENCE, scope: "storage.create:/up" } });
    const headers = expectAllowed(await svc.check({ method: "PUT", path: "/up/new.h5", token }));
    expect(headers["if-none-match"]).toBe("*");
    expect(headers["x-scitokens-scope"]).toBe("storage.create:/up");
  });

  it("--profile wlcg: a token for another audience is denied with audience_mismatch", async () => {
    const token = await create({ profile: "wlcg", claims: { aud: "https://other.example.org", scope: "storage.read:/data" } });
    expectDenied(await svc.check({ method: "GET", path: "/data/file", token }), unauthenticated("audience_mismatch"));
  });

  it("--profile scitokens1 writes no version claim and is read as SciTokens 1", async () => {
    const token = await create({ profile: "scitokens1", claims: { aud: TEST_AUDIENCE, scope: "read:/data" } });
    const claims = decodeJwt(token);
    expect(claims).not.toHaveProperty("ver");
    expect(claims).not.toHaveProperty("wlcg.ver");
    expect(expectAllowed(await svc.check({ method: "GET", path: "/data/file", token }))["x-scitokens-scope"]).toBe("read:/data");
    expectDenied(await svc.check({ method: "PUT", path: "/data/file", token }), forbidden("scope_insufficient"));
  });

  it("signs ES256 only: an RSA key pair is refused, so RS256 interop is covered by jose-minted tokens", async () => {
    // scitokens-create hard-codes ES256 and has no key-algorithm option (see --help).
    const { stdout: help } = await exec(TOOL, ["--help"]);
    expect(help).not.toMatch(/--(key)?alg/i);
    await expect(create({ profile: "scitokens2", claims: { aud: TEST_AUDIENCE, scope: "read:/data" }, key: rsa })).rejects.toThrow();
  });
});
