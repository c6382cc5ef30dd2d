import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, posix, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAuthzData } from "../../../src/config/authz-data.js";
import { CONFIG_VARIABLE, ENVIRONMENT_OVERRIDES, applyEnvironment } from "../../../src/config/environment.js";
import { parseYamlText } from "../../../src/config/read-yaml.js";
import { PACKAGE_ROOT, parseServiceConfig } from "../../../src/config/service-config.js";
import {
  COMPOSE_DIR,
  compose,
  contextRoutes,
  envoyAddresses,
  envoyCheckText,
  hostFile,
  mountOf,
  mounts,
  nginxListens,
  portOf,
  readDocuments,
  service,
  withoutAddresses,
} from "../../helpers/deploy-files.js";

// Issue 9: the Dockerfile, its .dockerignore and deploy/compose/docker-compose.yml. No image
// is built here (base images come from a registry this machine cannot reach): what can be
// held without one is held here — every file they name exists and reaches the build, the
// stages and the configuration agree with the project, and the compose services point at
// each other and at the files as the service and Envoy read them.

const PKG = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as {
  version: string;
  engines: { node: string };
  config: { opaVersion: string };
};

interface Instruction {
  keyword: string;
  args: string;
  stage: number;
}

/** The Dockerfile's instructions (continuation lines joined, comments left out), each with its stage's index. */
function dockerfile(): { instructions: Instruction[]; stages: Array<{ image: string; name: string | null }> } {
  const text = readFileSync(join(PACKAGE_ROOT, "Dockerfile"), "utf8").replace(/\\\n/g, " ");
  const stages: Array<{ image: string; name: string | null }> = [];
  const instructions: Instruction[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Z]+)\s+(.*)$/.exec(line);
    if (!m || line.trim().startsWith("#")) continue;
    const [, keyword, args] = m as unknown as [string, string, string];
    if (keyword === "FROM") {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args.trim())!;
      stages.push({ image: from[1]!, name: from[2] ?? null });
    }
    instructions.push({ keyword, args: args.trim(), stage: stages.length - 1 });
  }
  return { instructions, stages };
}

/** The default of an ARG declared before the first FROM or in a stage. */
function argDefault(name: string): string | undefined {
  const arg = dockerfile().instructions.find((i) => i.keyword === "ARG" && i.args.startsWith(`${name}=`));
  return arg?.args.slice(name.length + 1);
}

/** `${NAME}` in an instruction, replaced by its ARG default. */
const expand = (value: string) => value.replace(/\$\{(\w+)\}/g, (_, name: string) => argDefault(name) ?? "");

/** COPY instructions: sources (from the context, or from a stage) and destination. */
function copies(): Array<{ stage: number; from: string | null; sources: string[]; dest: string }> {
  return dockerfile()
    .instructions.filter((i) => i.keyword === "COPY")
    .map((i) => {
      const words = i.args.split(/\s+/);
      const from = words.find((w) => w.startsWith("--from="))?.slice("--from=".length) ?? null;
      const paths = words.filter((w) => !w.startsWith("--"));
      return { stage: i.stage, from, sources: paths.slice(0, -1), dest: paths.at(-1)! };
    });
}

