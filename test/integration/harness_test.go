// Package integration tests the adapter end to end below the aggregator: HTTP
// requests to the real custom-metrics-apiserver handler chain, served by the
// real provider and cache, answered by the real Prometheus client from a real
// Prometheus scraping in-process services with known load. Only the pod
// lister is a fake (pods are the e2e suite's concern).
package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/resource"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/provider"
	"github.com/hpa-signals/hpa-signals/provider/providertest"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

const (
	customAPI   = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a"
	customAPIv1 = "/apis/custom.metrics.k8s.io/v1beta1/namespaces/team-a"
	externalAPI = "/apis/external.metrics.k8s.io/v1beta1/namespaces/team-a"

	// queryTimeout bounds one Prometheus query of the adapters under test.
	queryTimeout = 2 * time.Second
)

// cacheOptions are the adapters' cache settings: the adapter's defaults
// (limits, no-data classification), with the fetch timeout derived from
// the query timeout as the adapter derives it. The cache runs on a fake
// clock, so its durations are steps of that clock, not waits.
var cacheOptions = func() provider.CacheOptions {
	o := provider.NewCacheOptions()
	o.SetFetchTimeout(queryTimeout, nil)
	return *o
}()

// pods is what the fake pod lister knows: web-3 matches app=web but has no
// series; db-1 has series in no namespace and is never selected.
var pods = providertest.Pods{
	"team-a":     {"web-1": {"app": "web"}, "web-2": {"app": "web"}, "web-3": {"app": "web"}, "db-1": {"app": "db"}},
	"team-empty": {"web-9": {"app": "web"}},
}

// adapter is one provider served over HTTP, with its own cache on a fake
// clock and its own metrics registry, talking to Prometheus at a given URL.
type adapter struct {
	srv   *httptest.Server
	clock *clocktesting.FakeClock
	cache *provider.Cache
	reg   *promclient.Registry
}

func newAdapter(t testing.TB, promURL string) *adapter {
	t.Helper()
	reg := promclient.NewRegistry()
	opts := prometheus.NewOptions()
	opts.URL, opts.Timeout = promURL, queryTimeout
	client, err := prometheus.NewClient(opts)
	if err != nil {
		t.Fatalf("create Prometheus client: %v", err)
	}
	metrics := provider.NewMetrics(reg)
	// The fake clock starts far from the real one, so a value stamped with
	// the cache's clock instead of its sample time cannot pass for fresh.
	clk := clocktesting.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	cache := provider.NewCache(cacheOptions, clk, metrics)
	cat := config.Default()
	p := provider.New(provider.Options{
		Catalog:    func() *config.Catalog { return cat },
		Prometheus: client,
		Pods:       pods,
		Cache:      cache,
		Metrics:    metrics,
		Redact:     provider.AddressesOf(promURL),
	})
	return &adapter{srv: providertest.NewServer(t, p), clock: clk, cache: cache, reg: reg}
}

// response is one answer of the adapter.
type response struct {
	code    int
	body    string
	elapsed time.Duration
	list    valueList // decoded when code is 200
}

// valueList decodes the custom (v1beta1, v1beta2) and external value lists.
type valueList struct {
	Kind  string `json:"kind"`
	Items []struct {
		DescribedObject struct {
			Kind      string `json:"kind"`
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
		} `json:"describedObject"`
		MetricName string `json:"metricName"` // custom v1beta1, external
		Metric     struct {
			Name string `json:"name"`
		} `json:"metric"` // custom v1beta2
		MetricLabels map[string]string `json:"metricLabels"`
		Timestamp    time.Time         `json:"timestamp"`
		Value        resource.Quantity `json:"value"`
	} `json:"items"`
}

