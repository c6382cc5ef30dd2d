import { generateKeyPairSync } from "node:crypto";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { Header, Parser, type ReadEntry } from "tar";
import { stringify } from "yaml";
import { policyBuild } from "../../src/cli/policy-build.js";
import { PACKAGE_ROOT } from "../../src/config/service-config.js";

// OPA bundles for tests: built by `policy build` (the pinned OPA compiles and signs them),
// taken apart and put together again to tamper with them, and served by a real static
// HTTP server on loopback that honours If-None-Match.

export interface SigningKeyFiles {
  readonly privateKey: string;
  readonly publicKey: string;
}

/** A fresh RSA key pair as PEM files in `dir`. */
export async function signingKeyFiles(dir: string, name: string): Promise<SigningKeyFiles> {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const files = { privateKey: join(dir, `${name}.key.pem`), publicKey: join(dir, `${name}.pub.pem`) };
  await writeFile(files.privateKey, privateKey.export({ type: "pkcs8", format: "pem" }));
  await writeFile(files.publicKey, publicKey.export({ type: "spki", format: "pem" }));
  return files;
}

export interface TestBundleOptions {
  /** The authorization data (written as the folder's data.yaml). */
  readonly data: object;
  /** A folder of its own for this bundle's policy (created). */
  readonly dir: string;
  readonly output: string;
  readonly revision?: string;
  readonly signingKey?: string;
  /** Site Rego files to add beside authz.rego: name → text. */
  readonly rego?: Readonly<Record<string, string>>;
}

/** Builds a bundle of policies/authz.rego (plus `rego`) with `data`; returns its bytes. */
export async function buildTestBundle(options: TestBundleOptions): Promise<Buffer> {
  await mkdir(options.dir, { recursive: true });
  await copyFile(join(PACKAGE_ROOT, "policies", "authz.rego"), join(options.dir, "authz.rego"));
  for (const [name, text] of Object.entries(options.rego ?? {})) await writeFile(join(options.dir, name), text);
  await writeFile(join(options.dir, "data.yaml"), stringify(options.data));
  await policyBuild({
    dir: options.dir,
    output: options.output,
    revision: options.revision ?? "test",
    ...(options.signingKey !== undefined ? { signingKey: options.signingKey } : {}),
  });
  return readFile(options.output);
}

/** One entry of a tar archive to write. */
export interface TarEntry {
  readonly path: string;
  readonly body?: Buffer | string;
  readonly type?: "File" | "SymbolicLink" | "Link" | "Directory";
  readonly linkpath?: string;
}

/** The regular files of a gzipped tar, by their path as stored (leading "/" kept). */
export async function unpack(bytes: Buffer): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const reads: Promise<void>[] = [];
  const parser = new Parser({
    onReadEntry: (entry: ReadEntry) => {
      const chunks: Buffer[] = [];
      entry.on("data", (c: Buffer) => chunks.push(c));
      reads.push(
        new Promise((resolve) =>
          entry.on("end", () => {
            files.set(entry.path, Buffer.concat(chunks));
            resolve();
          }),
        ),
      );
    },
  });
  await new Promise<void>((resolve, reject) => {
    parser.on("close", resolve);
    parser.on("error", reject);
    parser.end(gunzipSync(bytes));
  });
  await Promise.all(reads);
  return files;
}

/** A gzipped tar of `entries`, in order, headers written by node-tar. */
export function pack(entries: readonly TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const body = entry.body === undefined ? Buffer.alloc(0) : Buffer.from(entry.body);
    const header = new Header({
      path: entry.path,
      type: entry.type ?? "File",
      size: entry.type === undefined || entry.type === "File" ? body.length : 0,
      mode: 0o644,
      mtime: new Date(0),
      ...(entry.linkpath !== undefined ? { linkpath: entry.linkpath } : {}),
    });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    blocks.push(block);
    if (header.size! > 0) {
      blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

/** Unpacks a bundle, lets `edit` change its files (path → bytes), and packs it again. */
export async function repack(bytes: Buffer, edit: (files: Map<string, Buffer>) => void): Promise<Buffer> {
  const files = await unpack(bytes);
  edit(files);
  return pack([...files].map(([path, body]) => ({ path, body })));
}

export interface BundleServer {
  /** The bundle's URL. */
  readonly url: string;
  /** Every request: its If-None-Match, and the status answered. */
  readonly requests: Array<{ ifNoneMatch: string | null; status: number }>;
  /** Serves these bytes from now on (ETag: a counter, changed with each call). */
  serve(bytes: Buffer): void;
  /** Answers every request with this status and no bundle from now on. */
  fail(status: number): void;
  /** Resolves when the next request has been answered. */
  nextRequest(): Promise<{ ifNoneMatch: string | null; status: number }>;
  close(): Promise<void>;
}

/** A static bundle server on 127.0.0.1 with ETags, as a web server or object store serves a file. */
export async function startBundleServer(): Promise<BundleServer> {
  let body: Buffer | null = null;
  let etag = "";
  let version = 0;
  let failure: number | null = null;
  const requests: BundleServer["requests"] = [];
  const waiters: Array<(r: { ifNoneMatch: string | null; status: number }) => void> = [];
  const server: Server = createServer((req, res) => {
    const ifNoneMatch = req.headers["if-none-match"] ?? null;
    let status: number;
    if (failure !== null || body === null) {
      status = failure ?? 404;
      res.writeHead(status).end();
    } else if (ifNoneMatch === etag) {
      status = 304;
      res.writeHead(304, { etag }).end();
    } else {
      status = 200;
      res.writeHead(200, { etag, "content-type": "application/gzip", "content-length": body.length }).end(body);
    }
    const record = { ifNoneMatch: typeof ifNoneMatch === "string" ? ifNoneMatch : null, status };
    requests.push(record);
    for (const waiter of waiters.splice(0)) waiter(record);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/bundles/scitokens.tar.gz`,
    requests,
    serve(bytes) {
      body = bytes;
      failure = null;
      etag = `"v${++version}"`;
    },
    fail(status) {
      failure = status;
    },
    nextRequest: () => new Promise((resolve) => waiters.push(resolve)),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
