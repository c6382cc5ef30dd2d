import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAuthzData } from "../../../src/config/authz-data.js";
import { CONFIG_VARIABLE, applyEnvironment } from "../../../src/config/environment.js";
import { parseYamlText } from "../../../src/config/read-yaml.js";
import { type ServiceConfig, parseServiceConfig } from "../../../src/config/service-config.js";
import {
  type Container,
  DEPLOY,
  type Deployment,
  type K8sObject,
  type PodSpec,
  type Service,
  containerPort,
  contextRoutes,
  environmentOf,
  envoyAddresses,
  envoyCheckText,
  nginxListens,
  objectsIn,
  parseText,
  podFile,
  portOf,
  readDocuments,
  selects,
  withoutAddresses,
} from "../../helpers/deploy-files.js";

// Issue 9: the Kubernetes manifests of deploy/kubernetes/ (the sidecar pattern, and Istio's
// CUSTOM action) parse, reference each other correctly, and hold configuration the service,
// and Envoy's own API, accept.

const K8S = join(DEPLOY, "kubernetes");
const ROOT = join(DEPLOY, "..");
const PACKAGE_VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

/** Each folder's files and the kinds of their documents, in order. */
const LAYOUT: Record<string, Record<string, string[]>> = {
  sidecar: {
    "config.yaml": ["ConfigMap", "ConfigMap", "ConfigMap", "ConfigMap"],
    "storage.yaml": ["Deployment", "Service"],
  },
  istio: {
    "authorization-policy.yaml": ["AuthorizationPolicy"],
    "namespace.yaml": ["Namespace"],
    "scitokens-authz.yaml": ["ConfigMap", "ConfigMap", "Deployment", "Service", "PeerAuthentication"],
    "storage.yaml": ["ConfigMap", "Deployment", "Service"],
  },
};
const SETUPS = Object.keys(LAYOUT);
const AUTHZ_CONTAINER = "scitokens-authz";

const yamlFiles = (dir: string) => readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
const objects = (setup: string) => objectsIn(join(K8S, setup), Object.keys(LAYOUT[setup]!));
const ofKind = <T extends K8sObject>(setup: string, kind: string) => objects(setup).filter((o) => o.kind === kind) as unknown as T[];
const namespaceOf = (o: K8sObject) => o.metadata.namespace ?? "(applied with -n)";
const deployments = (setup: string) => ofKind<Deployment>(setup, "Deployment");
const pods = (setup: string) => deployments(setup).flatMap((d) => d.spec.template.spec.containers.map((c) => ({ d, pod: d.spec.template.spec, c })));

function configMapKey(setup: string, namespace: string, name: string, key: string): string | undefined {
  const cm = ofKind<K8sObject>(setup, "ConfigMap").find((o) => o.metadata.name === name && namespaceOf(o) === namespace);
  return cm?.data?.[key];
}

/** The text of a file the pod reads from a ConfigMap; fails the test naming what is missing. */
function readInPod(setup: string, d: Deployment, c: Container, path: string): string {
  const file = podFile(d.spec.template.spec, c, path);
  if (file.kind !== "configMap") throw new Error(`${setup}: ${c.name} reads ${path}, which no ConfigMap mount serves (${file.kind})`);
  const text = configMapKey(setup, namespaceOf(d), file.configMap, file.key);
  if (text === undefined) throw new Error(`${setup}: ${c.name} reads ${path}: ConfigMap ${file.configMap} has no key ${file.key}`);
  return text;
}

/** The service's configuration as the container loads it: from SCITOKENS_AUTHZ_CONFIG, with its environment applied. */
function authzConfig(setup: string): { d: Deployment; c: Container; config: ServiceConfig } {
  const found = pods(setup).find(({ c }) => c.name === AUTHZ_CONTAINER);
  if (!found) throw new Error(`${setup}: no ${AUTHZ_CONTAINER} container`);
  const { d, c } = found;
  const env = environmentOf(c);
  const file = env[CONFIG_VARIABLE];
  if (file === undefined) throw new Error(`${setup}: ${CONFIG_VARIABLE} is not set`);
  const { raw, problems } = applyEnvironment(parseYamlText(file, readInPod(setup, d, c, file)), env);
  expect(problems).toEqual([]);
  return { d, c, config: parseServiceConfig(file, raw) };
}

