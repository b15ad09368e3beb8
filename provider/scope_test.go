package provider_test

import (
	"context"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	plabels "github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	cmprovider "sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/provider"
	"github.com/hpa-signals/hpa-signals/provider/providertest"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// A namespaced: false entry answers only the namespaces the catalog lists,
// and any other caller gets exactly the answer of a metric that does not
// exist, without a source call.
func TestCallerNamespacesOfAClusterWideEntry(t *testing.T) {
	cat, err := config.Parse([]byte(`
presets: false
metrics:
  - name: shared_queue_depth
    apis: [external]
    source: prometheus
    query: sum(queue_depth{<<.LabelMatchers>>})
    namespaced: false
    callerNamespaces: [platform]
`))
	if err != nil {
		t.Fatal(err)
	}
	prom := &fakePrometheus{answers: map[string][]prometheus.Sample{}}
	p := provider.New(provider.Options{
		Catalog:    func() *config.Catalog { return cat },
		Prometheus: prom,
		Pods:       providertest.Pods{},
		Cache:      provider.NewCache(provider.CacheOptions{RefreshInterval: time.Second, StaleAfter: time.Minute, KeepAlive: time.Minute, FetchTimeout: time.Second}, nil, nil),
	})
	get := func(ns, metric string) error {
		_, err := p.GetExternalMetric(context.Background(), ns, labels.Everything(), cmprovider.ExternalMetricInfo{Metric: metric})
		return err
	}
	unknown := get("team-a", "no_such_metric")
	denied := get("team-a", "shared_queue_depth")
	if !apierrors.IsNotFound(denied) || !apierrors.IsNotFound(unknown) {
		t.Fatalf("caller not listed: %v; unknown metric: %v; want both 404", denied, unknown)
	}
	if want := `metric "shared_queue_depth" is not in the catalog`; denied.Error() != want {
		t.Errorf("caller not listed: %q, want %q (the text of a metric that does not exist)", denied, want)
	}
	if len(prom.queries) != 0 {
		t.Errorf("a caller that may not read the entry caused queries %v", prom.queries)
	}
	// The listed caller reaches the source (which has no data here).
	if err := get("platform", "shared_queue_depth"); !apierrors.IsNotFound(err) || len(prom.queries) != 1 {
		t.Errorf("listed caller: %v after %d queries, want the source's 404 after 1 query", err, len(prom.queries))
	}
}

// echoPrometheus answers every query with one sample labelled with the
// equality matchers of the query's first vector selector, and records the
// queries so tests can assert what they read.
type echoPrometheus struct {
	mu      sync.Mutex
	queries []string
}

func (e *echoPrometheus) Query(_ context.Context, promql string) ([]prometheus.Sample, error) {
	e.mu.Lock()
	e.queries = append(e.queries, promql)
	e.mu.Unlock()
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(promql)
	if err != nil {
		return nil, err
	}
	l := map[string]string{}
	for _, m := range parser.ExtractSelectors(expr)[0] {
		if m.Type == plabels.MatchEqual && m.Name != model.MetricNameLabel {
			l[m.Name] = m.Value
		}
	}
	return []prometheus.Sample{{Labels: l, Value: 7, Timestamp: sampleTime}}, nil
}

func (e *echoPrometheus) sent() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.queries)
}

// selectors parses q and returns the matchers of each vector selector.
func selectors(t *testing.T, q string) [][]*plabels.Matcher {
	t.Helper()
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	if err != nil {
		t.Fatalf("query %s does not parse: %v", q, err)
	}
	return parser.ExtractSelectors(expr)
}

func scopeServer(t *testing.T, catalog string) (*echoPrometheus, *httptest.Server) {
	t.Helper()
	cat := config.Default()
	if catalog != "" {
		var err error
		if cat, err = config.Parse([]byte(catalog)); err != nil {
			t.Fatal(err)
		}
	}
	prom := &echoPrometheus{}
	p := provider.New(provider.Options{
		Catalog:    func() *config.Catalog { return cat },
		Prometheus: prom,
		Pods:       providertest.Pods{},
		Cache:      provider.NewCache(provider.CacheOptions{RefreshInterval: time.Hour, StaleAfter: 2 * time.Hour, KeepAlive: 3 * time.Hour, FetchTimeout: time.Second}, nil, nil),
	})
	return prom, providertest.NewServer(t, p)
}

