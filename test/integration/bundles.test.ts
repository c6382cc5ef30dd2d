import { mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { bundleRevision } from "../../src/bundle/snapshot.js";
import { buildCheckRequest, sendCheck } from "../../src/cli/check.js";
import { ConfigError } from "../../src/config/config-error.js";
import { parseServiceConfig } from "../../src/config/service-config.js";
import { writePrivateFile } from "../../src/fs/write-private-file.js";
import { createLogger } from "../../src/observability/logger.js";
import { type ReloadEvent, type RunningService, startService } from "../../src/server/service.js";
import { type BundleServer, type SigningKeyFiles, buildTestBundle, repack, signingKeyFiles, startBundleServer } from "../helpers/bundles.js";
import { type TestKey, makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { collectLogs, revisionOf } from "../helpers/policy-files.js";
import { reasonOf } from "../helpers/service.js";
import { TEST_AUDIENCE, mint } from "../helpers/tokens.js";

// Issue 7, bundles: the real service takes its policy from an OPA bundle written and
// signed by `policy build` (the pinned OPA), from a file it watches or from a real static
// HTTP server on loopback that it polls with ETags; it verifies each bundle's signature
// before it goes live, refuses a bad one (the last good bundle goes on serving), and
// keeps the last good bundle on disk to start from when the server cannot be reached.

const OTHER_AUDIENCE = "https://other.example.org";

let key: TestKey;
let issuer: OidcServer;
let work: string;
let signer: SigningKeyFiles;
let stranger: SigningKeyFiles;
let token: string;
/** Accepts the token's audience; the next one does not. */
let accepting: Buffer;
let refusing: Buffer;
let count = 0;
const running: RunningService[] = [];

beforeAll(async () => {
  key = await makeKey("ES256", "key-1");
  issuer = await startOidcServer({ keys: [key] });
  work = await mkdtemp(join(tmpdir(), "scitokens-authz-bundles-"));
  [signer, stranger] = await Promise.all([signingKeyFiles(work, "signer"), signingKeyFiles(work, "stranger")]);
  token = await mint(key, issuer.issuer, { scopes: ["read:/"] });
  accepting = await bundle([TEST_AUDIENCE], "rev-accepting");
  refusing = await bundle([OTHER_AUDIENCE], "rev-refusing");
}, 60_000);

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await issuer?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

async function bundle(audiences: string[], revision: string, signingKey: string = signer.privateKey): Promise<Buffer> {
  const n = ++count;
  return buildTestBundle({
    data: { audiences, issuers: [{ issuer: issuer.issuer, base_path: "/data" }] },
    dir: join(work, `policy-${n}`),
    output: join(work, `bundle-${n}.tar.gz`),
    revision,
    signingKey,
  });
}

const signing = () => ({ keys: { default: { algorithm: "RS256", key_file: signer.publicKey } } });

async function start(dir: string, bundleSection: Record<string, unknown>) {
  const { logs, sink } = collectLogs();
  const config = parseServiceConfig(join(dir, "service.yaml"), {
    grpc: { listen: "127.0.0.1:0" },
    policy: { bundle: bundleSection },
    keys: { check_wait_seconds: 2 },
  });
  const service = await startService(config, { logger: createLogger("info", sink) });
  running.push(service);
  const target = `127.0.0.1:${service.port}`;
  const read = async () => {
    const response = await sendCheck(target, buildCheckRequest({ target, host: "storage.example.org", method: "GET", path: "/data/file", token }));
    return { reason: reasonOf(response), revision: revisionOf(response) };
  };
  return { service, logs, read };
}

async function replaceFile(file: string, bytes: Buffer): Promise<void> {
  const staging = `${file}.staging-${++count}`;
  await writeFile(staging, bytes);
  await rename(staging, file);
}

const reloaded = (event: ReloadEvent): boolean => event.outcome === "reloaded";
const refused = (event: ReloadEvent): event is Extract<ReloadEvent, { outcome: "refused" }> => event.outcome === "refused";

describe("a bundle file (policy.bundle.file)", () => {
  it("serves a signed bundle, adopts a new one written over it without a restart, and logs its manifest revision", async () => {
    const dir = await mkdtemp(join(work, "file-"));
    const file = join(dir, "bundle.tar.gz");
    await writeFile(file, accepting);
    const svc = await start(dir, { file, signing: signing() });
    expect(await svc.read()).toEqual({ reason: "allowed", revision: bundleRevision(accepting) });
    expect(svc.logs.find((l) => l["msg"] === `policy loaded: revision ${bundleRevision(accepting)}`)).toMatchObject({
      bundle: file,
      bundle_revision: "rev-accepting",
      signed: true,
    });

    const next = svc.service.nextReload(reloaded);
    await replaceFile(file, refusing);
    expect(await next).toMatchObject({ outcome: "reloaded", revision: bundleRevision(refusing), previousRevision: bundleRevision(accepting) });
    expect(await svc.read()).toEqual({ reason: "audience_mismatch", revision: bundleRevision(refusing) });
  });

  it.each<[string, () => Promise<Buffer>, RegExp]>([
    ["an unsigned bundle", async () => bundleUnsigned(), /signature: the bundle is not signed/],
    [
      "a bundle signed with a key not configured",
      async () => bundle([OTHER_AUDIENCE], "rev-stranger", stranger.privateKey),
      /signature: .*does not verify with the configured key/,
    ],
    [
      "a signed bundle whose data was changed",
      async () =>
        repack(accepting, (files) =>
          files.set(
            "/data.json",
            Buffer.from(JSON.stringify({ scitokens: { data: { audiences: ["ANY"], issuers: [{ issuer: issuer.issuer, base_path: "/" }] } } })),
          ),
        ),
      /signature: data\.json: digest mismatch/,
    ],
    ["bytes that are not a bundle", async () => Buffer.from("not a bundle"), /not a gzipped OPA bundle/],
  ])("refuses %s and goes on serving the last good one", async (_name, make, expected) => {
    const dir = await mkdtemp(join(work, "file-"));
    const file = join(dir, "bundle.tar.gz");
    await writeFile(file, accepting);
    const svc = await start(dir, { file, signing: signing() });
    const outcome = svc.service.nextReload(refused);
    await replaceFile(file, await make());
    const event = await outcome;
    expect(event).toMatchObject({ outcome: "refused", file, revision: bundleRevision(accepting) });
    expect((event as Extract<ReloadEvent, { outcome: "refused" }>).problems.join("\n")).toMatch(expected);
    expect(await svc.read()).toEqual({ reason: "allowed", revision: bundleRevision(accepting) });
    expect(svc.logs.some((l) => l["level"] === 50 && String(l["msg"]).startsWith(`policy reload refused: ${file}: `))).toBe(true);
  });

  it("does not start from a bundle that fails verification", async () => {
    const dir = await mkdtemp(join(work, "file-"));
    const file = join(dir, "bundle.tar.gz");
    await writeFile(file, await bundleUnsigned());
    const config = parseServiceConfig(join(dir, "service.yaml"), { grpc: { listen: "127.0.0.1:0" }, policy: { bundle: { file, signing: signing() } } });
    const started = startService(config, { logger: createLogger("silent") });
    await expect(started).rejects.toThrow(ConfigError);
    await expect(started).rejects.toThrow(/signature: the bundle is not signed/);
  });
});

let unsignedBundle: Buffer | undefined;
async function bundleUnsigned(): Promise<Buffer> {
  const n = ++count;
  unsignedBundle ??= await buildTestBundle({
    data: { audiences: [OTHER_AUDIENCE], issuers: [{ issuer: issuer.issuer, base_path: "/data" }] },
    dir: join(work, `policy-${n}`),
    output: join(work, `bundle-${n}.tar.gz`),
    revision: "rev-unsigned",
  });
  return unsignedBundle;
}

describe("a bundle server (policy.bundle.url)", () => {
  let server: BundleServer;

  beforeAll(async () => {
    server = await startBundleServer();
  });

  afterAll(async () => {
    await server?.close();
  });

  const section = (persistDir: string | null) => ({
    url: server.url,
    polling: { min_delay_seconds: 0.02, max_delay_seconds: 0.05 },
    timeout_seconds: 5,
    ...(persistDir !== null ? { persist_dir: persistDir } : {}),
    signing: signing(),
  });

  it("downloads at start, polls with the ETag, adopts a new bundle, refuses a bad one, and keeps the last good one on disk", async () => {
    const dir = await mkdtemp(join(work, "server-"));
    const persistDir = join(dir, "state");
    const persisted = join(persistDir, "bundle.tar.gz");
    server.serve(accepting);
    const svc = await start(dir, section(persistDir));
    expect(await svc.read()).toEqual({ reason: "allowed", revision: bundleRevision(accepting) });
    expect(await readFile(persisted)).toEqual(accepting);
    expect((await stat(persisted)).mode & 0o777).toBe(0o600);

    // Unchanged: the first download had no ETag to send; each poll sends it and gets a 304.
    expect(server.requests[0]).toEqual({ ifNoneMatch: null, status: 200 });
    expect(server.requests[1] ?? (await server.nextRequest())).toEqual({ ifNoneMatch: '"v1"', status: 304 });

    // A new bundle goes live without a restart, and is kept.
    const adopted = svc.service.nextReload(reloaded);
    server.serve(refusing);
    expect(await adopted).toMatchObject({ revision: bundleRevision(refusing), previousRevision: bundleRevision(accepting) });
    expect(await svc.read()).toEqual({ reason: "audience_mismatch", revision: bundleRevision(refusing) });
    await server.nextRequest();
    expect(await readFile(persisted)).toEqual(refusing);

    // A tampered bundle is refused: the last good one serves and stays on disk.
    const rejected = svc.service.nextReload(refused);
    server.serve(await repack(accepting, (files) => files.set("/data.json", Buffer.from('{"scitokens":{"data":{"audiences":["ANY"],"issuers":[]}}}'))));
    const event = (await rejected) as Extract<ReloadEvent, { outcome: "refused" }>;
    expect(event.file).toBe(server.url);
    expect(event.problems.join("\n")).toMatch(/signature: data\.json: digest mismatch/);
    expect(await svc.read()).toEqual({ reason: "audience_mismatch", revision: bundleRevision(refusing) });
    await server.nextRequest();
    expect(await readFile(persisted)).toEqual(refusing);

    // The server failing changes nothing.
    server.fail(503);
    // A poll already under way may still get the bundle's 304; the next ones get the 503.
    while ((await server.nextRequest()).status !== 503);
    expect(await svc.read()).toEqual({ reason: "audience_mismatch", revision: bundleRevision(refusing) });
    expect(svc.logs.some((l) => l["msg"] === "bundle download failed: the bundle in force stays" && String(l["err"]).includes("HTTP 503"))).toBe(true);
    await svc.service.close();

    // A restart while the server is down starts from the bundle kept on disk.
    const restarted = await start(dir, section(persistDir));
    expect(await restarted.read()).toEqual({ reason: "audience_mismatch", revision: bundleRevision(refusing) });
  });

  it("does not start when the server cannot be reached and no bundle is kept", async () => {
    const dir = await mkdtemp(join(work, "server-"));
    server.fail(500);
    const config = parseServiceConfig(join(dir, "service.yaml"), { grpc: { listen: "127.0.0.1:0" }, policy: { bundle: section(null) } });
    const started = startService(config, { logger: createLogger("silent") });
    await expect(started).rejects.toThrow(ConfigError);
    await expect(started).rejects.toThrow(/cannot download the bundle: .*HTTP 500, expected 200 \(policy\.bundle\.persist_dir is not set\)/);
  });

  it("downloads again when the kept bundle no longer verifies (the signing key changed)", async () => {
    const dir = await mkdtemp(join(work, "server-"));
    const persistDir = join(dir, "state");
    // Kept by an earlier run: a bundle the configured key did not sign.
    await writePrivateFile(join(persistDir, "bundle.tar.gz"), await bundleUnsigned());
    server.serve(accepting);
    const svc = await start(dir, section(persistDir));
    expect(await svc.read()).toEqual({ reason: "allowed", revision: bundleRevision(accepting) });
    expect(svc.logs.some((l) => l["msg"] === "the persisted bundle is refused: downloading the bundle instead")).toBe(true);
  });
});