/** Whether .dockerignore lets `path` (relative to the context) into the build: its last matching pattern decides. */
function reachesBuild(path: string): boolean {
  const patterns = readFileSync(join(PACKAGE_ROOT, ".dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  let included = true;
  for (const raw of patterns) {
    const negated = raw.startsWith("!");
    const pattern = negated ? raw.slice(1) : raw;
    const matches = pattern === "*" || path === pattern || path.startsWith(`${pattern}/`);
    if (matches) included = negated;
  }
  return included;
}

describe("Dockerfile", () => {
  const final = () => dockerfile().stages.length - 1;
  const inFinal = (keyword: string) => dockerfile().instructions.filter((i) => i.stage === final() && i.keyword === keyword);

  it("every COPY --from names an earlier stage", () => {
    const { stages } = dockerfile();
    for (const c of copies().filter((c) => c.from !== null)) {
      const index = stages.findIndex((s) => s.name === c.from);
      expect(index, `COPY --from=${c.from}`).toBeGreaterThanOrEqual(0);
      expect(index).toBeLessThan(c.stage);
    }
  });

  it("every file it copies from the checkout exists and is let into the build by .dockerignore", () => {
    const sources = copies()
      .filter((c) => c.from === null)
      .flatMap((c) => c.sources);
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect(existsSync(join(PACKAGE_ROOT, source)), source).toBe(true);
      expect(reachesBuild(source), `${source} is left out by .dockerignore`).toBe(true);
    }
  });

  it.each(["node_modules", "dist", "build", ".tools", ".state", ".git", "src/gen", "test", "deploy", ".ci"])(
    ".dockerignore leaves %s out of the build",
    (path) => {
      expect(reachesBuild(path)).toBe(false);
    },
  );

  it("builds the pinned OPA (package.json config.opaVersion) with Go, in a stage of its own", () => {
    expect(argDefault("OPA_VERSION")).toBe(PKG.config.opaVersion);
    const { stages, instructions } = dockerfile();
    const opa = stages.findIndex((s) => s.name === "opa");
    expect(expand(stages[opa]!.image)).toMatch(/^golang:/);
    expect(instructions.some((i) => i.stage === opa && i.keyword === "RUN" && i.args.includes("github.com/open-policy-agent/opa@v${OPA_VERSION}"))).toBe(true);
  });

  it("the build stage runs setup with that OPA in place and without the test tools, an option setup knows", () => {
    const build = dockerfile().stages.findIndex((s) => s.name === "build");
    expect(copies().some((c) => c.stage === build && c.from === "opa" && c.dest === ".tools/bin/opa")).toBe(true);
    const runs = dockerfile().instructions.filter((i) => i.stage === build && i.keyword === "RUN");
    expect(runs.map((r) => r.args)).toContain("node scripts/setup.mjs --no-test-tools");
    expect(readFileSync(join(PACKAGE_ROOT, "scripts", "setup.mjs"), "utf8")).toContain('process.argv.includes("--no-test-tools")');
  });

  it("the final image is Node (a version package.json's engines allows) without Go: packages, dist/, build/ and policies/", () => {
    const image = expand(dockerfile().stages[final()]!.image);
    const major = Number(/^node:(\d+)/.exec(image)?.[1]);
    expect(major).toBeGreaterThanOrEqual(Number(/(\d+)/.exec(PKG.engines.node)?.[1]));
    const fromStages = copies()
      .filter((c) => c.stage === final() && c.from !== null)
      .map((c) => `${c.from}:${c.sources.join(",")}`);
    expect(fromStages.sort()).toEqual(["build:/src/build", "build:/src/dist", "packages:/app/node_modules"]);
    expect(copies().some((c) => c.stage === final() && c.from === "opa")).toBe(false);
  });

  it("its HEALTHCHECK runs the health check script, copied where the script finds dist/ beside it", () => {
    const check = inFinal("HEALTHCHECK").map((i) => i.args);
    expect(check).toHaveLength(1);
    const command = JSON.parse(check[0]!.slice(check[0]!.indexOf("CMD") + "CMD".length)) as string[];
    expect(command).toEqual(["node", "/app/deploy/docker/healthcheck.mjs"]);
    expect(copies().filter((c) => c.stage === final() && c.from === null && c.sources.includes("deploy/docker/healthcheck.mjs"))).toEqual([
      { stage: final(), from: null, sources: ["deploy/docker/healthcheck.mjs"], dest: "deploy/docker/healthcheck.mjs" },
    ]);
    expect(readFileSync(join(PACKAGE_ROOT, "deploy", "docker", "healthcheck.mjs"), "utf8")).toContain('from "../../dist/config/index.js"');
  });

  it("runs as a numeric user other than root (so Kubernetes' runAsNonRoot can check it)", () => {
    const users = inFinal("USER").map((i) => i.args);
    expect(users).toHaveLength(1);
    expect(users[0]).toMatch(/^[1-9]\d*(:\d+)?$/);
  });

  it("serves the built CLI, with the configuration file the README documents as SCITOKENS_AUTHZ_CONFIG's default here", () => {
    expect(inFinal("ENTRYPOINT").map((i) => JSON.parse(i.args))).toEqual([["node", "/app/dist/cli/main.js"]]);
    expect(inFinal("CMD").map((i) => JSON.parse(i.args))).toEqual([["serve"]]);
    expect(inFinal("WORKDIR").map((i) => i.args)).toEqual(["/app"]);
    const env = inFinal("ENV")
      .map((i) => i.args)
      .join(" ");
    expect(env).toContain(`${CONFIG_VARIABLE}=/etc/scitokens-authz/service.yaml`);
    expect(inFinal("EXPOSE").map((i) => i.args)).toEqual(["9292"]);
  });
});

// ---------------------------------------------------------------------------------------

function authzConfig() {
  const s = service("authz");
  const file = s.environment![CONFIG_VARIABLE]!;
  const { raw, problems } = applyEnvironment(parseYamlText(file, readFileSync(hostFile(s, file), "utf8")), s.environment!);
  expect(problems).toEqual([]);
  return parseServiceConfig(file, raw);
}

function authzData() {
  const config = authzConfig();
  if (config.policy.kind !== "files") throw new Error("expected policy.data");
  const file = config.policy.dataFile;
  return { file, data: parseAuthzData(file, parseYamlText(file, readFileSync(hostFile(service("authz"), file), "utf8"))) };
}

const envoyFile = () => {
  const s = service("envoy");
  const args = s.command!;
  return hostFile(s, args[args.indexOf("-c") + 1]!);
};
const envoyBootstrap = () => readDocuments(envoyFile())[0];

describe("deploy/compose/docker-compose.yml", () => {
  it("runs Envoy, the service, a WebDAV storage, the demo issuer's key maker, and a token tool", () => {
    expect(Object.keys(compose().services).sort()).toEqual(["authz", "demo-issuer", "envoy", "token", "webdav"]);
    expect(service("envoy").image).toMatch(/^envoyproxy\/envoy:/);
    expect(service("webdav").image).toMatch(/^nginxinc\/nginx-unprivileged:/);
  });

  it("every file it mounts exists, every named volume and network is declared, every dependency is a service", () => {
    const c = compose();
    for (const [name, s] of Object.entries(c.services)) {
      for (const m of mounts(s)) {
        if (m.bind) expect(existsSync(m.source), `${name} mounts ${m.source}`).toBe(true);
        else expect(Object.keys(c.volumes), `${name} mounts volume ${m.source}`).toContain(m.source);
      }
      for (const n of s.networks ?? []) expect(Object.keys(c.networks), `${name} joins ${n}`).toContain(n);
      const deps = Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {});
      for (const d of deps) expect(Object.keys(c.services), `${name} depends on ${d}`).toContain(d);
    }
  });

  it("the images it builds come from the Dockerfile at the top of the checkout", () => {
    for (const s of Object.values(compose().services).filter((s) => s.build)) {
      expect(resolve(COMPOSE_DIR, s.build!.context)).toBe(PACKAGE_ROOT);
      expect(statSync(join(PACKAGE_ROOT, s.build!.dockerfile)).isFile()).toBe(true);
      expect(s.image).toBe("scitokens-authz:latest");
    }
  });

  it("only Envoy is published, on the host's loopback, on the port Envoy listens on", () => {
    const published = Object.entries(compose().services).filter(([, s]) => s.ports);
    expect(published.map(([name]) => name)).toEqual(["envoy"]);
    const [hostAddress, hostPort, containerPort] = service("envoy").ports![0]!.split(":");
    expect(hostAddress).toBe("127.0.0.1");
    expect(Number(hostPort)).toBeGreaterThan(0);
    expect(Number(containerPort)).toBe(envoyAddresses(envoyBootstrap()).listener.port);
  });

  it("the service and the storage are each on an internal network shared with Envoy alone", () => {
    const c = compose();
    for (const [name, network] of [
      ["authz", "authz"],
      ["webdav", "storage"],
    ] as const) {
      expect(service(name).networks).toEqual([network]);
      expect(c.networks[network]?.internal).toBe(true);
      const members = Object.entries(c.services).filter(([, s]) => s.networks?.includes(network));
      expect(members.map(([n]) => n).sort()).toEqual([name, "envoy"].sort());
    }
  });

  it("Envoy's bootstrap is the mounted file, passes envoy-check, and is envoy/envoy.yaml but for its addresses", async () => {
    const text = readFileSync(envoyFile(), "utf8");
    const run = await envoyCheckText("envoy.yaml", text);
    expect(run.stdout).toMatch(/1 file valid/);
    expect(run.code).toBe(0);
    expect(withoutAddresses(envoyBootstrap())).toEqual(withoutAddresses(readDocuments(join(PACKAGE_ROOT, "envoy", "envoy.yaml"))[0]));
  });

  it("Envoy's image is the Envoy release whose API envoy-check holds its files to", () => {
    const goMod = readFileSync(join(PACKAGE_ROOT, "tools", "envoy-check", "go.mod"), "utf8");
    const api = /github\.com\/envoyproxy\/go-control-plane\/envoy v(\d+\.\d+)\./.exec(goMod)?.[1];
    expect(service("envoy").image).toBe(`envoyproxy/envoy:v${api}-latest`);
  });

  it("Envoy asks the service by its compose name on the port it listens on, and the storage where nginx listens", () => {
    const { clusters } = envoyAddresses(envoyBootstrap());
    const config = authzConfig();
    expect(clusters.get("scitokens_authz")).toEqual({
      type: "STRICT_DNS",
      endpoints: [{ address: "authz", port: "port" in config.listen ? config.listen.port : -1 }],
    });
    const nginx = readFileSync(hostFile(service("webdav"), "/etc/nginx/nginx.conf"), "utf8");
    expect(clusters.get("storage")).toEqual({ type: "STRICT_DNS", endpoints: [{ address: "webdav", port: portOf(nginxListens(nginx)[0]!) }] });
    expect(nginxListens(nginx)).toHaveLength(1);
  });

  it("the service's configuration (SCITOKENS_AUTHZ_CONFIG, environment applied) and data validate with its own parsers", () => {
    const s = service("authz");
    for (const variable of Object.keys(s.environment ?? {})) {
      expect([CONFIG_VARIABLE, ...ENVIRONMENT_OVERRIDES.map((o) => o.variable)]).toContain(variable);
    }
    const config = authzConfig();
    expect(config.listen).toEqual({ host: "0.0.0.0", port: 9292 });
    const { data } = authzData();
    expect([...data.issuers.keys()]).toEqual(["https://issuer.demo.example"]);
  });

  it("Envoy waits for the service's HEALTHCHECK, which asks the admin listener the configuration sets, inside the container", () => {
    expect(authzConfig().httpListen).toEqual({ host: "127.0.0.1", port: 9090 });
    expect(service("envoy").depends_on).toMatchObject({ authz: { condition: "service_healthy" } });
    expect(service("authz").healthcheck).toBeUndefined();
  });

  it("every route Envoy's context_extensions name is a route section of the data", () => {
    const routes = contextRoutes(envoyBootstrap());
    expect(routes).toEqual(["webdav"]);
    expect([...authzData().data.routes.keys()]).toEqual(routes);
  });

  it("the issuer's key file is in the volume the demo issuer writes, under the name and issuer it writes them with", () => {
    const { data } = authzData();
    const jwksFile = data.issuers.get("https://issuer.demo.example")!.jwksFile!;
    const volume = mountOf(service("authz"), jwksFile)!;
    expect(volume).toMatchObject({ bind: false, source: "demo-issuer", readOnly: true });
    const maker = service("demo-issuer");
    const [node, script, dir, issuer] = maker.entrypoint!;
    expect(node).toBe("node");
    expect(hostFile(maker, script!)).toBe(join(COMPOSE_DIR, "demo-issuer.mjs"));
    expect(mountOf(maker, dir!)).toMatchObject({ source: "demo-issuer", target: dir, readOnly: false });
    expect(jwksFile).toBe(posix.join(dir!, "demo-issuer.jwks.json"));
    expect(issuer).toBe("https://issuer.demo.example");
    expect(service("authz").depends_on).toEqual({ "demo-issuer": { condition: "service_completed_successfully" } });
  });

  it("the token tool mints with the demo issuer's state file, from the same volume, read-only", () => {
    const token = service("token");
    expect(token.profiles).toEqual(["tools"]);
    const entry = token.entrypoint!;
    expect(entry.slice(0, 4)).toEqual(["node", "/app/dist/cli/main.js", "token", "create"]);
    const state = entry[entry.indexOf("--state") + 1]!;
    expect(mountOf(token, state)).toMatchObject({ source: "demo-issuer", readOnly: true });
    expect(state).toBe(posix.join(service("demo-issuer").entrypoint![2]!, "demo-issuer.json"));
  });

  it("the service runs with a read-only root and its configuration mounted read-only", () => {
    const s = service("authz");
    expect(s.read_only).toBe(true);
    expect(mountOf(s, s.environment![CONFIG_VARIABLE]!)).toMatchObject({ bind: true, readOnly: true });
    expect(dirname(hostFile(s, s.environment![CONFIG_VARIABLE]!))).toBe(join(COMPOSE_DIR, "scitokens-authz"));
  });
});
