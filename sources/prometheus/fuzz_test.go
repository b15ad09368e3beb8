package prometheus

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	plabels "github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/hpa-signals/hpa-signals/config"
)

// nasty are values that would change a query's shape if they were not
// escaped.
var nasty = []string{
	`"}`, `\"`, `\`, `"} or vector(1) #`, `or vector(1)`, "a\nb", "\r\t\x00\x7f", `|`, `.*`, `.+|x`,
	`a|b`, `(`, `[`, `{`, `}`, `]`, `}[5m])) or vector(1) #`, `'`, "`", `\u0041`, `\x41`,
	"日本語", "\u2028", "é", "😀", "", " ", `$`, `^`, `==`, `=~`, `!~`, `a.b`, `team-a|.*`,
}

var operators = []selection.Operator{
	selection.Equals, selection.DoubleEquals, selection.NotEquals, selection.In, selection.NotIn,
	selection.Exists, selection.DoesNotExist, selection.GreaterThan, selection.LessThan,
}

// fuzzCatalog holds the presets' shapes plus a template with two
// selectors, one with a subquery, one written like a prometheus-adapter
// rule (.Series, and a selector value placed by .LabelValuesByName) and a
// namespaced: false entry, all
// accepting any label as a selector key. It is parsed like a catalog file,
// so the fuzz target builds queries from validated, compiled entries as
// the adapter serves them.
var fuzzCatalog = sync.OnceValue(func() *config.Catalog {
	c, err := config.Parse([]byte(`
presets: false
metrics:
  - name: http_requests_per_second
    apis: [pods, object, external]
    source: prometheus
    query: sum by (<<.GroupBy>>) (rate(http_requests_total{<<.LabelMatchers>>}[<<.Params.window>>]))
    parameters: [{name: window, default: 2m, pattern: "[1-9][0-9]{0,3}(s|m|h)"}]
    selectorLabels: ["*"]
    resources: {services: service, deployments.apps: deployment}
  - name: http_request_duration_seconds_p99
    apis: [pods, object, external]
    source: prometheus
    query: histogram_quantile(0.99, sum by (<<.GroupByWith "le">>) (rate(http_request_duration_seconds_bucket{<<.LabelMatchers>>}[<<.Params.window>>])))
    parameters: [{name: window, default: 2m, pattern: "[1-9][0-9]{0,3}(s|m|h)"}]
    selectorLabels: ["*"]
  - name: go_goroutines
    apis: [pods, object, external]
    source: prometheus
    query: sum by (<<.GroupBy>>) (go_goroutines{<<.LabelMatchers>>})
    selectorLabels: ["*"]
  - name: error_ratio
    apis: [pods, external]
    source: prometheus
    query: sum by (<<.GroupBy>>) (rate(http_requests_total{code=~"5..",<<.LabelMatchers>>}[<<.Params.window>>])) / sum by (<<.GroupBy>>) (rate(http_requests_total{<<.LabelMatchers>>}[<<.Params.window>>]))
    parameters: [{name: window, default: 2m, pattern: "[1-9][0-9]{0,3}(s|m|h)"}]
    selectorLabels: ["*"]
  - name: goroutines_peak
    apis: [pods, external]
    source: prometheus
    query: max_over_time(sum by (<<.GroupBy>>) (go_goroutines{<<.LabelMatchers>>})[5m:1m])
    selectorLabels: ["*"]
  - name: by_label_values
    apis: [pods, external]
    source: prometheus
    series: http_requests_total
    query: sum(rate(<<.Series>>{<<.LabelMatchers>>,handler=~"<<index .LabelValuesByName "handler">>"}[<<.Params.window>>])) by (<<.GroupBy>>)
    parameters: [{name: window, default: 2m, pattern: "[1-9][0-9]{0,3}(s|m|h)"}]
    selectorLabels: ["*"]
  - name: shared_queue_depth
    apis: [external]
    source: prometheus
    query: max(queue_depth{<<.LabelMatchers>>}) + sum(queue_workers{<<.LabelMatchers>>})
    selectorLabels: ["*"]
    namespaced: false
    callerNamespaces: ["*"]
`))
	if err != nil {
		panic(err)
	}
	return c
})

// fuzzMetrics are the namespaced entries of fuzzCatalog.
func fuzzMetrics() []*config.Metric {
	var out []*config.Metric
	for i := range fuzzCatalog().Metrics {
		if m := &fuzzCatalog().Metrics[i]; m.IsNamespaced() {
			out = append(out, m)
		}
	}
	return out
}

