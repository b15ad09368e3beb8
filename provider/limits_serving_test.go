package provider_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"

	promclient "github.com/prometheus/client_golang/prometheus"

	"github.com/hpa-signals/hpa-signals/provider"
)

// counterValue returns the value of the counter name{kv...} in reg, or -1
// if there is no such series.
func counterValue(t *testing.T, reg *promclient.Registry, name string, kv ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(kv); i += 2 {
				if ls[kv[i]] != kv[i+1] {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
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
