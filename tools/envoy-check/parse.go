package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"sigs.k8s.io/yaml"
)

// maxParseProblems bounds the parse-fix-parse loop of parseBootstrap.
const maxParseProblems = 50

// parseBootstrap reads a YAML bootstrap as protojson does (unknown fields, wrong types and
// unresolvable Any types are errors). protojson stops at the first error, so each error's
// value is removed from the tree and the rest parsed again, to report them all at once. The
// bootstrap comes back only when there was none.
func parseBootstrap(data []byte) (*bootstrapv3.Bootstrap, []problem) {
	raw, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, []problem{{msg: "not valid YAML: " + oneLine(err.Error())}}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, []problem{{msg: "not valid YAML: " + err.Error()}}
	}
	if _, ok := tree.(map[string]any); !ok {
		return nil, []problem{{msg: fmt.Sprintf("expected a mapping (an Envoy bootstrap), found %s", describeJSON(tree))}}
	}
	root := (&bootstrapv3.Bootstrap{}).ProtoReflect().Descriptor()
	var problems []problem
	seen := map[string]bool{}
	for range maxParseProblems {
		text, lines := encodeIndexed(tree)
		bootstrap := &bootstrapv3.Bootstrap{}
		err := protojson.UnmarshalOptions{DiscardUnknown: false, Resolver: typeResolver}.Unmarshal(text, bootstrap)
		if err == nil {
			if len(problems) == 0 {
				return bootstrap, nil
			}
			return nil, problems
		}
		at, msg := locate(err, lines)
		p := explain(root, tree, at, msg)
		if seen[p.String()] || len(at) == 0 || !remove(&tree, p.at) {
			return nil, append(problems, p)
		}
		seen[p.String()] = true
		problems = append(problems, p)
	}
	return nil, problems
}

// encodeIndexed writes a JSON tree with every object member and list element on a line of
// its own, and returns, for each line, the path of the value that starts on it (so a
// protojson error's line number tells which value it is about).
func encodeIndexed(tree any) ([]byte, []path) {
	e := &indexedEncoder{lines: []path{nil}}
	e.value(tree, nil)
	return e.buf.Bytes(), e.lines
}

type indexedEncoder struct {
	buf   bytes.Buffer
	lines []path
}

func (e *indexedEncoder) newline(p path) {
	e.buf.WriteByte('\n')
	e.lines = append(e.lines, p)
}

func (e *indexedEncoder) value(v any, p path) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		e.buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				e.buf.WriteByte(',')
			}
			e.newline(p.key(k))
			name, _ := json.Marshal(k)
			e.buf.Write(name)
			e.buf.WriteString(": ")
			e.value(v[k], p.key(k))
		}
		if len(keys) > 0 {
			e.newline(p)
		}
		e.buf.WriteByte('}')
	case []any:
		e.buf.WriteByte('[')
		for i, item := range v {
			if i > 0 {
				e.buf.WriteByte(',')
			}
			e.newline(p.index(i))
			e.value(item, p.index(i))
		}
		if len(v) > 0 {
			e.newline(p)
		}
		e.buf.WriteByte(']')
	case json.Number:
		e.buf.WriteString(v.String())
	default:
		text, _ := json.Marshal(v)
		e.buf.Write(text)
	}
}

var errorLine = regexp.MustCompile(`\(line (\d+):\d+\): `)

// locate turns a protojson error into the path of the value it is about and its message
// without the position and package prefixes.
func locate(err error, lines []path) (path, string) {
	text := err.Error()
	var at path
	if m := errorLine.FindStringSubmatchIndex(text); m != nil {
		n, _ := strconv.Atoi(text[m[2]:m[3]])
		if n >= 1 && n <= len(lines) {
			at = lines[n-1]
		}
		text = text[m[1]:]
	}
	text = errorLine.ReplaceAllString(text, "")
	text = strings.TrimPrefix(strings.TrimPrefix(text, "proto: "), "syntax error ")
	return at, text
}

var (
	unknownField = regexp.MustCompile(`^unknown field "(.*)"$`)
	badValue     = regexp.MustCompile(`^invalid value for \w+ (?:field|key) \w*:? ?(.*)$`)
	unexpected   = regexp.MustCompile(`^unexpected token (.*)$`)
	unresolved   = regexp.MustCompile(`^unable to resolve "(.*)": .*$`)
)

