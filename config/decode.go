package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FieldError is one problem in a catalog file: where it is and what to do
// about it. Parse returns all of them joined with errors.Join, so a user
// sees every problem at once; errors.As finds each one.
type FieldError struct {
	// Line is the 1-based line in the file the problem is on, or the line
	// of the closest enclosing field when the field itself is missing. Zero
	// when unknown (built-in presets).
	Line int
	// Path names the field, e.g. "metrics[2].query". Empty for problems
	// with the file as a whole.
	Path string
	// Err says what is wrong and how to fix it.
	Err error
}

// Error formats the problem as "line 12: metrics[2].query: <problem>; <fix>".
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying problem.
func (e *FieldError) Unwrap() error { return e.Err }

// decoder fills Go values from a YAML node tree using the values' json tags
// as key names, strictly: unknown and duplicate keys and wrongly shaped
// values are errors naming the field path. sigs.k8s.io/yaml's strict mode
// names neither the path nor the line, and yaml.v3 alone ignores json tags.
type decoder struct {
	errs []error
	// lines maps each decoded field path to the line it is on, so that
	// validation, which runs on Go values, can point into the file too.
	lines map[string]int
}

func newDecoder() *decoder { return &decoder{lines: map[string]int{}} }

// DecodeNode fills v, a pointer to a struct, from the YAML node n the way
// Parse decodes a catalog: strictly, with v's json tags as key names.
// Unknown and duplicate keys and values of the wrong kind are *FieldErrors
// whose paths start with path (e.g. "rules[2].name") and whose lines are
// n's plus offset, for a document embedded in another file. line returns
// the line (with offset) of a decoded path, or of its closest decoded
// parent, for problems found after decoding. Other file formats that are
// config's concern, such as prometheus-adapter's, use it.
func DecodeNode(n *yaml.Node, v any, path string, offset int) (line func(path string) int, errs []error) {
	d := newDecoder()
	d.decode(n, reflect.ValueOf(v).Elem(), path)
	for _, e := range d.errs {
		if fe := (*FieldError)(nil); errors.As(e, &fe) && fe.Line > 0 {
			fe.Line += offset
		}
	}
	return func(p string) int {
		if l := d.line(p); l > 0 {
			return l + offset
		}
		return 0
	}, d.errs
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Line: n.Line, Path: path, Err: fmt.Errorf(format, args...)})
}

// line returns the line of path or of its closest decoded parent.
func (d *decoder) line(path string) int {
	for path != "" {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// decode fills v, which must be settable, from n.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if path != "" {
		d.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value leaves the zero value, which defaults fill
	}
	if reflect.PointerTo(v.Type()).Implements(textUnmarshaler) {
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a single value, got %s", kindName(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			d.errs = append(d.errs, &FieldError{Line: n.Line, Path: path, Err: err})
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		d.decode(n, elem.Elem(), path)
		v.Set(elem)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "expected a list, got %s; write a YAML list such as [a, b] or one \"- item\" per line", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "expected a mapping of key: value lines, got %s", kindName(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				d.fail(k, path, "expected a plain key, got %s", kindName(k))
				continue
			}
			p := fmt.Sprintf("%s[%q]", path, k.Value)
			if first, dup := seen[k.Value]; dup {
				d.fail(k, p, "duplicate key, first set on line %d; keep one", first)
				continue
			}
			seen[k.Value] = k.Line
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, elem, p)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
		}
		v.Set(m)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a single value, got %s", kindName(n))
			return
		}
		// Any scalar is taken as written: "default: 10" means "10".
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			d.fail(n, path, "expected true or false, got %s", kindName(n))
			return
		}
		v.SetBool(b)
	default:
		// Only reachable if types.go gains a field kind this decoder does
		// not know; the tests decode every field.
		d.fail(n, path, "cannot decode into %s", v.Type())
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping of key: value lines, got %s", kindName(n))
		return
	}
	fields := jsonFields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := joinPath(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "expected a plain key, got %s", kindName(k))
			continue
		}
		idx, ok := fields[k.Value]
		if !ok {
			d.fail(k, p, "unknown key%s", suggest(k.Value, fields))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.fail(k, p, "duplicate key, first set on line %d; keep one", first)
			continue
		}
		seen[k.Value] = k.Line
		d.decode(val, v.Field(idx), p)
	}
}

// jsonFields maps a struct's json key names to field indexes.
func jsonFields(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = i
	}
	return out
}

// suggest names the key the user probably meant, or lists the known keys.
func suggest(key string, fields map[string]int) string {
	known := make([]string, 0, len(fields))
	for k := range fields {
		if strings.EqualFold(k, key) {
			return fmt.Sprintf("; did you mean %q? (keys are case-sensitive)", k)
		}
		known = append(known, k)
	}
	slices.Sort(known)
	return "; known keys are " + strings.Join(known, ", ")
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return fmt.Sprintf("%q", n.Value)
}
