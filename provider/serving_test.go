package provider_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/provider"
	"github.com/hpa-signals/hpa-signals/provider/providertest"
	"github.com/hpa-signals/hpa-signals/sources/kafka"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

var sampleTime = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// fakePrometheus answers PromQL from a map; anything else has no data.
type fakePrometheus struct {
	mu      sync.Mutex
	answers map[string][]prometheus.Sample
	err     error
	queries []string
}

func (f *fakePrometheus) Query(_ context.Context, promql string) ([]prometheus.Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, promql)
	if f.err != nil {
		return nil, f.err
	}
	if s, ok := f.answers[promql]; ok {
		return s, nil
	}
	return nil, errors.Join(prometheus.ErrNoData, errors.New("no data for "+promql))
}

// fakeKafka answers every evaluation with one value, or an error.
type fakeKafka struct {
	value float64
	err   error
}

func (f *fakeKafka) Evaluate(_ context.Context, q kafka.Query) (kafka.Result, error) {
	if f.err != nil {
		return kafka.Result{}, f.err
	}
	return kafka.Result{Value: f.value, Time: sampleTime}, nil
}

// mustParse parses a catalog file as the adapter does.
func mustParse(t *testing.T, file string) *config.Catalog {
	t.Helper()
	cat, err := config.Parse([]byte(file))
	if err != nil {
		t.Fatalf("parse catalog: %v", err)
	}
	return cat
}

func sample(value float64, kv ...string) prometheus.Sample {
	l := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return prometheus.Sample{Labels: l, Value: value, Timestamp: sampleTime}
}

type fixture struct {
	prom  *fakePrometheus
	kafka *fakeKafka
	srv   *httptest.Server
	reg   *promclient.Registry
}

// fixtureCacheOptions keep every value fresh for the length of a test.
func fixtureCacheOptions() provider.CacheOptions {
	o := provider.NewCacheOptions()
	o.RefreshInterval, o.StaleAfter, o.KeepAlive, o.FetchTimeout = time.Hour, 2*time.Hour, 3*time.Hour, time.Second
	return *o
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, nil) }