// A namespace metric reads the request's namespace only. The routes are
// those of the custom-metrics-apiserver library, served by its real
// handlers, so the test covers how each path reaches the provider.
func TestNamespaceMetricReadsOnlyTheRequestNamespace(t *testing.T) {
	const v2 = "/apis/custom.metrics.k8s.io/v1beta2"
	tests := []struct {
		name     string
		path     string
		wantCode int
		// wantNamespace is the namespace every selector of the one query
		// sent must match with namespace="..."; empty: no query may be sent.
		wantNamespace string
		wantBody      string
	}{
		{"namespace-specific route (authorised in team-a)", v2 + "/namespaces/team-a/metrics/go_goroutines", 200, "team-a", `"name":"team-a"`},
		{"namespace-specific route, v1beta1", "/apis/custom.metrics.k8s.io/v1beta1/namespaces/team-a/metrics/go_goroutines", 200, "team-a", `"name":"team-a"`},
		{"namespaced route naming its own namespace", v2 + "/namespaces/team-a/namespaces/team-a/go_goroutines", 200, "team-a", `"name":"team-a"`},
		{"namespaced route naming another namespace", v2 + "/namespaces/team-b/namespaces/team-a/go_goroutines", 404, "",
			`no data for metric \"go_goroutines\" for namespaces \"team-a\" in namespace \"team-b\"`},
		{"namespaced route naming a namespace that does not exist", v2 + "/namespaces/team-b/namespaces/nope/go_goroutines", 404, "",
			`no data for metric \"go_goroutines\" for namespaces \"nope\" in namespace \"team-b\"`},
		{"root route for a namespace is refused by the library", v2 + "/namespaces/team-a/go_goroutines", 400, "", "invalid request path"},
		{"root route for a pod names no namespace", v2 + "/pods/web-1/go_goroutines", 404, "", `pods live in namespaces`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prom, srv := scopeServer(t, "")
			code, body := get(t, srv, tc.path)
			if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("GET %s = %d %s, want %d with %q", tc.path, code, body, tc.wantCode, tc.wantBody)
			}
			sent := prom.sent()
			if tc.wantNamespace == "" {
				if len(sent) != 0 {
					t.Fatalf("queries %q sent, want none", sent)
				}
				return
			}
			if len(sent) != 1 {
				t.Fatalf("queries %q, want one", sent)
			}
			for _, sel := range selectors(t, sent[0]) {
				if !slices.ContainsFunc(sel, func(m *plabels.Matcher) bool {
					return m.Name == "namespace" && m.Type == plabels.MatchEqual && m.Value == tc.wantNamespace
				}) {
					t.Errorf("selector %v of %s does not match namespace=%q", sel, sent[0], tc.wantNamespace)
				}
			}
		})
	}
}

