package prometheus

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/hpa-signals/hpa-signals/config"
)

var window = config.Parameter{Name: "window", Default: "2m", Pattern: "[1-9][0-9]{0,3}(s|m|h)"}

// Entries shaped like the built-in presets.
func qpsMetric() *config.Metric {
	return &config.Metric{
		Name:           "http_requests_per_second",
		Source:         config.SourcePrometheus,
		Query:          `sum by (<<.GroupBy>>) (rate(http_requests_total{<<.LabelMatchers>>}[<<.Params.window>>]))`,
		Parameters:     []config.Parameter{window},
		SelectorLabels: []string{"handler", "code", "method"},
		Resources:      map[string]string{"services": "service", "deployments.apps": "deployment"},
	}
}

func p99Metric() *config.Metric {
	m := qpsMetric()
	m.Name = "http_request_duration_seconds_p99"
	m.Query = `histogram_quantile(0.99, sum by (<<.GroupByWith "le">>) (rate(http_request_duration_seconds_bucket{<<.LabelMatchers>>}[<<.Params.window>>])))`
	return m
}

func goroutinesMetric() *config.Metric {
	return &config.Metric{
		Name:   "go_goroutines",
		Source: config.SourcePrometheus,
		Query:  `sum by (<<.GroupBy>>) (go_goroutines{<<.LabelMatchers>>})`,
	}
}

// prom are the Prometheus settings of a catalog file without them, as
// config defaults them: the scopes the provider builds carry the catalog's.
var prom = config.Default().Prometheus

// scope is the scope the provider builds for namespaces and grouping.
func scope(namespaces []string, groupBy ...string) Scope {
	return Scope{Labels: prom.Labels, Namespaces: namespaces, GroupBy: groupBy, MaxRange: prom.MaxRange.Duration}
}

func podScope() Scope { return scope([]string{"team-a"}, "pod") }