// fuzzClusterWide is the namespaced: false entry of fuzzCatalog.
func fuzzClusterWide() *config.Metric { return fuzzCatalog().Lookup("shared_queue_depth") }

func FuzzBuildQuery(f *testing.F) {
	for i, v := range nasty {
		f.Add("handler", uint8(i), v, nasty[(i+1)%len(nasty)], "", "handler="+v)
		f.Add("code", uint8(i), "500", v, "10s", "code in (500,"+v+")")
	}
	f.Add("app.kubernetes.io/name", uint8(0), "web", "", "", "app.kubernetes.io/name=web")
	f.Add("namespace", uint8(0), "other", "", "", "namespace=other")
	f.Add("__name__", uint8(0), "up", "", "", "!code,method")
	f.Add("window", uint8(0), "1m])) or vector(1", "", "1m])) or vector(1", "window=1m")
	f.Add("x", uint8(7), "1", "", "9999h", "x>1")
	f.Add("é", uint8(3), "a", "b", "", "code notin (a,b),handler!=c")
	f.Add("handler", uint8(3), "a.b", "team-a", "", "handler in (a.b,c)")
	f.Add("handler", uint8(4), "team-b", "a.b", "", "code notin (5.0,500)")

	f.Fuzz(func(t *testing.T, key string, op uint8, v1, v2, window, selector string) {
		o := operators[int(op)%len(operators)]
		var values []string
		switch o {
		case selection.In, selection.NotIn:
			values = []string{v1, v2}
		case selection.Exists, selection.DoesNotExist:
		default:
			values = []string{v1}
		}
		reqs := []requirement{{key, o, values}}
		if window != "" {
			reqs = append(reqs, requirement{"window", selection.Equals, []string{window}})
		}
		// The scope alone, and the values on a key every entry accepts, so
		// that an invalid key does not hide what the values and the
		// namespaces become.
		variants := [][]requirement{nil, {{"handler", o, values}}, reqs}
		s := scope([]string{"team-a", v2}, "pod")
		if !strings.Contains(v2, "\xff") && v2 != "" && len(v2)%2 == 0 {
			s.Namespaces = []string{v2} // one namespace: the = path
		}
		clusterWide := scope(nil)
		scopeValid := utf8.ValidString(v1) && utf8.ValidString(v2)
		check := func(m *config.Metric, s Scope, reqs []requirement, q string, err error) {
			t.Helper()
			switch {
			case err == nil:
				assertShape(t, m, s, q)
				assertMeaning(t, m, s, q, reqs)
			case errors.Is(err, ErrOutOfScope):
				t.Fatalf("an input made a query that leaves its scope: %v", err)
			case !errors.Is(err, ErrInvalidSelector) && scopeValid:
				t.Fatalf("an input caused an error that is not the selector's: %v", err)
			}
		}
		for _, m := range fuzzMetrics() {
			for _, rs := range variants {
				q, err := buildQuery(m, s, rs)
				check(m, s, rs, q, err)
			}
			if sel, err := labels.Parse(selector); err == nil {
				q, err := BuildQuery(m, podScope(), sel)
				check(m, podScope(), selectorRequirements(sel), q, err)
			}
		}
		m := fuzzClusterWide()
		for _, rs := range variants {
			q, err := buildQuery(m, clusterWide, rs)
			check(m, clusterWide, rs, q, err)
		}
	})
}

func selectorRequirements(sel labels.Selector) []requirement {
	rs, _ := sel.Requirements()
	var out []requirement
	for _, r := range rs {
		out = append(out, requirement{r.Key(), r.Operator(), r.ValuesUnsorted()})
	}
	return out
}

// TestBuildQueryNastyValues makes sure the fuzz assertions run on accepted
// queries: every nasty value must be accepted as a value, and survive the
// round trip through the PromQL parser.
func TestBuildQueryNastyValues(t *testing.T) {
	for _, v := range nasty {
		for _, o := range operators[:7] {
			reqs := []requirement{{"handler", o, []string{v, "x"}}}
			if o != selection.In && o != selection.NotIn {
				reqs[0].values = []string{v}
			}
			s := scope([]string{v, "team-a"}, "pod")
			for _, m := range fuzzMetrics() {
				q, err := buildQuery(m, s, reqs)
				if err != nil {
					t.Fatalf("%s %q: %v", o, v, err)
				}
				assertShape(t, m, s, q)
				assertMeaning(t, m, s, q, reqs)
			}
		}
	}
}

