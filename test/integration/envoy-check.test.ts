import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Document, type YAMLMap, type YAMLSeq, parseDocument } from "yaml";
import { PACKAGE_ROOT } from "../../src/config/service-config.js";
import { SINGLE_VALUED_HEADERS } from "../../src/envoy/http-request.js";

// Issue 9: tools/envoy-check, built by setup, holds the Envoy files to Envoy's own v3 API.
// The shipped files pass; copies of envoy/envoy.yaml broken one way each (written to a
// temporary folder) fail with one line naming the file, the path and the problem.

const CHECKER = join(PACKAGE_ROOT, ".tools", "bin", "envoy-check");
const ENVOY_DIR = join(PACKAGE_ROOT, "envoy");
const SHIPPED = join(ENVOY_DIR, "envoy.yaml");
const execFileAsync = promisify(execFile);

interface Run {
  code: number;
  stdout: string;
}

async function envoyCheck(...files: string[]): Promise<Run> {
  try {
    const { stdout } = await execFileAsync(CHECKER, files);
    return { code: 0, stdout };
  } catch (error) {
    const e = error as { code?: unknown; stdout?: string };
    if (typeof e.code !== "number") throw error;
    return { code: e.code, stdout: e.stdout ?? "" };
  }
}

// Where things are in envoy/envoy.yaml, as YAML paths and as the checker prints them.
const HCM = ["static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config"];
const HCM_AT = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
const EXT_AUTHZ = [...HCM, "http_filters", 0, "typed_config"];
const EXT_AUTHZ_AT = `${HCM_AT}.http_filters[0].typed_config`;
const STORAGE_ROUTE = [...HCM, "route_config", "virtual_hosts", 0, "routes", 1, "route"];
const STORAGE_ROUTE_AT = `${HCM_AT}.route_config.virtual_hosts[0].routes[1].route`;

interface BrokenCopy {
  name: string;
  edit: (doc: Document) => void;
  /** The problem lines, after "FILE: ". */
  problems: string[];
}

const rename = (doc: Document, at: (string | number)[], from: string, to: string) => {
  doc.setIn([...at, to], doc.getIn([...at, from]));
  doc.deleteIn([...at, from]);
};

const BROKEN: BrokenCopy[] = [
  {
    name: "a misspelled field",
    edit: (doc) => rename(doc, HCM, "stat_prefix", "stat_prefx"),
    problems: [
      `${HCM_AT}.stat_prefx: unknown field in envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager; did you mean stat_prefix?`,
    ],
  },
  {
    name: "a wrong enum value",
    edit: (doc) => doc.setIn([...EXT_AUTHZ, "transport_api_version"], "V4"),
    problems: [`${EXT_AUTHZ_AT}.transport_api_version: expected one of AUTO, V3, found "V4"`],
  },
  {
    name: "a missing required field",
    edit: (doc) => doc.deleteIn([...HCM, "stat_prefix"]),
    problems: [`${HCM_AT}.stat_prefix: value length must be at least 1 runes`],
  },
  {
    name: "a route without its required target",
    edit: (doc) => doc.deleteIn([...STORAGE_ROUTE, "cluster"]),
    problems: [
      `${STORAGE_ROUTE_AT}.cluster_specifier: one of cluster, cluster_header, weighted_clusters, cluster_specifier_plugin, inline_cluster_specifier_plugin is required`,
    ],
  },
  {
    name: "a wrong type (a word for a port)",
    edit: (doc) => doc.setIn(["static_resources", "listeners", 0, "address", "socket_address", "port_value"], "eighty"),
    problems: ['static_resources.listeners[0].address.socket_address.port_value: expected an integer, found "eighty"'],
  },
  {
    name: "a wrong type (one name for a list)",
    edit: (doc) => doc.setIn([...HCM, "route_config", "virtual_hosts", 0, "domains"], "storage.example.org"),
    problems: [`${HCM_AT}.route_config.virtual_hosts[0].domains: expected a list of strings, found "storage.example.org"`],
  },
  {
    name: "a wrong type (one cluster for a list)",
    edit: (doc) => doc.setIn(["static_resources", "clusters"], doc.getIn(["static_resources", "clusters", 1])),
    problems: ["static_resources.clusters: expected a list of envoy.config.cluster.v3.Cluster mappings, found a mapping"],
  },
  {
    name: "a v2 type URL",
    edit: (doc) => doc.setIn([...EXT_AUTHZ, "@type"], "type.googleapis.com/envoy.config.filter.http.ext_authz.v2.ExtAuthz"),
    problems: [
      `${EXT_AUTHZ_AT}: unknown type "type.googleapis.com/envoy.config.filter.http.ext_authz.v2.ExtAuthz": not a v3 type (Envoy has taken only its v3 API since 1.18; v2 names such as envoy.config.filter.http.* became envoy.extensions.filters.http.*.v3)`,
    ],
  },
  {
    name: "a route to a cluster that does not exist",
    edit: (doc) => doc.setIn([...STORAGE_ROUTE, "cluster"], "archive"),
    problems: [`${STORAGE_ROUTE_AT}.cluster: no cluster named "archive" in static_resources.clusters (defined: scitokens_authz, storage)`],
  },
  {
    name: "ext_authz asking a cluster that does not exist",
    edit: (doc) => doc.setIn([...EXT_AUTHZ, "grpc_service", "envoy_grpc", "cluster_name"], "authz"),
    problems: [
      `${EXT_AUTHZ_AT}.grpc_service.envoy_grpc.cluster_name: no cluster named "authz" in static_resources.clusters (defined: scitokens_authz, storage)`,
    ],
  },
  {
    name: "the router not last",
    edit: (doc) => (doc.getIn([...HCM, "http_filters"]) as YAMLSeq).items.reverse(),
    problems: [`${HCM_AT}.http_filters[0]: the router must be the last HTTP filter, found before envoy.filters.http.ext_authz`],
  },
  {
    name: "ext_authz without transport API V3",
    edit: (doc) => doc.deleteIn([...EXT_AUTHZ, "transport_api_version"]),
    problems: [`${EXT_AUTHZ_AT}.transport_api_version: expected V3 (the only version the service speaks), found AUTO`],
  },
  {
    name: "a deprecated field",
    edit: (doc) => doc.setIn(["static_resources", "clusters", 0, "http2_protocol_options"], {}),
    problems: [
      "static_resources.clusters[0].http2_protocol_options: deprecated field of envoy.config.cluster.v3.Cluster (Envoy warns, and a later release removes it)",
    ],
  },
];

