package integration

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hpa-signals/hpa-signals/internal/localstack/promserver"
	"github.com/hpa-signals/hpa-signals/test/promtest"
)

const (
	latency = 50 * time.Millisecond
	// tolerance is relative, for steady request rates over a 10s window
	// scraped every second (what sources/prometheus' own test holds).
	tolerance = 0.10
	// p99 of requests that all take 50ms: every one lands in the (0.05, 0.1]
	// bucket, so histogram_quantile gives 0.05 + 0.99*0.05.
	wantP99 = 0.0995
)

// podsRate is the Pods request-rate read of the HPAs of team-a's web pods.
const podsRate = "/pods/*/http_requests_per_second?labelSelector=app%3Dweb&metricLabelSelector=window%3D10s"

// TestAdapterAgainstPrometheus runs its subtests against two services with
// a known load (web-1 and web-2 of team-a), scraped by a real Prometheus.
// Each subtest has its own adapter and waits for the data it needs; the
// Prometheus they share is never stopped, and the outage subtest stops one
// of its own, so the subtests pass in any order and alone (-run).
func TestAdapterAgainstPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus; run make test")
	}
	web1, web2 := promtest.NewTarget(t), promtest.NewTarget(t)
	web1.Load(10, latency)
	web2.Load(20, latency)
	scrapeLabels := func(pod string) map[string]string {
		return map[string]string{"namespace": "team-a", "pod": pod, "service": "frontend", "deployment": "web"}
	}
	targets := []promserver.ScrapeTarget{web1.As(scrapeLabels("web-1")), web2.As(scrapeLabels("web-2"))}
	prom := promtest.Start(t, targets...)
	// The outage subtest's own Prometheus, scraping the same services,
	// starts now so that it has data when the subtest runs.
	outageProm := promtest.Start(t, targets...)

	t.Run("pods metric per pod", func(t *testing.T) { testPodsRate(t, newAdapter(t, prom.URL())) })
	t.Run("object metrics", func(t *testing.T) { testObjectMetrics(t, newAdapter(t, prom.URL())) })
	// Holding goroutines in web-1 raises go_goroutines of the whole test
	// process, which only this subtest reads; it lets them go at its end.
	t.Run("goroutines", func(t *testing.T) { testGoroutines(t, newAdapter(t, prom.URL()), web1) })
	t.Run("external metric", func(t *testing.T) { testExternal(t, newAdapter(t, prom.URL())) })
	t.Run("errors", func(t *testing.T) { testErrors(t, prom) })
	t.Run("one query for concurrent misses, none for warm reads", func(t *testing.T) { testCacheQueries(t, prom) })
	t.Run("Prometheus outage", func(t *testing.T) { testOutage(t, outageProm) })
}

// checkPods fails the test if l holds other pods than web-1 and web-2 or
// describes them wrongly, and reports whether both are there.
func checkPods(t *testing.T, l valueList, metric string) bool {
	t.Helper()
	for _, it := range l.Items {
		name := it.DescribedObject.Name
		if name != "web-1" && name != "web-2" {
			t.Fatalf("answer holds pod %q; only web-1 and web-2 are selected and have data: %+v", name, l)
		}
		if it.DescribedObject.Kind != "Pod" || it.DescribedObject.Namespace != "team-a" {
			t.Fatalf("pod %s described as %+v, want a Pod in team-a", name, it.DescribedObject)
		}
		if got := it.Metric.Name + it.MetricName; got != metric {
			t.Fatalf("pod %s: metric name %q, want %q", name, got, metric)
		}
		// Values carry Prometheus' evaluation time, not the cache's (fake)
		// clock nor the time of the HTTP request.
		if age := time.Since(it.Timestamp); age < -2*time.Second || age > 5*time.Second {
			t.Fatalf("pod %s: timestamp %s is not a recent sample time (now %s)", name, it.Timestamp, time.Now())
		}
	}
	return len(l.Items) == 2
}

