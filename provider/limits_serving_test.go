package provider_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	promclient "github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"

	"github.com/hpa-signals/hpa-signals/provider"
	"github.com/hpa-signals/hpa-signals/provider/providertest"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// counterValue returns the value of the counter name{kv...} in reg, or -1
// if reg has no such series.
func counterValue(t *testing.T, reg *promclient.Registry, name string, kv ...string) float64 {
	t.Helper()
	if v, ok := providertest.Counter(t, reg, name, kv...); ok {
		return v
	}
	return -1
}

func TestServingSelectorLimits(t *testing.T) {
	f := newFixtureWith(t, func(o *provider.Options) { o.Limits = provider.SelectorLimits{MaxLength: 60, MaxValues: 3} })
	long := "code=" + strings.Repeat("5", 60)
	cases := []struct {
		name, path string
		wantCode   int
		want       []string
		limit      string // the limit counted, if any
	}{
		{"values within the limit", "/apis/external.metrics.k8s.io/v1beta1/namespaces/team-a/http_requests_per_second?labelSelector=" + url.QueryEscape("code in (200,201),method notin (GET)"),
			http.StatusNotFound, nil, ""},
		{"too many in/notin values on the external API", "/apis/external.metrics.k8s.io/v1beta1/namespaces/team-a/http_requests_per_second?labelSelector=" + url.QueryEscape("code in (200,201),method notin (GET,PUT)"),
			http.StatusBadRequest, []string{"lists 4 values in its in/notin requirements, over the limit of 3 (--max-selector-values)"}, provider.LimitSelectorValues},
		{"too many values on the custom API", "/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/http_requests_per_second?metricLabelSelector=" + url.QueryEscape("code in (1,2,3,4)"),
			http.StatusBadRequest, []string{"--max-selector-values"}, provider.LimitSelectorValues},
		{"too long", "/apis/external.metrics.k8s.io/v1beta1/namespaces/team-a/http_requests_per_second?labelSelector=" + url.QueryEscape(long),
			http.StatusBadRequest, []string{"the metric selector is 65 characters long, over the limit of 60 (--max-selector-length)"}, provider.LimitSelectorLength},
		{"too long on an object metric", "/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/services/frontend/http_request_duration_seconds_p99?metricLabelSelector=" + url.QueryEscape(long),
			http.StatusBadRequest, []string{"--max-selector-length"}, provider.LimitSelectorLength},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := map[string]float64{}
			for _, l := range []string{provider.LimitSelectorLength, provider.LimitSelectorValues} {
				before[l] = counterValue(t, f.reg, "hpa_signals_limit_hits_total", "limit", l)
			}
			queries := f.queryCount()
			code, body := get(t, f.srv, tc.path)
			if code != tc.wantCode {
				t.Fatalf("GET %s = %d, want %d: %s", tc.path, code, tc.wantCode, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q: %s", w, body)
				}
			}
			for l, b := range before {
				want := b
				if l == tc.limit {
					want++
				}
				if got := counterValue(t, f.reg, "hpa_signals_limit_hits_total", "limit", l); got != want {
					t.Errorf("limit hits of %s = %v, want %v", l, got, want)
				}
			}
			if tc.limit != "" && f.queryCount() != queries {
				t.Errorf("a refused selector reached Prometheus")
			}
		})
	}
}

