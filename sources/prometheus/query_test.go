package prometheus

import (
	"errors"
	"strings"
	"testing"

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

func podScope() Scope { return Scope{Namespaces: []string{"team-a"}, GroupBy: []string{"pod"}} }

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
		{name: "several namespaces", scope: &Scope{Namespaces: []string{"b", "a.b", "a", "b"}, GroupBy: []string{"pod"}},
			want: `sum by (pod) (rate(http_requests_total{namespace=~"a|a\\.b|b"}[2m]))`},
		{name: "fixed matcher", metric: anyLabel, scope: &Scope{Namespaces: []string{"ns"}, Fixed: []Matcher{{"route", MatchEqual, "front\"end"}, {"job", MatchNotEqual, "x"}}},
			selector: "team=a", want: `sum by () (rate(http_requests_total{namespace="ns",job!="x",route="front\"end",team="a"}[2m]))`},
		{name: "fixed matcher collision", metric: anyLabel, scope: &Scope{Namespaces: []string{"ns"}, Fixed: []Matcher{{"route", MatchEqual, "x"}}},
			selector: "route=y", wantErr: []string{`key "route" is set by the request`}},
		{name: "custom scope labels", metric: anyLabel,
			scope:    &Scope{Labels: config.PrometheusLabels{Namespace: "kubernetes_namespace", Pod: "kubernetes_pod_name"}, Namespaces: []string{"ns"}, GroupBy: []string{"kubernetes_pod_name"}},
			selector: "namespace=x", want: `sum by (kubernetes_pod_name) (rate(http_requests_total{kubernetes_namespace="ns",namespace="x"}[2m]))`},
		{name: "no namespace", scope: &Scope{GroupBy: []string{"pod"}}, wantErr: []string{"no namespace"}, plainErr: true},
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
			if tc.reqs != nil {
				got, err = buildQuery(m, s, tc.reqs)
			} else {
				sel, perr := labels.Parse(tc.selector)
				if perr != nil {
					t.Fatalf("labels.Parse(%q): %v", tc.selector, perr)
				}
				got, err = BuildQuery(m, s, sel)
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
			assertShape(t, m, s, got, nil)
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
	a, _ := BuildQuery(qpsMetric(), Scope{Namespaces: []string{"b", "a"}}, labels.Everything())
	b, _ := BuildQuery(qpsMetric(), Scope{Namespaces: []string{"a", "b"}}, labels.Everything())
	if a != b || a == "" {
		t.Errorf("namespace order changes the query: %q vs %q", a, b)
	}
	if _, err := BuildQuery(qpsMetric(), podScope(), nil); err != nil {
		t.Errorf("nil selector: %v", err)
	}
}

func mustParse(t *testing.T, s string) labels.Selector {
	t.Helper()
	sel, err := labels.Parse(s)
	if err != nil {
		t.Fatalf("labels.Parse(%q): %v", s, err)
	}
	return sel
}
