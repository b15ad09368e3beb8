//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// BenchmarkPodsRead measures hpa-signals' main request, an HPA's Pods read
// of 50 pods (podsReadPath), and discovery of custom.metrics.k8s.io v1beta2
// beside it, under a closed-loop HTTP/2 load of 16 requests in flight for
// $HPA_SIGNALS_LOAD_DURATION (5s) per row, against hpa-signals (default
// flags) and prometheus-adapter v0.12.0, each directly and through the
// kube-apiserver's aggregator, all in one run on the start fixture (50
// pods, 1,000 series). Per row: 200s per second, p50 and p99 latency, the
// CPU time per request of the adapter, the kube-apiserver and Prometheus,
// and the bytes the adapter allocated per request. Then
// a Prometheus outage: how long each adapter takes to answer again with
// values evaluated after Prometheus is back. Run it with make bench
// (BENCH=PodsRead).
func BenchmarkPodsRead(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	d := loadDuration(b)
	fx := newPodsReadFixture(ctx, b)
	b.Logf("load average before: %s", loadAverage(b))
	figures := map[string]rowFigures{}
	fx.forEachRow(ctx, b, func(row podsReadRow) {
		b.Run(row.name, func(b *testing.B) {
			f := fx.measure(ctx, b, row, d)
			b.Logf("%s: %s", row.name, f)
			figures[row.name] = f
			b.ReportMetric(f.PerSecond(), "req/s")
			b.ReportMetric(ms(f.P50), "p50-ms")
			b.ReportMetric(ms(f.P99), "p99-ms")
			b.ReportMetric(ms(f.cpu), "cpu-ms/req")
			if f.alloc >= 0 {
				b.ReportMetric(f.alloc, "alloc-B/req")
			}
			b.ReportMetric(ms(f.apiserverCPU), "apiserver-cpu-ms/req")
			b.ReportMetric(ms(f.promCPU), "prometheus-cpu-ms/req")
			b.ReportMetric(0, "ns/op")
			if len(f.Failed) > 0 {
				b.Errorf("%s: answers other than 200: %v (first error %q)", row.name, f.Failed, f.FirstError)
			}
		})
	})
	b.Run("outage", func(b *testing.B) {
		for name, r := range fx.measureOutage(ctx, b) {
			b.Logf("%s: %s", name, r)
			b.ReportMetric(r.failed.Seconds(), name+"-error-s")
			b.ReportMetric(ms(r.recovered), name+"-recovery-ms")
		}
		b.ReportMetric(0, "ns/op")
	})
	b.Logf("load average after: %s", loadAverage(b))
	b.Log(podsReadSummary(figures))
}

