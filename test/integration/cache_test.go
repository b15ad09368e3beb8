package integration

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hpa-signals/hpa-signals/test/promtest"
)

// testCacheQueries checks the cache's promise to Prometheus on a fresh
// adapter: concurrent misses of one key share one query, warm reads send
// none, and a due refresh sends exactly one.
func testCacheQueries(t *testing.T, prom *promtest.Server) {
	const readers, warmReads = 100, 50
	// The one query must find both pods' rates, so wait for them first,
	// through another adapter.
	newAdapter(t, prom.URL()).waitForRates(t)
	proxy := newCountingProxy(t, prom.URL())
	a := newAdapter(t, proxy.srv.URL)
	path := customAPI + podsRate

	// The proxy holds the query until every reader has missed, so all of
	// them are waiting while it is in flight: a cache that let misses
	// through would show more than one query here.
	release := proxy.hold(t)
	start := time.Now()
	results := make([]response, readers)
	errs := make([]error, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() { results[i], errs[i] = a.do(path) })
	}
	deadline := time.Now().Add(30 * time.Second)
	// The source asks Prometheus its start time before the query: wait for
	// the query to reach the proxy as well.
	for a.counter(t, "hpa_signals_cache_misses_total") < readers || proxy.queries.Load() < 1 {
		if time.Now().After(deadline) {
			release()
			wg.Wait()
			t.Fatalf("only %v of %d concurrent reads reached the cache within 30s", a.counter(t, "hpa_signals_cache_misses_total"), readers)
		}
		time.Sleep(5 * time.Millisecond)
	}
	inFlight := proxy.queries.Load()
	release()
	wg.Wait()
	elapsed := time.Since(start)

	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("reader %d: %v", i, errs[i])
		}
		if r.code != http.StatusOK {
			t.Fatalf("reader %d: %d: %s", i, r.code, r.body)
		}
		if r.body != results[0].body {
			t.Fatalf("reader %d got a different answer than reader 0:\n%s\n%s", i, r.body, results[0].body)
		}
	}
	checkPods(t, results[0].list, "http_requests_per_second")
	v := results[0].list.byName()
	if !near(v["web-1"], 10, tolerance) || !near(v["web-2"], 20, tolerance) {
		t.Errorf("values %v, want web-1 10 and web-2 20 ± %.0f%%", v, tolerance*100)
	}
	if inFlight != 1 {
		t.Errorf("%d queries reached Prometheus while %d readers waited, want 1", inFlight, readers)
	}
	if got := proxy.queries.Load(); got != 1 {
		t.Errorf("%d concurrent reads of one cold key sent %d queries to Prometheus, want 1", readers, got)
	}
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"hpa_signals_cache_misses_total", a.counter(t, "hpa_signals_cache_misses_total"), readers},
		{"hpa_signals_cache_hits_total", a.counter(t, "hpa_signals_cache_hits_total"), 0},
		{`hpa_signals_source_queries_total{result="success"}`, a.sourceQueries(t, "success"), 1},
		{`hpa_signals_requests_total{api="pods",code="200"}`, a.counter(t, "hpa_signals_requests_total", "api", "pods", "code", "200"), readers},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	t.Logf("%d concurrent cold reads: all 200 with web-1 %.3f, web-2 %.3f in %s; queries at the proxy %d; misses %v; source queries %v",
		readers, v["web-1"], v["web-2"], elapsed.Round(time.Millisecond), proxy.queries.Load(),
		a.counter(t, "hpa_signals_cache_misses_total"), a.sourceQueries(t, "success"))
	if t.Failed() {
		return
	}

	// Warm reads answer from memory: same value, same sample time, no query.
	start = time.Now()
	for i := range warmReads {
		r := a.get(t, path)
		if r.code != http.StatusOK || r.body != results[0].body {
			t.Fatalf("warm read %d: %d, want the first answer again: %s", i, r.code, r.body)
		}
	}
	warmElapsed := time.Since(start)
	if got := proxy.queries.Load(); got != 1 {
		t.Errorf("%d warm reads sent %d more queries, want 0", warmReads, got-1)
	}
	if got := a.counter(t, "hpa_signals_cache_hits_total"); got != warmReads {
		t.Errorf("hpa_signals_cache_hits_total = %v after %d warm reads, want %d", got, warmReads, warmReads)
	}

	// The refresher leaves a key alone until its interval has passed, then
	// fetches it once.
	a.cache.RefreshDue(t.Context())
	if got := proxy.queries.Load(); got != 1 {
		t.Errorf("refresh pass before the interval sent %d queries, want 0", got-1)
	}
	a.clock.Step(cacheOptions.RefreshInterval)
	a.cache.RefreshDue(t.Context())
	if got := proxy.queries.Load(); got != 2 {
		t.Errorf("refresh pass after the interval sent %d queries, want 1", got-1)
	}
	if got := a.counter(t, "hpa_signals_cache_refreshes_total", "result", "success"); got != 1 {
		t.Errorf(`hpa_signals_cache_refreshes_total{result="success"} = %v, want 1`, got)
	}
	if got := a.sourceQueries(t, "success"); got != 2 {
		t.Errorf(`hpa_signals_source_queries_total{result="success"} = %v, want 2`, got)
	}
	r := a.get(t, path)
	if r.code != http.StatusOK {
		t.Fatalf("read after refresh: %d: %s", r.code, r.body)
	}
	if got := proxy.queries.Load(); got != 2 {
		t.Errorf("read after refresh sent a query, want it answered from memory")
	}
	// The API carries timestamps in whole seconds, so a refresh within the
	// same second may show the same one; it must never go back.
	if old, refreshed := results[0].list.Items[0].Timestamp, r.list.Items[0].Timestamp; refreshed.Before(old) {
		t.Errorf("after the refresh the sample time is %s, before the first answer's %s", refreshed, old)
	}
	t.Logf("%d warm reads in %s: 0 queries; refresh pass: 1 query; %d queries in all",
		warmReads, warmElapsed.Round(time.Millisecond), proxy.queries.Load())
}