// byName returns the values by described object name, or by "" for
// external values.
func (l valueList) byName() map[string]float64 {
	out := map[string]float64{}
	for _, it := range l.Items {
		out[it.DescribedObject.Name] = it.Value.AsApproximateFloat64()
	}
	return out
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// get requests path from the adapter and fails the test if there is no
// answer, or if it is a 200 with a zero value: the adapter must never turn
// a failure into 0, and none of the signals served here is 0.
func (a *adapter) get(t *testing.T, path string) response {
	t.Helper()
	r, err := a.do(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// do is get for goroutines other than the test's.
func (a *adapter) do(path string) (response, error) {
	start := time.Now()
	resp, err := httpClient.Get(a.srv.URL + path)
	if err != nil {
		return response{}, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("GET %s: read body: %w", path, err)
	}
	r := response{code: resp.StatusCode, body: string(body), elapsed: time.Since(start)}
	if r.code != http.StatusOK {
		return r, nil
	}
	if err := json.Unmarshal(body, &r.list); err != nil {
		return r, fmt.Errorf("GET %s: decode %s: %w", path, body, err)
	}
	for _, it := range r.list.Items {
		if it.Value.IsZero() {
			return r, fmt.Errorf("GET %s: 200 with value 0: %s", path, body)
		}
	}
	return r, nil
}

// getFresh steps the cache's clock past the staleness bound, so the read
// fetches from Prometheus instead of answering from memory.
func (a *adapter) getFresh(t *testing.T, path string) response {
	t.Helper()
	a.clock.Step(cacheOptions.StaleAfter + time.Second)
	return a.get(t, path)
}

// poll reads path fresh every 500ms until check accepts a 200 answer, and
// fails the test after 40s with the last answer.
func (a *adapter) poll(t *testing.T, path string, check func(valueList) bool) valueList {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		r := a.getFresh(t, path)
		if r.code == http.StatusOK && check(r.list) {
			return r.list
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: not as expected within 40s; last answer %d: %s", path, r.code, r.body)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitForRates polls the Pods read of web-1's and web-2's request rates
// until both are there and near their load (10 and 20 per second), as
// they are once Prometheus has scraped them for a while, and returns it.
func (a *adapter) waitForRates(t *testing.T) valueList {
	t.Helper()
	return a.poll(t, customAPI+podsRate, func(l valueList) bool {
		v := l.byName()
		return checkPods(t, l, "http_requests_per_second") && near(v["web-1"], 10, tolerance) && near(v["web-2"], 20, tolerance)
	})
}

// counter returns the value of the counter name{labels} in a's registry, or
// 0 if it has no such series yet.
func (a *adapter) counter(t *testing.T, name string, kv ...string) float64 {
	t.Helper()
	v, _ := providertest.Counter(t, a.reg, name, kv...)
	return v
}

// sourceQueries is hpa_signals_source_queries_total{source="prometheus",result}.
func (a *adapter) sourceQueries(t *testing.T, result string) float64 {
	t.Helper()
	return a.counter(t, "hpa_signals_source_queries_total", "source", "prometheus", "result", result)
}

// countingProxy sits between an adapter and Prometheus and counts the
// instant queries that pass, optionally holding them until released. The
// source's own questions about a start of Prometheus, whether it scraped
// before it and when it first scraped after it (see sources/prometheus'
// restart watch), pass without being counted or held: they are asked once
// per start, not per read.
type countingProxy struct {
	srv     *httptest.Server
	queries atomic.Int64

	mu   sync.Mutex
	gate chan struct{} // nil: queries pass at once
}

func newCountingProxy(t testing.TB, promURL string) *countingProxy {
	t.Helper()
	u, err := url.Parse(promURL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &countingProxy{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/query" && !firstScrapeQuestion(r) {
			p.queries.Add(1)
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			if gate != nil {
				select {
				case <-gate:
				case <-r.Context().Done():
					return
				}
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// firstScrapeQuestion reports whether r asks for Prometheus' first scrape
// after its start, leaving r's body readable for the proxy.
func firstScrapeQuestion(r *http.Request) bool {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return false
	}
	q := values.Get("query") + r.URL.Query().Get("query")
	return strings.HasPrefix(q, "min(min_over_time((timestamp(up) > ") || q == "count(last_over_time(up[1h]))"
}

// hold makes the proxy hold queries until release is called. The test's
// cleanup releases them too, before the servers close.
func (p *countingProxy) hold(t *testing.T) (release func()) {
	gate := make(chan struct{})
	p.mu.Lock()
	p.gate = gate
	p.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			p.mu.Lock()
			p.gate = nil
			p.mu.Unlock()
			close(gate)
		})
	}
	t.Cleanup(release)
	return release
}

func near(got, want, rel float64) bool { return math.Abs(got-want) <= rel*want }
