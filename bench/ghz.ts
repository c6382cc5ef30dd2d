import { spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { pinned } from "./servers.js";

/** The gRPC method every benchmark request calls. */
const CALL = "envoy.service.auth.v3.Authorization.Check";

export interface LoadOptions {
  readonly ghz: string;
  /** A FileDescriptorSet holding the ext_authz service (build/grpc-descriptors.binpb). */
  readonly protoset: string;
  readonly target: string;
  /** Count-delimited CheckRequests, sent round-robin. */
  readonly dataFile: string;
  readonly outFile: string;
  readonly concurrency: number;
  readonly connections: number;
  /** GOMAXPROCS of ghz: 1 when it is pinned to one core. */
  readonly cpus: number;
  readonly core: number | undefined;
  /** A fixed rate (Checks per second); absent: as fast as the server answers (saturation). */
  readonly rps?: number | undefined;
  /** Run this long... */
  readonly seconds?: number | undefined;
  /** ...or send this many Checks. */
  readonly total?: number | undefined;
}

export interface Latencies {
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

export interface LoadResult {
  /** Checks answered without a gRPC error. */
  readonly count: number;
  readonly errors: number;
  /** Error messages and how often each came (at most 5). */
  readonly errorKinds: Record<string, number>;
  readonly seconds: number;
  /** Checks answered per second over the run. */
  readonly rps: number;
  /** Of the Checks answered, in milliseconds. */
  readonly latencyMs: Latencies;
}

interface GhzDetail {
  latency: number;
  error: string;
}

interface GhzReport {
  total: number;
  details: GhzDetail[] | null;
}

/** The nearest-rank percentile of sorted values. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/**
 * `total` Checks to `target` as fast as it answers, 64 in flight over 4 connections, ghz
 * unpinned on every core: the load of the soak and of the memory comparison.
 */
export function unpinnedLoad(
  o: { readonly ghz: string; readonly root: string; readonly cores: number; readonly dataFile: string; readonly dir: string },
  target: string,
  total: number,
): Promise<LoadResult> {
  return runLoad({
    ghz: o.ghz,
    protoset: join(o.root, "build", "grpc-descriptors.binpb"),
    target,
    dataFile: o.dataFile,
    outFile: join(o.dir, "ghz-report.json"),
    concurrency: 64,
    connections: 4,
    cpus: o.cores,
    core: undefined,
    total,
  });
}

/** Runs ghz once and reads its JSON report (every Check's latency, from which p99.9 is taken). */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const args = [
    o.target,
    "--insecure",
    "--protoset",
    o.protoset,
    "--call",
    CALL,
    "--binary-file",
    o.dataFile,
    "--concurrency",
    String(o.concurrency),
    "--connections",
    String(o.connections),
    "--cpus",
    String(o.cpus),
    "--timeout",
    "10s",
    "--duration-stop",
    "ignore",
    "--disable-template-data",
    "--disable-template-functions",
    "--format",
    "json",
    "--output",
    o.outFile,
  ];
  if (o.seconds !== undefined) args.push("--duration", `${o.seconds}s`);
  else args.push("--total", String(o.total ?? 1000));
  if (o.rps !== undefined) args.push("--rps", String(Math.round(o.rps)));
  const [command, full] = pinned(o.core, o.ghz, args);
  const stderr: Buffer[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(command, full, { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.once("error", reject);
    child.once("exit", resolve);
  });
  if (code !== 0) throw new Error(`ghz exited with ${code}: ${Buffer.concat(stderr).toString("utf8").trim().slice(0, 2000)}`);
  const report = JSON.parse(readFileSync(o.outFile, "utf8")) as GhzReport;
  rmSync(o.outFile, { force: true });
  const details = report.details ?? [];
  const errorKinds: Record<string, number> = {};
  const ok: number[] = [];
  for (const d of details) {
    if (d.error === "") ok.push(d.latency / 1e6);
    else if (Object.keys(errorKinds).length < 5 || d.error in errorKinds) errorKinds[d.error] = (errorKinds[d.error] ?? 0) + 1;
  }
  const sorted = Float64Array.from(ok).sort();
  const seconds = report.total / 1e9;
  return {
    count: ok.length,
    errors: details.length - ok.length,
    errorKinds,
    seconds,
    rps: ok.length / seconds,
    latencyMs: { p50: percentile(sorted, 50), p99: percentile(sorted, 99), p999: percentile(sorted, 99.9), max: sorted[sorted.length - 1] ?? Number.NaN },
  };
}
