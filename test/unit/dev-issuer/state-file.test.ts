import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mintToken } from "../../../src/dev-issuer/mint.js";
import type { DevIssuer } from "../../../src/dev-issuer/server.js";
import { DevIssuerStateError, readDevIssuerState, startDevIssuer } from "../../../src/dev-issuer/server.js";

let dir: string;
const started: DevIssuer[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "scitokens-authz-dev-issuer-"));
});

afterEach(async () => {
  await Promise.all(started.splice(0).map((issuer) => issuer.close()));
  await rm(dir, { recursive: true, force: true });
});

async function start(stateFile: string, alg: "ES256" | "RS256" = "ES256"): Promise<DevIssuer> {
  const issuer = await startDevIssuer({ port: 0, stateFile, alg });
  started.push(issuer);
  return issuer;
}

const exists = (file: string): Promise<boolean> =>
  stat(file).then(
    () => true,
    () => false,
  );

describe("dev issuer state file", () => {
  it("is written with mode 0600 into a created folder and removed on close", async () => {
    const file = join(dir, "state", "nested", "dev-issuer.json");
    const issuer = await start(file);

    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const state = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
    expect(state).toEqual({
      issuer: issuer.issuer,
      kid: issuer.kid,
      alg: "ES256",
      private_jwk: expect.objectContaining({ kty: "EC", crv: "P-256", d: expect.any(String), kid: issuer.kid, alg: "ES256" }),
    });
    expect(await readdir(join(dir, "state", "nested"))).toEqual(["dev-issuer.json"]);

    await issuer.close();
    expect(await exists(file)).toBe(false);
  });

  it("is left alone on close when another issuer has replaced it", async () => {
    const file = join(dir, "dev-issuer.json");
    const first = await start(file);
    const second = await start(file);

    await first.close();
    expect((await readDevIssuerState(file)).kid).toBe(second.kid);
    await second.close();
    expect(await exists(file)).toBe(false);
  });

  it("cannot be written: the issuer does not start", async () => {
    const blocker = join(dir, "not-a-folder");
    await writeFile(blocker, "");
    await expect(startDevIssuer({ port: 0, stateFile: join(blocker, "dev-issuer.json") })).rejects.toThrow(
      `cannot write its state file ${join(blocker, "dev-issuer.json")}`,
    );
  });
});

describe("readDevIssuerState", () => {
  it.each(["ES256", "RS256"] as const)("round trip (%s): tokens minted from the file verify against the running issuer", async (alg) => {
    const file = join(dir, "dev-issuer.json");
    const issuer = await start(file, alg);

    const state = await readDevIssuerState(file);
    expect(state).toMatchObject({ issuer: issuer.issuer, kid: issuer.kid, alg });

    const token = await mintToken({ ...state, scopes: ["read:/"], audience: "https://storage.example.org" });
    const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(`${issuer.issuer}/jwks`)), {
      issuer: issuer.issuer,
      audience: "https://storage.example.org",
    });
    expect(protectedHeader).toMatchObject({ alg, kid: issuer.kid });
    expect(payload.scope).toBe("read:/");
  });

  it("says the issuer is not running and names the file when it is missing", async () => {
    const file = join(dir, "absent.json");
    const error = await readDevIssuerState(file).catch((err: unknown) => err);

    expect(error).toBeInstanceOf(DevIssuerStateError);
    expect(error).toMatchObject({ file });
    expect((error as Error).message).toBe(`the development issuer is not running: start the service with \`npm start\` (${file}: no such file)`);
  });

  it("fails after the issuer has closed", async () => {
    const file = join(dir, "dev-issuer.json");
    const issuer = await start(file);
    await issuer.close();
    await expect(readDevIssuerState(file)).rejects.toThrow(/the development issuer is not running/);
  });

  const validJwk = {
    kty: "EC",
    crv: "P-256",
    x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    d: "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI",
  };

  it.each<{ name: string; content: string; problem: string }>([
    { name: "empty", content: "", problem: "not valid JSON" },
    { name: "not JSON", content: "issuer=http://127.0.0.1", problem: "not valid JSON" },
    { name: "a JSON array", content: "[]", problem: "not a JSON object" },
    { name: "JSON null", content: "null", problem: "not a JSON object" },
    { name: "without issuer", content: JSON.stringify({ kid: "k", alg: "ES256", private_jwk: validJwk }), problem: '"issuer" is missing' },
    { name: "without kid", content: JSON.stringify({ issuer: "http://127.0.0.1:1", alg: "ES256", private_jwk: validJwk }), problem: '"kid" is missing' },
    {
      name: "with an HMAC alg",
      content: JSON.stringify({ issuer: "http://127.0.0.1:1", kid: "k", alg: "HS256", private_jwk: validJwk }),
      problem: '"alg" must be ES256 or RS256',
    },
    {
      name: "with a public key only",
      content: JSON.stringify({ issuer: "http://127.0.0.1:1", kid: "k", alg: "ES256", private_jwk: { ...validJwk, d: undefined } }),
      problem: '"private_jwk" is not a private JWK',
    },
    {
      name: "with a key for another alg",
      content: JSON.stringify({ issuer: "http://127.0.0.1:1", kid: "k", alg: "RS256", private_jwk: validJwk }),
      problem: '"private_jwk" is not a usable RS256 key',
    },
  ])("rejects a state file $name", async ({ content, problem }) => {
    const file = join(dir, "dev-issuer.json");
    await writeFile(file, content, { mode: 0o600 });
    const error = await readDevIssuerState(file).catch((err: unknown) => err);

    expect(error).toBeInstanceOf(DevIssuerStateError);
    expect((error as Error).message).toBe(`the development issuer is not running: start the service with \`npm start\` (${file}: ${problem})`);
  });
});
