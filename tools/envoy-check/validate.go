package main

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
)

// node is one message of a configuration, with its path; the content of a typed_config (an
// Any) is a node at the Any's path, as the YAML writes it.
type node struct {
	msg protoreflect.Message
	at  path
	// unpacked: the content of an Any (ValidateAll of the message holding the Any does not
	// look into it).
	unpacked bool
}

// walk calls visit for every message in the tree, depth first, unpacking every Any (whose
// type has resolved: parseBootstrap has checked it).
func walk(msg protoreflect.Message, at path, visit func(node)) {
	unpacked := false
	if msg.Descriptor().FullName() == "google.protobuf.Any" {
		inner, err := unpack(msg)
		if err != nil {
			return
		}
		msg, unpacked = inner, true
	}
	visit(node{msg, at, unpacked})
	msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(fd.Name())
		switch {
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			list := v.List()
			for i := range list.Len() {
				walk(list.Get(i).Message(), at.key(name).index(i), visit)
			}
		case fd.IsMap() && fd.MapValue().Kind() == protoreflect.MessageKind:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				walk(mv.Message(), at.key(name).key(k.String()), visit)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Kind() == protoreflect.MessageKind:
			walk(v.Message(), at.key(name), visit)
		}
		return true
	})
}

func unpack(msg protoreflect.Message) (protoreflect.Message, error) {
	a, ok := msg.Interface().(*anypb.Any)
	if !ok {
		return nil, fmt.Errorf("not an Any")
	}
	inner, err := anypb.UnmarshalNew(a, proto.UnmarshalOptions{Resolver: typeResolver})
	if err != nil {
		return nil, err
	}
	return inner.ProtoReflect(), nil
}

// pgvError is the error type protoc-gen-validate generates for each message.
type pgvError interface {
	Field() string
	Reason() string
	Cause() error
}

type multiError interface{ AllErrors() []error }

const embeddedFailed = "embedded message failed validation"

// validateRules runs ValidateAll on the bootstrap and on the content of every Any (which
// ValidateAll does not look into), and reports each violation at the path of its field.
func validateRules(root node) []problem {
	var problems []problem
	check := func(n node) {
		v, ok := n.msg.Interface().(interface{ ValidateAll() error })
		if !ok {
			return
		}
		if err := v.ValidateAll(); err != nil {
			problems = append(problems, violations(err, n.msg.Descriptor(), n.at)...)
		}
	}
	check(root)
	walk(root.msg, root.at, func(n node) {
		if n.unpacked {
			check(n)
		}
	})
	return problems
}

// violations unwinds a ValidateAll error: an "embedded message failed validation" carries
// the child's errors as its cause, each about a field of the child.
func violations(err error, md protoreflect.MessageDescriptor, at path) []problem {
	if m, ok := err.(multiError); ok {
		var out []problem
		for _, e := range m.AllErrors() {
			out = append(out, violations(e, md, at)...)
		}
		return out
	}
	v, ok := err.(pgvError)
	if !ok {
		return []problem{{at: at, msg: err.Error()}}
	}
	fieldAt, child, oneof := goField(md, v.Field(), at)
	if v.Reason() == embeddedFailed && v.Cause() != nil && child != nil {
		return violations(v.Cause(), child, fieldAt)
	}
	msg := v.Reason()
	if v.Reason() == embeddedFailed && v.Cause() != nil {
		msg += ": " + v.Cause().Error()
	}
	if oneof != nil && msg == "value is required" {
		msg = "one of " + oneofFields(oneof) + " is required"
	}
	return []problem{{at: fieldAt, msg: msg}}
}

// goField maps a protoc-gen-validate field name (the Go name, with "[i]" or "[key]" for an
// element) to the path of the proto field, and returns the message descriptor of its value
// (for a cause to unwind) or the oneof it names.
func goField(md protoreflect.MessageDescriptor, goName string, at path) (path, protoreflect.MessageDescriptor, protoreflect.OneofDescriptor) {
	name, element, hasElement := strings.Cut(goName, "[")
	element = strings.TrimSuffix(element, "]")
	flat := strings.ToLower(name)
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if strings.ReplaceAll(string(fd.Name()), "_", "") != flat {
			continue
		}
		fieldAt := at.key(string(fd.Name()))
		var child protoreflect.MessageDescriptor
		switch {
		case hasElement && fd.IsMap():
			fieldAt = fieldAt.key(element)
			child = fd.MapValue().Message()
		case hasElement:
			var index int
			fmt.Sscan(element, &index)
			fieldAt = fieldAt.index(index)
			child = fd.Message()
		default:
			child = fd.Message()
		}
		return fieldAt, child, nil
	}
	oneofs := md.Oneofs()
	for i := range oneofs.Len() {
		od := oneofs.Get(i)
		if strings.ReplaceAll(string(od.Name()), "_", "") == flat {
			return at.key(string(od.Name())), nil, od
		}
	}
	return at.key(goName), nil, nil
}

func oneofFields(od protoreflect.OneofDescriptor) string {
	fields := od.Fields()
	names := make([]string, 0, fields.Len())
	for i := range fields.Len() {
		names = append(names, string(fields.Get(i).Name()))
	}
	return strings.Join(names, ", ")
}

// deprecations reports every deprecated field and enum value that is set.
func deprecations(root node) []problem {
	var problems []problem
	walk(root.msg, root.at, func(n node) {
		n.msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			at := n.at.key(string(fd.Name()))
			if opts, ok := fd.Options().(*descriptorpb.FieldOptions); ok && opts.GetDeprecated() {
				problems = append(problems, problem{at: at, msg: fmt.Sprintf("deprecated field of %s (Envoy warns, and a later release removes it)", n.msg.Descriptor().FullName())})
			}
			if fd.Kind() == protoreflect.EnumKind && !fd.IsList() && !fd.IsMap() {
				ev := fd.Enum().Values().ByNumber(v.Enum())
				if ev == nil {
					return true
				}
				if opts, ok := ev.Options().(*descriptorpb.EnumValueOptions); ok && opts.GetDeprecated() {
					problems = append(problems, problem{at: at, msg: fmt.Sprintf("%s is deprecated (Envoy warns, or refuses it, and a later release removes it)", ev.Name())})
				}
			}
			return true
		})
	})
	return problems
}
