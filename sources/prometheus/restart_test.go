package prometheus

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// fakeRuntime is what a Prometheus answers about its start and first
// scrape, with the questions it was asked.
type fakeRuntime struct {
	started, configured time.Time
	runtimeErr          error
	firstScrape         time.Time // zero: not scraped yet
	runtimeCalls        int
	noScrapedPast       bool        // no scraped data from before the start
	probes              []time.Time // since of each first-scrape question
}

func newTestWatch(t *testing.T, now time.Time, p *fakeRuntime) (*restartWatch, *clocktesting.FakeClock) {
	t.Helper()
	clk := clocktesting.NewFakeClock(now)
	w := newRestartWatch(clk, 30*time.Second)
	w.runtime = func(context.Context) (time.Time, time.Time, error) {
		p.runtimeCalls++
		return p.started, p.configured, p.runtimeErr
	}
	w.scrapedBefore = func(_ context.Context, started time.Time) (bool, error) {
		if !started.Equal(p.started) {
			t.Errorf("asked whether Prometheus scraped before %s, want its start %s", started, p.started)
		}
		w.mu.Lock()
		visible := w.started.Equal(started)
		w.mu.Unlock()
		if visible {
			t.Errorf("the start %s was visible to queries before it was known whether Prometheus scraped before it", started)
		}
		return !p.noScrapedPast, nil
	}
	w.firstScrape = func(_ context.Context, since time.Time, span time.Duration) (time.Time, error) {
		p.probes = append(p.probes, since)
		if !clk.Now().Add(-span).Equal(since) {
			t.Errorf("first scrape asked over %s before now, want back to the start %s", span, since)
		}
		if p.firstScrape.Before(since) {
			return time.Time{}, nil
		}
		return p.firstScrape, nil
	}
	return w, clk
}

const rate2m = `sum by (pod) (rate(http_requests_total{namespace="a"}[2m]))`

