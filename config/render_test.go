package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// TestPresetQueries renders every Prometheus preset for each request shape
// the provider builds and checks the exact PromQL and that it parses.
func TestPresetQueries(t *testing.T) {
	ns := `namespace="shop"`
	shapes := []struct {
		name string
		data QueryData
	}{
		{"pods", QueryData{LabelMatchers: ns + `,pod=~"web-1|web-2"`, GroupBy: []string{"pod"}}},
		{"object namespaces", QueryData{LabelMatchers: ns, GroupBy: []string{"namespace"}}},
		{"object services", QueryData{LabelMatchers: ns + `,service="web"`, GroupBy: []string{"service"}}},
		{"external", QueryData{LabelMatchers: ns + `,handler="/api"`, Params: map[string]string{"window": "5m"}}},
		{"external all namespaces", QueryData{}},
	}
	want := map[string][]string{
		"http_requests_per_second": {
			`sum by (pod) (rate(http_requests_total{namespace="shop",pod=~"web-1|web-2"}[2m]))`,
			`sum by (namespace) (rate(http_requests_total{namespace="shop"}[2m]))`,
			`sum by (service) (rate(http_requests_total{namespace="shop",service="web"}[2m]))`,
			`sum by () (rate(http_requests_total{namespace="shop",handler="/api"}[5m]))`,
			`sum by () (rate(http_requests_total{}[2m]))`,
		},
		"http_request_duration_seconds_p50": {
			`histogram_quantile(0.5, sum by (pod, le) (rate(http_request_duration_seconds_bucket{namespace="shop",pod=~"web-1|web-2"}[2m])))`,
			`histogram_quantile(0.5, sum by (namespace, le) (rate(http_request_duration_seconds_bucket{namespace="shop"}[2m])))`,
			`histogram_quantile(0.5, sum by (service, le) (rate(http_request_duration_seconds_bucket{namespace="shop",service="web"}[2m])))`,
			`histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="shop",handler="/api"}[5m])))`,
			`histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{}[2m])))`,
		},
		"http_request_duration_seconds_p90": {
			`histogram_quantile(0.9, sum by (pod, le) (rate(http_request_duration_seconds_bucket{namespace="shop",pod=~"web-1|web-2"}[2m])))`,
			`histogram_quantile(0.9, sum by (namespace, le) (rate(http_request_duration_seconds_bucket{namespace="shop"}[2m])))`,
			`histogram_quantile(0.9, sum by (service, le) (rate(http_request_duration_seconds_bucket{namespace="shop",service="web"}[2m])))`,
			`histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="shop",handler="/api"}[5m])))`,
			`histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket{}[2m])))`,
		},
		"http_request_duration_seconds_p99": {
			`histogram_quantile(0.99, sum by (pod, le) (rate(http_request_duration_seconds_bucket{namespace="shop",pod=~"web-1|web-2"}[2m])))`,
			`histogram_quantile(0.99, sum by (namespace, le) (rate(http_request_duration_seconds_bucket{namespace="shop"}[2m])))`,
			`histogram_quantile(0.99, sum by (service, le) (rate(http_request_duration_seconds_bucket{namespace="shop",service="web"}[2m])))`,
			`histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="shop",handler="/api"}[5m])))`,
			`histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{}[2m])))`,
		},
		"go_goroutines": {
			`sum by (pod) (go_goroutines{namespace="shop",pod=~"web-1|web-2"})`,
			`sum by (namespace) (go_goroutines{namespace="shop"})`,
			`sum by (service) (go_goroutines{namespace="shop",service="web"})`,
			"", // takes no window parameter
			`sum by () (go_goroutines{})`,
		},
	}
	c := Default()
	seen := 0
	for _, m := range c.Metrics {
		if m.Source != SourcePrometheus {
			continue
		}
		seen++
		for i, s := range shapes {
			t.Run(m.Name+"/"+s.name, func(t *testing.T) {
				exp := want[m.Name][i]
				q, err := m.RenderQuery(s.data)
				if exp == "" {
					if !errors.Is(err, ErrInvalidParameter) {
						t.Fatalf("RenderQuery = %q, %v; want an ErrInvalidParameter", q, err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if q != exp {
					t.Errorf("query\n%s\nwant\n%s", q, exp)
				}
				expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
				if err != nil {
					t.Fatalf("not valid PromQL: %v", err)
				}
				if expr.Type() != parser.ValueTypeVector {
					t.Errorf("query type %s, want vector", expr.Type())
				}
			})
		}
	}
	if seen != len(want) {
		t.Errorf("%d Prometheus presets, %d with expectations", seen, len(want))
	}
}

func TestRenderQueryParameters(t *testing.T) {
	m := &Metric{
		Name:   "orders",
		APIs:   []API{APIExternal},
		Source: SourcePrometheus,
		Query:  `sum(rate(orders_total{<<.LabelMatchers>>}[<<.Params.window>>])) / <<.Params.workers>>`,
		Parameters: []Parameter{
			{Name: "window", Default: "2m", Pattern: "[1-9][0-9]{0,3}(s|m|h)"},
			{Name: "workers", Pattern: "[1-9][0-9]*"},
		},
	}
	tests := []struct {
		name    string
		params  map[string]string
		want    string
		wantErr string
	}{
		{"defaults", map[string]string{"workers": "4"}, `sum(rate(orders_total{}[2m])) / 4`, ""},
		{"override", map[string]string{"workers": "4", "window": "10m"}, `sum(rate(orders_total{}[10m])) / 4`, ""},
		{"required missing", nil, "", `render query of "orders": invalid parameter: "workers" is required; set it in the selector, e.g. workers=1`},
		{"pattern is anchored", map[string]string{"workers": "4", "window": "5m]) or vector(1"}, "",
			`render query of "orders": invalid parameter: window="5m]) or vector(1" does not match the pattern "[1-9][0-9]{0,3}(s|m|h)"`},
		{"unknown key", map[string]string{"workers": "4", "step": "1m"}, "", `render query of "orders": invalid parameter: "step" is not a parameter of "orders"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// m is built by hand, so RenderQuery compiles it on each call.
			q, err := m.RenderQuery(QueryData{Params: tc.params})
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr || !errors.Is(err, ErrInvalidParameter) {
					t.Fatalf("RenderQuery = %q, %v; want error %q wrapping ErrInvalidParameter", q, err, tc.wantErr)
				}
				return
			}
			if err != nil || q != tc.want {
				t.Fatalf("RenderQuery = %q, %v; want %q", q, err, tc.want)
			}
		})
	}
	if m.tmpl != nil {
		t.Error("RenderQuery modified a hand-built Metric")
	}
}

func TestRenderQueryRejects(t *testing.T) {
	c := Default()
	tests := []struct {
		name string
		m    *Metric
		d    QueryData
		want string
	}{
		{"kafka entry", c.Lookup("kafka_consumer_lag"), QueryData{}, `render query of "kafka_consumer_lag": the entry's source is kafka, not prometheus`},
		{"bad group-by label", c.Lookup("go_goroutines"), QueryData{GroupBy: []string{"pod) or (x"}},
			`render query of "go_goroutines": group-by label "pod) or (x" is not a valid Prometheus label name`},
		{"hand-built with a bad template", &Metric{Name: "x", Source: SourcePrometheus, Query: "<<.Nope"}, QueryData{},
			`render query of "x": query: template does not parse: template: x:1: unclosed action; write the query as a Go template with << >> delimiters, e.g. sum by (<<.GroupBy>>) (rate(x_total{<<.LabelMatchers>>}[<<.Params.window>>]))`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := tc.m.RenderQuery(tc.d)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("RenderQuery = %q, %v; want error %q", q, err, tc.want)
			}
		})
	}
}

func TestSampleValue(t *testing.T) {
	tests := map[string]string{
		"[1-9][0-9]{0,3}(s|m|h)": "1h", // (s|m|h) becomes the class [hms]
		"[0-9]+m":                "0m",
		"(foo|bar)-[a-z]{2}":     "foo-aa",
		"x*":                     "",
		"a.b":                    "aab",
		`\bx`:                    "x",
	}
	for pattern, want := range tests {
		t.Run(pattern, func(t *testing.T) {
			if got := sampleValue(pattern); got != want {
				t.Errorf("sampleValue(%q) = %q, want %q", pattern, got, want)
			}
		})
	}
}

func TestSelectorKeys(t *testing.T) {
	m := &Metric{
		Parameters:     []Parameter{{Name: "window", Pattern: "x"}},
		SelectorLabels: []string{"handler"},
		APIs:           []API{APIPods},
	}
	star := &Metric{Parameters: m.Parameters, SelectorLabels: []string{"*"}}
	tests := []struct {
		m    *Metric
		key  string
		want bool
	}{
		{m, "handler", true},
		{m, "code", false},
		{m, "window", false},
		{star, "code", true},
		{star, "window", false},
		{star, "app.kubernetes.io/name", false},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.m.SelectorLabels, ",")+"/"+tc.key, func(t *testing.T) {
			if got := tc.m.AllowsSelectorLabel(tc.key); got != tc.want {
				t.Errorf("AllowsSelectorLabel(%q) = %v, want %v", tc.key, got, tc.want)
			}
		})
	}
	if !m.HasParameter("window") || m.HasParameter("handler") {
		t.Error("HasParameter")
	}
	if !m.Serves(APIPods) || m.Serves(APIExternal) {
		t.Error("Serves")
	}
}

