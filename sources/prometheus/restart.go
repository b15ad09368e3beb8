package prometheus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// DefaultMinWindowAfterRestart is the shortest window a query is
// shortened to after a Prometheus restart when
// --prometheus-min-window-after-restart is not given.
const DefaultMinWindowAfterRestart = 30 * time.Second

const (
	// startCheckInterval is how often Prometheus' start time is asked for
	// while queries succeed, so a restart between two failed queries is
	// seen within it.
	startCheckInterval = time.Minute
	// probeInterval is how often the first scrape after a start is looked
	// for while Prometheus has not scraped yet.
	probeInterval = time.Second
	// scrapeGrace is how long after loading its configuration Prometheus
	// may take to scrape for the first time. A Prometheus that has not
	// scraped by then scrapes nothing (it only receives remote writes,
	// say): its data begins at its start.
	scrapeGrace = time.Minute
	// maxLookBacks bounds the memo of look-backs by query; it is emptied
	// when full.
	maxLookBacks = 4096
)

// ErrWindowAfterRestart is wrapped by the errors of queries whose window
// reaches back before Prometheus' first scrape after a restart, and that
// cannot be shortened to --prometheus-min-window-after-restart yet: the
// window would hold less data than that. It is a failure, not "no data":
// the adapter keeps serving the last complete value while it lasts.
var ErrWindowAfterRestart = errors.New("window spans Prometheus' restart")

// RestartError is the error of a query refused after a restart; it wraps
// ErrWindowAfterRestart and says when values come back.
type RestartError struct {
	// Started is Prometheus' start time.
	Started time.Time
	// FirstScrape is Prometheus' first sample since Started; zero when it
	// has not scraped yet.
	FirstScrape time.Time
	// LookBack is the query's look-back (see Evaluation).
	LookBack time.Duration
	// MinWindow is --prometheus-min-window-after-restart.
	MinWindow time.Duration
	// Now is when the query was refused.
	Now time.Time
}

func (e *RestartError) Error() string {
	head := fmt.Sprintf("Prometheus restarted at %s (%s ago) and has no data between its last scrape before and ", stamp(e.Started), e.Now.Sub(e.Started).Round(time.Second))
	if e.FirstScrape.IsZero() {
		head += "its first scrape, which has not happened yet"
	} else {
		head += "its first scrape at " + stamp(e.FirstScrape)
	}
	if e.LookBack <= e.MinWindow {
		// Never shortened: the window is not longer than the minimum.
		if e.FirstScrape.IsZero() {
			return fmt.Sprintf("%s; the query's window is %s: values resume, over the whole window, %s after that scrape", head, e.LookBack, e.LookBack)
		}
		return fmt.Sprintf("%s; the query's window is %s: values resume, over the whole window, at %s", head, e.LookBack, stamp(e.FirstScrape.Add(e.LookBack)))
	}
	head += fmt.Sprintf("; the query's window is %s and is shortened to the time since that scrape once it is at least %s (--prometheus-min-window-after-restart): ", e.LookBack, e.MinWindow)
	if e.FirstScrape.IsZero() {
		return fmt.Sprintf("%svalues resume %s after that scrape and cover the whole window %s after it", head, e.MinWindow, e.LookBack)
	}
	return fmt.Sprintf("%svalues resume at %s and cover the whole window from %s", head, stamp(e.FirstScrape.Add(e.MinWindow)), stamp(e.FirstScrape.Add(e.LookBack)))
}

func (e *RestartError) Unwrap() error { return ErrWindowAfterRestart }

func stamp(t time.Time) string { return t.UTC().Format("15:04:05Z") }

// Evaluation is how Query runs a query at one moment.
type Evaluation struct {
	// Query is the PromQL sent to Prometheus: the query as given, or with
	// its ranges shortened to Window.
	Query string
	// LookBack is how far back the query as given reads: its largest
	// range or subquery range plus offsets. Zero for a query without
	// ranges, which is never shortened.
	LookBack time.Duration
	// Started is Prometheus' start time as last learned; zero if unknown
	// (not asked yet, or Prometheus does not serve
	// /api/v1/status/runtimeinfo).
	Started time.Time
	// DataSince is Prometheus' first scrape after Started, where the
	// shortened windows begin; zero when the query is not shortened.
	DataSince time.Time
	// Window is the look-back of the shortened query, the time since
	// DataSince in whole seconds; zero when the query is not shortened.
	Window time.Duration
}