func TestRestartWatch(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	eval := func(t *testing.T, w *restartWatch, q string) (Evaluation, error) {
		t.Helper()
		return w.evaluate(ctx, q)
	}

	t.Run("long running Prometheus: queries as they are, start time asked once a minute", func(t *testing.T) {
		p := &fakeRuntime{started: t0.Add(-time.Hour), configured: t0.Add(-time.Hour), firstScrape: t0.Add(-time.Hour + 6*time.Second)}
		w, clk := newTestWatch(t, t0, p)
		ev, err := eval(t, w, rate2m)
		if err != nil || ev.Query != rate2m || ev.Shortened() || ev.LookBack != 2*time.Minute || !ev.Started.Equal(p.started) {
			t.Fatalf("evaluate = %+v, %v; want the query as it is, look-back 2m, start known", ev, err)
		}
		clk.Step(59 * time.Second)
		_, _ = eval(t, w, rate2m)
		if p.runtimeCalls != 1 || len(p.probes) != 1 {
			t.Fatalf("within a minute: %d start-time and %d first-scrape questions, want 1 and 1", p.runtimeCalls, len(p.probes))
		}
		clk.Step(time.Second)
		_, _ = eval(t, w, rate2m)
		if p.runtimeCalls != 2 || len(p.probes) != 1 {
			t.Fatalf("after a minute: %d start-time and %d first-scrape questions, want 2 and 1 (same start)", p.runtimeCalls, len(p.probes))
		}
	})

	t.Run("a query without range asks nothing", func(t *testing.T) {
		p := &fakeRuntime{started: t0.Add(-time.Second)}
		w, _ := newTestWatch(t, t0, p)
		q := `sum by (pod) (go_goroutines{namespace="a"})`
		if ev, err := eval(t, w, q); err != nil || ev.Query != q || ev.LookBack != 0 {
			t.Fatalf("evaluate = %+v, %v; want the query as it is", ev, err)
		}
		if p.runtimeCalls != 0 {
			t.Errorf("%d start-time questions, want 0", p.runtimeCalls)
		}
	})

	t.Run("restart seen after a failed query: refused, shortened, then whole", func(t *testing.T) {
		p := &fakeRuntime{started: t0.Add(-time.Hour), configured: t0.Add(-time.Hour), firstScrape: t0.Add(-time.Hour + 6*time.Second)}
		w, clk := newTestWatch(t, t0, p)
		_, _ = eval(t, w, rate2m)
		// Prometheus goes down and comes back 10s later with no scrape yet.
		clk.Step(20 * time.Second)
		restart := clk.Now()
		p.started, p.configured, p.firstScrape = restart, restart.Add(2*time.Second), time.Time{}
		w.queryFailed()
		clk.Step(3 * time.Second)
		_, err := eval(t, w, rate2m)
		var re *RestartError
		if !errors.As(err, &re) || !errors.Is(err, ErrWindowAfterRestart) || !re.FirstScrape.IsZero() || !re.Started.Equal(restart) {
			t.Fatalf("before the first scrape: %v, want a RestartError without first scrape", err)
		}
		if p.runtimeCalls != 2 {
			t.Fatalf("%d start-time questions, want a second one after the failed query", p.runtimeCalls)
		}
		wantMsg := "Prometheus restarted at 12:00:20Z (3s ago) and has no data between its last scrape before and its first scrape, which has not happened yet; " +
			"the query's window is 2m0s and is shortened to the time since that scrape once it is at least 30s (--prometheus-min-window-after-restart): values resume 30s after that scrape and cover the whole window 2m0s after it"
		if err.Error() != wantMsg {
			t.Errorf("message\n%s\nwant\n%s", err, wantMsg)
		}
		// Asked at most once a second while Prometheus has not scraped.
		_, _ = eval(t, w, rate2m)
		clk.Step(time.Second)
		_, _ = eval(t, w, rate2m)
		if len(p.probes) != 3 {
			t.Errorf("%d first-scrape questions, want 3 (one at the first contact, one per second since the restart)", len(p.probes))
		}

		p.firstScrape = restart.Add(5*time.Second + 300*time.Millisecond)
		clk.Step(2 * time.Second) // 6s after the restart
		_, err = eval(t, w, rate2m)
		wantMsg = "Prometheus restarted at 12:00:20Z (6s ago) and has no data between its last scrape before and its first scrape at 12:00:25Z; " +
			"the query's window is 2m0s and is shortened to the time since that scrape once it is at least 30s (--prometheus-min-window-after-restart): values resume at 12:00:55Z and cover the whole window from 12:02:25Z"
		if err == nil || err.Error() != wantMsg {
			t.Fatalf("under the minimum window: %v, want\n%s", err, wantMsg)
		}

		clk.SetTime(p.firstScrape.Add(30 * time.Second))
		ev, err := eval(t, w, rate2m)
		want := `sum by (pod) (rate(http_requests_total{namespace="a"}[30s]))`
		if err != nil || ev.Query != want || ev.Window != 30*time.Second || !ev.DataSince.Equal(p.firstScrape) {
			t.Fatalf("at the minimum window: %+v, %v; want %s over 30s since the first scrape", ev, err, want)
		}
		clk.Step(45*time.Second + 900*time.Millisecond)
		if ev, _ := eval(t, w, rate2m); !strings.Contains(ev.Query, "[1m15s]") {
			t.Errorf("75.9s after the first scrape: %s, want the window [1m15s]", ev.Query)
		}
		clk.SetTime(p.firstScrape.Add(2 * time.Minute))
		if ev, err := eval(t, w, rate2m); err != nil || ev.Query != rate2m || ev.Shortened() {
			t.Errorf("a whole window after the first scrape: %+v, %v; want the query as it is", ev, err)
		}
	})

	t.Run("a quick restart between two successful queries is seen within a minute", func(t *testing.T) {
		p := &fakeRuntime{started: t0.Add(-time.Hour), firstScrape: t0.Add(-time.Hour + time.Second)}
		w, clk := newTestWatch(t, t0, p)
		_, _ = eval(t, w, rate2m)
		clk.Step(50 * time.Second)
		p.started, p.firstScrape = clk.Now(), clk.Now().Add(time.Second)
		clk.Step(5 * time.Second)
		if _, err := eval(t, w, rate2m); err != nil {
			t.Fatalf("before the minute is up the restart is not known yet: %v", err)
		}
		clk.Step(5 * time.Second)
		if _, err := eval(t, w, rate2m); !errors.Is(err, ErrWindowAfterRestart) {
			t.Fatalf("a minute after the last question: %v, want the restart seen", err)
		}
	})

	t.Run("no runtime information: queries as they are, asked again after a minute", func(t *testing.T) {
		p := &fakeRuntime{runtimeErr: errors.New("404 Not Found")}
		w, clk := newTestWatch(t, t0, p)
		for range 3 {
			if ev, err := eval(t, w, rate2m); err != nil || ev.Query != rate2m || !ev.Started.IsZero() {
				t.Fatalf("evaluate = %+v, %v; want the query as it is", ev, err)
			}
		}
		clk.Step(time.Minute)
		_, _ = eval(t, w, rate2m)
		if p.runtimeCalls != 2 {
			t.Errorf("%d start-time questions, want one per minute", p.runtimeCalls)
		}
	})

	t.Run("a Prometheus that scrapes nothing has data since its start", func(t *testing.T) {
		p := &fakeRuntime{started: t0.Add(-90 * time.Second), configured: t0.Add(-89 * time.Second)}
		w, _ := newTestWatch(t, t0, p)
		ev, err := eval(t, w, rate2m)
		if err != nil || ev.Query != `sum by (pod) (rate(http_requests_total{namespace="a"}[1m30s]))` || !ev.DataSince.Equal(p.started) {
			t.Fatalf("evaluate = %+v, %v; want the window shortened to the 1m30s since the start", ev, err)
		}
	})

	t.Run("no scraped data from before the start (new data directory, remote writes only): queries as they are", func(t *testing.T) {
		p := &fakeRuntime{started: t0.Add(-5 * time.Second), configured: t0.Add(-5 * time.Second), noScrapedPast: true}
		w, clk := newTestWatch(t, t0, p)
		for _, step := range []time.Duration{0, 10 * time.Second, 40 * time.Second} {
			clk.Step(step)
			p.firstScrape = t0 // scraping since t0: no hole either way
			if ev, err := eval(t, w, rate2m); err != nil || ev.Query != rate2m || ev.Shortened() {
				t.Fatalf("%s after the start: %+v, %v; want the query as it is", clk.Since(p.started), ev, err)
			}
		}
		if len(p.probes) != 0 {
			t.Errorf("asked for the first scrape %d times, want never: without data from before the start there is no hole to find", len(p.probes))
		}
		// A restart that keeps the data it now holds does leave a hole.
		p.started, p.configured, p.noScrapedPast, p.firstScrape = clk.Now(), clk.Now(), false, time.Time{}
		w.queryFailed()
		if _, err := eval(t, w, rate2m); !errors.Is(err, ErrWindowAfterRestart) {
			t.Fatalf("after a restart with scraped data from before it: %v, want refused until the first scrape", err)
		}
	})

	t.Run("a start longer ago than the window: queries as they are before the first scrape is known", func(t *testing.T) {
		p := &fakeRuntime{started: t0.Add(-3 * time.Minute), configured: t0.Add(-3 * time.Minute)}
		w, _ := newTestWatch(t, t0, p)
		if ev, err := eval(t, w, rate2m); err != nil || ev.Query != rate2m || ev.Shortened() {
			t.Fatalf("evaluate = %+v, %v; want the query as it is", ev, err)
		}
	})

	t.Run("a failing first-scrape question fails the query", func(t *testing.T) {
		p := &fakeRuntime{started: t0.Add(-time.Second)}
		w, _ := newTestWatch(t, t0, p)
		w.firstScrape = func(context.Context, time.Time, time.Duration) (time.Time, error) {
			return time.Time{}, errors.New("connection refused")
		}
		_, err := eval(t, w, rate2m)
		if err == nil || errors.Is(err, ErrWindowAfterRestart) || !strings.Contains(err.Error(), "first scrape after its start at 11:59:59Z: connection refused") {
			t.Fatalf("evaluate error %v, want the failure naming the question", err)
		}
	})
}

func TestFirstScrapeQuery(t *testing.T) {
	since := time.Date(2030, 1, 1, 12, 0, 0, 250_000_000, time.UTC)
	for _, tc := range []struct {
		span time.Duration
		want string
	}{
		{10*time.Second + 500*time.Millisecond, `min(min_over_time((timestamp(up) > 1893499200.250)[15s:1s]))`},
		{time.Hour, `min(min_over_time((timestamp(up) > 1893499200.250)[3605s:60s]))`},
	} {
		if got := firstScrapeQuery(since, tc.span); got != tc.want {
			t.Errorf("firstScrapeQuery(%s) = %s, want %s", tc.span, got, tc.want)
		}
		if _, err := promqlParser.ParseExpr(tc.want); err != nil {
			t.Errorf("%s does not parse: %v", tc.want, err)
		}
	}
}