let dir: string;

beforeAll(async () => {
  if (!existsSync(CHECKER)) throw new Error(`${CHECKER} is missing: \`npm run setup\` builds it (with Go >= 1.26)`);
  dir = await mkdtemp(join(tmpdir(), "envoy-check-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const shipped = async () => parseDocument(await readFile(SHIPPED, "utf8"));

async function brokenCopy(name: string, edit: (doc: Document) => void): Promise<string> {
  const doc = await shipped();
  edit(doc);
  const file = join(dir, `${name.replaceAll(/\W+/g, "-")}.yaml`);
  await writeFile(file, doc.toString());
  return file;
}

describe("envoy-check on the shipped Envoy files", () => {
  it("every file under envoy/ is valid", async () => {
    const files = (await readdir(ENVOY_DIR)).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(ENVOY_DIR, f));
    expect(files).toContain(SHIPPED);
    const run = await envoyCheck(...files);
    expect(run.stdout).toMatch(
      new RegExp(`^envoy-check: ${files.length} files? valid against Envoy's v3 API \\(go-control-plane/envoy v\\d+\\.\\d+\\.\\d+\\)\\n$`),
    );
    expect(run.code).toBe(0);
  });

  it("the ext_authz filter sends the service the request headers it reads, and only those", async () => {
    const patterns = (await shipped()).getIn([...EXT_AUTHZ, "allowed_headers", "patterns"]) as YAMLSeq;
    const allowed = (patterns.toJSON() as Array<{ exact?: string }>).map((p) => p.exact);
    expect(allowed.sort()).toEqual([...SINGLE_VALUED_HEADERS, "origin", "access-control-request-method"].sort());
  });

  it("the health route is answered by Envoy without asking the service", async () => {
    const health = (await shipped()).getIn([...HCM, "route_config", "virtual_hosts", 0, "routes", 0]) as YAMLMap;
    const route = health.toJSON() as {
      match: { path?: string };
      direct_response?: { status: number };
      typed_per_filter_config: Record<string, { disabled?: boolean }>;
    };
    expect(route.match.path).toBe("/healthz");
    expect(route.direct_response?.status).toBe(200);
    expect(route.typed_per_filter_config["envoy.filters.http.ext_authz"]?.disabled).toBe(true);
  });
});

describe("envoy-check on broken copies of envoy/envoy.yaml", () => {
  it.each(BROKEN)("$name", async ({ name, edit, problems }) => {
    const file = await brokenCopy(name, edit);
    const run = await envoyCheck(file);
    expect(run.stdout).toBe(
      `${problems.map((p) => `${file}: ${p}\n`).join("")}envoy-check: ${problems.length} problem${problems.length === 1 ? "" : "s"} in 1 of 1 file\n`,
    );
    expect(run.code).toBe(1);
  });

  it("a duplicate key is a YAML error with its line", async () => {
    const text = (await readFile(SHIPPED, "utf8")).replace("stat_prefix: storage\n", "stat_prefix: storage\n                stat_prefix: other\n");
    const file = join(dir, "duplicate-key.yaml");
    await writeFile(file, text);
    const line = text.split("\n").indexOf("                stat_prefix: other") + 1;
    const run = await envoyCheck(file);
    expect(run.stdout).toContain(`${file}: not valid YAML: line ${line}: key "stat_prefix" already set in map\n`);
    expect(run.code).toBe(1);
  });

  it("reports every problem of a file in one run, and checks each file", async () => {
    const file = await brokenCopy("several", (doc) => {
      for (const c of BROKEN.slice(0, 2)) c.edit(doc);
      doc.setIn(["static_resources", "listeners", 0, "address", "socket_address", "port_value"], "eighty");
    });
    const run = await envoyCheck(SHIPPED, file);
    const lines = run.stdout.trimEnd().split("\n");
    expect(lines.filter((l) => l.startsWith(`${SHIPPED}:`))).toEqual([]);
    // In the order of the keys' names, not of the file.
    expect(lines.filter((l) => l.startsWith(`${file}: `)).map((l) => l.slice(file.length + 2))).toEqual([
      'static_resources.listeners[0].address.socket_address.port_value: expected an integer, found "eighty"',
      BROKEN[1]!.problems[0],
      BROKEN[0]!.problems[0],
    ]);
    expect(lines.at(-1)).toBe("envoy-check: 3 problems in 1 of 2 files");
    expect(run.code).toBe(1);
  });

  it("without a file it exits 2 (usage)", async () => {
    expect((await envoyCheck()).code).toBe(2);
  });
});