function authzData(setup: string) {
  const { d, c, config } = authzConfig(setup);
  if (config.policy.kind !== "files") throw new Error(`${setup}: expected policy.data, found a bundle`);
  const file = config.policy.dataFile;
  return parseAuthzData(file, parseYamlText(file, readInPod(setup, d, c, file)));
}

describe("every manifest parses", () => {
  it.each(SETUPS)("%s/: the folder holds exactly the files listed here", (setup) => {
    expect(yamlFiles(join(K8S, setup)).sort()).toEqual(Object.keys(LAYOUT[setup]!).sort());
  });

  it.each(SETUPS.flatMap((setup) => Object.entries(LAYOUT[setup]!).map(([file, kinds]) => [`${setup}/${file}`, kinds] as const)))(
    "%s: one object per document, each with apiVersion, kind and name",
    (file, kinds) => {
      const docs = readDocuments(join(K8S, file)) as K8sObject[];
      expect(docs.map((d) => d.kind)).toEqual(kinds);
      for (const doc of docs) {
        expect(doc.apiVersion).toMatch(/^([a-z.]+\/)?v1$/);
        expect(doc.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      }
    },
  );
});

describe.each(SETUPS)("%s/", (setup) => {
  it("names are unique per kind and namespace", () => {
    const keys = objects(setup).map((o) => `${o.kind}/${namespaceOf(o)}/${o.metadata.name}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it("each Deployment's selector selects its own pod template", () => {
    for (const d of deployments(setup)) expect(selects(d.spec.selector.matchLabels, d.spec.template.metadata.labels)).toBe(true);
  });

  it("every volume mounted is one of the pod's, and every volume of a pod is mounted", () => {
    for (const d of deployments(setup)) {
      const pod: PodSpec = d.spec.template.spec;
      const volumes = (pod.volumes ?? []).map((v) => v.name);
      const mounted = pod.containers.flatMap((c) => (c.volumeMounts ?? []).map((m) => m.name));
      expect(
        volumes.filter((v) => !mounted.includes(v)),
        `${d.metadata.name}: volumes nobody mounts`,
      ).toEqual([]);
      expect(
        mounted.filter((m) => !volumes.includes(m)),
        `${d.metadata.name}: mounts of no volume`,
      ).toEqual([]);
    }
  });

  it("every ConfigMap a pod mounts exists in its namespace, with every key it mounts by subPath or items", () => {
    for (const d of deployments(setup)) {
      const pod = d.spec.template.spec;
      for (const v of pod.volumes ?? []) {
        if (!v.configMap) continue;
        const cm = ofKind<K8sObject>(setup, "ConfigMap").find((o) => o.metadata.name === v.configMap!.name && namespaceOf(o) === namespaceOf(d));
        expect(cm, `${d.metadata.name}: ConfigMap ${v.configMap.name}`).toBeDefined();
        for (const item of v.configMap.items ?? []) expect(Object.keys(cm!.data ?? {})).toContain(item.key);
        for (const c of pod.containers) {
          for (const m of (c.volumeMounts ?? []).filter((m) => m.name === v.name && m.subPath !== undefined)) {
            expect(Object.keys(cm!.data ?? {}), `${c.name} mounts ${m.mountPath}`).toContain(m.subPath);
          }
        }
      }
    }
  });

  it("every Service selects one Deployment's pods and targets a port one of its containers declares", () => {
    for (const s of ofKind<Service>(setup, "Service")) {
      const targets = deployments(setup).filter((d) => namespaceOf(d) === namespaceOf(s) && selects(s.spec.selector, d.spec.template.metadata.labels));
      expect(
        targets.map((d) => d.metadata.name),
        `Service ${s.metadata.name}`,
      ).toHaveLength(1);
      for (const port of s.spec.ports) {
        const declared = targets[0]!.spec.template.spec.containers.map((c) => containerPort(c, port.targetPort ?? port.port));
        expect(
          declared.some((p) => p !== undefined),
          `Service ${s.metadata.name} port ${port.port}`,
        ).toBe(true);
      }
    }
  });

  it("every probe targets a port its own container declares", () => {
    for (const { c } of pods(setup)) {
      for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
        if (probe === undefined) continue;
        const port = probe.httpGet?.port ?? probe.tcpSocket?.port ?? probe.grpc?.port;
        expect(port, `${c.name}: a probe without a port`).toBeDefined();
        expect(containerPort(c, port!), `${c.name}: probe port ${port}`).toBeDefined();
      }
    }
  });

  it("every container runs as a user other than root, read-only, without privileges, writing only to emptyDirs", () => {
    for (const { d, pod, c } of pods(setup)) {
      expect(pod.securityContext?.runAsNonRoot, d.metadata.name).toBe(true);
      const sc = c.securityContext ?? {};
      expect(sc.runAsUser, c.name).toBeGreaterThan(0);
      expect(sc.allowPrivilegeEscalation, c.name).toBe(false);
      expect(sc.readOnlyRootFilesystem, c.name).toBe(true);
      expect(sc.capabilities?.drop, c.name).toEqual(["ALL"]);
      expect(sc.capabilities?.add, c.name).toBeUndefined();
      for (const m of c.volumeMounts ?? []) {
        const volume = pod.volumes?.find((v) => v.name === m.name);
        if (m.readOnly !== true) expect(volume?.emptyDir, `${c.name} writes ${m.mountPath}`).toBeDefined();
        if (volume?.configMap) expect(m.readOnly, `${c.name} mounts ConfigMap ${volume.configMap.name}`).toBe(true);
      }
    }
  });

  it("scitokens-authz's configuration (SCITOKENS_AUTHZ_CONFIG) and authorization data validate with the service's own parsers where the pod mounts them", () => {
    const { config } = authzConfig(setup);
    expect(config.policy.kind).toBe("files");
    expect([...authzData(setup).issuers.keys()]).toEqual(["https://tokens.example.org"]);
  });

  it("the service's key cache is a folder the container can write", () => {
    const { d, c, config } = authzConfig(setup);
    expect(config.keys.cacheDir).not.toBeNull();
    const file = podFile(d.spec.template.spec, c, config.keys.cacheDir!);
    expect(file).toMatchObject({ kind: "emptyDir", readOnly: false, rest: "" });
  });

  it("the service's data is mounted as a folder (not subPath), so an edit of its ConfigMap reloads without a restart", () => {
    const { d, c, config } = authzConfig(setup);
    if (config.policy.kind !== "files") throw new Error("expected policy.data");
    const file = podFile(d.spec.template.spec, c, config.policy.dataFile);
    if (file.kind !== "configMap") throw new Error(`the data is not in a ConfigMap (${file.kind})`);
    const mount = c.volumeMounts?.find((m) => m.mountPath === file.mountPath);
    expect(mount?.subPath).toBeUndefined();
    expect(file.key).not.toContain("/");
    expect(config.watchPolicy).toBe(true);
  });

  it("scitokens-authz is probed on its admin listener (http.listen): ready at /readyz, alive at /healthz", () => {
    const { c, config } = authzConfig(setup);
    expect(config.httpListen).toEqual({ host: "0.0.0.0", port: 9090 });
    expect(containerPort(c, "admin")).toBe(config.httpListen!.port);
    expect(c.readinessProbe?.httpGet).toEqual({ path: "/readyz", port: "admin" });
    expect(c.livenessProbe?.httpGet).toEqual({ path: "/healthz", port: "admin" });
  });

  it("the storage's nginx.conf is deploy/compose/webdav.conf (tried with nginx) but for its listen address and comments", () => {
    const d = deployments(setup).find((x) => x.metadata.name === "storage")!;
    const webdav = d.spec.template.spec.containers.find((c) => c.name === "webdav")!;
    const directives = (conf: string) =>
      conf
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l !== "" && !l.startsWith("#") && !l.startsWith("listen "));
    const compose = readFileSync(join(DEPLOY, "compose", "webdav.conf"), "utf8");
    expect(directives(readInPod(setup, d, webdav, "/etc/nginx/nginx.conf"))).toEqual(directives(compose));
  });

  it("the scitokens-authz image is the version of package.json", () => {
    const images = pods(setup)
      .filter(({ c }) => c.name === AUTHZ_CONTAINER)
      .map(({ c }) => c.image);
    expect(images).toEqual([`scitokens-authz:${PACKAGE_VERSION}`]);
  });
});

describe("sidecar/: Envoy, the service and the storage in one pod", () => {
  const storage = () => deployments("sidecar").find((d) => d.metadata.name === "storage")!;
  const container = (name: string) => storage().spec.template.spec.containers.find((c) => c.name === name)!;
  /** Envoy's bootstrap as the envoy container reads it: the file its `-c` names. */
  const envoyText = () => {
    const args = [...(container("envoy").command ?? []), ...(container("envoy").args ?? [])];
    const file = args[args.indexOf("-c") + 1]!;
    return readInPod("sidecar", storage(), container("envoy"), file);
  };

  it("the pod runs the storage, Envoy and scitokens-authz", () => {
    expect(storage().spec.template.spec.containers.map((c) => c.name)).toEqual(["webdav", "envoy", AUTHZ_CONTAINER]);
  });

  it("Envoy's bootstrap passes envoy-check (Envoy's own v3 API)", async () => {
    const run = await envoyCheckText("envoy.yaml", envoyText());
    expect(run.stdout).toMatch(/1 file valid/);
    expect(run.code).toBe(0);
  });

  it("Envoy's bootstrap is envoy/envoy.yaml, but for the listener's address (the pod's, not loopback)", () => {
    const shipped = readDocuments(join(ROOT, "envoy", "envoy.yaml"))[0];
    const here = parseText(envoyText());
    expect(withoutAddresses(here)).toEqual(withoutAddresses(shipped));
    expect(envoyAddresses(here).clusters).toEqual(envoyAddresses(shipped).clusters);
    expect(envoyAddresses(here).listener).toEqual({ ...envoyAddresses(shipped).listener, address: "0.0.0.0" });
  });

  it("Envoy listens on its container's port, which the Service targets and the probes ask", () => {
    const { listener } = envoyAddresses(parseText(envoyText()));
    expect(containerPort(container("envoy"), "http")).toBe(listener.port);
    expect(container("envoy").readinessProbe?.httpGet).toEqual({ path: "/healthz", port: "http" });
  });

  it("Envoy asks scitokens-authz where it listens, and reaches the storage where nginx listens, both on the pod's loopback", () => {
    const { clusters } = envoyAddresses(parseText(envoyText()));
    const { config } = authzConfig("sidecar");
    expect(config.listen).toEqual({ host: "127.0.0.1", port: 9292 });
    expect(clusters.get("scitokens_authz")?.endpoints).toEqual([{ address: "127.0.0.1", port: 9292 }]);
    const nginx = readInPod("sidecar", storage(), container("webdav"), "/etc/nginx/nginx.conf");
    expect(nginxListens(nginx)).toEqual(["127.0.0.1:8081"]);
    expect(clusters.get("storage")?.endpoints).toEqual([{ address: "127.0.0.1", port: portOf("127.0.0.1:8081") }]);
  });

  it("every route Envoy's context_extensions name is a route section of the authorization data", () => {
    const routes = contextRoutes(parseText(envoyText()));
    expect(routes.length).toBeGreaterThan(0);
    const data = authzData("sidecar");
    for (const route of routes) expect([...data.routes.keys()]).toContain(route);
  });

  it("the storage declares no port and the service only its admin port: gRPC stays on the pod's loopback", () => {
    expect(container("webdav").ports).toBeUndefined();
    expect(container(AUTHZ_CONTAINER).ports?.map((p) => p.name)).toEqual(["admin"]);
  });
});

describe("istio/: the CUSTOM action with an envoyExtAuthzGrpc provider", () => {
  interface Provider {
    name: string;
    envoyExtAuthzGrpc?: { service: string; port: number; timeout?: string; failOpen?: boolean; statusOnError?: string };
  }
  const mesh = () =>
    readDocuments(join(K8S, "istio", "mesh-config", "istiod-values.yaml"))[0] as {
      meshConfig: { extensionProviders: Provider[]; pathNormalization?: { normalization: string } };
    };
  const policy = () =>
    ofKind<K8sObject>("istio", "AuthorizationPolicy")[0] as K8sObject & {
      spec: { selector: { matchLabels: Record<string, string> }; action: string; provider: { name: string }; rules: unknown[] };
    };
  const provider = () => mesh().meshConfig.extensionProviders.find((p) => p.name === policy().spec.provider.name);
  const seconds = (duration: string) => Number(/^(\d+(?:\.\d+)?)s$/.exec(duration)?.[1] ?? Number.NaN);

  it("the AuthorizationPolicy is CUSTOM, with one empty rule: every request is asked", () => {
    expect(policy().apiVersion).toBe("security.istio.io/v1");
    expect(policy().spec.action).toBe("CUSTOM");
    expect(policy().spec.rules).toEqual([{}]);
  });

  it("its provider is an envoyExtAuthzGrpc entry of the mesh config's extensionProviders", () => {
    expect(provider()?.envoyExtAuthzGrpc).toBeDefined();
  });

  it("the provider points at the scitokens-authz Service and port, which reach the container where the service listens", () => {
    const grpc = provider()!.envoyExtAuthzGrpc!;
    const service = ofKind<Service>("istio", "Service").find((s) => grpc.service === `${s.metadata.name}.${s.metadata.namespace}.svc.cluster.local`);
    expect(service?.metadata.name).toBe("scitokens-authz");
    const port = service!.spec.ports.find((p) => p.port === grpc.port);
    expect(port).toBeDefined();
    const { c, config } = authzConfig("istio");
    expect(containerPort(c, port!.targetPort!)).toBe("port" in config.listen ? config.listen.port : undefined);
    expect(config.listen).toMatchObject({ host: "0.0.0.0" });
  });

  it("the provider fails closed with 503, and waits longer than the service waits for keys", () => {
    const grpc = provider()!.envoyExtAuthzGrpc!;
    expect(grpc.failOpen).toBe(false);
    expect(grpc.statusOnError).toBe("503");
    expect(seconds(grpc.timeout ?? "")).toBeGreaterThan(authzConfig("istio").config.keys.checkWaitMs / 1000);
  });

  it("the mesh merges slashes, as envoy/envoy.yaml does", () => {
    expect(mesh().meshConfig.pathNormalization?.normalization).toBe("MERGE_SLASHES");
  });

  it("the policy selects the storage's pods and not the service's own", () => {
    const selected = deployments("istio").filter((d) => selects(policy().spec.selector.matchLabels, d.spec.template.metadata.labels));
    expect(selected.map((d) => d.metadata.name)).toEqual(["storage"]);
  });

  it("the PeerAuthentication holds the service's pods to the mesh's mutual TLS", () => {
    const peer = ofKind<K8sObject>("istio", "PeerAuthentication")[0] as K8sObject & {
      spec: { selector: { matchLabels: Record<string, string> }; mtls: { mode: string } };
    };
    expect(peer.spec.mtls.mode).toBe("STRICT");
    const selected = deployments("istio").filter((d) => selects(peer.spec.selector.matchLabels, d.spec.template.metadata.labels));
    expect(selected.map((d) => d.metadata.name)).toEqual(["scitokens-authz"]);
  });

  it("every object is in the namespace namespace.yaml creates, with Istio's sidecar injection", () => {
    const ns = ofKind<K8sObject>("istio", "Namespace")[0]!;
    expect(ns.metadata.labels?.["istio-injection"]).toBe("enabled");
    for (const o of objects("istio").filter((o) => o.kind !== "Namespace")) expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(ns.metadata.name);
  });

  it("the data has no route sections: Istio sets no context_extensions, so the top-level settings decide", () => {
    expect([...authzData("istio").routes.keys()]).toEqual([]);
  });

  it("the storage's Service targets nginx's listen port", () => {
    const d = deployments("istio").find((x) => x.metadata.name === "storage")!;
    const webdav = d.spec.template.spec.containers.find((c) => c.name === "webdav")!;
    const nginx = readInPod("istio", d, webdav, "/etc/nginx/nginx.conf");
    expect(nginxListens(nginx).map(portOf)).toEqual([containerPort(webdav, "http")]);
  });
});