// explain rewrites a protojson message in the operator's terms, using the descriptor of the
// field at that path: the fields a misspelled one may have meant, the values of an enum,
// what a field of that type holds.
func explain(root protoreflect.MessageDescriptor, tree any, at path, msg string) problem {
	if m := unresolved.FindStringSubmatch(msg); m != nil {
		if s, ok := at.last(); ok && !s.isIndex && s.key == "@type" {
			at = at.parent()
		}
		return problem{at: at, msg: unknownType(m[1])}
	}
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		// Resolving the unknown field itself stops in the message that lacks it.
		parent, _ := resolve(root, tree, at)
		if parent == nil {
			return problem{at: at, msg: "unknown field"}
		}
		return problem{at: at, msg: fmt.Sprintf("unknown field in %s%s", parent.FullName(), suggest(m[1], parent))}
	}
	m := badValue.FindStringSubmatch(msg)
	if m == nil {
		m = unexpected.FindStringSubmatch(msg)
	}
	if m != nil {
		if _, fd := resolve(root, tree, at); fd != nil {
			return problem{at: at, msg: fmt.Sprintf("expected %s, found %s", expectation(fd, at), foundToken(m[1]))}
		}
	}
	return problem{at: at, msg: msg}
}

// foundToken names the JSON token protojson stopped at: the first of a mapping or a list is
// a brace or a bracket, which the YAML does not show.
func foundToken(token string) string {
	switch token {
	case "{":
		return "a mapping"
	case "[":
		return "a list"
	}
	return token
}

func unknownType(typeURL string) string {
	name := typeURL[strings.LastIndex(typeURL, "/")+1:]
	if strings.HasPrefix(name, "envoy.") && !strings.Contains(name, ".v3.") {
		return fmt.Sprintf("unknown type %q: not a v3 type (Envoy has taken only its v3 API since 1.18; v2 names such as envoy.config.filter.http.* became envoy.extensions.filters.http.*.v3)", typeURL)
	}
	return fmt.Sprintf("unknown type %q: not a type of Envoy's v3 API nor of the extensions this checker knows", typeURL)
}

// resolve follows a path through the JSON tree and the descriptors it is parsed into, and
// returns the message that holds the last field, and that field (nil when it is not one;
// the message is nil when the path leaves the typed part, e.g. inside a Struct).
func resolve(root protoreflect.MessageDescriptor, tree any, at path) (protoreflect.MessageDescriptor, protoreflect.FieldDescriptor) {
	md, node := root, tree
	var fd protoreflect.FieldDescriptor
	inContainer := false // fd is a list or map and the next segment steps into it
	for _, s := range at {
		if inContainer {
			inContainer = false
			node = step(node, s)
			if fd.Kind() != protoreflect.MessageKind && !(fd.IsMap() && fd.MapValue().Kind() == protoreflect.MessageKind) {
				return md, fd
			}
			if fd.IsMap() {
				md = fd.MapValue().Message()
			} else {
				md = fd.Message()
			}
			fd = nil
			continue
		}
		if fd != nil {
			if fd.Kind() != protoreflect.MessageKind {
				return nil, nil
			}
			md = fd.Message()
		}
		if md == nil || s.isIndex {
			return nil, nil
		}
		if md.FullName() == "google.protobuf.Any" {
			if s.key == "@type" {
				return nil, nil
			}
			obj, _ := node.(map[string]any)
			typeURL, _ := obj["@type"].(string)
			mt, err := typeResolver.FindMessageByURL(typeURL)
			if err != nil {
				return nil, nil
			}
			md = mt.Descriptor()
		}
		fd = fieldByName(md, s.key)
		if fd == nil {
			return md, nil
		}
		node = step(node, s)
		inContainer = fd.IsList() || fd.IsMap()
	}
	return md, fd
}

func step(node any, s segment) any {
	switch n := node.(type) {
	case map[string]any:
		return n[s.key]
	case []any:
		if s.isIndex && s.index < len(n) {
			return n[s.index]
		}
	}
	return nil
}

func fieldByName(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	if fd := md.Fields().ByName(protoreflect.Name(name)); fd != nil {
		return fd
	}
	return md.Fields().ByJSONName(name)
}

