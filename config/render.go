package config

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/prometheus/common/model"
)

// ErrInvalidParameter is wrapped by RenderQuery's errors about parameter
// values, which come from the HPA's selector: callers map it to a 400.
var ErrInvalidParameter = errors.New("invalid parameter")

// Label, parameter and metric names of the catalog are checked with
// model.LegacyValidation.IsValidLabelName, Prometheus' own rule for a label
// name PromQL writes without quoting ([a-zA-Z_][a-zA-Z0-9_]*).

// QueryData is the request-dependent input of a query template. The zero
// value renders the query over all series, aggregated to one.
type QueryData struct {
	// LabelMatchers are PromQL label matchers without braces, already
	// escaped, comma-separated: `namespace="shop",handler=~"a|b"`. Empty
	// means none. They are inserted verbatim.
	LabelMatchers string
	// GroupBy are the label names to aggregate by, e.g. ["pod"]. Empty
	// means aggregate to one series. Each must be a valid label name.
	GroupBy []string
	// Params are parameter values by name, from the HPA's selector.
	// Missing ones take their default; each value must match its
	// parameter's pattern; names that are not parameters are errors.
	Params map[string]string
	// LabelValues are .LabelValuesByName: for each label with an equality
	// or set matcher in LabelMatchers, its values as a regular expression
	// of alternatives ("a|b"), already escaped for a PromQL string. Nil
	// means none.
	LabelValues map[string]string
}

// templateData is what a query template sees; see Metric.Query. The
// field names are those of prometheus-adapter's metricsQuery templates, so
// its rules render unchanged.
type templateData struct {
	LabelMatchers     string
	GroupBy           string
	GroupBySlice      []string
	LabelValuesByName map[string]string
	Series            string
	Params            map[string]string
}

// GroupByWith returns the GroupBy labels followed by extra, comma-separated,
// so `sum by (<<.GroupByWith "le">>)` renders `by (pod, le)` or `by (le)`.
func (d templateData) GroupByWith(extra ...string) string {
	return strings.Join(slices.Concat(d.GroupBySlice, extra), ", ")
}

// compile parses the query template and anchors the parameter patterns,
// storing both on m. Errors are FieldErrors relative to the metric.
func (m *Metric) compile() []error {
	var errs []error
	m.patterns = make([]*regexp.Regexp, len(m.Parameters))
	for i, p := range m.Parameters {
		// The unanchored pattern first, so errors quote what the user wrote.
		_, err := regexp.Compile(p.Pattern)
		re, aerr := regexp.Compile(anchor(p.Pattern))
		if err = cmp.Or(err, aerr); err != nil {
			errs = append(errs, &FieldError{Path: fmt.Sprintf("parameters[%d].pattern", i),
				Err: fmt.Errorf("does not compile: %w; write an RE2 regular expression such as [1-9][0-9]*m", err)})
			continue
		}
		m.patterns[i] = re
	}
	if m.Source != SourcePrometheus || m.Query == "" {
		return errs
	}
	t, err := parseQuery(m.Name, m.Query)
	if err != nil {
		errs = append(errs, &FieldError{Path: "query", Err: fmt.Errorf("template does not parse: %w; "+
			"write the query as a Go template with << >> delimiters, e.g. sum by (<<.GroupBy>>) (rate(x_total{<<.LabelMatchers>>}[<<.Params.window>>]))", err)})
		return errs
	}
	m.tmpl = t
	return errs
}

func parseQuery(name, query string) (*template.Template, error) {
	return template.New(name).Delims("<<", ">>").Option("missingkey=error").Parse(query)
}

// anchor makes pattern match whole values only.
func anchor(pattern string) string { return `^(?:` + pattern + `)$` }

// RenderQuery renders the entry's PromQL for one request. It applies
// parameter defaults and rejects parameter values that do not match their
// pattern (wrapping ErrInvalidParameter), so selector input cannot change
// the query's shape; LabelMatchers must already be escaped. Safe for
// concurrent use. A Metric built by hand rather than by Parse or Default is
// compiled on each call.
func (m *Metric) RenderQuery(d QueryData) (string, error) {
	if m.Source != SourcePrometheus {
		return "", fmt.Errorf("render query of %q: the entry's source is %s, not prometheus", m.Name, m.Source)
	}
	tmpl, patterns := m.tmpl, m.patterns
	if tmpl == nil || len(patterns) != len(m.Parameters) {
		c := *m
		if errs := c.compile(); len(errs) > 0 {
			return "", fmt.Errorf("render query of %q: %w", m.Name, errors.Join(errs...))
		}
		tmpl, patterns = c.tmpl, c.patterns
	}
	for _, l := range d.GroupBy {
		if !model.LegacyValidation.IsValidLabelName(l) {
			return "", fmt.Errorf("render query of %q: group-by label %q is not a valid Prometheus label name", m.Name, l)
		}
	}
	params, err := m.resolveParams(patterns, d.Params)
	if err != nil {
		return "", fmt.Errorf("render query of %q: %w", m.Name, err)
	}
	q, err := execute(tmpl, m.templateData(d, params))
	if err != nil {
		return "", fmt.Errorf("render query of %q: %w", m.Name, err)
	}
	return q, nil
}

