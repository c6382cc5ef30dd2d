import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readBundle } from "../../../src/bundle/read-bundle.js";
import type { BundleSigningConfig } from "../../../src/bundle/signatures.js";
import { ConfigError } from "../../../src/config/config-error.js";
import { type SigningKeyFiles, buildTestBundle, pack, repack, signingKeyFiles, unpack } from "../../helpers/bundles.js";

// Issue 7, bundles: what the service takes from an OPA bundle and what it refuses. The
// bundles are written and signed by the pinned OPA (`policy build`), then tampered with.

const DATA = { audiences: ["https://storage.example.org"], issuers: [{ issuer: "https://issuer.example.org", base_path: "/data" }] };
const MAX = 64 * 1024 * 1024;

let work: string;
let ci: SigningKeyFiles;
let other: SigningKeyFiles;
let signed: Buffer;
let unsigned: Buffer;

const signing = (overrides: Partial<BundleSigningConfig> = {}): BundleSigningConfig => ({
  keys: [{ keyid: "default", algorithm: "RS256", keyFile: ci.publicKey }],
  keyid: null,
  scope: "",
  ...overrides,
});

async function problemsOf(bytes: Buffer, config: BundleSigningConfig | null = signing(), maxBytes = MAX): Promise<readonly string[]> {
  try {
    await readBundle("test.tar.gz", bytes, { maxBytes, signing: config });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).file).toBe("test.tar.gz");
    return (error as ConfigError).problems;
  }
  return [];
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "scitokens-authz-bundle-unit-"));
  [ci, other] = await Promise.all([signingKeyFiles(work, "ci"), signingKeyFiles(work, "other")]);
  signed = await buildTestBundle({ data: DATA, dir: join(work, "signed"), output: join(work, "signed.tar.gz"), revision: "abc123", signingKey: ci.privateKey });
  unsigned = await buildTestBundle({ data: DATA, dir: join(work, "unsigned"), output: join(work, "unsigned.tar.gz"), revision: "abc123" });
}, 60_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe("a bundle written by policy build", () => {
  it("gives the WASM, the data and the manifest revision, its OPA signature verified", async () => {
    const bundle = await readBundle("test.tar.gz", signed, { maxBytes: MAX, signing: signing() });
    expect(bundle.manifestRevision).toBe("abc123");
    expect(bundle.data).toEqual(DATA);
    expect(bundle.wasm.subarray(0, 4)).toEqual(Buffer.from("\0asm"));
    expect(bundle.wasmName).toBe("test.tar.gz#policy.wasm");
    expect(bundle.signed).toBe(true);
  });

  it("is read unverified without signing configured, signed or not", async () => {
    expect(await problemsOf(unsigned, null)).toEqual([]);
    expect(await problemsOf(signed, null)).toEqual([]);
  });

  it("keeps its signature when its JSON files are reformatted (OPA hashes their values)", async () => {
    const reformatted = await repack(signed, (files) => {
      for (const name of ["/.manifest", "/data.json"]) files.set(name, Buffer.from(JSON.stringify(JSON.parse(files.get(name)!.toString()), null, 2)));
    });
    expect(await problemsOf(reformatted)).toEqual([]);
  });
});

