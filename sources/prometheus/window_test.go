package prometheus

import (
	"testing"
	"time"
)

func TestShorten(t *testing.T) {
	for _, tc := range []struct {
		name     string
		query    string
		avail    time.Duration
		lookBack time.Duration
		want     string // "" when nothing changes
		shortest time.Duration
		none     bool
	}{{
		name:     "rate",
		query:    `sum by (pod) (rate(http_requests_total{namespace="a"}[2m]))`,
		avail:    40 * time.Second,
		lookBack: 2 * time.Minute,
		want:     `sum by (pod) (rate(http_requests_total{namespace="a"}[40s]))`,
		shortest: 40 * time.Second,
	}, {
		name:     "increase, rounded down to whole seconds",
		query:    `increase(jobs_total[5m])`,
		avail:    90*time.Second + 900*time.Millisecond,
		lookBack: 5 * time.Minute,
		want:     `increase(jobs_total[1m30s])`,
		shortest: 90 * time.Second,
	}, {
		name:     "avg_over_time",
		query:    `avg_over_time(queue_depth{namespace="a"}[10m])`,
		avail:    3 * time.Minute,
		lookBack: 10 * time.Minute,
		want:     `avg_over_time(queue_depth{namespace="a"}[3m])`,
		shortest: 3 * time.Minute,
	}, {
		name:     "a window that fits stays",
		query:    `rate(x[1m])`,
		avail:    time.Minute,
		lookBack: time.Minute,
	}, {
		name:     "no range",
		query:    `sum by (pod) (go_goroutines{namespace="a"})`,
		avail:    5 * time.Second,
		lookBack: 0,
	}, {
		name:     "an instant selector's offset is no window",
		query:    `go_goroutines offset 5m`,
		avail:    5 * time.Second,
		lookBack: 0,
	}, {
		name:     "offset: the range ends at the offset",
		query:    `rate(x[2m] offset 1m)`,
		avail:    100 * time.Second,
		lookBack: 3 * time.Minute,
		want:     `rate(x[40s] offset 1m)`,
		shortest: 40 * time.Second,
	}, {
		name:     "offset past what is available",
		query:    `rate(x[2m] offset 1m)`,
		avail:    50 * time.Second,
		lookBack: 3 * time.Minute,
		none:     true,
	}, {
		name:     "several selectors: only those that reach too far",
		query:    `sum(rate(a_total[5m])) / sum(rate(b_total[30s])) + sum(rate(c_total[2m]))`,
		avail:    time.Minute,
		lookBack: 5 * time.Minute,
		want:     `sum(rate(a_total[1m])) / sum(rate(b_total[30s])) + sum(rate(c_total[1m]))`,
		shortest: time.Minute,
	}, {
		name:     "histogram quantile",
		query:    `histogram_quantile(0.99, sum by (le, pod) (rate(http_request_duration_seconds_bucket{namespace="a"}[2m])))`,
		avail:    45 * time.Second,
		lookBack: 2 * time.Minute,
		want:     `histogram_quantile(0.99, sum by (le, pod) (rate(http_request_duration_seconds_bucket{namespace="a"}[45s])))`,
		shortest: 45 * time.Second,
	}, {
		name:     "subquery gives way first, the inner range keeps its length",
		query:    `max_over_time(rate(x[1m])[10m:30s])`,
		avail:    5 * time.Minute,
		lookBack: 11 * time.Minute,
		want:     `max_over_time(rate(x[1m])[4m:30s])`,
		shortest: 4 * time.Minute,
	}, {
		name:     "subquery down to one step, the inner range takes the rest",
		query:    `max_over_time(rate(x[1m])[10m:30s])`,
		avail:    80 * time.Second,
		lookBack: 11 * time.Minute,
		want:     `max_over_time(rate(x[50s])[30s:30s])`,
		shortest: 30 * time.Second,
	}, {
		name:     "subquery with an offset",
		query:    `max_over_time(rate(x[1m])[10m:1m] offset 2m)`,
		avail:    5 * time.Minute,
		lookBack: 13 * time.Minute,
		want:     `max_over_time(rate(x[1m])[2m:1m] offset 2m)`,
		shortest: 2 * time.Minute,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			expr, err := promqlParser.ParseExpr(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			if got := lookBack(expr); got != tc.lookBack {
				t.Errorf("lookBack = %s, want %s", got, tc.lookBack)
			}
			s := shorten(expr, tc.avail)
			if s.none != tc.none {
				t.Fatalf("none = %v, want %v (%s)", s.none, tc.none, expr)
			}
			if tc.none {
				return
			}
			want := tc.want
			if want == "" {
				if s.changed {
					t.Fatalf("changed to %s, want it left alone", expr)
				}
				return
			}
			if got := expr.String(); got != want {
				t.Errorf("shortened to\n%s\nwant\n%s", got, want)
			}
			if s.shortest != tc.shortest {
				t.Errorf("shortest = %s, want %s", s.shortest, tc.shortest)
			}
			if got := lookBack(expr); got > tc.avail {
				t.Errorf("the shortened query reads %s back, more than the %s available", got, tc.avail)
			}
		})
	}
}
