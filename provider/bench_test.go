package provider_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/provider"
	"github.com/hpa-signals/hpa-signals/provider/providertest"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
)

// benchPods is how many Running pods the benchmarked HPA selects.
const benchPods = 50

// staticPrometheus answers every query with the same samples.
type staticPrometheus []prometheus.Sample

func (s staticPrometheus) Query(context.Context, string) ([]prometheus.Sample, error) {
	return s, nil
}

// benchHandler is the adapter's handler chain over the default catalog,
// with benchPods pods of app=web in team-a that all have a request rate,
// and 50 other pods without one.
func benchHandler(b *testing.B) http.Handler {
	b.Helper()
	pods := providertest.Pods{"team-a": {}}
	var samples staticPrometheus
	for i := range benchPods {
		name := fmt.Sprintf("web-%d", i)
		pods["team-a"][name] = labels.Set{"app": "web"}
		pods["team-a"][fmt.Sprintf("db-%d", i)] = labels.Set{"app": "db"}
		samples = append(samples, prometheus.Sample{
			Labels:    map[string]string{"pod": name},
			Value:     float64(i) + 0.5,
			Timestamp: sampleTime,
		})
	}
	cat := config.Default()
	cache := provider.NewCache(*provider.NewCacheOptions(), nil, nil)
	p := provider.New(provider.Options{
		Catalog:    func() *config.Catalog { return cat },
		Prometheus: samples,
		Pods:       pods,
		Cache:      cache,
	})
	return providertest.NewHandler(b, p)
}

// discard is a ResponseWriter that keeps the status and counts the body.
type discard struct {
	header http.Header
	code   int
	n      int
}

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) WriteHeader(code int)        { d.code = code }
func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

// podsWarmPath is the warm Pods read BenchmarkServe measures.
const podsWarmPath = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-a/pods/*/http_requests_per_second?labelSelector=app%3Dweb"

// servePaths are the requests BenchmarkServe compares, with the media type
// each asks for: JSON, as kubectl and HTTP tools ask, and protobuf, which
// the kube-controller-manager's HPA controller asks for by default
// (--kube-api-content-type).
var servePaths = []struct{ name, path, accept string }{
	{"discovery", "/apis/custom.metrics.k8s.io/v1beta2", runtime.ContentTypeJSON},
	{"pods-warm", podsWarmPath, runtime.ContentTypeJSON},
	{"pods-warm-protobuf", podsWarmPath, runtime.ContentTypeProtobuf},
}

// BenchmarkServe drives the real custom-metrics-apiserver handler chain in
// process, 8 concurrent requests per core (16 on 2 cores), for a warm Pods
// read of benchPods pods and for discovery of the same API: the warm read's
// cost against the floor of the handler chain. The cache is warm; no source
// is asked during the run.
//
//	go test -run '^$' -bench BenchmarkServe -benchmem -cpuprofile cpu.out -memprofile mem.out ./provider/
func BenchmarkServe(b *testing.B) {
	h := benchHandler(b)
	for _, r := range servePaths {
		b.Run(r.name, func(b *testing.B) { benchServe(b, h, r.path, r.accept) })
	}
}

func benchServe(b *testing.B, h http.Handler, path, accept string) {
	serve := func() *discard {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Accept", accept)
		w := &discard{header: http.Header{}, code: http.StatusOK}
		h.ServeHTTP(w, req)
		return w
	}
	if w := serve(); w.code != http.StatusOK || w.n == 0 || w.header.Get("Content-Type") != accept {
		b.Fatalf("GET %s (Accept: %s): %d, %d bytes of %s", path, accept, w.code, w.n, w.header.Get("Content-Type"))
	}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	cpu := processCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if w := serve(); w.code != http.StatusOK {
				b.Errorf("GET %s: %d", path, w.code)
				return
			}
		}
	})
	b.StopTimer()
	// CPU time rather than wall time is the cost: on a shared machine the
	// wall time per request includes waiting for other processes.
	b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
}

// processCPU is the CPU time this process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestServeBenchmark keeps BenchmarkServe from rotting: a short run of each
// of its requests succeeds (make test runs it; the figures are make
// bench's).
func TestServeBenchmark(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the benchmark's loop")
	}
	var h http.Handler
	for _, r := range servePaths {
		res := testing.Benchmark(func(b *testing.B) {
			if h == nil {
				h = benchHandler(b)
			}
			benchServe(b, h, r.path, r.accept)
		})
		if res.N == 0 {
			t.Fatalf("%s: the benchmark failed", r.name)
		}
		t.Logf("%s: %s %s %.0f cpu-ns/op", r.name, res, res.MemString(), res.Extra["cpu-ns/op"])
	}
}
