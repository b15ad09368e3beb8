package integration

import (
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/hpa-signals/hpa-signals/test/promtest"
)

// BenchmarkPodsMetric measures one HPA read of a Pods metric through the
// real API handler against a real Prometheus, side by side:
//
//   - hpa-signals: warm reads answered from the cache, as the adapter runs;
//   - query-per-request: every read queries Prometheus, which is what
//     prometheus-adapter does for each API call;
//   - discovery: the API's discovery document, the floor of a request
//     through the same handler chain and client.
//
// Reported per read: time, allocations, Prometheus queries, and the
// process' goroutines after the run.
func BenchmarkPodsMetric(b *testing.B) {
	web1, web2 := promtest.NewTarget(b), promtest.NewTarget(b)
	web1.Load(10, latency)
	web2.Load(20, latency)
	labelsOf := func(pod string) map[string]string {
		return map[string]string{"namespace": "team-a", "pod": pod, "service": "frontend", "deployment": "web"}
	}
	prom := promtest.Start(b, web1.As(labelsOf("web-1")), web2.As(labelsOf("web-2")))
	path := customAPI + podsRate

	// Wait until Prometheus has both pods, so every variant reads the same
	// two-pod answer.
	warmup := newAdapter(b, prom.URL())
	deadline := time.Now().Add(60 * time.Second)
	for {
		warmup.clock.Step(cacheOptions.StaleAfter + time.Second)
		r, err := warmup.do(path)
		if err == nil && r.code == http.StatusOK && len(r.list.Items) == 2 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("no data for both pods within 60s: %v %+v", err, r)
		}
		time.Sleep(200 * time.Millisecond)
	}

	for _, v := range []struct {
		name  string
		fresh bool
	}{{"hpa-signals", false}, {"query-per-request", true}, {"discovery", false}} {
		b.Run(v.name, func(b *testing.B) {
			proxy := newCountingProxy(b, prom.URL())
			a := newAdapter(b, proxy.srv.URL)
			if v.name == "discovery" {
				benchDiscovery(b, a)
				return
			}
			if r, err := a.do(path); err != nil || r.code != http.StatusOK {
				b.Fatalf("first read: %v %+v", err, r)
			}
			before := proxy.queries.Load()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if v.fresh {
					a.clock.Step(cacheOptions.StaleAfter + time.Second)
				}
				r, err := a.do(path)
				if err != nil || r.code != http.StatusOK || len(r.list.Items) != 2 {
					b.Fatalf("read: %v %d %s", err, r.code, r.body)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(proxy.queries.Load()-before)/float64(b.N), "prom-queries/op")
			b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
		})
	}
}

// benchDiscovery reads the custom metrics API's discovery document.
func benchDiscovery(b *testing.B, a *adapter) {
	const path = "/apis/custom.metrics.k8s.io/v1beta2"
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := httpClient.Get(a.srv.URL + path)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
	}
}
