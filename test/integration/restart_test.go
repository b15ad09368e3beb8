package integration

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"

	"github.com/hpa-signals/hpa-signals/provider/providertest"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
	"github.com/hpa-signals/hpa-signals/test/promtest"
)

const (
	// jobsPerSecond is the constant rate of the restart test's counter.
	jobsPerSecond = 5.0
	// restartWindow and restartMinWindow are the restart test's window
	// and --prometheus-min-window-after-restart, short so it takes well
	// under a minute.
	restartWindow    = 12 * time.Second
	restartMinWindow = 4 * time.Second
	// rateTolerance is relative: a counter that grows exactly linearly
	// gives Prometheus' rate its value up to the few milliseconds between
	// a scrape's timestamp and the moment the counter is read.
	rateTolerance = 0.02
)

// TestPrometheusRestart stops and restarts a real Prometheus (same data
// directory: the data before the outage stays, with a hole) that scrapes
// a counter growing at a known constant rate, and reads its rate over a
// 12s window through the adapter's Prometheus source: refused with the
// restart's message right after the restart, shortened to the time since
// Prometheus' first scrape once that is 4s, with the known rate; the query
// as written once 12s of data are there.
func TestPrometheusRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus; run make test")
	}
	tg := promtest.NewTarget(t)
	born := time.Now()
	tg.Registry.MustRegister(promclient.NewCounterFunc(promclient.CounterOpts{
		Name: "jobs_processed_total", Help: "Jobs processed, at a constant rate.",
	}, func() float64 { return jobsPerSecond * time.Since(born).Seconds() }))
	prom := promtest.Start(t, tg.As(map[string]string{"namespace": "team-a", "pod": "worker-1"}))

	reg := promclient.NewRegistry()
	opts := prometheus.NewOptions()
	opts.URL, opts.Timeout, opts.MinWindowAfterRestart, opts.Registerer = prom.URL(), queryTimeout, restartMinWindow, reg
	client, err := prometheus.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	const q = `sum(rate(jobs_processed_total{namespace="team-a"}[12s]))`
	counted := func(result string) float64 {
		v, _ := providertest.Counter(t, reg, "hpa_signals_prometheus_restart_evaluations_total", "result", result)
		return v
	}
	// read evaluates q now: how the source runs it, and its value.
	read := func() (prometheus.Evaluation, float64, error) {
		ev, err := client.Evaluation(t.Context(), q)
		if err != nil {
			return ev, 0, err
		}
		samples, err := client.Query(t.Context(), q)
		if err != nil {
			return ev, 0, err
		}
		if len(samples) != 1 {
			// Fewer than two samples yet: rate has no value.
			return ev, 0, fmt.Errorf("%d samples, want 1", len(samples))
		}
		return ev, samples[0].Value, nil
	}
	// until reads every 250ms until done accepts an answer, for at most 30s.
	until := func(what string, done func(prometheus.Evaluation, float64, error) bool) (prometheus.Evaluation, float64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			ev, v, err := read()
			if done(ev, v, err) {
				return ev, v
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s; last: %+v %v %v", what, ev, v, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	whole := func(ev prometheus.Evaluation, v float64, err error) bool {
		return err == nil && ev.Query == q && !ev.Shortened()
	}

	// Prometheus has just started with an empty data directory: nothing
	// before its start, so no hole; the query runs as written from the
	// first read on, never refused nor shortened.
	until("the rate after the first start", func(ev prometheus.Evaluation, v float64, err error) bool {
		if errors.Is(err, prometheus.ErrWindowAfterRestart) || ev.Query != q || ev.Shortened() {
			t.Fatalf("after the first start, with no data before it: %+v, %v; want the query as written", ev, err)
		}
		return err == nil && near(v, jobsPerSecond, rateTolerance)
	})
	if got := counted("refused") + counted("shortened"); got != 0 {
		t.Errorf("after the first start: %v queries refused or shortened, want none", got)
	}

	stopped := time.Now()
	prom.Stop()
	time.Sleep(3 * time.Second)
	if _, err := client.Query(t.Context(), q); err == nil || errors.Is(err, prometheus.ErrWindowAfterRestart) {
		t.Fatalf("query with Prometheus down: %v, want it to fail", err)
	}
	refusedBefore := counted("refused")
	prom.Start()
	restarted := time.Now()

	// Right after the restart: refused, saying when values come back.
	_, err = client.Query(t.Context(), q)
	var re *prometheus.RestartError
	if !errors.As(err, &re) {
		t.Fatalf("first query after the restart: %v, want the restart's refusal", err)
	}
	if re.Started.Before(stopped) || re.Started.After(restarted) {
		t.Errorf("Prometheus' start time %s is not between the stop (%s) and the restart (%s)", re.Started, stopped, restarted)
	}
	for _, want := range []string{"Prometheus restarted at " + re.Started.UTC().Format("15:04:05Z"), "the query's window is 12s",
		"once it is at least 4s (--prometheus-min-window-after-restart)", "values resume "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal lacks %q: %v", want, err)
		}
	}
	if got := counted("refused") - refusedBefore; got != 1 {
		t.Errorf("hpa_signals_prometheus_restart_evaluations_total{result=refused} grew by %v, want 1", got)
	}
	t.Logf("%s after the restart: %v", time.Since(restarted).Round(time.Millisecond), err)

	// From 4s after the first scrape: the window since that scrape, and
	// the known rate, never a rate diluted by the hole.
	ev, v := until("a shortened window", func(ev prometheus.Evaluation, _ float64, err error) bool {
		if errors.Is(err, prometheus.ErrWindowAfterRestart) {
			return false
		}
		if err != nil {
			t.Fatalf("%s after the restart: %v, want the refusal or a value", time.Since(restarted).Round(time.Millisecond), err)
		}
		return true
	})
	if !ev.Shortened() || ev.Window < restartMinWindow || ev.Window >= restartWindow || ev.DataSince.Before(re.Started) {
		t.Fatalf("first value after the restart: %+v, want a window of 4s to 12s since the first scrape", ev)
	}
	if !strings.Contains(ev.Query, "[") || strings.Contains(ev.Query, "[12s]") {
		t.Errorf("shortened query %s still reads 12s", ev.Query)
	}
	if !near(v, jobsPerSecond, rateTolerance) {
		t.Errorf("rate over the shortened window %s: %.4f, want %.1f within %.0f%%", ev.Window, v, jobsPerSecond, 100*rateTolerance)
	}
	if counted("shortened") < 1 {
		t.Error("hpa_signals_prometheus_restart_evaluations_total{result=shortened} did not count the shortened query")
	}
	t.Logf("%s after the restart, first scrape %s after it: %s = %.4f", time.Since(restarted).Round(time.Millisecond),
		ev.DataSince.Sub(re.Started).Round(time.Millisecond), ev.Query, v)

	// 12s after the first scrape: the query as written.
	ev, v = until("a whole window after the restart", func(ev prometheus.Evaluation, v float64, err error) bool {
		if err == nil && ev.Shortened() && !near(v, jobsPerSecond, rateTolerance) {
			t.Errorf("rate over the shortened window %s: %.4f, want %.1f", ev.Window, v, jobsPerSecond)
		}
		return whole(ev, v, err)
	})
	if !near(v, jobsPerSecond, rateTolerance) || math.IsNaN(v) {
		t.Errorf("rate over the whole window after the restart: %.4f, want %.1f", v, jobsPerSecond)
	}
	t.Logf("%s after the restart: %s = %.4f", time.Since(restarted).Round(time.Millisecond), ev.Query, v)
}