// TestRenderPrometheusAdapterFields renders the fields prometheus-adapter's
// metricsQuery templates use, so its rules render unchanged.
func TestRenderPrometheusAdapterFields(t *testing.T) {
	c, err := Parse([]byte(`
presets: false
metrics:
  - name: requests_per_second
    apis: [pods, external]
    source: prometheus
    series: http_requests_total
    query: sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<range $i, $l := .GroupBySlice>><<if $i>>,<<end>><<$l>><<end>>)
  - name: by_values
    apis: [external]
    source: prometheus
    series: queue_depth
    query: sum(<<.Series>>{<<.LabelMatchers>>,queue=~"<<index .LabelValuesByName "queue">>"})
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		metric string
		d      QueryData
		want   string
	}{
		{"requests_per_second", QueryData{LabelMatchers: `namespace="shop"`, GroupBy: []string{"pod"}},
			`sum(rate(http_requests_total{namespace="shop"}[2m])) by (pod)`},
		{"requests_per_second", QueryData{LabelMatchers: `namespace="shop"`, GroupBy: []string{"pod", "le"}},
			`sum(rate(http_requests_total{namespace="shop"}[2m])) by (pod,le)`},
		{"by_values", QueryData{LabelMatchers: `namespace="shop",queue="a"`, LabelValues: map[string]string{"namespace": "shop", "queue": `a|b\\.c`}},
			`sum(queue_depth{namespace="shop",queue="a",queue=~"a|b\\.c"})`},
		{"by_values", QueryData{LabelMatchers: `namespace="shop"`, LabelValues: map[string]string{"namespace": "shop"}},
			`sum(queue_depth{namespace="shop",queue=~""})`},
	}
	for _, tc := range tests {
		q, err := c.Lookup(tc.metric).RenderQuery(tc.d)
		if err != nil || q != tc.want {
			t.Errorf("%s with %+v renders %q, %v; want %q", tc.metric, tc.d, q, err, tc.want)
		}
		if _, err := promqlParser.ParseExpr(q); err != nil {
			t.Errorf("%s renders invalid PromQL %q: %v", tc.metric, q, err)
		}
	}
}