func (m *Metric) templateData(d QueryData, params map[string]string) templateData {
	values := d.LabelValues
	if values == nil {
		values = map[string]string{}
	}
	return templateData{
		LabelMatchers:     d.LabelMatchers,
		GroupBy:           strings.Join(d.GroupBy, ", "),
		GroupBySlice:      slices.Clone(d.GroupBy),
		LabelValuesByName: values,
		Series:            m.Series,
		Params:            params,
	}
}

func execute(t *template.Template, data templateData) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// resolveParams returns the value of every declared parameter.
func (m *Metric) resolveParams(patterns []*regexp.Regexp, given map[string]string) (map[string]string, error) {
	for name := range given {
		if !m.HasParameter(name) {
			return nil, fmt.Errorf("%w: %q is not a parameter of %q", ErrInvalidParameter, name, m.Name)
		}
	}
	out := make(map[string]string, len(m.Parameters))
	for i, p := range m.Parameters {
		v, ok := given[p.Name]
		if !ok {
			v = p.Default
		}
		if v == "" {
			return nil, fmt.Errorf("%w: %q is required; set it in the selector, e.g. %s=%s", ErrInvalidParameter, p.Name, p.Name, sampleValue(p.Pattern))
		}
		if !patterns[i].MatchString(v) {
			return nil, fmt.Errorf("%w: %s=%q does not match the pattern %q", ErrInvalidParameter, p.Name, v, p.Pattern)
		}
		out[p.Name] = v
	}
	return out, nil
}

// HasParameter reports whether name is a declared parameter of m.
func (m *Metric) HasParameter(name string) bool {
	return slices.ContainsFunc(m.Parameters, func(p Parameter) bool { return p.Name == name })
}

// AllowsSelectorLabel reports whether an HPA selector key may be passed to
// Prometheus as a label matcher: it is listed in SelectorLabels, or
// SelectorLabels has "*" and key is a valid label name. Parameters are not
// selector labels.
func (m *Metric) AllowsSelectorLabel(key string) bool {
	if m.HasParameter(key) {
		return false
	}
	if slices.Contains(m.SelectorLabels, key) {
		return true
	}
	return slices.Contains(m.SelectorLabels, "*") && model.LegacyValidation.IsValidLabelName(key)
}

// Serves reports whether m is served on api.
func (m *Metric) Serves(api API) bool { return slices.Contains(m.APIs, api) }

// paramRefs returns the names used as .Params.<name> in t, in order.
func paramRefs(t *template.Template) []string {
	var out []string
	for _, ident := range fieldRefs(t) {
		if len(ident) >= 2 && ident[0] == "Params" && !slices.Contains(out, ident[1]) {
			out = append(out, ident[1])
		}
	}
	return out
}

// usesField reports whether t refers to the top-level field name, e.g.
// "Series" for <<.Series>>.
func usesField(t *template.Template, name string) bool {
	return slices.ContainsFunc(fieldRefs(t), func(ident []string) bool { return ident[0] == name })
}

// fieldRefs returns the field chains t refers to, e.g. [Params window] for
// .Params.window, in order.
func fieldRefs(t *template.Template) [][]string {
	var out [][]string
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n != nil {
				for _, c := range n.Cmds {
					walk(c)
				}
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.FieldNode:
			out = append(out, n.Ident)
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		}
	}
	if t.Tree != nil {
		walk(t.Tree.Root)
	}
	return out
}

// sampleValue returns a short string the anchored pattern matches, used to
// render templates with a required parameter during validation and to give
// an example in errors. Empty if none is found.
func sampleValue(pattern string) string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return ""
	}
	s := shortest(re.Simplify())
	if ok, _ := regexp.MatchString(anchor(pattern), s); !ok {
		return ""
	}
	return s
}

func shortest(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		return string(re.Rune)
	case syntax.OpCharClass:
		if len(re.Rune) > 0 {
			return string(re.Rune[0])
		}
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return "a"
	case syntax.OpCapture, syntax.OpPlus:
		return shortest(re.Sub[0])
	case syntax.OpRepeat:
		return strings.Repeat(shortest(re.Sub[0]), re.Min)
	case syntax.OpConcat:
		var b strings.Builder
		for _, s := range re.Sub {
			b.WriteString(shortest(s))
		}
		return b.String()
	case syntax.OpAlternate:
		return shortest(re.Sub[0])
	}
	return "" // empty match, anchors, star, quest
}