// TestPodsRead is the short form of BenchmarkPodsRead, in make test so the
// harness keeps working: every row for a second, every answer a 200 and
// the figures sane, and the outage.
func TestPodsRead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	fx := newPodsReadFixture(ctx, t)
	figures := map[string]rowFigures{}
	fx.forEachRow(ctx, t, func(row podsReadRow) {
		t.Run(row.name, func(t *testing.T) {
			f := fx.measure(ctx, t, row, time.Second)
			t.Logf("%s", f)
			figures[row.name] = f
			if len(f.Failed) > 0 || f.OK == 0 || f.OK != f.Requests {
				t.Errorf("%d requests, %d answered 200, others %v (first error %q): want only 200s", f.Requests, f.OK, f.Failed, f.FirstError)
			}
			if f.PerSecond() <= 0 || f.P50 <= 0 || f.P99 < f.P50 || f.Elapsed < time.Second {
				t.Errorf("%.0f/s, p50 %s, p99 %s over %s: want a rate, 0 < p50 <= p99, at least 1s", f.PerSecond(), f.P50, f.P99, f.Elapsed)
			}
			if f.cpu <= 0 || (row.aggregator && f.apiserverCPU <= 0) {
				t.Errorf("CPU per request: adapter %s, kube-apiserver %s: want the adapter's positive, and the kube-apiserver's through the aggregator", f.cpu, f.apiserverCPU)
			}
			// hpa-signals' /metrics has the Go runtime's counters.
			if row.adapter == fx.hs && f.alloc <= 0 {
				t.Errorf("hpa-signals allocated %g bytes per request: want positive (go_memstats_alloc_bytes_total on /metrics)", f.alloc)
			}
		})
	})
	t.Log(podsReadSummary(figures))
	t.Run("outage", func(t *testing.T) {
		for name, r := range fx.measureOutage(ctx, t) {
			t.Logf("%s: %s", name, r)
			// The last values are served until they are older than
			// --max-staleness (3s), refreshed every second before.
			if name == "hpa-signals" && r.failed < 2*time.Second {
				t.Errorf("hpa-signals failed %s after Prometheus stopped: want its last values served for about 3s (--max-staleness)", r.failed)
			}
			if r.recovered > 30*time.Second {
				t.Errorf("%s answered fresh values %s after Prometheus was back, want within 30s", name, r.recovered)
			}
		}
	})
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// podsReadSummary is the rows as a table, and the ratios the performance
// targets are about.
func podsReadSummary(figures map[string]rowFigures) string {
	var s strings.Builder
	s.WriteString("\n| row | req/s | p50 | p99 | adapter CPU/req | adapter alloc/req | kube-apiserver CPU/req | Prometheus CPU/req |\n|---|---|---|---|---|---|---|---|\n")
	for _, a := range []string{"hpa-signals", "prometheus-adapter"} {
		for _, route := range []string{"direct", "aggregator"} {
			for _, req := range []string{"pods", "pods-protobuf", "discovery"} {
				name := a + "/" + req + "/" + route
				f, ok := figures[name]
				if !ok {
					continue
				}
				alloc := "n/a"
				if f.alloc >= 0 {
					alloc = fmt.Sprintf("%.1f KB", f.alloc/1000)
				}
				fmt.Fprintf(&s, "| %s | %.0f | %.2f ms | %.2f ms | %.0f µs | %s | %.0f µs | %.0f µs |\n",
					name, f.PerSecond(), ms(f.P50), ms(f.P99), us(f.cpu), alloc, us(f.apiserverCPU), us(f.promCPU))
			}
		}
	}
	adapter := func(f rowFigures) time.Duration { return f.cpu }
	all := func(f rowFigures) time.Duration { return f.cpu + f.apiserverCPU + f.promCPU }
	ratio := func(what, x, y string, cost func(rowFigures) time.Duration) {
		fx, okx := figures[x]
		fy, oky := figures[y]
		if okx && oky && cost(fy) > 0 {
			fmt.Fprintf(&s, "%s: %.2fx (%s / %s)\n", what, float64(cost(fx))/float64(cost(fy)), x, y)
		}
	}
	ratio("adapter CPU per request, Pods read vs discovery, hpa-signals direct", "hpa-signals/pods/direct", "hpa-signals/discovery/direct", adapter)
	ratio("adapter CPU per request, Pods read in protobuf vs discovery, hpa-signals direct", "hpa-signals/pods-protobuf/direct", "hpa-signals/discovery/direct", adapter)
	ratio("adapter CPU per request, Pods read vs discovery, prometheus-adapter direct", "prometheus-adapter/pods/direct", "prometheus-adapter/discovery/direct", adapter)
	ratio("adapter CPU per request, Pods read, hpa-signals vs prometheus-adapter, direct", "hpa-signals/pods/direct", "prometheus-adapter/pods/direct", adapter)
	ratio("adapter, kube-apiserver and Prometheus CPU per request, Pods read, hpa-signals vs prometheus-adapter, direct", "hpa-signals/pods/direct", "prometheus-adapter/pods/direct", all)
	ratio("adapter, kube-apiserver and Prometheus CPU per request, Pods read, hpa-signals vs prometheus-adapter, through the aggregator", "hpa-signals/pods/aggregator", "prometheus-adapter/pods/aggregator", all)
	return s.String()
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// outageFigures is one adapter through a Prometheus outage: how long after
// Prometheus stopped its Pods read first failed, and how long after
// Prometheus was ready again it first answered 200 with every value
// evaluated after the stop.
type outageFigures struct{ failed, recovered time.Duration }

func (r outageFigures) String() string {
	return fmt.Sprintf("first error %s after Prometheus stopped, fresh values %s after it was ready again",
		r.failed.Round(time.Millisecond), r.recovered.Round(time.Millisecond))
}

// measureOutage stops Prometheus and starts it again while an hpa-signals
// started for it (--refresh-interval=1s --max-staleness=3s, so stale
// values end within seconds; --retry-after-failure is its default, 1s)
// and the fixture's prometheus-adapter are asked the Pods read every 10
// ms. Prometheus keeps its data over the restart.
func (fx *podsReadFixture) measureOutage(ctx context.Context, tb testing.TB) map[string]outageFigures {
	tb.Helper()
	hs := startAdapterProc(ctx, tb, fx.l, "hpa-signals-outage", fx.bins[0].path, "--prometheus-url="+fx.promURL, "--refresh-interval=1s", "--max-staleness=3s")
	adapters := []*adapterProc{hs, fx.pa}
	for _, a := range adapters {
		fx.waitPodsRead(ctx, tb, a, a.name)
	}
	stopped := time.Now()
	fx.prom.Stop()
	failed := fx.pollEach(ctx, tb, adapters, stopped, "fail the Pods read with Prometheus stopped", func(a *adapterProc) bool {
		code, _ := a.get(ctx, podsReadPath)
		return code != http.StatusOK
	})
	fx.prom.Start()
	ready := time.Now()
	recovered := fx.pollEach(ctx, tb, adapters, ready, "answer the Pods read with values from after the restart", func(a *adapterProc) bool {
		return freshPodsRead(ctx, a, stopped)
	})
	out := map[string]outageFigures{}
	for _, a := range adapters {
		out[strings.TrimSuffix(a.name, "-outage")] = outageFigures{failed: failed[a], recovered: recovered[a]}
	}
	return out
}

// pollEach asks each adapter done(a) every 10ms until it holds for all,
// and returns when it first held for each, from since.
func (fx *podsReadFixture) pollEach(ctx context.Context, tb testing.TB, adapters []*adapterProc, since time.Time, what string, done func(*adapterProc) bool) map[*adapterProc]time.Duration {
	tb.Helper()
	at := map[*adapterProc]time.Duration{}
	for deadline := since.Add(2 * time.Minute); len(at) < len(adapters); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			tb.Fatalf("%d of %d adapters did not %s within 2 minutes", len(adapters)-len(at), len(adapters), what)
		}
		for _, a := range adapters {
			if _, ok := at[a]; !ok && done(a) {
				at[a] = time.Since(since)
			}
		}
	}
	return at
}

// freshPodsRead reports whether a answers the Pods read with 200 and
// every pod's value evaluated after since (the values' timestamps are
// Prometheus' evaluation time, in whole seconds, so a value from before
// since is never after it).
func freshPodsRead(ctx context.Context, a *adapterProc, since time.Time) bool {
	code, body := a.get(ctx, podsReadPath)
	if code != http.StatusOK {
		return false
	}
	var list struct {
		Items []struct{ Timestamp time.Time }
	}
	if err := json.Unmarshal(body, &list); err != nil || len(list.Items) != startPods {
		return false
	}
	for _, it := range list.Items {
		if !it.Timestamp.After(since) {
			return false
		}
	}
	return true
}