func TestBuildQuery(t *testing.T) {
	const head = `sum by (pod) (rate(http_requests_total{namespace="team-a"`
	anyLabel := qpsMetric()
	anyLabel.SelectorLabels = []string{"*"}
	required := qpsMetric()
	required.Parameters = []config.Parameter{{Name: "window", Pattern: window.Pattern}}

	tests := []struct {
		name     string
		metric   *config.Metric
		scope    *Scope        // nil: podScope()
		selector string        // parsed with labels.Parse unless reqs is set
		reqs     []requirement // values beyond what Kubernetes label values allow
		want     string        // exact PromQL
		wantErr  []string      // substrings of the error, which wraps ErrInvalidSelector
		plainErr bool          // the error is not the selector's fault
	}{
		{name: "no selector", want: head + `}[2m]))`},
		{name: "equals", selector: "code=500", want: head + `,code="500"}[2m]))`},
		{name: "double equals", selector: "code==500", want: head + `,code="500"}[2m]))`},
		{name: "not equals", selector: "code!=500", want: head + `,code!="500"}[2m]))`},
		{name: "in, sorted", selector: "code in (503,500)", want: head + `,code=~"500|503"}[2m]))`},
		{name: "notin", selector: "code notin (500,503)", want: head + `,code!~"500|503"}[2m]))`},
		{name: "exists", selector: "code", want: head + `,code=~".+"}[2m]))`},
		{name: "does not exist", selector: "!code", want: head + `,code=""}[2m]))`},
		{name: "keys sorted", selector: "method=GET,code=200,handler=x", want: head + `,code="200",handler="x",method="GET"}[2m]))`},
		{name: "same requirement twice", reqs: []requirement{{"code", selection.Equals, []string{"1"}}, {"code", selection.DoubleEquals, []string{"1"}}}, want: head + `,code="1"}[2m]))`},
		{name: "in with regex metacharacters", reqs: []requirement{{"handler", selection.In, []string{"/api/v1.*", "a|b", "(x)"}}},
			want: head + `,handler=~"/api/v1\\.\\*|\\(x\\)|a\\|b"}[2m]))`},
		{name: "escaping", reqs: []requirement{{"handler", selection.Equals, []string{"a\"b\\c\nd}\t\x00é"}}},
			want: head + `,handler="a\"b\\c\nd}\t\x00é"}[2m]))`},
		{name: "injection attempt stays a value", reqs: []requirement{{"handler", selection.Equals, []string{`"} or vector(1) #`}}},
			want: head + `,handler="\"} or vector(1) #"}[2m]))`},
		{name: "invalid UTF-8", reqs: []requirement{{"handler", selection.Equals, []string{"\xff"}}}, wantErr: []string{`key "handler"`, "UTF-8"}},
		{name: "window override", selector: "window=10s", want: head + `}[10s]))`},
		{name: "window and label", selector: "window=5m,code=200", want: head + `,code="200"}[5m]))`},
		{name: "window pattern mismatch", selector: "window=10x", wantErr: []string{"window", `"10x"`, "pattern"}},
		{name: "window injection", reqs: []requirement{{"window", selection.Equals, []string{"1m])) or vector(1"}}}, wantErr: []string{"window", "pattern"}},
		{name: "window with in", selector: "window in (1m,2m)", wantErr: []string{`parameter "window" only takes window=<value>`}},
		{name: "window set twice", reqs: []requirement{{"window", selection.Equals, []string{"1m"}}, {"window", selection.Equals, []string{"2m"}}}, wantErr: []string{"set twice"}},
		{name: "required parameter missing", metric: required, wantErr: []string{`"window" is required`}},
		{name: "required parameter given", metric: required, selector: "window=1m", want: head + `}[1m]))`},
		{name: "key not allowed", selector: "team=a", wantErr: []string{`key "team" is not accepted`, "selectorLabels"}},
		{name: "any label", metric: anyLabel, selector: "team=a", want: head + `,team="a"}[2m]))`},
		{name: "dotted key", metric: anyLabel, selector: "app.kubernetes.io/name=web", wantErr: []string{`key "app.kubernetes.io/name" is not a Prometheus label name`, `"app_kubernetes_io_name"`}},
		{name: "reserved __name__", metric: anyLabel, reqs: []requirement{{"__name__", selection.Equals, []string{"up"}}}, wantErr: []string{`key "__name__"`, "reserved"}},
		{name: "greater than", selector: "code>400", wantErr: []string{`key "code"`, `operator "gt"`}},
		{name: "less than", selector: "code<400", wantErr: []string{`key "code"`, `operator "lt"`}},
		{name: "namespace collision", metric: anyLabel, selector: "namespace=team-b", wantErr: []string{`key "namespace" is set by the request`}},
		{name: "pod collision", metric: anyLabel, selector: "pod=web-1", wantErr: []string{`key "pod" is set by the request`}},
		{name: "resource label collision", metric: anyLabel, selector: "service=web", wantErr: []string{`key "service" is set by the request`}},
		{name: "several namespaces", scope: ptr(scope([]string{"b", "a.b", "a", "b"}, "pod")),
			want: `sum by (pod) (rate(http_requests_total{namespace=~"a|a\\.b|b"}[2m]))`},
		{name: "external scope", metric: anyLabel, scope: ptr(scope([]string{"ns"})),
			selector: "team=a", want: `sum by () (rate(http_requests_total{namespace="ns",team="a"}[2m]))`},
		{name: "custom scope labels", metric: anyLabel,
			scope:    &Scope{Labels: config.PrometheusLabels{Namespace: "kubernetes_namespace", Pod: "kubernetes_pod_name"}, Namespaces: []string{"ns"}, GroupBy: []string{"kubernetes_pod_name"}},
			selector: "namespace=x", want: `sum by (kubernetes_pod_name) (rate(http_requests_total{kubernetes_namespace="ns",namespace="x"}[2m]))`},
		{name: "no namespace", scope: ptr(scope(nil, "pod")), wantErr: []string{"no namespace"}, plainErr: true},
		{name: "p99 groups by le too", metric: p99Metric(), selector: "window=10s",
			want: `histogram_quantile(0.99, sum by (pod, le) (rate(http_request_duration_seconds_bucket{namespace="team-a"}[10s])))`},
		{name: "goroutines", metric: goroutinesMetric(), want: `sum by (pod) (go_goroutines{namespace="team-a"})`},
		{name: "goroutines has no parameters", metric: goroutinesMetric(), selector: "window=1m", wantErr: []string{`key "window" is not accepted`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.metric
			if m == nil {
				m = qpsMetric()
			}
			s := podScope()
			if tc.scope != nil {
				s = *tc.scope
			}
			var got string
			var err error
			reqs := tc.reqs
			if reqs != nil {
				got, err = buildQuery(m, s, reqs)
			} else {
				sel, perr := labels.Parse(tc.selector)
				if perr != nil {
					t.Fatalf("labels.Parse(%q): %v", tc.selector, perr)
				}
				got, err = BuildQuery(m, s, sel)
				reqs = selectorRequirements(sel)
			}
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("got %q, want an error containing %q", got, tc.wantErr)
				}
				if errors.Is(err, ErrInvalidSelector) == tc.plainErr {
					t.Errorf("errors.Is(err, ErrInvalidSelector) = %v, want %v: %v", !tc.plainErr, tc.plainErr, err)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			assertShape(t, m, s, got)
			assertMeaning(t, m, s, got, reqs)
		})
	}
}

