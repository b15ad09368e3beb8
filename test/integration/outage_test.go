package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hpa-signals/hpa-signals/test/promtest"
)

// testOutage stops Prometheus under a fresh adapter that talks to it
// directly (a proxy would turn "connection refused" into a 502), checks the
// adapter serves its last value until the staleness bound and then 503s
// naming Prometheus and the cause, never 0, and recovers after a restart:
// at once for a query without window, and for a rate once its window
// holds data scraped since the restart only.
func testOutage(t *testing.T, prom *promtest.Server) {
	a := newAdapter(t, prom.URL())
	warm := customAPI + podsRate
	cold := customAPI + "/metrics/go_goroutines"

	last := a.waitForRates(t)
	lastBody := a.get(t, warm).body // from memory: the answer to hold on to
	fetchedAt := a.clock.Now()

	prom.Stop()
	// Whatever happens while Prometheus is down, a 503 must say which source
	// failed and why, but not where: Prometheus' address stays internal.
	promHost := strings.TrimPrefix(prom.URL(), "http://")
	check503 := func(t *testing.T, r response, what string) {
		t.Helper()
		if r.code != http.StatusServiceUnavailable {
			t.Fatalf("%s: %d, want 503: %s", what, r.code, r.body)
		}
		for _, w := range []string{"prometheus source failed", "query Prometheus for ", "dial tcp: connect: connection refused"} {
			if !strings.Contains(r.body, w) {
				t.Errorf("%s: 503 body lacks %q: %s", what, w, r.body)
			}
		}
		if strings.Contains(r.body, promHost) {
			t.Errorf("%s: 503 body shows Prometheus' address %s: %s", what, promHost, r.body)
		}
		if r.elapsed > queryTimeout+time.Second {
			t.Errorf("%s: took %s, want < query timeout %s + 1s", what, r.elapsed, queryTimeout)
		}
	}
	errorsBefore := a.sourceQueries(t, "error")

	// Background refreshes fail every interval; reads keep the last value
	// up to and including the staleness bound.
	for a.clock.Since(fetchedAt) < cacheOptions.StaleAfter {
		a.clock.Step(cacheOptions.RefreshInterval)
		a.cache.RefreshDue(t.Context())
		r := a.get(t, warm)
		if r.code != http.StatusOK || r.body != lastBody {
			t.Fatalf("%s after the last fetch, within the staleness bound: %d, want the last value: %s", a.clock.Since(fetchedAt), r.code, r.body)
		}
	}
	refreshes := cacheOptions.StaleAfter / cacheOptions.RefreshInterval
	if got := a.sourceQueries(t, "error") - errorsBefore; got != float64(refreshes) {
		t.Errorf("%v failed queries during %d refresh intervals, want one each", got, refreshes)
	}
	if got := a.counter(t, "hpa_signals_cache_refreshes_total", "result", "error"); got != float64(refreshes) {
		t.Errorf(`hpa_signals_cache_refreshes_total{result="error"} = %v, want %d`, got, refreshes)
	}

	// Past the bound, within the retry delay of the last failed refresh,
	// the remembered failure is the answer; the failing source is not asked
	// again by the reader.
	a.clock.Step(cacheOptions.RetryAfterFailure / 2)
	errorsBefore = a.sourceQueries(t, "error")
	r := a.get(t, warm)
	check503(t, r, "warm key 1s past the staleness bound")
	if got := a.sourceQueries(t, "error") - errorsBefore; got != 0 {
		t.Errorf("reading a key whose refresh just failed sent %v queries, want 0", got)
	}

	// The next refresh fails again, within the query timeout, and so do
	// the reads.
	a.clock.Step(cacheOptions.RefreshInterval)
	start := time.Now()
	a.cache.RefreshDue(t.Context())
	if d := time.Since(start); d > queryTimeout+time.Second {
		t.Errorf("failing refresh pass took %s, want < %s", d, queryTimeout+time.Second)
	}
	for range 5 {
		check503(t, a.get(t, warm), "warm key past the staleness bound")
	}
	t.Logf("warm key: last value served for %s of cache time with Prometheus down, then 503 in %s: %s",
		cacheOptions.StaleAfter, r.elapsed.Round(time.Millisecond), message(r.body))

	r = a.get(t, cold)
	check503(t, r, "cold key")
	t.Logf("cold key: 503 in %s", r.elapsed.Round(time.Millisecond))

	// After a restart, the first read past the retry delay of the last
	// failure asks Prometheus again, without waiting for a refresh pass:
	// the cold key (go_goroutines, no window) gets a fresh value; the warm
	// key's 10s window would span the restart, in which Prometheus scraped
	// nothing, so it is refused with the restart's message until the window
	// holds 10s of data since the first scrape.
	prom.Start()
	restarted := time.Now()
	a.clock.Step(cacheOptions.RetryAfterFailure)
	errorsBefore = a.sourceQueries(t, "error")
	okBefore := a.sourceQueries(t, "success")
	r = a.get(t, warm)
	rc := a.get(t, cold)
	if rc.code != http.StatusOK {
		t.Fatalf("cold key, first read after the restart: %d %s, want a fresh value", rc.code, rc.body)
	}
	if r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "Prometheus restarted at ") ||
		!strings.Contains(r.body, "the query's window is 10s: values resume, over the whole window, 10s after that scrape") {
		t.Fatalf("warm key, first read after the restart: %d %s, want 503 naming the restart and the window", r.code, r.body)
	}
	if got := a.sourceQueries(t, "success") - okBefore; got != 1 {
		t.Errorf("the cold read after the restart made %v successful queries, want 1", got)
	}
	if got := a.sourceQueries(t, "error") - errorsBefore; got != 1 {
		t.Errorf("the warm read after the restart made %v failed queries, want 1 (refused)", got)
	}
	t.Logf("warm key %s after restart: %s", time.Since(restarted).Round(time.Millisecond), message(r.body))

	// The first rates served after the restart are whole: computed over
	// samples scraped since the restart only, never low from the hole.
	deadline := time.Now().Add(40 * time.Second)
	for r = a.getFresh(t, warm); r.code != http.StatusOK; r = a.getFresh(t, warm) {
		if r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "Prometheus restarted at ") || time.Now().After(deadline) {
			t.Fatalf("warm key %s after restart: %d %s, want the restart's 503 until a value", time.Since(restarted).Round(time.Millisecond), r.code, r.body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	checkPods(t, r.list, "http_requests_per_second")
	if r.list.Items[0].Timestamp.Before(last.Items[0].Timestamp) {
		t.Errorf("after recovery the sample time %s is older than before the outage (%s)", r.list.Items[0].Timestamp, last.Items[0].Timestamp)
	}
	v := r.list.byName()
	if !near(v["web-1"], 10, tolerance) || !near(v["web-2"], 20, tolerance) {
		t.Errorf("first rates after the restart: web-1 %.3f, web-2 %.3f; want 10 and 20 within %.0f%%", v["web-1"], v["web-2"], 100*tolerance)
	}
	t.Logf("first rates %s after restart: web-1 %.3f rps, web-2 %.3f rps", time.Since(restarted).Round(100*time.Millisecond), v["web-1"], v["web-2"])
}

// message is the message of a Status body, for logs.
func message(body string) string {
	const key = `"message":"`
	i := strings.Index(body, key)
	if i < 0 {
		return body
	}
	rest := body[i+len(key):]
	if j := strings.Index(rest, `","`); j >= 0 {
		return rest[:j]
	}
	return rest
}
