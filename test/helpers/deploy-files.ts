import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, posix, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { PACKAGE_ROOT } from "../../src/config/service-config.js";

/** The deployment files (issue 9): Dockerfile at the top, deploy/compose, deploy/kubernetes. */
export const DEPLOY = join(PACKAGE_ROOT, "deploy");

const CHECKER = join(PACKAGE_ROOT, ".tools", "bin", "envoy-check");
const execFileAsync = promisify(execFile);

/** Every YAML document of a file as plain data; a syntax error or warning throws, naming the file. */
export function readDocuments(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(file, "utf8"), { uniqueKeys: true });
  if (!Array.isArray(docs)) return [];
  return docs.map((doc, i) => {
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) throw new Error(`${relative(PACKAGE_ROOT, file)} document ${i}: ${problems.map((p) => p.message).join("; ")}`);
    return doc.toJS();
  });
}

/** A YAML text (the content of a ConfigMap key) as plain data; a syntax error throws. */
export function parseText(text: string): unknown {
  return parseYaml(text, { uniqueKeys: true });
}

/** tools/envoy-check on a text, written as `name` in a temporary folder (never into the checkout). */
export async function envoyCheckText(name: string, text: string): Promise<{ code: number; stdout: string }> {
  const dir = await mkdtemp(join(tmpdir(), "deploy-envoy-"));
  try {
    await writeFile(join(dir, name), text);
    try {
      const { stdout } = await execFileAsync(CHECKER, [name], { cwd: dir });
      return { code: 0, stdout };
    } catch (error) {
      const e = error as { code?: unknown; stdout?: string };
      if (typeof e.code !== "number") throw error;
      return { code: e.code, stdout: e.stdout ?? "" };
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// The parts of Kubernetes objects the tests read.
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}

export interface Probe {
  httpGet?: { path: string; port: string | number };
  tcpSocket?: { port: string | number };
  grpc?: { port: number };
}

export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: Array<{ name: string; value?: string }>;
  ports?: Array<{ name?: string; containerPort: number }>;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  securityContext?: {
    runAsUser?: number;
    runAsNonRoot?: boolean;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
  };
  volumeMounts?: Array<{ name: string; mountPath: string; subPath?: string; readOnly?: boolean }>;
}

export interface Volume {
  name: string;
  configMap?: { name: string; items?: Array<{ key: string; path: string }> };
  emptyDir?: Record<string, unknown>;
}

export interface PodSpec {
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  containers: Container[];
  volumes?: Volume[];
}

export interface Deployment extends K8sObject {
  spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
}

export interface Service extends K8sObject {
  spec: { selector: Record<string, string>; ports: Array<{ name?: string; port: number; targetPort?: string | number }> };
}

/** Every object of the YAML files of a folder (not its subfolders), with the file it came from. */
export function objectsIn(dir: string, files: readonly string[]): Array<K8sObject & { file: string }> {
  return files.flatMap((f) => readDocuments(join(dir, f)).map((doc) => ({ ...(doc as K8sObject), file: f })));
}

/** Whether `labels` has every key and value of `selector`. */
export function selects(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** What a container sees at an absolute path: which mount serves it, and from which volume and key. */
export type PodFile =
  | { kind: "configMap"; mountPath: string; readOnly: boolean; configMap: string; key: string }
  | { kind: "emptyDir"; mountPath: string; readOnly: boolean; rest: string }
  | { kind: "none" };

/**
 * Resolves `path` in `container` of `pod` as the kubelet mounts it: the deepest mount that
 * holds it (a subPath mount only at its exact path), then the ConfigMap key (through `items`
 * when given) or the place in an emptyDir.
 */
export function podFile(pod: PodSpec, container: Container, path: string): PodFile {
  const mounts = [...(container.volumeMounts ?? [])]
    .filter((m) => (m.subPath !== undefined ? path === m.mountPath : path === m.mountPath || path.startsWith(`${m.mountPath}/`)))
    .sort((a, b) => b.mountPath.length - a.mountPath.length);
  const mount = mounts[0];
  if (mount === undefined) return { kind: "none" };
  const volume = pod.volumes?.find((v) => v.name === mount.name);
  const rest = mount.subPath ?? posix.relative(mount.mountPath, path);
  const readOnly = mount.readOnly === true;
  if (volume?.configMap) {
    const item = volume.configMap.items?.find((i) => i.path === rest);
    const key = volume.configMap.items ? (item?.key ?? "") : rest;
    return { kind: "configMap", mountPath: mount.mountPath, readOnly, configMap: volume.configMap.name, key };
  }
  if (volume?.emptyDir) return { kind: "emptyDir", mountPath: mount.mountPath, readOnly, rest };
  return { kind: "none" };
}

/** The environment a container sets (`env` values only). */
export function environmentOf(container: Container): Record<string, string> {
  return Object.fromEntries((container.env ?? []).flatMap((e) => (e.value !== undefined ? [[e.name, e.value]] : [])));
}

/** The container port a probe or Service targetPort names (by name or number), or undefined. */
export function containerPort(container: Container, port: string | number): number | undefined {
  const ports = container.ports ?? [];
  return typeof port === "number" ? ports.find((p) => p.containerPort === port)?.containerPort : ports.find((p) => p.name === port)?.containerPort;
}

// The parts of an Envoy bootstrap the tests compare.
export interface EnvoyEndpoint {
  address: string;
  port: number;
}

type Json = Record<string, unknown>;
const at = (value: unknown, ...path: Array<string | number>): unknown =>
  path.reduce<unknown>((node, key) => (node !== null && typeof node === "object" ? (node as Json)[key as string] : undefined), value);

/** Envoy's listener address, and each cluster's endpoints, of a bootstrap like envoy/envoy.yaml. */
export function envoyAddresses(bootstrap: unknown): { listener: EnvoyEndpoint; clusters: Map<string, { type: string; endpoints: EnvoyEndpoint[] }> } {
  const socket = at(bootstrap, "static_resources", "listeners", 0, "address", "socket_address") as { address: string; port_value: number };
  const clusters = new Map<string, { type: string; endpoints: EnvoyEndpoint[] }>();
  for (const cluster of (at(bootstrap, "static_resources", "clusters") as Json[]) ?? []) {
    const endpoints = ((at(cluster, "load_assignment", "endpoints") as Json[]) ?? []).flatMap((group) =>
      ((group["lb_endpoints"] as Json[]) ?? []).map((lb) => {
        const s = at(lb, "endpoint", "address", "socket_address") as { address: string; port_value: number };
        return { address: s.address, port: s.port_value };
      }),
    );
    clusters.set(cluster["name"] as string, { type: cluster["type"] as string, endpoints });
  }
  return { listener: { address: socket.address, port: socket.port_value }, clusters };
}

/**
 * A bootstrap with the listener's address, the clusters' types and their endpoints' addresses
 * taken out: what must be the same in every Envoy file of the project (the filters, routes
 * and every other setting).
 */
export function withoutAddresses(bootstrap: unknown): unknown {
  const copy = structuredClone(bootstrap) as Json;
  const listener = at(copy, "static_resources", "listeners", 0) as Json;
  delete listener["address"];
  for (const cluster of (at(copy, "static_resources", "clusters") as Json[]) ?? []) {
    delete cluster["type"];
    delete cluster["load_assignment"];
  }
  return copy;
}

/** Where the HTTP connection manager is in a bootstrap like envoy/envoy.yaml. */
export const HCM_PATH = ["static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config"] as const;

/** Every `route` context extension the routes of a bootstrap set. */
export function contextRoutes(bootstrap: unknown): string[] {
  const hosts = (at(bootstrap, ...HCM_PATH, "route_config", "virtual_hosts") as Json[]) ?? [];
  return hosts.flatMap((host) =>
    ((host["routes"] as Json[]) ?? []).flatMap((route) => {
      const name = at(route, "typed_per_filter_config", "envoy.filters.http.ext_authz", "check_settings", "context_extensions", "route");
      return typeof name === "string" ? [name] : [];
    }),
  );
}

/** The `listen` directives of an nginx configuration, as written (`8081`, `127.0.0.1:8081`). */
export function nginxListens(conf: string): string[] {
  return [...conf.matchAll(/^\s*listen\s+([^\s;]+)[^;]*;/gm)].map((m) => m[1]!);
}

/** The port of an nginx `listen` value or a `host:port` string. */
export function portOf(listen: string): number {
  return Number(/(\d+)$/.exec(listen)?.[1]);
}

// ---------------------------------------------------------------------------------------
// docker-compose.yml

/** deploy/compose: the demo's docker-compose.yml and the files it mounts. */
export const COMPOSE_DIR = join(DEPLOY, "compose");

export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  tmpfs?: string[];
  networks?: string[];
  network_mode?: string;
  ports?: string[];
  depends_on?: string[] | Record<string, { condition: string }>;
  read_only?: boolean;
  profiles?: string[];
  healthcheck?: { disable?: boolean };
}

export interface Compose {
  services: Record<string, ComposeService>;
  networks: Record<string, { internal?: boolean }>;
  volumes: Record<string, unknown>;
}

/** deploy/compose/docker-compose.yml, parsed. */
export const compose = () => readDocuments(join(COMPOSE_DIR, "docker-compose.yml"))[0] as Compose;
export const service = (name: string) => compose().services[name]!;

/** A service's mounts: host folder or file (bind), or named volume, at a container path. */
export function mounts(s: ComposeService): Array<{ source: string; target: string; bind: boolean; readOnly: boolean }> {
  return (s.volumes ?? []).map((v) => {
    const [source, target, mode] = v.split(":") as [string, string, string | undefined];
    const bind = source.startsWith(".") || source.startsWith("/");
    return { source: bind ? resolve(COMPOSE_DIR, source) : source, target, bind, readOnly: mode === "ro" };
  });
}

/** Where a container path comes from: the deepest mount holding it. */
export function mountOf(s: ComposeService, path: string) {
  return mounts(s)
    .filter((m) => path === m.target || path.startsWith(`${m.target}/`))
    .sort((a, b) => b.target.length - a.target.length)[0];
}

/** The host file behind a container path of a bind mount. */
export function hostFile(s: ComposeService, path: string): string {
  const m = mountOf(s, path);
  if (!m?.bind) throw new Error(`${path} is not on a bind mount`);
  return join(m.source, posix.relative(m.target, path));
}