// suggest names the fields of md closest to a misspelled one.
func suggest(name string, md protoreflect.MessageDescriptor) string {
	best, bestDistance := []string{}, max(2, len(name)/3)+1
	fields := md.Fields()
	for i := range fields.Len() {
		candidate := string(fields.Get(i).Name())
		d := distance(strings.ToLower(name), candidate)
		if d < bestDistance {
			best, bestDistance = []string{candidate}, d
		} else if d == bestDistance {
			best = append(best, candidate)
		}
	}
	if len(best) == 0 {
		return ""
	}
	return fmt.Sprintf("; did you mean %s?", strings.Join(best, " or "))
}

// distance is the Levenshtein edit distance of two strings.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// expectation says what a field holds, in YAML terms. at is the path of the value: when it
// ends in an index or map key, it is about one element, not the list.
func expectation(fd protoreflect.FieldDescriptor, at path) string {
	element := false
	if s, ok := at.last(); ok && (s.isIndex || string(fd.Name()) != s.key && fd.JSONName() != s.key) {
		element = true
	}
	switch {
	case fd.IsList() && !element:
		return "a list of " + plural(fd)
	case fd.IsMap() && !element:
		return "a mapping of names to " + plural(fd.MapValue())
	case fd.IsMap():
		return singular(fd.MapValue())
	}
	return singular(fd)
}

func singular(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return "true or false"
	case protoreflect.StringKind:
		return "a string"
	case protoreflect.BytesKind:
		return "base64-encoded bytes"
	case protoreflect.EnumKind:
		return "one of " + enumValues(fd.Enum())
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "a number"
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return messageExpectation(fd.Message())
	default:
		return "an integer"
	}
}

func plural(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return string(fd.Message().FullName()) + " mappings"
	case protoreflect.EnumKind:
		return string(fd.Enum().FullName()) + " values"
	}
	return strings.TrimPrefix(strings.TrimPrefix(singular(fd), "a "), "an ") + "s"
}

func messageExpectation(md protoreflect.MessageDescriptor) string {
	switch md.FullName() {
	case "google.protobuf.Duration":
		return `a duration like "0.25s"`
	case "google.protobuf.Timestamp":
		return "an RFC 3339 time"
	case "google.protobuf.BoolValue":
		return "true or false"
	case "google.protobuf.StringValue":
		return "a string"
	case "google.protobuf.UInt32Value", "google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.Int64Value":
		return "an integer"
	case "google.protobuf.DoubleValue", "google.protobuf.FloatValue":
		return "a number"
	case "google.protobuf.Struct":
		return "a mapping"
	case "google.protobuf.Any":
		return `a mapping with an "@type"`
	}
	return "a mapping (" + string(md.FullName()) + ")"
}

func enumValues(ed protoreflect.EnumDescriptor) string {
	values := ed.Values()
	names := make([]string, 0, values.Len())
	for i := range values.Len() {
		if opts, ok := values.Get(i).Options().(*descriptorpb.EnumValueOptions); ok && opts.GetDeprecated() {
			continue
		}
		names = append(names, string(values.Get(i).Name()))
	}
	return strings.Join(names, ", ")
}

func describeJSON(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case []any:
		return "a list"
	case string:
		return "a string"
	}
	return fmt.Sprintf("%v", v)
}

// remove deletes the value at a path from the tree (for a list element, the whole list, so
// that the paths of later problems stay right). It reports whether it removed anything.
func remove(tree *any, at path) bool {
	for len(at) > 0 {
		if s, _ := at.last(); !s.isIndex {
			break
		}
		at = at.parent()
	}
	if len(at) == 0 {
		return false
	}
	node := *tree
	for _, s := range at.parent() {
		node = step(node, s)
	}
	obj, ok := node.(map[string]any)
	if !ok {
		return false
	}
	last, _ := at.last()
	if _, present := obj[last.key]; !present {
		return false
	}
	delete(obj, last.key)
	return true
}

// oneLine joins the lines of a YAML error ("yaml: unmarshal errors:\n  line 3: ...").
func oneLine(text string) string {
	text = strings.TrimPrefix(text, "error converting YAML to JSON: ")
	text = strings.TrimPrefix(text, "yaml: unmarshal errors:")
	var parts []string
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, strings.TrimPrefix(line, "yaml: "))
		}
	}
	return strings.Join(parts, "; ")
}