// shapeOf parses q and describes its AST without label matchers and
// durations, and returns its vector selectors.
func shapeOf(q string) ([]string, []*parser.VectorSelector, error) {
	expr, err := promqlParser.ParseExpr(q)
	if err != nil {
		return nil, nil, err
	}
	var nodes []string
	var vs []*parser.VectorSelector
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.AggregateExpr:
			nodes = append(nodes, fmt.Sprintf("aggregate %s by %q without=%v", n.Op, n.Grouping, n.Without))
		case *parser.Call:
			nodes = append(nodes, "call "+n.Func.Name)
		case *parser.BinaryExpr:
			nodes = append(nodes, "binary "+n.Op.String())
		case *parser.VectorSelector:
			nodes = append(nodes, "vector "+n.Name)
			vs = append(vs, n)
		case *parser.NumberLiteral:
			nodes = append(nodes, fmt.Sprintf("number %v", n.Val))
		default:
			nodes = append(nodes, fmt.Sprintf("%T", n))
		}
		return nil
	})
	return nodes, vs, nil
}

// benign renders m's template without matchers for s's grouping.
func benign(t *testing.T, m *config.Metric, s Scope) string {
	t.Helper()
	params := map[string]string{}
	for _, p := range m.Parameters {
		if p.Default == "" {
			params[p.Name] = "1m" // the test entries' required parameters are windows
		}
	}
	// One placeholder matcher, as a query of a namespaced entry always
	// has matchers; assertMeaning does not count it.
	q, err := m.RenderQuery(config.QueryData{LabelMatchers: benignMatcher, GroupBy: s.GroupBy, Params: params})
	if err != nil {
		t.Fatalf("render benign query: %v", err)
	}
	return q
}

const benignMatcher = `benign="1"`

// assertShape checks that q parses and has the shape of m's template
// rendered with benign values: selector input changed no node of the AST.
func assertShape(t *testing.T, m *config.Metric, s Scope, q string) {
	t.Helper()
	got, _, err := shapeOf(q)
	if err != nil {
		t.Fatalf("query does not parse: %v\n%s", err, q)
	}
	b := benign(t, m, s)
	want, _, err := shapeOf(b)
	if err != nil {
		t.Fatalf("benign query does not parse: %v\n%s", err, b)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("query shape changed:\n got  %q\n want %q\nquery: %s", got, want, q)
	}
}

// assertMeaning checks what every vector selector of q reads, computed from
// the scope and the requirements, not from the code under test: the
// namespace matcher (equal to the one namespace, or a regexp matching
// exactly the namespaces), no other matcher on a reserved label, for each label requirement a matcher whose
// value means exactly the requested values, and nothing else.
func assertMeaning(t *testing.T, m *config.Metric, s Scope, q string, reqs []requirement) {
	t.Helper()
	_, vs, err := shapeOf(q)
	if err != nil {
		t.Fatalf("query does not parse: %v\n%s", err, q)
	}
	_, own, err := shapeOf(benign(t, m, s))
	if err != nil || len(own) != len(vs) {
		t.Fatalf("the benign query has %d selectors (%v), the query %d: %s", len(own), err, len(vs), q)
	}
	nsLabel, podLabel := s.Labels.Namespace, s.Labels.Pod
	reserved := map[string]bool{}
	for _, l := range s.GroupBy {
		reserved[l] = true
	}
	var namespaces []string
	if m.IsNamespaced() {
		reserved[nsLabel], reserved[podLabel] = true, true
		for _, l := range m.Resources {
			reserved[l] = true
		}
		namespaces = slices.Compact(slices.Sorted(slices.Values(s.Namespaces)))
	}
	distinct := map[string]bool{}
	var labelReqs []requirement
	for _, r := range reqs {
		if m.HasParameter(r.key) {
			continue
		}
		vals := slices.Compact(slices.Sorted(slices.Values(r.values)))
		op := r.op
		if op == selection.DoubleEquals {
			op = selection.Equals
		}
		if k := fmt.Sprintf("%s %s %q", r.key, op, vals); !distinct[k] {
			distinct[k] = true
			labelReqs = append(labelReqs, requirement{r.key, op, vals})
		}
		if reserved[r.key] {
			t.Fatalf("a query was built although the selector names the reserved label %q: %s", r.key, q)
		}
	}
	for i, v := range vs {
		where := fmt.Sprintf("selector %d (%s) of %s", i, v, q)
		if len(namespaces) > 0 {
			ns := named(v, nsLabel)
			if len(ns) != 1 {
				t.Fatalf("%d matchers on the namespace label, want 1: %s", len(ns), where)
			}
			if len(namespaces) == 1 {
				if ns[0].Type != plabels.MatchEqual || ns[0].Value != namespaces[0] {
					t.Fatalf("namespace matcher %s, want %s=%q: %s", ns[0], nsLabel, namespaces[0], where)
				}
			} else if ns[0].Type != plabels.MatchRegexp {
				t.Fatalf("namespace matcher %s is not =~: %s", ns[0], where)
			} else if err := matchesExactly(ns[0], namespaces); err != nil {
				t.Fatalf("namespace matcher %s %v, want exactly %q: %s", ns[0], err, namespaces, where)
			}
		}
		for _, pm := range v.LabelMatchers {
			if !reserved[pm.Name] {
				continue
			}
			if pm.Name != nsLabel || len(namespaces) == 0 {
				t.Fatalf("matcher %s touches the reserved label %q: %s", pm, pm.Name, where)
			}
		}
		for _, r := range labelReqs {
			if !slices.ContainsFunc(v.LabelMatchers, func(pm *plabels.Matcher) bool { return means(pm, r) == nil }) {
				var why []string
				for _, pm := range named(v, r.key) {
					why = append(why, fmt.Sprintf("%s: %v", pm, means(pm, r)))
				}
				t.Fatalf("no matcher means %s %s %q (%s): %s", r.key, r.op, r.values, strings.Join(why, "; "), where)
			}
		}
		want := len(own[i].LabelMatchers) - 1 + min(len(namespaces), 1) + len(labelReqs)
		if len(v.LabelMatchers) != want {
			t.Fatalf("want %d matchers, got %d: %s", want, len(v.LabelMatchers), where)
		}
	}
}

