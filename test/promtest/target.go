package promtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hpa-signals/hpa-signals/internal/localstack/promserver"
)

// Handler is the handler label value of the requests a Target's load
// generates.
const Handler = "/work"

// Target is an in-process Go service instrumented like a real one with
// client_golang: http_requests_total{code,method,handler},
// http_request_duration_seconds{code,method,handler} (default buckets) and
// the Go collector, served on /metrics from its own registry. Its load is
// generated in-process at a known rate and latency.
//
// go_goroutines is the goroutine count of the whole test process, so every
// Target in one test reports the same value: assert differences around
// HoldGoroutines, not absolute values.
//
// A Target is safe for concurrent use; Close (also run by the test's
// cleanup) stops its load and goroutines and waits for them.
type Target struct {
	// Registry holds the Target's metrics; a test may register more.
	Registry *prometheus.Registry

	srv     *httptest.Server
	handler http.Handler

	mu      sync.Mutex
	latency time.Duration
	ctx     context.Context
	cancel  context.CancelFunc
	stopRun context.CancelFunc // stops the current Load
	stopHld context.CancelFunc // releases the current HoldGoroutines
	wg      sync.WaitGroup
}

// NewTarget starts a Target listening on 127.0.0.1.
func NewTarget(t testing.TB) *Target {
	t.Helper()
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total",
		Help: "Total number of HTTP requests by status code, method and handler.",
	}, []string{"code", "method", "handler"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_request_duration_seconds",
		Help:    "Duration of HTTP requests in seconds.",
		Buckets: prometheus.DefBuckets,
	}, []string{"code", "method", "handler"})
	reg.MustRegister(requests, duration, collectors.NewGoCollector())

	ctx, cancel := context.WithCancel(context.Background())
	tg := &Target{Registry: reg, ctx: ctx, cancel: cancel}
	work := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tg.mu.Lock()
		d := tg.latency
		tg.mu.Unlock()
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})
	label := prometheus.Labels{"handler": Handler}
	tg.handler = promhttp.InstrumentHandlerDuration(duration.MustCurryWith(label),
		promhttp.InstrumentHandlerCounter(requests.MustCurryWith(label), work))

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle(Handler, tg.handler)
	tg.srv = httptest.NewServer(mux)
	t.Cleanup(tg.Close)
	return tg
}

// Address is the host:port Prometheus scrapes.
func (tg *Target) Address() string { return strings.TrimPrefix(tg.srv.URL, "http://") }

// As returns the Target as a scrape target with labels attached, e.g.
// {"namespace": "team-a", "pod": "web-1"}.
func (tg *Target) As(labels map[string]string) promserver.ScrapeTarget {
	return promserver.ScrapeTarget{Address: tg.Address(), Labels: labels}
}

// Load serves rps GET requests per second through the instrumented handler,
// each taking latency, until the next Load, Close or the end of the test.
// Requests run concurrently (at most rps*latency+2 in flight, more are
// skipped) so the rate holds whatever the latency. rps <= 0 stops the load.
func (tg *Target) Load(rps float64, latency time.Duration) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if tg.stopRun != nil {
		tg.stopRun()
		tg.stopRun = nil
	}
	tg.latency = latency
	if rps <= 0 || tg.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(tg.ctx)
	tg.stopRun = cancel
	interval := time.Duration(float64(time.Second) / rps)
	slots := make(chan struct{}, int(rps*latency.Seconds())+2)
	tg.wg.Add(1)
	go func() {
		defer tg.wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			select {
			case slots <- struct{}{}:
			default:
				continue // saturated: skip rather than pile up
			}
			tg.wg.Add(1)
			go func() {
				defer tg.wg.Done()
				defer func() { <-slots }()
				req := httptest.NewRequestWithContext(ctx, http.MethodGet, Handler, nil)
				tg.handler.ServeHTTP(httptest.NewRecorder(), req)
			}()
		}
	}()
}

// HoldGoroutines keeps n extra goroutines parked, replacing the previous
// hold, until the next call, Close or the end of the test. n <= 0 releases
// them. It returns once they are all running.
func (tg *Target) HoldGoroutines(n int) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if tg.stopHld != nil {
		tg.stopHld()
		tg.stopHld = nil
	}
	if n <= 0 || tg.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(tg.ctx)
	tg.stopHld = cancel
	var started sync.WaitGroup
	started.Add(n)
	tg.wg.Add(n)
	for range n {
		go func() {
			defer tg.wg.Done()
			started.Done()
			<-ctx.Done()
		}()
	}
	started.Wait()
}

// Close stops the load and held goroutines, waits for them and shuts the
// server down. Safe to call twice.
func (tg *Target) Close() {
	tg.mu.Lock()
	tg.cancel() // under mu: Load and HoldGoroutines add no goroutine after it
	tg.mu.Unlock()
	tg.wg.Wait()
	tg.srv.Close()
}