func testPodsRate(t *testing.T, a *adapter) {
	start := time.Now()
	// While the series are younger than the window, rate() ramps up, so a
	// value counts only once it is also stable: within 2% of the last poll.
	var prev map[string]float64
	l := a.poll(t, customAPI+podsRate, func(l valueList) bool {
		v := l.byName()
		stable := prev != nil && near(v["web-1"], prev["web-1"], 0.02) && near(v["web-2"], prev["web-2"], 0.02)
		prev = v
		return checkPods(t, l, "http_requests_per_second") && stable &&
			near(v["web-1"], 10, tolerance) && near(v["web-2"], 20, tolerance)
	})
	if l.Kind != "MetricValueList" {
		t.Errorf("kind %q, want MetricValueList", l.Kind)
	}
	v := l.byName()
	t.Logf("v1beta2 after %s: web-1 %.3f rps, web-2 %.3f rps (want 10, 20 ± %.0f%%)", time.Since(start).Round(time.Second), v["web-1"], v["web-2"], tolerance*100)

	l = a.poll(t, customAPIv1+podsRate, func(l valueList) bool {
		v := l.byName()
		return checkPods(t, l, "http_requests_per_second") && near(v["web-1"], 10, tolerance) && near(v["web-2"], 20, tolerance)
	})
	v = l.byName()
	t.Logf("v1beta1: web-1 %.3f rps, web-2 %.3f rps", v["web-1"], v["web-2"])
}

func testObjectMetrics(t *testing.T, a *adapter) {
	one := func(t *testing.T, l valueList, kind, name string) float64 {
		t.Helper()
		if len(l.Items) != 1 {
			t.Fatalf("%d values, want 1: %+v", len(l.Items), l)
		}
		it := l.Items[0]
		if it.DescribedObject.Kind != kind || it.DescribedObject.Name != name || it.DescribedObject.Namespace != "team-a" {
			t.Fatalf("described object %+v, want %s %s in team-a", it.DescribedObject, kind, name)
		}
		return it.Value.AsApproximateFloat64()
	}

	t.Run("p99 latency of a service", func(t *testing.T) {
		// The API carries milli precision, so 0.0995 is served as 100m (0.1);
		// ±2% accepts 98m..101m, every one of which is in the (0.05, 0.1] bucket
		// or its rounding.
		var got float64
		a.poll(t, customAPI+"/services/frontend/http_request_duration_seconds_p99?metricLabelSelector=window%3D10s", func(l valueList) bool {
			got = one(t, l, "Service", "frontend")
			return near(got, wantP99, 0.02)
		})
		t.Logf("service frontend p99: %.4fs (want %.4f ± 2%%)", got, wantP99)
	})

	t.Run("request rate of a deployment", func(t *testing.T) {
		// The preset's default window is 2m; this test has ~20s of data, so
		// it asks for 10s, as the pods read does.
		var got float64
		a.poll(t, customAPI+"/deployments.apps/web/http_requests_per_second?metricLabelSelector=window%3D10s", func(l valueList) bool {
			got = one(t, l, "Deployment", "web")
			return near(got, 30, tolerance)
		})
		t.Logf("deployment web: %.3f rps (want 30 ± %.0f%%)", got, tolerance*100)
	})
}

func testGoroutines(t *testing.T, a *adapter, web1 *promtest.Target) {
	// go_goroutines counts the whole test process, so each pod reports the
	// process' count and the namespace sum is twice that: holding 300 must
	// raise each pod by 300 ± 50 and the namespace by 600 ± 100.
	const held, slack = 300, 50
	podsPath := customAPI + "/pods/*/go_goroutines?labelSelector=app%3Dweb"
	nsPath := customAPI + "/metrics/go_goroutines"
	namespace := func(l valueList) float64 {
		if len(l.Items) != 1 || l.Items[0].DescribedObject.Kind != "Namespace" || l.Items[0].DescribedObject.Name != "team-a" {
			t.Fatalf("namespace metric: want one value for Namespace team-a, got %+v", l)
		}
		return l.Items[0].Value.AsApproximateFloat64()
	}

	podsBefore := a.poll(t, podsPath, func(l valueList) bool { return checkPods(t, l, "go_goroutines") }).byName()
	nsBefore := namespace(a.poll(t, nsPath, func(valueList) bool { return true }))

	web1.HoldGoroutines(held)
	defer web1.HoldGoroutines(0)
	podsAfter := a.poll(t, podsPath, func(l valueList) bool {
		v := l.byName()
		return checkPods(t, l, "go_goroutines") &&
			v["web-1"] >= podsBefore["web-1"]+held-slack && v["web-2"] >= podsBefore["web-2"]+held-slack
	}).byName()
	var nsAfter float64
	a.poll(t, nsPath, func(l valueList) bool {
		nsAfter = namespace(l)
		return nsAfter >= nsBefore+2*(held-slack)
	})
	for _, pod := range []string{"web-1", "web-2"} {
		if d := podsAfter[pod] - podsBefore[pod]; d > held+slack {
			t.Errorf("pod %s: go_goroutines rose by %v with %d held, want %d ± %d", pod, d, held, held, slack)
		}
	}
	if d := nsAfter - nsBefore; d > 2*(held+slack) {
		t.Errorf("namespace team-a: go_goroutines rose by %v with %d held in one process scraped as 2 pods, want %d ± %d", d, held, 2*held, 2*slack)
	}
	t.Logf("held %d: pods web-1 %v -> %v, web-2 %v -> %v; namespace %v -> %v (delta %v)",
		held, podsBefore["web-1"], podsAfter["web-1"], podsBefore["web-2"], podsAfter["web-2"], nsBefore, nsAfter, nsAfter-nsBefore)
}

