package prometheus_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/hpa-signals/hpa-signals/config"
	"github.com/hpa-signals/hpa-signals/sources/prometheus"
	"github.com/hpa-signals/hpa-signals/test/promtest"
)

// The preset entries' shapes (config's presets are built the same way).
var windowParam = config.Parameter{Name: "window", Default: "2m", Pattern: "[1-9][0-9]{0,3}(s|m|h)"}

var (
	qps = &config.Metric{
		Name: "http_requests_per_second", Source: config.SourcePrometheus,
		Query:          `sum by (<<.GroupBy>>) (rate(http_requests_total{<<.LabelMatchers>>}[<<.Params.window>>]))`,
		Parameters:     []config.Parameter{windowParam},
		SelectorLabels: []string{"handler", "code", "method"},
	}
	p99 = &config.Metric{
		Name: "http_request_duration_seconds_p99", Source: config.SourcePrometheus,
		Query:          `histogram_quantile(0.99, sum by (<<.GroupByWith "le">>) (rate(http_request_duration_seconds_bucket{<<.LabelMatchers>>}[<<.Params.window>>])))`,
		Parameters:     []config.Parameter{windowParam},
		SelectorLabels: []string{"handler", "code", "method"},
	}
	goroutines = &config.Metric{
		Name: "go_goroutines", Source: config.SourcePrometheus,
		Query: `sum by (<<.GroupBy>>) (go_goroutines{<<.LabelMatchers>>})`,
	}
)

const (
	queryTimeout = 2 * time.Second
	latency      = 50 * time.Millisecond
	tolerance    = 0.10 // relative, for steady request rates over a 10s window scraped every 1s
)

func query(t *testing.T, m *config.Metric, namespace, selector string) string {
	t.Helper()
	sel, err := labels.Parse(selector)
	if err != nil {
		t.Fatal(err)
	}
	settings := config.Default().Prometheus
	scope := prometheus.Scope{Labels: settings.Labels, Namespaces: []string{namespace}, GroupBy: []string{settings.Labels.Pod}, MaxRange: settings.MaxRange.Duration}
	q, err := prometheus.BuildQuery(m, scope, sel)
	if err != nil {
		t.Fatalf("build %s query: %v", m.Name, err)
	}
	return q
}

