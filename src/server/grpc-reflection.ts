import { readFileSync } from "node:fs";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { ReflectionService } from "@grpc/reflection";

type PackageDefinition = ConstructorParameters<typeof ReflectionService>[0];

/**
 * gRPC server reflection (`grpc.reflection.v1` and `v1alpha`, as grpcurl asks) over the
 * services the gRPC listener serves besides reflection itself (the Envoy ext_authz API and
 * grpc.health.v1), so `grpcurl list`, `describe` and calls work without proto files.
 * They come from `descriptorSet`, the FileDescriptorSet setup writes with `buf build`
 * (build/grpc-descriptors.binpb), served file by file as buf wrote them: their own names
 * and imports, by which grpcurl links them. (Loading the set with proto-loader instead
 * would merge each package's files into one whose imports are lost.) Throws when the
 * descriptor set cannot be read or holds no file.
 */
export function loadReflection(descriptorSet: string): ReflectionService {
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(descriptorSet));
  if (set.file.length === 0) throw new Error(`${descriptorSet} holds no proto file`);
  // @grpc/reflection reads only the `fileDescriptorProtos` of each definition.
  const definition = {
    descriptors: { format: "FileDescriptorSet", fileDescriptorProtos: set.file.map((file) => toBinary(FileDescriptorProtoSchema, file)) },
  } as unknown as PackageDefinition;
  return new ReflectionService(definition);
}