// TestServingCacheLimitIs429 fills team-a's share of the cache with keys
// read just now: a new key of team-a is 429 naming the namespace and flag,
// without Retry-After (client-go would retry it, holding the HPA
// controller), while team-b still reads.
func TestServingCacheLimitIs429(t *testing.T) {
	f := newFixtureWith(t, func(o *provider.Options) {
		co := fixtureCacheOptions()
		co.MaxKeysPerNamespace = 1
		o.Cache = provider.NewCache(co, nil, o.Metrics)
	})
	ext := func(ns, sel string) string {
		return "/apis/external.metrics.k8s.io/v1beta1/namespaces/" + ns + "/http_requests_per_second?labelSelector=" + url.QueryEscape(sel)
	}
	if code, body := get(t, f.srv, ext("team-a", "code=200")); code != http.StatusOK {
		t.Fatalf("first read: %d %s", code, body)
	}
	resp, err := http.Get(f.srv.URL + ext("team-a", "code=500"))
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second key of team-a = %d, want 429: %s", resp.StatusCode, body.String())
	}
	for _, w := range []string{`"reason":"TooManyRequests"`, `namespace \"team-a\" has 1 cached values`, "raise --max-cache-keys-per-namespace"} {
		if !strings.Contains(body.String(), w) {
			t.Errorf("429 body lacks %q: %s", w, body.String())
		}
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		t.Errorf("429 carries Retry-After %q; client-go would retry it", ra)
	}
	if code, body := get(t, f.srv, ext("team-b", "code=500")); code != http.StatusNotFound {
		t.Fatalf("team-b read while team-a is full = %d, want 404 (its own share, no data): %s", code, body)
	}
	for _, c := range []struct {
		name string
		kv   []string
		want float64
	}{
		{"hpa_signals_limit_hits_total", []string{"limit", provider.LimitCacheKeysPerNamespace}, 1},
		{"hpa_signals_limit_hits_total", []string{"limit", provider.LimitCacheKeys}, 0},
		{"hpa_signals_requests_total", []string{"metric", "http_requests_per_second", "code", "429"}, 1},
	} {
		if got := counterValue(t, f.reg, c.name, c.kv...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.kv, got, c.want)
		}
	}
}

func TestServingUnknownMetricsShareOneLabel(t *testing.T) {
	f := newFixture(t)
	for i := range 5 {
		path := fmt.Sprintf("/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/made_up_%d", i)
		if code, body := get(t, f.srv, path); code != http.StatusNotFound {
			t.Fatalf("GET %s = %d: %s", path, code, body)
		}
	}
	if code, body := get(t, f.srv, "/apis/external.metrics.k8s.io/v1beta1/namespaces/team-a/made_up_x"); code != http.StatusNotFound {
		t.Fatalf("external unknown metric = %d: %s", code, body)
	}
	if got := counterValue(t, f.reg, "hpa_signals_requests_total", "api", "pods", "metric", "unknown", "code", "404"); got != 5 {
		t.Errorf(`requests_total{api="pods",metric="unknown",code="404"} = %v, want 5`, got)
	}
	if got := counterValue(t, f.reg, "hpa_signals_requests_total", "api", "external", "metric", "unknown"); got != 1 {
		t.Errorf(`requests_total{api="external",metric="unknown"} = %v, want 1`, got)
	}
	if got := counterValue(t, f.reg, "hpa_signals_requests_total", "metric", "made_up_0"); got != -1 {
		t.Errorf("a name not in the catalog became a label value")
	}
}

// syncBuffer is a bytes.Buffer klog may write to from any goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// captureLog sends klog's output to a buffer for the rest of the test.
func captureLog(t *testing.T) *syncBuffer {
	var buf syncBuffer
	klog.LogToStderr(false)
	klog.SetOutput(&buf)
	t.Cleanup(func() {
		klog.Flush()
		klog.SetOutput(os.Stderr)
		klog.LogToStderr(true)
	})
	return &buf
}

