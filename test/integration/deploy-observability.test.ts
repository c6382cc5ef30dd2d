import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { PACKAGE_ROOT } from "../../src/config/service-config.js";
import { makeKey } from "../helpers/keys.js";
import { type OidcServer, startOidcServer } from "../helpers/oidc-server.js";
import { type TestService, startTestService } from "../helpers/service.js";
import { TEST_AUDIENCE, mint } from "../helpers/tokens.js";

// Drift tests for deploy/observability: every metric (and label) the alert rules, their
// promtool tests and the Grafana dashboard query is one the running service exposes on
// /metrics, and the dashboard shows every metric of the service's own. promtool itself
// checks the rules' syntax and behaviour (npm test: promtool check rules / test rules).

const DIR = join(PACKAGE_ROOT, "deploy", "observability");
/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = ["job", "instance"];
/** Metric names in PromQL: the service's own, and prom-client's process and Node.js metrics. */
const METRIC_NAME = /\b(?:scitokens_authz|process|nodejs)_[a-z0-9_]+\b/g;
const SELECTOR = /\b((?:scitokens_authz|process|nodejs)_[a-z0-9_]+)\s*\{([^}]*)\}/g;

interface Rule {
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

let idp: OidcServer;
let svc: TestService;
/** Exposed metric name (histograms with their _bucket, _sum and _count) → its label names. */
const exposed = new Map<string, Set<string>>();
/** Families of the service's own, by their TYPE line. */
const ownFamilies = new Map<string, string>();

beforeAll(async () => {
  const key = await makeKey("ES256", "key-1");
  idp = await startOidcServer({ keys: [key] });
  svc = await startTestService({ audiences: [TEST_AUDIENCE], issuers: [{ issuer: idp.issuer, base_path: "/" }] }, { http: { listen: "127.0.0.1:0" } });
  await svc.check({ method: "GET", path: "/data/a", token: await mint(key, idp.issuer) });
  const text = await (await fetch(`http://127.0.0.1:${svc.service.httpPort}/metrics`)).text();
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      const [, name, kind] = type;
      const names = kind === "histogram" ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name!];
      for (const n of names) exposed.set(n, new Set());
      if (name!.startsWith("scitokens_authz_")) ownFamilies.set(name!, kind!);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? /.exec(line);
    if (sample) for (const [, label] of (sample[2] ?? "").matchAll(/([a-zA-Z_]\w*)="/g)) exposed.get(sample[1]!)?.add(label!);
  }
});

afterAll(async () => {
  await svc?.close();
  await idp?.close();
});

/** Every metric name an expression uses must be exposed, with the labels its selectors name. */
function expectQueriesExposed(where: string, expr: string): string[] {
  const names = [...new Set(expr.match(METRIC_NAME) ?? [])];
  for (const name of names) expect(exposed.has(name), `${where}: ${name} is not on /metrics`).toBe(true);
  for (const [, name, matchers] of expr.matchAll(SELECTOR)) {
    for (const [, label] of matchers!.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)) {
      const known = [...(exposed.get(name!) ?? []), ...TARGET_LABELS, "le"];
      expect(known, `${where}: ${name} has no label ${label}`).toContain(label);
    }
  }
  return names;
}

describe("README, Health and metrics", () => {
  it("lists every metric of the service's own with its type, and only those", async () => {
    const readme = await readFile(join(PACKAGE_ROOT, "README.md"), "utf8");
    const start = readme.indexOf("### Health and metrics");
    const section = readme.slice(start, readme.indexOf("\n### ", start + 1));
    const rows = [...section.matchAll(/^\| `(scitokens_authz_[a-z0-9_]+)` \| ([a-z]+) \|/gm)].map((m) => [m[1]!, m[2]!] as const);
    expect(new Map(rows)).toEqual(ownFamilies);
  });
});

describe("deploy/observability/alerts.yaml", async () => {
  const doc = parse(await readFile(join(DIR, "alerts.yaml"), "utf8")) as { groups: Array<{ name: string; rules: Rule[] }> };
  const rules = doc.groups.flatMap((group) => group.rules);

  it("alerts on what the issue asks: down, not ready, issuer keys, reload refused, internal errors, unknown routes, latency", () => {
    expect(rules.map((rule) => rule.alert)).toEqual([
      "ScitokensAuthzDown",
      "ScitokensAuthzAbsent",
      "ScitokensAuthzNotReady",
      "ScitokensAuthzIssuerKeysUnusable",
      "ScitokensAuthzIssuerKeysNotRefreshed",
      "ScitokensAuthzPolicyReloadRefused",
      "ScitokensAuthzInternalErrors",
      "ScitokensAuthzRouteUnknown",
      "ScitokensAuthzLatencyHigh",
    ]);
  });

  it.each(rules.map((rule) => [rule.alert ?? "(recording)", rule] as const))("%s queries exposed metrics and says what to do", (name, rule) => {
    expectQueriesExposed(name, rule.expr);
    expect(["critical", "warning"]).toContain(rule.labels?.["severity"]);
    expect(rule.annotations?.["summary"]).toBeTruthy();
    expect(rule.annotations?.["description"]).toBeTruthy();
  });

  it("its promtool tests feed series the service exposes", async () => {
    const tests = parse(await readFile(join(DIR, "alerts.test.yaml"), "utf8")) as { tests: Array<{ input_series: Array<{ series: string }> }> };
    const series = tests.tests.flatMap((t) => t.input_series.map((s) => s.series)).filter((s) => !s.startsWith("up{"));
    expect(series.length).toBeGreaterThan(0);
    for (const s of series) expect(expectQueriesExposed(`alerts.test.yaml ${s}`, s)).toHaveLength(1);
  });
});

interface Panel {
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: Array<{ expr: string }>;
  panels?: Panel[];
}

describe("deploy/observability/grafana-dashboard.json", async () => {
  const dashboard = JSON.parse(await readFile(join(DIR, "grafana-dashboard.json"), "utf8")) as {
    panels: Panel[];
    templating: { list: Array<{ name: string; type: string; definition?: string }> };
  };
  const panels = dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]).filter((panel) => panel.type !== "row");
  const queries = panels.flatMap((panel) => (panel.targets ?? []).map((target) => [panel.title, target.expr] as const));
  const variables = dashboard.templating.list.filter((v) => v.definition !== undefined).map((v) => [`$${v.name}`, v.definition!] as const);

  it.each([...queries, ...variables])("%s: %s queries exposed metrics", (where, expr) => {
    // Prometheus's own `up` aside, each query reads a metric of the service.
    if (expectQueriesExposed(where, expr).length === 0) expect(expr).toMatch(/^up\{/);
  });

  it("shows every metric of the service's own", () => {
    const used = new Set(queries.flatMap(([, expr]) => expr.match(METRIC_NAME) ?? []));
    const shown = (family: string) => used.has(family) || ["_bucket", "_sum", "_count"].some((suffix) => used.has(family + suffix));
    expect([...ownFamilies.keys()].filter((family) => !shown(family))).toEqual([]);
    expect(ownFamilies.size).toBeGreaterThanOrEqual(12);
  });

  it("reads every panel from the data source variable", () => {
    for (const panel of panels) expect(panel.datasource?.uid, panel.title).toBe("${datasource}");
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(["datasource", "job", "instance"]);
  });
});
