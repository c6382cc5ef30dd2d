// Command envoy-check validates Envoy bootstrap files against Envoy's own v3 API
// definitions (the Go types and protoc-gen-validate rules of go-control-plane/envoy), so a
// configuration can be checked in CI without an Envoy binary.
//
//	envoy-check FILE...
//
// For each YAML file it
//   - parses it strictly into envoy.config.bootstrap.v3.Bootstrap (an unknown field, a wrong
//     type or enum value, an unresolvable typed_config `@type` are errors);
//   - runs the generated ValidateAll() on the bootstrap and on the content of every
//     typed_config (every google.protobuf.Any in the tree);
//   - reports the use of deprecated fields and enum values;
//   - checks across the file what Envoy checks when it loads it: every cluster named by a
//     route, a gRPC service or an HTTP URI exists, cluster names are unique, the router is the
//     last HTTP filter of each HTTP connection manager, and ext_authz uses transport API V3.
//
// It prints one line per problem, `FILE: path.to.field: message`, and exits 1 when there is
// any, 0 with a summary when there is none, 2 on a usage error. It is not Envoy: what only a
// running Envoy finds (files it reads, DNS names, ports, runtime behaviour) is not checked.
package main

//go:generate go run gen_extensions.go
