package main

import (
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// typeResolver resolves the `@type` of a typed_config among the types linked in
// (extensions.go), except Envoy's pre-v3 types: some are linked in through the module, and
// Envoy has refused them since 1.18.
var typeResolver = v3Only{protoregistry.GlobalTypes}

type v3Only struct{ *protoregistry.Types }

func (r v3Only) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	if !acceptedType(url[strings.LastIndex(url, "/")+1:]) {
		return nil, protoregistry.NotFound
	}
	return r.Types.FindMessageByURL(url)
}

func (r v3Only) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	if !acceptedType(string(name)) {
		return nil, protoregistry.NotFound
	}
	return r.Types.FindMessageByName(name)
}

// acceptedType: every Envoy type Envoy accepts is in a v3 package.
func acceptedType(name string) bool {
	return !strings.HasPrefix(name, "envoy.") || strings.Contains(name, ".v3.")
}