// Shortened reports whether the query's ranges were shortened.
func (e Evaluation) Shortened() bool { return e.Window > 0 }

// restartWatch follows Prometheus' start time and the first scrape after
// it, and decides how each query runs (see Client.Query). It is safe for
// concurrent use.
type restartWatch struct {
	clock     clock.PassiveClock
	minWindow time.Duration
	// runtime asks Prometheus for its start time and the time it last
	// loaded its configuration.
	runtime func(ctx context.Context) (started, configured time.Time, err error)
	// firstScrape asks Prometheus for its first sample after since, within
	// span before now; zero when there is none.
	firstScrape func(ctx context.Context, since time.Time, span time.Duration) (time.Time, error)
	// scrapedBefore asks Prometheus whether it holds scraped data from
	// the hour before started (any up sample). One that does not (a new
	// data directory, or one that only receives remote writes) has
	// nothing before its start that a window could be misread with.
	scrapedBefore func(ctx context.Context, started time.Time) (bool, error)

	sem chan struct{} // one question to Prometheus at a time

	mu            sync.Mutex
	checked       time.Time // last start-time question; zero: never asked
	failed        bool      // a query failed after it
	started       time.Time // zero: unknown
	configured    time.Time // configuration loaded, as first seen for started
	firstSample   time.Time // zero: not known yet
	noScrapes     bool      // Prometheus scraped nothing within scrapeGrace of configured
	noScrapedPast bool      // Prometheus holds no scraped data from before started
	probed        time.Time // last first-scrape question

	memoMu    sync.Mutex
	lookBacks map[string]time.Duration
}

func newRestartWatch(clk clock.PassiveClock, minWindow time.Duration) *restartWatch {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &restartWatch{clock: clk, minWindow: minWindow, sem: make(chan struct{}, 1), lookBacks: map[string]time.Duration{}}
}

// queryFailed notes a failed query: the next query asks for the start
// time again first, so a restart during an outage is seen at once.
func (w *restartWatch) queryFailed() {
	w.mu.Lock()
	w.failed = true
	w.mu.Unlock()
}

// evaluate decides how promql runs now. A query whose look-back reaches
// before Prometheus' first scrape after its start runs with its ranges
// shortened to the time since that scrape (see shorten); if that leaves a
// window shorter than minWindow, or Prometheus has not scraped yet, the
// error is a *RestartError. Other errors are Prometheus failing to say when
// it scraped first.
func (w *restartWatch) evaluate(ctx context.Context, promql string) (Evaluation, error) {
	ev := Evaluation{Query: promql, LookBack: w.lookBack(promql)}
	if ev.LookBack == 0 {
		return ev, nil
	}
	if err := w.refresh(ctx); err != nil {
		return ev, err
	}
	w.mu.Lock()
	started, since, noScrapedPast := w.started, w.firstSample, w.noScrapedPast
	if w.noScrapes {
		since = started
	}
	w.mu.Unlock()
	ev.Started = started
	now := w.clock.Now()
	switch {
	case started.IsZero(), noScrapedPast:
		// Unknown start, or no scraped data from before the start (a new
		// data directory, or one that only receives remote writes):
		// there is no hole to span.
		return ev, nil
	case !since.IsZero() && now.Sub(since) >= ev.LookBack:
		return ev, nil
	}
	refused := &RestartError{Started: started, FirstScrape: since, LookBack: ev.LookBack, MinWindow: w.minWindow, Now: now}
	if since.IsZero() {
		return ev, refused
	}
	expr, err := promqlParser.ParseExpr(promql)
	if err != nil {
		return ev, nil // lookBack parsed it; unreachable
	}
	avail := now.Sub(since).Truncate(time.Second)
	s := shorten(expr, avail)
	if s.none || s.shortest < w.minWindow {
		return ev, refused
	}
	ev.Query, ev.DataSince, ev.Window = expr.String(), since, avail
	return ev, nil
}

