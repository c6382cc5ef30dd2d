import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { type FileDescriptorProto, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  type Client,
  type ClientDuplexStream,
  type ClientReadableStream,
  type ServiceError,
  credentials,
  loadPackageDefinition,
  makeClientConstructor,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { service as healthService } from "grpc-health-check";

/** A `grpc.health.v1.Health` client: the standard one, as a load balancer or kubelet uses it. */
export interface HealthClient {
  /** Health/Check: the status, or the gRPC status code of the error. */
  check(service: string): Promise<{ status: string } | { code: number }>;
  /** Health/Watch: the statuses the server streams, read one at a time. */
  watch(service: string): StatusStream;
  close(): void;
}

/** A server stream read message by message, each awaited as it arrives (no timers). */
export interface StatusStream {
  next(): Promise<string>;
  /** Resolves with how the stream ended (the gRPC status code; 0 when the server ended it). */
  ended(): Promise<number>;
  /** Messages received and not yet taken by {@link next}. */
  unread(): readonly string[];
  cancel(): void;
}

type HealthStub = Client & {
  check(request: { service: string }, callback: (error: ServiceError | null, response?: { status: string }) => void): void;
  watch(request: { service: string }): ClientReadableStream<{ status: string }>;
};

/** `options.ownConnection`: a connection of its own, not shared with other clients of `target`. */
export function healthClient(target: string, options: { ownConnection?: boolean } = {}): HealthClient {
  const Constructor = makeClientConstructor(healthService as never, "grpc.health.v1.Health");
  const client = new Constructor(
    target,
    credentials.createInsecure(),
    options.ownConnection ? { "grpc.use_local_subchannel_pool": 1 } : {},
  ) as unknown as HealthStub;
  return {
    check: (service) =>
      new Promise((resolve) => {
        client.check({ service }, (error, response) => resolve(error ? { code: error.code } : { status: response!.status }));
      }),
    watch: (service) => messageStream(client.watch({ service }), (message) => message.status),
    close: () => client.close(),
  };
}

function messageStream<T>(call: ClientReadableStream<T>, pick: (message: T) => string): StatusStream {
  const queued: string[] = [];
  const waiting: Array<(value: string) => void> = [];
  const ended = new Promise<number>((resolve) => {
    call.on("status", (status: { code: number }) => resolve(status.code));
  });
  call.on("error", () => undefined); // a cancel, or the end reported by "status"
  call.on("data", (message: T) => {
    const value = pick(message);
    const resolve = waiting.shift();
    if (resolve) resolve(value);
    else queued.push(value);
  });
  return {
    next: () => {
      const value = queued.shift();
      return value !== undefined ? Promise.resolve(value) : new Promise<string>((resolve) => waiting.push(resolve));
    },
    ended: () => ended,
    unread: () => [...queued],
    cancel: () => call.cancel(),
  };
}

/** The reflection protocol versions grpcurl speaks (v1 first, then v1alpha). */
export type ReflectionVersion = "v1" | "v1alpha";

/** A gRPC server reflection client over grpc-js, as grpcurl uses the protocol. */
export interface ReflectionClient {
  listServices(): Promise<string[]>;
  /** The files that define `symbol` and those it imports, decoded. */
  fileContainingSymbol(symbol: string): Promise<FileDescriptorProto[]>;
  close(): void;
}

interface ReflectionResponse {
  listServicesResponse?: { service: Array<{ name: string }> };
  fileDescriptorResponse?: { fileDescriptorProto: Uint8Array[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

const requireHere = createRequire(import.meta.url);

/** The reflection .proto files @grpc/reflection ships (the client side needs them; the server does not). */
function reflectionProto(version: ReflectionVersion): string {
  const root = dirname(requireHere.resolve("@grpc/reflection/package.json"));
  return join(root, "build", "proto", "grpc", "reflection", version, "reflection.proto");
}

export function reflectionClient(target: string, version: ReflectionVersion = "v1"): ReflectionClient {
  const definition = loadPackageDefinition(loadSync(reflectionProto(version), { longs: String, enums: String, defaults: true, oneofs: true }));
  type ReflectionStub = Client & { serverReflectionInfo(): ClientDuplexStream<Record<string, unknown>, ReflectionResponse> };
  const packages = definition as unknown as {
    grpc: { reflection: Record<ReflectionVersion, { ServerReflection: new (target: string, creds: unknown) => ReflectionStub }> };
  };
  const client = new packages.grpc.reflection[version].ServerReflection(target, credentials.createInsecure());
  const ask = (request: Record<string, unknown>) =>
    new Promise<ReflectionResponse>((resolve, reject) => {
      const call = client.serverReflectionInfo();
      call.on("data", (response: ReflectionResponse) => {
        resolve(response);
        call.end();
      });
      call.on("error", reject);
      call.write(request);
    });
  return {
    async listServices() {
      const response = await ask({ listServices: "*" });
      if (response.errorResponse) throw new Error(response.errorResponse.errorMessage);
      return (response.listServicesResponse?.service ?? []).map((s) => s.name).sort();
    },
    async fileContainingSymbol(symbol) {
      const response = await ask({ fileContainingSymbol: symbol });
      if (response.errorResponse) throw new Error(`${response.errorResponse.errorCode}: ${response.errorResponse.errorMessage}`);
      return (response.fileDescriptorResponse?.fileDescriptorProto ?? []).map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
    },
    close: () => client.close(),
  };
}
