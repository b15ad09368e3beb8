package promadapter

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/hpa-signals/hpa-signals/config"
)

// Rule is one validated prometheus-adapter rule. It is immutable and safe
// for concurrent use.
type Rule struct {
	// Path names the rule in the file, e.g. "rules[2]" or
	// "rules.external[0]"; Line is where it starts.
	Path string
	Line int
	// External is true for an external rule (externalRules,
	// rules.external): its metrics are served on external.metrics.k8s.io.
	External bool
	// SeriesQuery is the rule's series selector as written.
	SeriesQuery string
	// Query is the metricsQuery template.
	Query string
	// Namespaced is false for an external rule with resources.namespaced:
	// false, whose queries carry no namespace matcher.
	Namespaced bool

	matchers  []*labels.Matcher
	filters   []filter
	nameRE    *regexp.Regexp
	as        string
	overrides map[string]schema.GroupResource // label -> resource as written
	template  *template.Template              // resources.template; nil if none
	extract   *regexp.Regexp                  // labels the template produces
}

type filter struct {
	re       *regexp.Regexp
	positive bool
}

// labelTemplateData is what a resources.template sees.
type labelTemplateData struct {
	Group, Resource string
}

// The regular expressions a resources.template is rendered with to find
// the group and resource in a label name.
const (
	groupPattern    = `(?P<group>.+?)`
	resourcePattern = `(?P<resource>.+?)`
)

// compile validates one rule and returns it compiled, or the problems
// (paths relative to the file, lines unset); notes are remarks that do
// not stop it.
func compile(s ruleSpec, path string, external bool) (*Rule, []*config.FieldError, []Note) {
	var errs []*config.FieldError
	var notes []Note
	fail := func(field, format string, args ...any) {
		errs = append(errs, &config.FieldError{Path: path + "." + field, Err: fmt.Errorf(format, args...)})
	}
	r := &Rule{Path: path, External: external, SeriesQuery: s.SeriesQuery, Namespaced: true, overrides: map[string]schema.GroupResource{}}

	switch {
	case strings.TrimSpace(s.SeriesQuery) == "":
		fail("seriesQuery", `missing; write the series selector that finds the rule's series, e.g. '{__name__=~"^http_.*_total$",namespace!="",pod!=""}'`)
	default:
		ms, err := promqlParser.ParseMetricSelector(s.SeriesQuery)
		if err != nil {
			fail("seriesQuery", "%q is not a series selector: %v; write a selector such as 'http_requests_total{namespace!=\"\"}' or '{__name__=~\"^http_.*\"}'", s.SeriesQuery, err)
		}
		r.matchers = ms
	}

	for i, f := range s.SeriesFilters {
		field := fmt.Sprintf("seriesFilters[%d]", i)
		if (f.Is == "") == (f.IsNot == "") {
			fail(field, "set exactly one of is and isNot; write one filter per list item")
			continue
		}
		expr, positive := f.Is, true
		if f.IsNot != "" {
			expr, positive, field = f.IsNot, false, field+".isNot"
		} else {
			field += ".is"
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			fail(field, "does not compile: %v; write an RE2 regular expression such as ^container_.*_seconds_total$", err)
			continue
		}
		r.filters = append(r.filters, filter{re, positive})
	}

	r.nameRE = regexp.MustCompile(".*")
	if s.Name.Matches != "" {
		re, err := regexp.Compile(s.Name.Matches)
		if err != nil {
			fail("name.matches", "does not compile: %v; write an RE2 regular expression such as ^(.*)_total$", err)
		} else {
			r.nameRE = re
			// The name must match, like a seriesFilters is: entry.
			r.filters = append(r.filters, filter{re, true})
		}
	}
	r.as = s.Name.As
	if r.as == "" {
		switch n := r.nameRE.NumSubexp(); n {
		case 0:
			r.as = "$0"
		case 1:
			r.as = "$1"
		default:
			fail("name.as", "missing, and name.matches has %d capture groups; say which to use, e.g. as: \"${1}_per_second\"", n)
		}
	}

	if t := s.Resources.Template; t != "" {
		if err := r.compileTemplate(t); err != nil {
			fail("resources.template", "%v; write a Go template with << >> delimiters that uses .Resource (and optionally .Group), e.g. \"<<.Resource>>\" or \"kube_<<.Group>>_<<.Resource>>\"", err)
		}
	}
	for _, label := range sortedKeys(s.Resources.Overrides) {
		gr := s.Resources.Overrides[label]
		field := fmt.Sprintf("resources.overrides[%q]", label)
		switch {
		case !labelNameRE.MatchString(label):
			fail(field, "%q is not a Prometheus label name; write the label that holds the object's name", label)
		case gr.Resource == "":
			fail(field+".resource", "missing; name the Kubernetes resource the label holds, e.g. {resource: pod} or {group: apps, resource: deployment}")
		default:
			r.overrides[label] = schema.GroupResource{Group: gr.Group, Resource: gr.Resource}
		}
	}
	if n := s.Resources.Namespaced; n != nil {
		if external {
			r.Namespaced = *n
		} else {
			notes = append(notes, Note{Path: path + ".resources.namespaced", Text: "ignored: prometheus-adapter reads it for external rules only, and so does hpa-signals; custom metrics always read the request's namespace"})
		}
	}

	r.Query = s.MetricsQuery
	switch {
	case s.MetricsQuery != "" && s.MetricQuery != "":
		fail("metricQuery", "set together with metricsQuery; remove the misspelled metricQuery")
	case s.MetricQuery != "":
		r.Query = s.MetricQuery
		notes = append(notes, Note{Path: path + ".metricQuery", Text: "read as metricsQuery, the spelling prometheus-adapter knows: " +
			"v0.12 refuses a file with metricQuery and older versions ignored it (the rule's metrics answered nothing there); rename the key"})
	}
	if r.Query == "" {
		fail("metricsQuery", "missing; write the query template, e.g. sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)")
	} else if _, err := template.New(path).Delims("<<", ">>").Parse(r.Query); err != nil {
		fail("metricsQuery", "template does not parse: %v; write a Go template with << >> delimiters, e.g. sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)", err)
	}
	if len(errs) > 0 {
		return nil, errs, notes
	}
	return r, nil, notes
}