// refresh asks Prometheus for its start time when it is due (never asked,
// a query failed since, or startCheckInterval passed), and then for its
// first scrape after that start until it is found. A failed start-time
// question keeps what was known (Prometheus may not serve
// /api/v1/status/runtimeinfo); only a failed first-scrape question, or
// ctx ending, is an error.
func (w *restartWatch) refresh(ctx context.Context) error {
	if !w.startDue() && !w.probeDue() {
		return nil
	}
	select {
	case w.sem <- struct{}{}:
		defer func() { <-w.sem }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if w.startDue() {
		w.learnStart(ctx)
	}
	if !w.probeDue() {
		return nil
	}
	w.mu.Lock()
	started, configured := w.started, w.configured
	now := w.clock.Now()
	w.probed = now
	w.mu.Unlock()
	first, err := w.firstScrape(ctx, started, now.Sub(started))
	if err != nil {
		return fmt.Errorf("find Prometheus' first scrape after its start at %s: %w", stamp(started), err)
	}
	w.mu.Lock()
	if w.started.Equal(started) {
		w.firstSample = first
		// Prometheus scrapes within seconds of loading its configuration:
		// one that has not scraped a minute after scrapes nothing, and its
		// data (remote writes, say) begins at its start.
		w.noScrapes = first.IsZero() && now.Sub(configured) >= scrapeGrace
	}
	w.mu.Unlock()
	return nil
}

// learnStart asks Prometheus for its start time and, for a start not
// seen before, whether it holds scraped data from before it, and only then
// records both at once: a query never sees a new start without that
// answer. A failed start-time question keeps what was known (Prometheus
// may not serve /api/v1/status/runtimeinfo); a failed scraped-before
// question counts as "it did", the cautious answer. The caller holds sem,
// so w.started changes only here.
func (w *restartWatch) learnStart(ctx context.Context) {
	started, configured, err := w.runtime(ctx)
	w.mu.Lock()
	isNew := err == nil && !started.Equal(w.started)
	w.mu.Unlock()
	noScrapedPast := false
	if isNew {
		scraped, err := w.scrapedBefore(ctx, started)
		if err != nil {
			klog.V(2).InfoS("Could not ask Prometheus whether it scraped before its start; taking it that it did", "err", err)
		}
		noScrapedPast = err == nil && !scraped
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checked, w.failed = w.clock.Now(), false
	switch {
	case err != nil:
		klog.V(2).InfoS("Could not ask Prometheus for its start time; windows are not shortened after a restart until it answers", "err", err)
	case isNew:
		if !w.started.IsZero() && !noScrapedPast {
			klog.InfoS("Prometheus restarted; queries whose window reaches before its first scrape since are shortened", "started", started)
		}
		w.started, w.configured, w.noScrapedPast = started, later(started, configured), noScrapedPast
		w.firstSample, w.noScrapes, w.probed = time.Time{}, false, time.Time{}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (w *restartWatch) startDue() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checked.IsZero() || w.failed || w.clock.Since(w.checked) >= startCheckInterval
}

// probeDue reports whether Prometheus' first scrape after its start must
// be looked for: the start is known, the first scrape is not, and it was
// not looked for within probeInterval.
func (w *restartWatch) probeDue() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.started.IsZero() && w.firstSample.IsZero() && !w.noScrapes && !w.noScrapedPast &&
		(w.probed.IsZero() || w.clock.Since(w.probed) >= probeInterval)
}

// lookBack returns promql's look-back, parsing each query once.
func (w *restartWatch) lookBack(promql string) time.Duration {
	w.memoMu.Lock()
	lb, ok := w.lookBacks[promql]
	w.memoMu.Unlock()
	if ok {
		return lb
	}
	if expr, err := promqlParser.ParseExpr(promql); err == nil {
		lb = lookBack(expr)
	}
	w.memoMu.Lock()
	if len(w.lookBacks) >= maxLookBacks {
		clear(w.lookBacks)
	}
	w.lookBacks[promql] = lb
	w.memoMu.Unlock()
	return lb
}

// firstScrapeQuery is the PromQL that finds the first sample of any
// target's up series after since, looking back span from Prometheus' now:
// every scrape writes up, so its first sample is Prometheus' first scrape.
// The subquery's step is at most a 60th of the span, which can only move
// the answer later, never earlier than the first scrape.
func firstScrapeQuery(since time.Time, span time.Duration) string {
	span = span.Truncate(time.Second) + 5*time.Second // the clocks' difference
	step := max(time.Second, (span / 60).Truncate(time.Second))
	return fmt.Sprintf("min(min_over_time((timestamp(up) > %.3f)[%ds:%ds]))",
		float64(since.UnixMilli())/1000, int(span.Seconds()), int(step.Seconds()))
}
