package prometheus

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	plabels "github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/hpa-signals/hpa-signals/config"
)

var promqlParser = parser.NewParser(parser.Options{})

// nasty are values that would change a query's shape if they were not
// escaped.
var nasty = []string{
	`"}`, `\"`, `\`, `"} or vector(1) #`, `or vector(1)`, "a\nb", "\r\t\x00\x7f", `|`, `.*`, `.+|x`,
	`a|b`, `(`, `[`, `{`, `}`, `]`, `}[5m])) or vector(1) #`, `'`, "`", `\u0041`, `\x41`,
	"日本語", "\u2028", "é", "😀", "", " ", `$`, `^`, `==`, `=~`, `!~`,
}

var operators = []selection.Operator{
	selection.Equals, selection.DoubleEquals, selection.NotEquals, selection.In, selection.NotIn,
	selection.Exists, selection.DoesNotExist, selection.GreaterThan, selection.LessThan,
}

// fuzzMetrics are the presets' shapes, accepting any label as a selector key.
func fuzzMetrics() []*config.Metric {
	var out []*config.Metric
	for _, m := range []*config.Metric{qpsMetric(), p99Metric(), goroutinesMetric()} {
		m.SelectorLabels = []string{"*"}
		out = append(out, m)
	}
	return out
}

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
		scope := Scope{Namespaces: []string{"team-a", v2}, GroupBy: []string{"pod"}, Fixed: []Matcher{{"route", MatchEqual, v1}}}
		if !strings.Contains(v2, "\xff") && v2 != "" && len(v2)%2 == 0 {
			scope.Namespaces = []string{v2} // one namespace: the = path
		}
		for _, m := range fuzzMetrics() {
			q, err := buildQuery(m, scope, reqs)
			if err == nil {
				assertShape(t, m, scope, q, reqs)
			}
			sel, err := labels.Parse(selector)
			if err != nil {
				continue
			}
			q, err = BuildQuery(m, podScope(), sel)
			if err != nil {
				continue
			}
			rs, _ := sel.Requirements()
			var sreqs []requirement
			for _, r := range rs {
				sreqs = append(sreqs, requirement{r.Key(), r.Operator(), r.ValuesUnsorted()})
			}
			assertShape(t, m, podScope(), q, sreqs)
		}
	})
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
			s := Scope{Namespaces: []string{v, "team-a"}, GroupBy: []string{"pod"}, Fixed: []Matcher{{"route", MatchNotEqual, v}}}
			for _, m := range fuzzMetrics() {
				q, err := buildQuery(m, s, reqs)
				if err != nil {
					t.Fatalf("%s %q: %v", o, v, err)
				}
				assertShape(t, m, s, q, reqs)
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

// assertShape checks that q parses, has the shape of m's template rendered
// with benign values, and that its one vector selector has exactly the
// scope's matchers plus one per distinct label requirement, each matching
// what the requirement means. reqs nil skips the per-requirement check.
func assertShape(t *testing.T, m *config.Metric, s Scope, q string, reqs []requirement) {
	t.Helper()
	got, vs, err := shapeOf(q)
	if err != nil {
		t.Fatalf("query does not parse: %v\n%s", err, q)
	}
	params := map[string]string{}
	for _, p := range m.Parameters {
		if p.Default == "" {
			params[p.Name] = "1m" // the test entries' required parameters are windows
		}
	}
	benign, err := m.RenderQuery(config.QueryData{LabelMatchers: `namespace="benign"`, GroupBy: s.GroupBy, Params: params})
	if err != nil {
		t.Fatalf("render benign query: %v", err)
	}
	want, _, err := shapeOf(benign)
	if err != nil {
		t.Fatalf("benign query does not parse: %v\n%s", err, benign)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("query shape changed:\n got  %q\n want %q\nquery: %s", got, want, q)
	}
	if len(vs) != 1 {
		t.Fatalf("want one vector selector, got %d: %s", len(vs), q)
	}
	if reqs == nil {
		return
	}
	matchers := vs[0].LabelMatchers
	distinct := map[string]bool{}
	for _, r := range reqs {
		if m.HasParameter(r.key) {
			continue
		}
		vals := slices.Clone(r.values)
		slices.Sort(vals)
		op := r.op
		if op == selection.DoubleEquals {
			op = selection.Equals
		}
		distinct[fmt.Sprintf("%s %s %q", r.key, op, slices.Compact(vals))] = true
		if !slices.ContainsFunc(matchers, func(pm *plabels.Matcher) bool { return means(pm, r) }) {
			t.Fatalf("no matcher means %s %s %q in %s", r.key, r.op, r.values, q)
		}
	}
	wantN := 1 + 1 + len(s.Fixed) + len(distinct) // __name__, namespace, fixed, selector
	if len(matchers) != wantN {
		t.Fatalf("want %d matchers, got %d %v: %s", wantN, len(matchers), matchers, q)
	}
}

// means reports whether pm is the PromQL meaning of requirement r.
func means(pm *plabels.Matcher, r requirement) bool {
	if pm.Name != r.key {
		return false
	}
	switch r.op {
	case selection.Equals, selection.DoubleEquals:
		return pm.Type == plabels.MatchEqual && pm.Value == r.values[0]
	case selection.NotEquals:
		return pm.Type == plabels.MatchNotEqual && pm.Value == r.values[0]
	case selection.In, selection.NotIn:
		want := plabels.MatchRegexp
		if r.op == selection.NotIn {
			want = plabels.MatchNotRegexp
		}
		if pm.Type != want {
			return false
		}
		probe := "\x00not-in-set"
		for _, v := range r.values {
			if pm.Matches(v) != (want == plabels.MatchRegexp) {
				return false
			}
			probe += v
		}
		return pm.Matches(probe) == (want == plabels.MatchNotRegexp)
	case selection.Exists:
		return pm.Type == plabels.MatchRegexp && pm.Value == ".+"
	case selection.DoesNotExist:
		return pm.Type == plabels.MatchEqual && pm.Value == ""
	}
	return false
}