func named(v *parser.VectorSelector, name string) []*plabels.Matcher {
	var out []*plabels.Matcher
	for _, pm := range v.LabelMatchers {
		if pm.Name == name {
			out = append(out, pm)
		}
	}
	return out
}

// means returns nil if pm is the PromQL meaning of the label requirement r
// (op normalised, values sorted), or what is wrong.
func means(pm *plabels.Matcher, r requirement) error {
	if pm.Name != r.key {
		return fmt.Errorf("label %q", pm.Name)
	}
	wantType := map[selection.Operator]plabels.MatchType{
		selection.Equals: plabels.MatchEqual, selection.NotEquals: plabels.MatchNotEqual,
		selection.In: plabels.MatchRegexp, selection.NotIn: plabels.MatchNotRegexp,
		selection.Exists: plabels.MatchRegexp, selection.DoesNotExist: plabels.MatchEqual,
	}[r.op]
	if pm.Type != wantType {
		return fmt.Errorf("type %s, want %s", pm.Type, wantType)
	}
	switch r.op {
	case selection.Equals, selection.NotEquals:
		if pm.Value != r.values[0] {
			return fmt.Errorf("value %q, want %q", pm.Value, r.values[0])
		}
	case selection.In, selection.NotIn:
		return matchesExactly(pm, r.values)
	case selection.Exists:
		if pm.Value != ".+" {
			return fmt.Errorf("value %q, want .+", pm.Value)
		}
	case selection.DoesNotExist:
		if pm.Value != "" {
			return fmt.Errorf("value %q, want empty", pm.Value)
		}
	}
	return nil
}

// matchesExactly returns nil if the regexp of pm (=~ or !~) selects exactly
// values: each of them, and none of their near misses (one character
// changed, added or removed, metacharacters, concatenations).
func matchesExactly(pm *plabels.Matcher, values []string) error {
	in := pm.Type == plabels.MatchRegexp // for !~, Matches is the complement
	for _, v := range values {
		if pm.Matches(v) != in {
			return fmt.Errorf("does not select %q", v)
		}
	}
	for _, p := range nearMisses(values) {
		if !slices.Contains(values, p) && pm.Matches(p) == in {
			return fmt.Errorf("also selects %q", p)
		}
	}
	return nil
}

func nearMisses(values []string) []string {
	out := []string{"", "x", ".", ".*", "|", "\n", "a|b", `\`, "(", ")", "[", "]", "team-a", "team-b"}
	for i, v := range values {
		out = append(out, v+"x", "x"+v, v+"\n", "\n"+v, v+v, v+"|", "|"+v, v+".", `\`+v)
		rs := []rune(v)
		if len(rs) > 0 {
			out = append(out, string(rs[1:]), string(rs[:len(rs)-1]))
		}
		for j := range min(len(rs), 8) {
			for _, c := range []rune{'x', '.', '\n'} {
				if rs[j] == c {
					continue
				}
				changed := slices.Clone(rs)
				changed[j] = c
				out = append(out, string(changed))
			}
		}
		if i > 0 {
			out = append(out, values[i-1]+v, values[i-1]+"|"+v)
		}
	}
	return out
}