// TestServingErrorsHideAddresses: a 503 names the source and the failure,
// but not the Prometheus URL, a broker address, a resolved IP or a DNS
// name, whether they come in the error chain or only in its text; the log
// keeps the full error.
func TestServingErrorsHideAddresses(t *testing.T) {
	const promURL = "http://user@prometheus.monitoring.svc:9090"
	refused := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 96, 0, 7), Port: 9090},
		Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	cases := []struct {
		name    string
		path    string
		prom    error
		kafka   error
		want    []string
		secrets []string
	}{
		{
			name: "prometheus: url and dial errors in the chain",
			path: "/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/http_requests_per_second",
			prom: fmt.Errorf("query Prometheus at %s for %q: %w", promURL, "up",
				&url.Error{Op: "Post", URL: promURL + "/api/v1/query", Err: refused}),
			want:    []string{"prometheus source failed", "Post [redacted]: dial tcp: connect: connection refused"},
			secrets: []string{"prometheus.monitoring.svc", "10.96.0.7", ":9090", "user@"},
		},
		{
			name: "prometheus: a DNS failure",
			path: "/apis/external.metrics.k8s.io/v1beta1/namespaces/team-a/http_requests_per_second",
			prom: &url.Error{Op: "Post", URL: "http://prom.internal.example:9090/api/v1/query", Err: &net.OpError{Op: "dial", Net: "tcp",
				Err: &net.DNSError{Err: "no such host", Name: "prom.internal.example", Server: "10.0.0.10:53", IsNotFound: true}}},
			want:    []string{"prometheus source failed", "dial tcp: DNS lookup failed: no such host"},
			secrets: []string{"prom.internal.example", "10.0.0.10"},
		},
		{
			name:    "kafka: broker addresses only in the text",
			path:    "/apis/external.metrics.k8s.io/v1beta1/namespaces/team-a/kafka_consumer_lag?labelSelector=group%3Dteam-a.billing",
			kafka:   fmt.Errorf("kafka: cluster %q: read offsets from broker kafka-0.kafka.svc:9092 (id 1) at 10.1.2.3:9092: %w", "main", errors.New("broken pipe")),
			want:    []string{"kafka source failed", "broken pipe", `cluster \"main\"`},
			secrets: []string{"kafka-0.kafka.svc:9092", "10.1.2.3"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			log := captureLog(t)
			f := newFixtureWith(t, func(o *provider.Options) {
				o.Redact = provider.AddressesOf(promURL)
				cat := o.Catalog()
				cat.Kafka.Clusters[0].Brokers = []string{"kafka-0.kafka.svc:9092", "kafka-1.kafka.svc:9092"}
			})
			f.prom.err, f.kafka.err = tc.prom, tc.kafka
			code, body := get(t, f.srv, tc.path)
			if code != http.StatusServiceUnavailable {
				t.Fatalf("GET %s = %d, want 503: %s", tc.path, code, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("503 body lacks %q: %s", w, body)
				}
			}
			for _, s := range tc.secrets {
				if strings.Contains(body, s) {
					t.Errorf("503 body shows %q: %s", s, body)
				}
			}
			klog.Flush()
			for _, s := range tc.secrets {
				if !strings.Contains(log.String(), s) {
					t.Errorf("the log lacks %q, part of the full error: %s", s, log.String())
				}
			}
		})
	}
}

func TestServingValuesOutOfRange(t *testing.T) {
	cases := []struct {
		value    float64
		wantCode int
		want     string
	}{
		{9.2e15, http.StatusOK, `"value":"9200T"`},
		{-9.2e15, http.StatusOK, `"value":"-9200T"`},
		{1e16, http.StatusInternalServerError, "value 1e+16 is out of range: the metrics API carries values with milli precision in a 64-bit integer, at most ±9.223e+15"},
		{-1e17, http.StatusInternalServerError, "value -1e+17 is out of range"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.value), func(t *testing.T) {
			f := newFixture(t)
			f.prom.answers[`sum by () (rate(http_requests_total{namespace="team-a",code="200"}[2m]))`] = []prometheus.Sample{sample(tc.value)}
			code, body := get(t, f.srv, "/apis/external.metrics.k8s.io/v1beta1/namespaces/team-a/http_requests_per_second?labelSelector=code%3D200")
			if code != tc.wantCode || !strings.Contains(body, tc.want) {
				t.Fatalf("value %g: %d %s; want %d with %q", tc.value, code, body, tc.wantCode, tc.want)
			}
		})
	}
}