// External Prometheus entries: what the query reads for a namespaced entry
// with externalNamespaces and for a namespaced: false entry, and the
// answers when the query may not run.
func TestExternalPrometheusScope(t *testing.T) {
	const catalog = `
presets: false
prometheus:
  maxRange: 30m
metrics:
  - name: queue_depth
    apis: [external]
    source: prometheus
    query: sum(rate(queue_depth{<<.LabelMatchers>>}[<<.Params.window>>]))
    parameters: [{name: window, default: 5m, pattern: "[1-9][0-9]*m"}]
    selectorLabels: [queue]
    externalNamespaces: [monitoring]
  - name: shared_queue_depth
    apis: [external]
    source: prometheus
    query: max(shared_queue_depth{<<.LabelMatchers>>}) / max(shared_queue_workers)
    selectorLabels: [queue, namespace]
    namespaced: false
    callerNamespaces: [platform]
  - name: scaled
    apis: [external]
    source: prometheus
    query: sum(x{<<.LabelMatchers>>}) * <<.Params.scale>>
    parameters: [{name: scale, default: "2", pattern: ".*"}]
`
	const ext = "/apis/external.metrics.k8s.io/v1beta1/namespaces/"
	sel := func(s string) string { return "?labelSelector=" + url.QueryEscape(s) }
	type matcher struct {
		name  string
		typ   plabels.MatchType
		value string
	}
	tests := []struct {
		name     string
		path     string
		wantCode int
		wantBody string
		// want are the label matchers (besides __name__) of each selector
		// of the one query sent; nil: no query may be sent.
		want [][]matcher
		// selects are, for a =~ namespace matcher, exactly the namespaces it must select.
		selects []string
	}{
		{"own namespace", ext + "team-a/queue_depth" + sel("queue=orders"), 200, `"value":"7"`,
			[][]matcher{{{"namespace", plabels.MatchEqual, "team-a"}, {"queue", plabels.MatchEqual, "orders"}}}, nil},
		{"own and an allow-listed namespace", ext + "team-a/queue_depth" + sel("namespace in (team-a,monitoring)"), 200, `"value":"7"`,
			[][]matcher{{{"namespace", plabels.MatchRegexp, "monitoring|team-a"}}}, []string{"monitoring", "team-a"}},
		{"a namespace the entry does not allow", ext + "team-a/queue_depth" + sel("namespace=team-b"), 403, `may not read namespace \"team-b\"`, nil, nil},
		{"window over prometheus.maxRange", ext + "team-a/queue_depth" + sel("window=31m"), 400, `longer than prometheus.maxRange (30m)`, nil, nil},
		{"not namespaced, listed caller", ext + "platform/shared_queue_depth" + sel("queue=orders,namespace=team-b"), 200, `"value":"7"`,
			[][]matcher{{{"namespace", plabels.MatchEqual, "team-b"}, {"queue", plabels.MatchEqual, "orders"}}, {}}, nil},
		{"not namespaced, other caller", ext + "team-a/shared_queue_depth", 404, `metric \"shared_queue_depth\" is not in the catalog`, nil, nil},
		{"a parameter that would add an unscoped selector", ext + "team-a/scaled" + sel("scale=go_goroutines"), 500, "would read outside the request's scope, so it was not run", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prom, srv := scopeServer(t, catalog)
			code, body := get(t, srv, tc.path)
			if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("GET %s = %d %s, want %d with %q", tc.path, code, body, tc.wantCode, tc.wantBody)
			}
			sent := prom.sent()
			if tc.want == nil {
				if len(sent) != 0 {
					t.Fatalf("queries %q sent, want none", sent)
				}
				return
			}
			if len(sent) != 1 {
				t.Fatalf("queries %q, want one", sent)
			}
			sels := selectors(t, sent[0])
			if len(sels) != len(tc.want) {
				t.Fatalf("%d selectors in %s, want %d", len(sels), sent[0], len(tc.want))
			}
			for i, s := range sels {
				var got []matcher
				for _, m := range s {
					if m.Name != model.MetricNameLabel {
						got = append(got, matcher{m.Name, m.Type, m.Value})
					}
					if m.Name == "namespace" && m.Type == plabels.MatchRegexp {
						for _, ns := range []string{"team-a", "team-b", "monitoring", "monitoringx", ""} {
							if m.Matches(ns) != slices.Contains(tc.selects, ns) {
								t.Errorf("namespace matcher %s selects %q: %v, want %v", m, ns, m.Matches(ns), !m.Matches(ns))
							}
						}
					}
				}
				slices.SortFunc(got, func(a, b matcher) int { return strings.Compare(a.name, b.name) })
				if !slices.Equal(got, tc.want[i]) {
					t.Errorf("selector %d of %s: matchers %v, want %v", i, sent[0], got, tc.want[i])
				}
			}
		})
	}
}