func testExternal(t *testing.T, a *adapter) {
	var got float64
	a.poll(t, externalAPI+"/http_requests_per_second?labelSelector=window%3D10s", func(l valueList) bool {
		if len(l.Items) != 1 || l.Items[0].MetricName != "http_requests_per_second" {
			t.Fatalf("want one http_requests_per_second value for the namespace, got %+v", l)
		}
		got = l.Items[0].Value.AsApproximateFloat64()
		return near(got, 30, tolerance)
	})
	t.Logf("external team-a: %.3f rps (want 30 ± %.0f%%)", got, tolerance*100)
}

// testErrors reads through a proxy that counts the queries reaching
// Prometheus: only the namespace without series should cost one.
func testErrors(t *testing.T, prom *promtest.Server) {
	proxy := newCountingProxy(t, prom.URL())
	a := newAdapter(t, proxy.srv.URL)
	for _, tc := range []struct {
		name     string
		path     string
		wantCode int
		want     []string // substrings of the Status message
		queries  int64    // queries that reach Prometheus
	}{
		{"unknown metric is 404",
			customAPI + "/pods/*/no_such_metric", http.StatusNotFound,
			[]string{`metric \"no_such_metric\" is not in the catalog`}, 0},
		{"namespace without series is 404, asked of Prometheus",
			"/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-empty" + podsRate, http.StatusNotFound,
			[]string{"no data", `namespace=\"team-empty\"`}, 1},
		{"parameter outside its pattern is 400",
			customAPI + "/pods/*/http_requests_per_second?metricLabelSelector=window%3Dforever", http.StatusBadRequest,
			[]string{"window"}, 0},
		{"malformed selector is 400",
			externalAPI + "/http_requests_per_second?labelSelector=" + url.QueryEscape("code in (200"), http.StatusBadRequest,
			[]string{`labelSelector \"code in (200\" is not a valid label selector`}, 0},
		{"regex metric selector is 400, not 500",
			customAPI + "/pods/*/http_requests_per_second?metricLabelSelector=" + url.QueryEscape("handler=.*"), http.StatusBadRequest,
			[]string{`metricLabelSelector \"handler=.*\" is not a valid label selector`, "not regular expressions or PromQL"}, 0},
		{"alternation in a metric selector is 400",
			customAPI + "/services/frontend/http_request_duration_seconds_p99?metricLabelSelector=" + url.QueryEscape("handler in (a|b)"), http.StatusBadRequest,
			[]string{`metricLabelSelector \"handler in (a|b)\" is not a valid label selector`}, 0},
		{"PromQL injection in a selector is 400",
			externalAPI + "/http_requests_per_second?labelSelector=" + url.QueryEscape(`handler=a"}or{x="`), http.StatusBadRequest,
			[]string{`is not a valid label selector`}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := proxy.queries.Load()
			r := a.getFresh(t, tc.path)
			if r.code != tc.wantCode {
				t.Fatalf("GET %s = %d, want %d: %s", tc.path, r.code, tc.wantCode, r.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.body, w) {
					t.Errorf("body lacks %q: %s", w, r.body)
				}
			}
			if got := proxy.queries.Load() - before; got != tc.queries {
				t.Errorf("%d queries reached Prometheus, want %d", got, tc.queries)
			}
		})
	}
}
