package prometheus_test

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hpa-signals/hpa-signals/sources/prometheus"
	"github.com/hpa-signals/hpa-signals/test/promtest"
)

func TestInspect(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	web := promtest.NewTarget(t)
	srv := promtest.Start(t, web.As(map[string]string{"kubernetes_namespace": "team-r", "kubernetes_pod_name": "web-r"}))
	opts := prometheus.NewOptions()
	opts.URL, opts.Timeout = srv.URL(), queryTimeout
	c, err := prometheus.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("QueryAll keeps NaN and answers an empty result", func(t *testing.T) {
		got, err := c.QueryAll(ctx, `vector(0) / 0`)
		if err != nil || len(got) != 1 || !math.IsNaN(got[0].Value) {
			t.Errorf("vector(0)/0: %v, %v; want one NaN sample", got, err)
		}
		got, err = c.QueryAll(ctx, `go_goroutines{namespace="team-r"}`)
		if err != nil || len(got) != 0 {
			t.Errorf("a selector without series: %v, %v; want no samples and no error", got, err)
		}
		if _, err := c.QueryAll(ctx, `sum(`); err == nil {
			t.Error("a query that does not parse: no error")
		}
	})

	t.Run("RecentLabelNames", func(t *testing.T) {
		var names []string
		deadline := time.Now().Add(30 * time.Second)
		for !slices.Contains(names, "kubernetes_namespace") {
			if time.Now().After(deadline) {
				t.Fatalf("label names of go_goroutines: %v, %v; want kubernetes_namespace among them within 30s", names, err)
			}
			time.Sleep(200 * time.Millisecond)
			names, err = c.RecentLabelNames(ctx, []string{`{__name__="go_goroutines"}`}, time.Minute)
		}
		for _, want := range []string{"__name__", "kubernetes_pod_name", "instance", "job"} {
			if !slices.Contains(names, want) {
				t.Errorf("label names %v lack %q", names, want)
			}
		}
		if slices.Contains(names, "namespace") {
			t.Errorf("label names %v hold namespace, which no series carries", names)
		}
		names, err = c.RecentLabelNames(ctx, []string{`go_goroutines{kubernetes_namespace="team-other"}`}, time.Minute)
		if err != nil || len(names) != 0 {
			t.Errorf("label names of no series: %v, %v; want none", names, err)
		}
	})

	t.Run("outage", func(t *testing.T) {
		srv.Stop()
		defer srv.Start()
		if _, err := c.QueryAll(ctx, "up"); err == nil {
			t.Error("QueryAll with Prometheus stopped: no error")
		}
		_, err := c.RecentLabelNames(ctx, []string{"up"}, time.Minute)
		if err == nil || strings.Contains(err.Error(), srv.URL()) {
			t.Errorf("RecentLabelNames with Prometheus stopped: %v; want an error without the URL", err)
		}
	})
}