// TestBuildQueryCanonical checks that equivalent selectors give the same
// string, since it is the cache key.
func TestBuildQueryCanonical(t *testing.T) {
	for _, group := range [][]string{
		{"code=200,method=GET", "method=GET,code=200", "method==GET,code=200"},
		{"code in (500,503)", "code in (503,500)", "code in (503,500,503)"},
		{"window=5m,handler=x", "handler=x,window=5m"},
	} {
		var first string
		for i, s := range group {
			got, err := BuildQuery(qpsMetric(), podScope(), mustParse(t, s))
			if err != nil {
				t.Fatalf("%q: %v", s, err)
			}
			if i == 0 {
				first = got
			} else if got != first {
				t.Errorf("%q gave %q, but %q gave %q", s, got, group[0], first)
			}
		}
	}
	a, _ := BuildQuery(qpsMetric(), scope([]string{"b", "a"}), labels.Everything())
	b, _ := BuildQuery(qpsMetric(), scope([]string{"a", "b"}), labels.Everything())
	if a != b || a == "" {
		t.Errorf("namespace order changes the query: %q vs %q", a, b)
	}
	if _, err := BuildQuery(qpsMetric(), podScope(), nil); err != nil {
		t.Errorf("nil selector: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func mustParse(t *testing.T, s string) labels.Selector {
	t.Helper()
	sel, err := labels.Parse(s)
	if err != nil {
		t.Fatalf("labels.Parse(%q): %v", s, err)
	}
	return sel
}

// TestBuildQueryChecksScope shows that a query that would read outside its
// scope is never returned, whatever made it so, and that a range over
// prometheus.maxRange is the selector's fault (400) naming the setting.
func TestBuildQueryChecksScope(t *testing.T) {
	loose := &config.Metric{ // hand-built, so no validation: a pattern that lets anything through
		Name:       "loose",
		Source:     config.SourcePrometheus,
		Query:      `sum(rate(x{<<.LabelMatchers>>}[<<.Params.window>>]))`,
		Parameters: []config.Parameter{{Name: "window", Default: "5m", Pattern: ".*"}},
	}
	unscoped := &config.Metric{Name: "unscoped", Source: config.SourcePrometheus, Query: `sum(a{<<.LabelMatchers>>}) / sum(b)`}
	tests := []struct {
		name     string
		metric   *config.Metric
		scope    Scope
		reqs     []requirement
		wantIs   error    // nil: the error wraps neither sentinel
		wantErr  []string // substrings of the error
		wantNone bool     // no error expected
	}{
		{name: "unscoped selector in the template", metric: unscoped, scope: podScope(),
			wantIs: ErrOutOfScope, wantErr: []string{`the vector selector b lacks the scope matchers {namespace="team-a"}`, "not run"}},
		{name: "parameter value that adds a selector", metric: loose, scope: podScope(),
			reqs:   []requirement{{"window", selection.Equals, []string{`5m])) or sum(rate(y[5m`}}},
			wantIs: ErrOutOfScope, wantErr: []string{`the vector selector y lacks the scope matchers {namespace="team-a"}`}},
		{name: "parameter value that breaks the query", metric: loose, scope: podScope(),
			reqs:   []requirement{{"window", selection.Equals, []string{`5m)`}}},
			wantIs: ErrInvalidSelector, wantErr: []string{"with window=5m) the query is not valid PromQL", "tighten the parameter's pattern"}},
		{name: "several namespaces are checked as built", metric: &config.Metric{Name: "f", Source: config.SourcePrometheus, Query: `sum(a{<<.LabelMatchers>>}) + sum(b{namespace="team-a"})`},
			scope:  scope([]string{"team-a", "team-b"}),
			wantIs: ErrOutOfScope, wantErr: []string{`b{namespace="team-a"} lacks the scope matchers {namespace=~"team-a|team-b"}`}},
		{name: "window over the default maxRange", metric: qpsMetric(), scope: podScope(),
			reqs:   []requirement{{"window", selection.Equals, []string{"61m"}}},
			wantIs: ErrInvalidSelector, wantErr: []string{"the range [1h1m] of", "longer than prometheus.maxRange (1h)", "shorter values than window=61m", "raise prometheus.maxRange"}},
		{name: "window at the default maxRange", metric: qpsMetric(), scope: podScope(),
			reqs: []requirement{{"window", selection.Equals, []string{"1h"}}}, wantNone: true},
		{name: "window over the catalog's maxRange", metric: qpsMetric(), scope: Scope{Labels: prom.Labels, Namespaces: []string{"a"}, MaxRange: 10 * time.Minute},
			reqs:   []requirement{{"window", selection.Equals, []string{"11m"}}},
			wantIs: ErrInvalidSelector, wantErr: []string{"longer than prometheus.maxRange (10m)"}},
		{name: "cluster-wide entry given namespaces", metric: clusterWideMetric(), scope: podScope(),
			wantErr: []string{"namespaced: false", `names namespaces ["team-a"]`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := buildQuery(tc.metric, tc.scope, tc.reqs)
			if tc.wantNone {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got query %s, want an error", q)
			}
			if q != "" {
				t.Errorf("a query came back with the error: %s", q)
			}
			for _, sentinel := range []error{ErrOutOfScope, ErrInvalidSelector} {
				if want := errors.Is(tc.wantIs, sentinel); errors.Is(err, sentinel) != want {
					t.Errorf("errors.Is(err, %v) = %v: %v", sentinel, !want, err)
				}
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			tooLong := strings.Contains(err.Error(), "longer than prometheus.maxRange") && errors.Is(tc.wantIs, ErrInvalidSelector)
			if errors.Is(err, ErrRangeTooLong) != tooLong {
				t.Errorf("errors.Is(err, ErrRangeTooLong) = %v, want %v: %v", !tooLong, tooLong, err)
			}
		})
	}
}

func clusterWideMetric() *config.Metric {
	f := false
	return &config.Metric{
		Name:             "shared_queue_depth",
		APIs:             []config.API{config.APIExternal},
		Source:           config.SourcePrometheus,
		Query:            `max(queue_depth{<<.LabelMatchers>>}) + sum(queue_workers)`,
		SelectorLabels:   []string{"queue", "namespace"},
		Namespaced:       &f,
		CallerNamespaces: []string{"platform"},
	}
}

// TestBuildQueryClusterWide checks the parsed query of a namespaced: false
// entry: no namespace matcher anywhere, and the namespace label is an
// ordinary selector key there, accepted because selectorLabels lists it.
func TestBuildQueryClusterWide(t *testing.T) {
	q, err := BuildQuery(clusterWideMetric(), scope(nil), mustParse(t, "queue=orders,namespace=team-b"))
	if err != nil {
		t.Fatal(err)
	}
	_, vs, err := shapeOf(q)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, v := range vs {
		for _, m := range v.LabelMatchers {
			got[v.Name] = append(got[v.Name], m.String())
		}
	}
	want := map[string][]string{
		"queue_depth":   {`namespace="team-b"`, `queue="orders"`, `__name__="queue_depth"`},
		"queue_workers": {`__name__="queue_workers"`},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("matchers %v, want %v (query %s)", got, want, q)
	}
	// Not listed in selectorLabels: the pod label is an ordinary key, rejected as such.
	if _, err := BuildQuery(clusterWideMetric(), scope(nil), mustParse(t, "pod=x")); !errors.Is(err, ErrInvalidSelector) || !strings.Contains(err.Error(), `key "pod" is not accepted`) {
		t.Errorf("pod=x: %v, want the not-accepted 400", err)
	}
}
