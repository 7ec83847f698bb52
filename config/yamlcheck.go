package config

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	secretType      = reflect.TypeOf(Secret(""))
	durationType    = reflect.TypeOf(Duration(0))
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

// checkNode checks the parsed file against the shape of t before anything
// is decoded, so that every problem is reported at once, each naming its
// line and key path: an unknown key (with the closest known one: "did you
// mean …?"), a malformed duration, and a value of the wrong type
// ("line 3: cache.tokens: want an integer, got \"lots\""). A value that
// came from the environment (expanded) or that fills a secret is never
// shown.
func checkNode(n *yaml.Node, t reflect.Type, path string, expanded map[*yaml.Node]bool, errs *[]string) {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			checkNode(c, t, path, expanded, errs)
		}
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	v := n
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	problem := func(format string, args ...any) {
		*errs = append(*errs, fmt.Sprintf("line %d: %s: %s", n.Line, path, fmt.Sprintf(format, args...)))
	}
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
		return // null: the key keeps its default
	}
	switch {
	case t == secretType:
		// yaml.v3 quotes the value in its type errors ("cannot decode !!str
		// `sk_live_…` as a !!int"): refuse anything but a string before it
		// gets the chance, without showing the value.
		if v.Kind != yaml.ScalarNode || (v.Style&yaml.TaggedStyle != 0 && v.ShortTag() != "!!str") {
			problem("a secret must be a plain string (value not shown)")
		}
		return
	case t == durationType:
		if v.Kind != yaml.ScalarNode {
			problem("want a duration such as 5s, got %s", describe(v, expanded))
		} else if _, err := ParseDuration(v.Value); err != nil {
			if expanded[v] {
				problem("the value from the environment is not a duration such as 5s, 250ms or 1h30m (value not shown)")
			} else {
				problem("%v", err)
			}
		}
		return
	case reflect.PointerTo(t).Implements(unmarshalerType):
		return // the type checks itself when decoded
	}
	switch t.Kind() {
	case reflect.Struct:
		if v.Kind != yaml.MappingNode {
			problem("want a mapping of keys, got %s", describe(v, expanded))
			return
		}
		fields := structFields(t)
		for i := 0; i+1 < len(v.Content); i += 2 {
			k := v.Content[i]
			if k.Value == "<<" {
				continue // merge key: yaml.v3 resolves it
			}
			kp := joinPath(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				msg := fmt.Sprintf("line %d: %s: unknown key", k.Line, kp)
				if s := suggestKey(k.Value, path, fields); s != "" {
					msg += " (did you mean " + s + "?)"
				}
				*errs = append(*errs, msg)
				continue
			}
			checkNode(v.Content[i+1], ft, kp, expanded, errs)
		}
	case reflect.Slice:
		if v.Kind != yaml.SequenceNode {
			problem("want a list, got %s", describe(v, expanded))
			return
		}
		for i, c := range v.Content {
			checkNode(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), expanded, errs)
		}
	case reflect.Map:
		if v.Kind != yaml.MappingNode {
			problem("want a mapping, got %s", describe(v, expanded))
			return
		}
		for i := 0; i+1 < len(v.Content); i += 2 {
			k := v.Content[i]
			if k.Kind != yaml.ScalarNode {
				*errs = append(*errs, fmt.Sprintf("line %d: %s: a key must be a string", k.Line, path))
				continue
			}
			checkNode(v.Content[i+1], t.Elem(), joinPath(path, k.Value), expanded, errs)
		}
	case reflect.String:
		if v.Kind != yaml.ScalarNode {
			problem("want a string, got %s", describe(v, expanded))
		}
	case reflect.Bool:
		if !decodes(v, t) {
			problem("want true or false, got %s", describe(v, expanded))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !decodes(v, t) || v.ShortTag() != "!!int" {
			problem("want an integer, got %s", describe(v, expanded))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !decodes(v, t) || v.ShortTag() != "!!int" {
			problem("want a non-negative integer, got %s", describe(v, expanded))
		}
	case reflect.Float32, reflect.Float64:
		if !decodes(v, t) {
			problem("want a number, got %s", describe(v, expanded))
		}
	}
}

// decodes reports whether the scalar v decodes into a value of type t, by
// the rules the real decoding applies (range included).
func decodes(v *yaml.Node, t reflect.Type) bool {
	return v.Kind == yaml.ScalarNode && v.Decode(reflect.New(t).Interface()) == nil
}

// describe names what a node holds, for "want X, got Y". A scalar shows its
// value (quoted, cut at 40 characters) unless it came from the environment.
func describe(v *yaml.Node, expanded map[*yaml.Node]bool) string {
	switch v.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if expanded[v] {
			return "a value from the environment (not shown)"
		}
		s := v.Value
		if r := []rune(s); len(r) > 40 {
			s = string(r[:40]) + "…"
		}
		return strconv.Quote(s)
	}
	return "something else"
}

// structFields maps the yaml key of each exported field of t to its type.
func structFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

// suggestKey proposes the known key an unknown one was probably meant to
// be: the closest key at the same level (a typo, "-" for "_", a case
// slip), else the same name elsewhere in the file's shape ("tokens" at the
// top level: cache.tokens). "" when nothing is close.
func suggestKey(key, parent string, fields map[string]reflect.Type) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	best, bestDist := "", math.MaxInt
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names) // a deterministic pick among equals
	for _, name := range names {
		if d := editDistance(norm(key), name); d < bestDist {
			best, bestDist = name, d
		}
	}
	if best != "" && (bestDist == 0 || bestDist <= max(1, min(3, len(best)/3))) {
		return joinPath(parent, best)
	}
	var elsewhere []string
	keyPaths(reflect.TypeOf(Config{}), "", func(p, name string) {
		if name == norm(key) {
			elsewhere = append(elsewhere, p)
		}
	})
	if len(elsewhere) == 1 {
		return elsewhere[0]
	}
	return ""
}

// keyPaths calls f with the path and name of every key of t's shape
// ("routes[].require.roles", "roles").
func keyPaths(t reflect.Type, prefix string, f func(path, name string)) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
		if prefix != "" && !strings.HasSuffix(prefix, "[]") {
			prefix += "[]"
		}
	}
	if t.Kind() != reflect.Struct || t == durationType {
		return
	}
	for name, ft := range structFields(t) {
		p := joinPath(prefix, name)
		f(p, name)
		keyPaths(ft, p, f)
	}
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
