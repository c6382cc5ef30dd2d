package main

import (
	"regexp"
	"strconv"
	"strings"
)

// segment is one step of a path into a configuration: a field or map key, or a list index.
type segment struct {
	key     string
	index   int
	isIndex bool
}

// path locates a value in a configuration as the YAML spells it, e.g.
// static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[1].
type path []segment

func (p path) key(k string) path { return append(p[:len(p):len(p)], segment{key: k}) }
func (p path) index(i int) path  { return append(p[:len(p):len(p)], segment{index: i, isIndex: true}) }
func (p path) parent() path      { return p[:max(len(p)-1, 0)] }
func (p path) last() (segment, bool) {
	if len(p) == 0 {
		return segment{}, false
	}
	return p[len(p)-1], true
}

var plainKey = regexp.MustCompile(`^[A-Za-z_@][A-Za-z0-9_]*$`)

// String writes fields as `.name`, list indexes as `[0]`, and keys that are not plain names
// (map keys such as envoy.filters.http.ext_authz) as `[key]`.
func (p path) String() string {
	var b strings.Builder
	for _, s := range p {
		switch {
		case s.isIndex:
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		case plainKey.MatchString(s.key):
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.key)
		default:
			b.WriteString("[" + s.key + "]")
		}
	}
	return b.String()
}