describe("a signature problem refuses the bundle", () => {
  it.each<[string, () => Promise<Buffer> | Buffer, () => BundleSigningConfig, RegExp]>([
    ["no signature", () => unsigned, () => signing(), /not signed \(no \.signatures\.json\)/],
    [
      "another key",
      () => signed,
      () => signing({ keys: [{ keyid: "default", algorithm: "RS256", keyFile: other.publicKey }] }),
      /does not verify with the configured key/,
    ],
    [
      "a key id not configured",
      () => signed,
      () => signing({ keys: [{ keyid: "ci", algorithm: "RS256", keyFile: ci.publicKey }] }),
      /signed with key "default", expected one of policy\.bundle\.signing\.keys: ci/,
    ],
    ["another scope", () => signed, () => signing({ scope: "production" }), /signed for scope "", expected "production"/],
    [
      "another algorithm configured",
      () => signed,
      () => signing({ keys: [{ keyid: "default", algorithm: "PS256", keyFile: ci.publicKey }] }),
      /algorithm is not the configured one/,
    ],
    [
      "changed data",
      () => repack(signed, (files) => files.set("/data.json", Buffer.from(JSON.stringify({ scitokens: { data: { ...DATA, audiences: ["ANY"] } } })))),
      () => signing(),
      /data\.json: digest mismatch/,
    ],
    [
      "changed WASM",
      () => repack(signed, (files) => files.set("/policy.wasm", Buffer.concat([files.get("/policy.wasm")!, Buffer.from([0])]))),
      () => signing(),
      /policy\.wasm: digest mismatch/,
    ],
    [
      "a file added",
      () => repack(signed, (files) => files.set("/policy/extra.rego", Buffer.from("package scitokens.site\n"))),
      () => signing(),
      /policy\/extra\.rego: not covered by the signature/,
    ],
    [
      "a file removed",
      () => repack(signed, (files) => files.delete("/policy/authz.rego")),
      () => signing(),
      /policy\/authz\.rego: signed but missing from the bundle/,
    ],
    [
      "a changed manifest revision",
      () => repack(signed, (files) => files.set("/.manifest", Buffer.from(files.get("/.manifest")!.toString().replace("abc123", "evil")))),
      () => signing(),
      /\.manifest: digest mismatch/,
    ],
    [
      "two signatures",
      () =>
        repack(signed, (files) => {
          const sig = JSON.parse(files.get("/.signatures.json")!.toString()) as { signatures: string[] };
          files.set("/.signatures.json", Buffer.from(JSON.stringify({ signatures: [sig.signatures[0], sig.signatures[0]] })));
        }),
      () => signing(),
      /expected \{"signatures": \[one JWS\]\}, found 2 entries/,
    ],
  ])("%s", async (_name, bundle, config, expected) => {
    const problems = await problemsOf(await bundle(), config());
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.every((p) => p.startsWith("signature: "))).toBe(true);
    expect(problems.join("\n")).toMatch(expected);
  });

  it("refuses a private key given as the verification key", async () => {
    const problems = await problemsOf(signed, signing({ keys: [{ keyid: "default", algorithm: "RS256", keyFile: ci.privateKey }] }));
    expect(problems.join("\n")).toMatch(/holds a private key; give the service the public key only/);
  });
});

describe("an archive the service will not take", () => {
  it.each<[string, () => Promise<Buffer> | Buffer, RegExp]>([
    ["not gzip", () => Buffer.from("policy"), /not a gzipped OPA bundle/],
    [
      "a symlink",
      () =>
        repack(unsigned, () => undefined).then(async (b) => pack([...(await entries(b)), { path: "/link", type: "SymbolicLink", linkpath: "/etc/passwd" }])),
      /\/link: a SymbolicLink entry; a bundle holds regular files only/,
    ],
    [
      "a path with ..",
      async () => pack([...(await entries(unsigned)), { path: "../escape/data.json", body: "{}" }]),
      /"\.\.\/escape\/data\.json": not a path inside the bundle/,
    ],
    ["a file twice", async () => pack([...(await entries(unsigned)), { path: "policy.wasm", body: "\0asm" }]), /policy\.wasm: given twice/],
    [
      "a file it does not use",
      async () => pack([...(await entries(unsigned)), { path: "/notes.txt", body: "hi" }]),
      /notes\.txt: a file the service does not use/,
    ],
    ["YAML data", async () => pack([...(await entries(unsigned)), { path: "/scitokens/data/data.yaml", body: "a: 1" }]), /YAML data is not read from bundles/],
    [
      "data the policy would not see",
      async () => pack([...(await entries(unsigned)), { path: "/site/data.json", body: '{"x": 1}' }]),
      /data\.site: data outside data\.scitokens\.data/,
    ],
    ["no WASM", () => repack(unsigned, (files) => files.delete("/policy.wasm")), /expected the WASM module policy\.wasm/],
    [
      "no data",
      () => repack(unsigned, (files) => files.set("/data.json", Buffer.from("{}"))),
      /expected the authorization data at scitokens\/data\/data\.json, found none/,
    ],
    [
      "a manifest without our entrypoint",
      () => repack(unsigned, (files) => files.set("/.manifest", Buffer.from('{"wasm":[{"entrypoint":"other/rule","module":"/policy.wasm"}]}'))),
      /no module for the entrypoint scitokens\/authz\/decision/,
    ],
  ])("%s", async (_name, bundle, expected) => {
    const problems = await problemsOf(await bundle(), null);
    expect(problems.join("\n")).toMatch(expected);
  });

  it("refuses a bundle larger than max_bytes once decompressed, before reading it", async () => {
    const problems = await problemsOf(unsigned, null, 1024);
    expect(problems).toEqual(["larger than 1024 bytes once decompressed (policy.bundle.max_bytes)"]);
  });
});

async function entries(bytes: Buffer): Promise<Array<{ path: string; body: Buffer }>> {
  return [...(await unpack(bytes))].map(([path, body]) => ({ path, body }));
}