var (
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	promqlParser = parser.NewParser(parser.Options{})
)

// compileTemplate parses a resources.template and derives the regular
// expression of the labels it produces.
func (r *Rule) compileTemplate(text string) error {
	t, err := template.New("resources").Delims("<<", ">>").Option("missingkey=error").Parse(text)
	if err != nil {
		return fmt.Errorf("does not parse: %w", err)
	}
	// Render with markers, quote the literal text, put the groups in.
	const g, res = "\x00group\x00", "\x00resource\x00"
	var b strings.Builder
	if err := t.Execute(&b, labelTemplateData{Group: g, Resource: res}); err != nil {
		return fmt.Errorf("does not render: %w", err)
	}
	if !strings.Contains(b.String(), res) {
		return errors.New("does not use .Resource")
	}
	expr := regexp.QuoteMeta(b.String())
	expr = strings.ReplaceAll(expr, regexp.QuoteMeta(g), groupPattern)
	expr = strings.ReplaceAll(expr, regexp.QuoteMeta(res), resourcePattern)
	re, err := regexp.Compile("^" + expr + "$")
	if err != nil {
		return fmt.Errorf("cannot be matched against label names: %w", err)
	}
	r.template, r.extract = t, re
	return nil
}

// Selector returns the rule's series selector with extra matchers added,
// as a series selector for Prometheus' match[] parameter.
func (r *Rule) Selector(extra ...*labels.Matcher) string {
	ms := slices.Concat(r.matchers, extra)
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// MetricName returns the name a series of this rule is served under, and
// false if the rule's seriesFilters or name.matches leave the series out.
func (r *Rule) MetricName(series string) (string, bool) {
	for _, f := range r.filters {
		if f.re.MatchString(series) != f.positive {
			return "", false
		}
	}
	m := r.nameRE.FindStringSubmatchIndex(series)
	if m == nil {
		return "", false
	}
	return string(r.nameRE.ExpandString(nil, r.as, series, m)), true
}

// Mapper finds the resource a label names in the cluster: the plural
// resource with its group (pods, deployments.apps) for a singular or plural
// name whose group may be empty. It errors when the cluster has none.
type Mapper func(schema.GroupResource) (schema.GroupResource, error)

// ResourceLabels returns the labels among names that the rule maps to a
// Kubernetes resource (by resources.overrides or resources.template), with
// that resource as mapper finds it. Labels naming no resource of the
// cluster are left out.
func (r *Rule) ResourceLabels(names []string, mapper Mapper) map[string]schema.GroupResource {
	out := map[string]schema.GroupResource{}
	for _, l := range names {
		gr, ok := r.overrides[l]
		if !ok && r.extract != nil {
			m := r.extract.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			gr = schema.GroupResource{Resource: m[r.extract.SubexpIndex("resource")]}
			if i := r.extract.SubexpIndex("group"); i >= 0 {
				gr.Group = m[i]
			}
			ok = true
		}
		if !ok {
			continue
		}
		if n, err := mapper(gr); err == nil {
			out[l] = n
		}
	}
	return out
}

// CandidateLabels are the labels the rule may map to resources without
// looking at Prometheus: its overrides. A rule with a resources.template
// maps any label of the template's form; see HasTemplate.
func (r *Rule) CandidateLabels() []string { return sortedKeys(r.overrides) }

// HasTemplate reports whether the rule maps labels by resources.template,
// so that the labels its series carry must be asked of Prometheus.
func (r *Rule) HasTemplate() bool { return r.template != nil }

// labelFor returns the label the rule uses for a core resource (singular
// name: "namespace", "pod"): an override for it, else the template's label
// for it, else "".
func (r *Rule) labelFor(singular string) string {
	for _, l := range sortedKeys(r.overrides) {
		if gr := r.overrides[l]; gr.Group == "" && (gr.Resource == singular || gr.Resource == singular+"s") {
			return l
		}
	}
	if r.template != nil {
		var b strings.Builder
		if r.template.Execute(&b, labelTemplateData{Resource: singular}) == nil && labelNameRE.MatchString(b.String()) {
			return b.String()
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