// byPod polls q until check accepts its samples by pod, or fails after 40s.
func byPod(t *testing.T, c *prometheus.Client, q string, check func(map[string]prometheus.Sample) bool) map[string]prometheus.Sample {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		samples, err := c.Query(context.Background(), q)
		got := map[string]prometheus.Sample{}
		for _, s := range samples {
			got[s.Labels["pod"]] = s
		}
		if err == nil && check(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not as expected within 40s; last result %v, error %v", q, got, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func near(got, want, rel float64) bool { return math.Abs(got-want) <= rel*want }

func TestPrometheusSource(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	web1, web2 := promtest.NewTarget(t), promtest.NewTarget(t)
	web1.Load(10, latency)
	web2.Load(20, latency)
	srv := promtest.Start(t,
		web1.As(map[string]string{"namespace": "team-a", "pod": "web-1"}),
		web2.As(map[string]string{"namespace": "team-a", "pod": "web-2"}))

	opts := prometheus.NewOptions()
	opts.URL, opts.Timeout = srv.URL(), queryTimeout
	c, err := prometheus.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("request rate per pod", func(t *testing.T) {
		start := time.Now()
		// While the series are younger than the window, rate() ramps up
		// from 0 (Prometheus does not extrapolate before a series' first
		// sample), so a value is accepted only once it is also stable:
		// within 2% of the previous poll.
		var prev map[string]prometheus.Sample
		got := byPod(t, c, query(t, qps, "team-a", "window=10s"), func(got map[string]prometheus.Sample) bool {
			stable := prev != nil && near(got["web-1"].Value, prev["web-1"].Value, 0.02) && near(got["web-2"].Value, prev["web-2"].Value, 0.02)
			prev = got
			return len(got) == 2 && stable && near(got["web-1"].Value, 10, tolerance) && near(got["web-2"].Value, 20, tolerance)
		})
		t.Logf("rates after %s: web-1 %.2f rps, web-2 %.2f rps", time.Since(start).Round(time.Second), got["web-1"].Value, got["web-2"].Value)
		for pod, s := range got {
			if age := time.Since(s.Timestamp); age < -time.Second || age > 5*time.Second {
				t.Errorf("%s sample time %s is not Prometheus' evaluation time (now %s)", pod, s.Timestamp, time.Now())
			}
		}
	})

	t.Run("p99 latency", func(t *testing.T) {
		// Every request takes 50ms plus scheduling, so all land in the
		// (0.05, 0.1] bucket of the default buckets and histogram_quantile
		// interpolates p99 = 0.05 + 0.99*(0.1-0.05) = 0.0995. A few slow
		// requests (>100ms, <1%) cannot move it out of the bucket.
		// Polled like the rates: a CPU-starved test machine delays some
		// sleeps, and the 10s window forgets them.
		ok := func(s prometheus.Sample) bool { return s.Value > 0.05 && s.Value <= 0.1 && near(s.Value, 0.0995, 0.02) }
		got := byPod(t, c, query(t, p99, "team-a", "window=10s"), func(got map[string]prometheus.Sample) bool {
			return len(got) == 2 && ok(got["web-1"]) && ok(got["web-2"])
		})
		t.Logf("p99: web-1 %.4fs, web-2 %.4fs", got["web-1"].Value, got["web-2"].Value)
	})

	t.Run("goroutines", func(t *testing.T) {
		// go_goroutines counts the whole test process, so both pods report
		// the same number; holding 300 must raise it by 300 ± 50 (load
		// goroutines and connections come and go).
		const held, slack = 300, 50
		q := query(t, goroutines, "team-a", "")
		before := byPod(t, c, q, func(got map[string]prometheus.Sample) bool { return len(got) == 2 })["web-1"].Value
		web1.HoldGoroutines(held)
		after := byPod(t, c, q, func(got map[string]prometheus.Sample) bool {
			return got["web-1"].Value >= before+held-slack
		})["web-1"].Value
		if d := after - before; d > held+slack {
			t.Errorf("go_goroutines rose by %v with %d held, want %d ± %d", d, held, held, slack)
		}
		web1.HoldGoroutines(0)
	})

	t.Run("empty namespace is no data", func(t *testing.T) {
		_, err := c.Query(context.Background(), query(t, qps, "team-empty", "window=10s"))
		if !errors.Is(err, prometheus.ErrNoData) {
			t.Fatalf("err = %v, want ErrNoData", err)
		}
		if !strings.Contains(err.Error(), `namespace="team-empty"`) {
			t.Errorf("error %q does not name the query", err)
		}
	})

	t.Run("non-finite values are dropped", func(t *testing.T) {
		if _, err := c.Query(context.Background(), `vector(0) / 0`); !errors.Is(err, prometheus.ErrNoData) {
			t.Errorf("NaN: err = %v, want ErrNoData", err)
		}
		if _, err := c.Query(context.Background(), `scalar(vector(1)) / 0`); !errors.Is(err, prometheus.ErrNoData) {
			t.Errorf("+Inf scalar: err = %v, want ErrNoData", err)
		}
		got, err := c.Query(context.Background(), `scalar(vector(3))`)
		if err != nil || len(got) != 1 || got[0].Value != 3 || len(got[0].Labels) != 0 {
			t.Errorf("scalar: got %v, %v; want one sample of 3 without labels", got, err)
		}
	})

	t.Run("bad query", func(t *testing.T) {
		_, err := c.Query(context.Background(), `sum(`)
		var apiErr *v1.Error
		if !errors.As(err, &apiErr) || apiErr.Type != v1.ErrBadData || errors.Is(err, prometheus.ErrNoData) {
			t.Fatalf("err = %v, want a bad_data error", err)
		}
		if !strings.Contains(err.Error(), `query Prometheus for "sum("`) || strings.Contains(err.Error(), srv.URL()) {
			t.Errorf("error %q does not say what was being done, or names the Prometheus URL", err)
		}
	})

	t.Run("outage and recovery", func(t *testing.T) {
		q := query(t, qps, "team-a", "window=10s")
		srv.Stop()
		start := time.Now()
		_, err := c.Query(context.Background(), q)
		elapsed := time.Since(start)
		if err == nil || errors.Is(err, prometheus.ErrNoData) {
			t.Fatalf("query with Prometheus stopped: err = %v, want an outage error", err)
		}
		if elapsed > queryTimeout+time.Second {
			t.Errorf("failing query took %s, want < %s", elapsed, queryTimeout+time.Second)
		}
		for _, want := range []string{"Prometheus", fmt.Sprintf("%q", q), "connection refused"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
		if strings.Contains(err.Error(), srv.URL()) {
			t.Errorf("error %q names the Prometheus URL", err)
		}
		srv.Start()
		byPod(t, c, q, func(got map[string]prometheus.Sample) bool { return len(got) == 2 })
	})
}

// TestQueryTimeout checks that a Prometheus that accepts connections but
// never answers fails the query within the timeout, as a timeout.
func TestQueryTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { <-done; conn.Close() }()
		}
	}()
	opts := prometheus.NewOptions()
	opts.URL, opts.Timeout = "http://"+ln.Addr().String(), 500*time.Millisecond
	c, err := prometheus.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Query(context.Background(), "up")
	if elapsed := time.Since(start); elapsed > opts.Timeout+time.Second {
		t.Errorf("query took %s, want about %s", elapsed, opts.Timeout)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "Prometheus") {
		t.Fatalf("err = %v, want a deadline error naming Prometheus", err)
	}
}
