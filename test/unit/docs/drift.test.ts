import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { DEMO } from "../../../src/cli/serve.js";
import { parseAuthzData } from "../../../src/config/authz-data.js";
import { loadAuthzData } from "../../../src/config/index.js";
import { DEMO_DATA_FILE, PACKAGE_ROOT, parseServiceConfig } from "../../../src/config/service-config.js";
import { DENY_SHAPES } from "../../../src/envoy/decision-to-response.js";
import { REASON_CODES } from "../../../src/reasons/index.js";

// Drift tests: the README documents exactly the reason codes and settings the code has.

const readme = await readFile(join(PACKAGE_ROOT, "README.md"), "utf8");

/** Rows of the README's reason-code table: reason → HTTP column. */
function reasonTable(): Map<string, string> {
  const section = readme.slice(readme.indexOf("### Reason codes"));
  const rows = new Map<string, string>();
  for (const line of section.split("\n")) {
    const m = /^\| `([a-z_]+)` \| ([^|]+) \|/.exec(line);
    if (m) rows.set(m[1]!, m[2]!.trim());
  }
  return rows;
}

function yamlBlocks(heading: string): string[] {
  const start = readme.indexOf(heading);
  const end = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, end === -1 ? undefined : end);
  return [...section.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

describe("README drift", () => {
  it("documents every reason code, and only those", () => {
    const rows = reasonTable();
    expect([...rows.keys()].sort()).toEqual([...REASON_CODES].sort());
  });

  it.each(Object.entries(DENY_SHAPES))("documents the HTTP status of %s", (reason, shape) => {
    expect(reasonTable().get(reason)).toMatch(new RegExp(`^${shape.http}\\b`));
  });

  it("the service configuration example parses and states the defaults", () => {
    const [block] = yamlBlocks("### Service configuration");
    expect(block).toBeDefined();
    const config = parseServiceConfig(join(PACKAGE_ROOT, "service.yaml"), parse(block!));
    expect(config.listen).toEqual({ host: "127.0.0.1", port: 9292 });
    expect(config.tokens).toEqual({ maxBytes: 16384, leewaySeconds: 60, cacheEntries: 10000, negativeCacheEntries: 10000 });
    expect(config.keys.refreshIntervalMs).toBe(600_000);
    expect(config.keys.maxStaleMs).toBe(4 * 24 * 3600 * 1000);
    expect(config.keys.unknownKidCooldownMs).toBe(30_000);
    // The defaults stated in the example are the defaults of a minimal config.
    const minimal = parseServiceConfig(join(PACKAGE_ROOT, "service.yaml"), { grpc: { listen: "127.0.0.1:9292" } });
    expect({ ...minimal, file: "" }).toEqual({ ...config, file: "" });
  });

  it("the admin listener example of Health and metrics parses", () => {
    const [block] = yamlBlocks("### Health and metrics");
    const config = parseServiceConfig(join(PACKAGE_ROOT, "service.yaml"), parse(block!));
    expect(config.httpListen).toEqual({ host: "127.0.0.1", port: 9090 });
  });

  it("the authorization data example parses", () => {
    const [block] = yamlBlocks("### Authorization data");
    const data = parseAuthzData(join(PACKAGE_ROOT, "authz.yaml"), parse(block!));
    expect([...data.issuers.keys()]).toEqual(["https://cilogon.org/igwn"]);
    expect(data.headerPrefix).toBe("x-scitokens-");
    expect([...data.routes.keys()]).toEqual(["dqsegdb"]);
    expect(data.routes.get("dqsegdb")?.usernameClaim).toBe("preferred_username");
    expect(data.defaultRoute.corsPreflight).toBe("allow");
  });

  it("the demo data parses and trusts the development issuer that `serve` starts", async () => {
    const data = await loadAuthzData(DEMO_DATA_FILE);
    expect([...data.issuers.keys()]).toEqual([`http://${DEMO.issuerHost}:${DEMO.issuerPort}${DEMO.issuerPath}`]);
    expect(data.policyData["audiences"]).toEqual([DEMO.audience]);
  });

  it("the Envoy example points ext_authz at the default listen address over gRPC v3", async () => {
    const envoy = await readFile(join(PACKAGE_ROOT, "envoy", "envoy.yaml"), "utf8");
    const doc = parse(envoy) as { static_resources: { clusters: Array<{ name: string; load_assignment: unknown }> } };
    const authz = doc.static_resources.clusters.find((c) => c.name === "scitokens_authz");
    expect(JSON.stringify(authz?.load_assignment)).toContain(`"port_value":${DEMO.listen.split(":")[1]}`);
    expect(envoy).toContain("transport_api_version: V3");
  });

  it("the TLS example parses: mutual TLS, files against the config's folder", () => {
    const [block] = yamlBlocks("### TLS and mutual TLS");
    const config = parseServiceConfig(join(PACKAGE_ROOT, "service.yaml"), parse(block!));
    expect(config.tls).toEqual({
      certFile: join(PACKAGE_ROOT, "tls", "server.pem"),
      keyFile: join(PACKAGE_ROOT, "tls", "server.key"),
      clientCaFile: join(PACKAGE_ROOT, "tls", "envoy-ca.pem"),
    });
  });

  it("the Unix socket example parses", () => {
    const [block] = yamlBlocks("### Unix domain socket");
    expect(parseServiceConfig(join(PACKAGE_ROOT, "service.yaml"), parse(block!)).listen).toEqual({ socketPath: "/run/scitokens-authz/grpc.sock" });
  });

  it("the README's Envoy cluster for mutual TLS is the one commented in the Envoy example", async () => {
    const block = yamlBlocks("## Envoy").find((b) => b.includes("transport_socket"));
    const readmeCluster = (parse(block!) as { clusters: Array<Record<string, unknown>> }).clusters[0]!;
    const socket = readmeCluster["transport_socket"] as { name: string; typed_config: Record<string, unknown> };
    expect(socket.name).toBe("envoy.transport_sockets.tls");
    expect(socket.typed_config).toMatchObject({
      "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
      common_tls_context: {
        alpn_protocols: ["h2"],
        tls_certificates: [{ certificate_chain: { filename: expect.any(String) }, private_key: { filename: expect.any(String) } }],
        validation_context: { trusted_ca: { filename: expect.any(String) }, match_typed_subject_alt_names: [{ san_type: "DNS" }] },
      },
    });
    const envoy = await readFile(join(PACKAGE_ROOT, "envoy", "envoy.yaml"), "utf8");
    // The commented block: from "# transport_socket:" to the first line that is not a comment.
    const lines = envoy.split("\n");
    const start = lines.findIndex((line) => /^\s*# transport_socket:$/.test(line));
    expect(start).toBeGreaterThanOrEqual(0);
    const end = lines.findIndex((line, index) => index > start && !/^\s*#/.test(line));
    const example = parse(
      lines
        .slice(start, end)
        .map((line) => line.replace(/^(\s*)# /, "$1"))
        .join("\n"),
    ) as { transport_socket: unknown };
    expect(example.transport_socket).toEqual(socket);
  });

  it("every route the Envoy example tags exists in the demo data", async () => {
    const envoy = await readFile(join(PACKAGE_ROOT, "envoy", "envoy.yaml"), "utf8");
    const tagged = [...envoy.matchAll(/^\s*route: ([A-Za-z0-9_-]+)\s*$/gm)].map((m) => m[1]!);
    expect(tagged.length).toBeGreaterThan(0);
    const data = await loadAuthzData(DEMO_DATA_FILE);
    for (const name of tagged) expect(data.routes.has(name), name).toBe(true);
  });
});