// newFixtureWith is newFixture with options changed by configure.
func newFixtureWith(t *testing.T, configure func(*provider.Options)) *fixture {
	cat := mustParse(t, "kafka: {clusters: [{name: main, brokers: ['127.0.0.1:9092']}]}")
	// The queries the presets run for each request below, written out: a
	// request that builds another query gets no data.
	prom := &fakePrometheus{answers: map[string][]prometheus.Sample{
		`sum by (pod) (rate(http_requests_total{namespace="team-a"}[2m]))`: {
			sample(10, "pod", "web-1"), sample(20.5, "pod", "web-2"), sample(99, "pod", "db-1"),
		},
		`histogram_quantile(0.99, sum by (service, le) (rate(http_request_duration_seconds_bucket{namespace="team-a"}[2m])))`: {
			sample(0.25, "service", "frontend"),
		},
		`sum by (namespace) (go_goroutines{namespace="team-a"})`: {
			sample(1234, "namespace", "team-a"),
		},
		`sum by () (rate(http_requests_total{namespace="team-a",code="200"}[2m]))`: {
			sample(42),
		},
	}}
	k := &fakeKafka{value: 1500}
	reg := promclient.NewRegistry()
	metrics := provider.NewMetrics(reg)
	opts := provider.Options{
		Catalog:    func() *config.Catalog { return cat },
		Prometheus: prom,
		Kafka:      k,
		Pods: providertest.Pods{"team-a": {
			"web-1": {"app": "web"}, "web-2": {"app": "web"}, "web-3": {"app": "web"}, "db-1": {"app": "db"},
		}},
		Cache:   provider.NewCache(fixtureCacheOptions(), nil, metrics),
		Metrics: metrics,
	}
	if configure != nil {
		configure(&opts)
	}
	return &fixture{prom: prom, kafka: k, srv: providertest.NewServer(t, provider.New(opts)), reg: reg}
}

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestServingCustomAndExternalAPIs(t *testing.T) {
	f := newFixture(t)
	sel := func(s string) string { return url.QueryEscape(s) }
	cases := []struct {
		name     string
		path     string
		wantCode int
		// want are substrings the body must contain, in order.
		want []string
		// absent are substrings the body must not contain.
		absent []string
	}{
		{"v1beta1 pods metric keeps only selected pods with data",
			"/apis/custom.metrics.k8s.io/v1beta1/namespaces/team-a/pods/*/http_requests_per_second?labelSelector=" + sel("app=web"),
			200, []string{`"name":"web-1"`, `"value":"10"`, `"name":"web-2"`, `"value":"20500m"`}, []string{"db-1", "web-3"}},
		{"v1beta2 pods metric",
			"/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/http_requests_per_second?labelSelector=" + sel("app=web"),
			200, []string{`"kind":"MetricValueList"`, `"name":"web-1"`, `"metric":{"name":"http_requests_per_second"`, `"value":"10"`}, nil},
		{"one pod by name",
			"/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/web-2/http_requests_per_second",
			200, []string{`"name":"web-2"`, `"value":"20500m"`}, nil},
		{"object metric on a service",
			"/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/services/frontend/http_request_duration_seconds_p99",
			200, []string{`"kind":"Service"`, `"name":"frontend"`, `"timestamp":"2026-11-21T12:00:00Z"`, `"value":"250m"`}, nil},
		{"namespace metric",
			"/apis/custom.metrics.k8s.io/v1beta1/namespaces/team-a/metrics/go_goroutines",
			200, []string{`"kind":"Namespace"`, `"name":"team-a"`, `"value":"1234"`}, nil},
		{"external prometheus metric",
			"/apis/external.metrics.k8s.io/v1beta1/namespaces/team-a/http_requests_per_second?labelSelector=" + sel("code=200"),
			200, []string{`"metricName":"http_requests_per_second"`, `"value":"42"`}, nil},
		{"external kafka metric",
			"/apis/external.metrics.k8s.io/v1beta1/namespaces/team-a/kafka_consumer_lag?labelSelector=" + sel("group=team-a.billing,topic=team-a.orders"),
			200, []string{`"group":"team-a.billing"`, `"topic":"team-a.orders"`, `"value":"1500"`}, nil},

		{"unknown metric is 404",
			"/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/no_such_metric", 404,
			[]string{`metric \"no_such_metric\" is not in the catalog`}, nil},
		{"no data is 404, not zero",
			"/apis/custom.metrics.k8s.io/v1beta2/namespaces/empty/pods/*/http_requests_per_second", 404,
			[]string{"no data"}, nil},
		{"pods without data are 404",
			"/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/http_requests_per_second?labelSelector=" + sel("app=cache"), 404,
			[]string{"no data for metric", "0 pods"}, nil},
		{"resource the entry does not map is 404",
			"/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/statefulsets.apps/db/go_goroutines", 404,
			[]string{"not available for statefulsets.apps"}, nil},
		{"disallowed metric selector key is 400",
			"/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/http_requests_per_second?metricLabelSelector=" + sel("tenant=x"), 400,
			[]string{"tenant"}, nil},
		{"parameter outside its pattern is 400",
			"/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/http_requests_per_second?metricLabelSelector=" + sel("window=forever"), 400,
			[]string{"window"}, nil},
		{"malformed selector is 400",
			"/apis/external.metrics.k8s.io/v1beta1/namespaces/team-a/http_requests_per_second?labelSelector=" + sel("code in (200"), 400,
			nil, nil},
		{"kafka selector without group is 400",
			"/apis/external.metrics.k8s.io/v1beta1/namespaces/team-a/kafka_consumer_lag?labelSelector=" + sel("topic=team-a.orders"), 400,
			[]string{"group"}, nil},
		{"external read of another namespace is 403",
			"/apis/external.metrics.k8s.io/v1beta1/namespaces/team-a/http_requests_per_second?labelSelector=" + sel("namespace=team-b"), 403,
			[]string{`may not read namespace \"team-b\"`}, nil},
		{"kafka group of another namespace is 404",
			"/apis/external.metrics.k8s.io/v1beta1/namespaces/team-a/kafka_consumer_lag?labelSelector=" + sel("group=team-b.billing"), 404,
			[]string{`consumer group \"team-b.billing\" on cluster \"main\": not found for namespace \"team-a\"`}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, f.srv, tc.path)
			if code != tc.wantCode {
				t.Fatalf("GET %s = %d, want %d; body: %s", tc.path, code, tc.wantCode, body)
			}
			rest := body
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("body lacks %q (in order); body: %s", w, body)
				}
				rest = rest[i+len(w):]
			}
			for _, a := range tc.absent {
				if strings.Contains(body, a) {
					t.Errorf("body contains %q; body: %s", a, body)
				}
			}
		})
	}
}

func TestServingSourceOutageIs503(t *testing.T) {
	f := newFixture(t)
	f.prom.err = errors.New(`Post "http://127.0.0.1:9090/api/v1/query": dial tcp 127.0.0.1:9090: connect: connection refused`)
	f.kafka.err = errors.New("dial tcp 127.0.0.1:9092: connect: connection refused")
	for _, path := range []string{
		"/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/http_requests_per_second",
		"/apis/external.metrics.k8s.io/v1beta1/namespaces/team-a/kafka_consumer_lag?labelSelector=group%3Dteam-a.billing",
	} {
		code, body := get(t, f.srv, path)
		if code != http.StatusServiceUnavailable {
			t.Fatalf("GET %s = %d, want 503; body: %s", path, code, body)
		}
		if !strings.Contains(body, "source failed") || !strings.Contains(body, "connection refused") {
			t.Fatalf("503 body does not name the source and cause: %s", body)
		}
	}
}

func TestServingDiscoveryIsNeverEmpty(t *testing.T) {
	f := newFixture(t)
	for _, gv := range []string{"custom.metrics.k8s.io/v1beta1", "custom.metrics.k8s.io/v1beta2", "external.metrics.k8s.io/v1beta1"} {
		code, body := get(t, f.srv, "/apis/"+gv)
		if code != 200 {
			t.Fatalf("discovery of %s = %d: %s", gv, code, body)
		}
		var list struct {
			Resources []struct{ Name string } `json:"resources"`
		}
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatalf("decode discovery of %s: %v", gv, err)
		}
		if len(list.Resources) == 0 {
			t.Fatalf("discovery of %s lists no resources", gv)
		}
		want := "pods/http_requests_per_second"
		if strings.HasPrefix(gv, "external") {
			want = "kafka_consumer_lag"
		}
		if !strings.Contains(body, `"name":"`+want+`"`) {
			t.Fatalf("discovery of %s lacks %s: %s", gv, want, body)
		}
	}
}
