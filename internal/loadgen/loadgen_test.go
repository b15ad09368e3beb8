package loadgen

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer answers /work with 200 after delay and counts requests and
// the query each carried.
type countingServer struct {
	delay    time.Duration
	requests atomic.Int64

	mu      sync.Mutex
	queries map[string]int
}

func (s *countingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/work" {
		http.NotFound(w, r)
		return
	}
	s.requests.Add(1)
	s.mu.Lock()
	s.queries[r.URL.RawQuery]++
	s.mu.Unlock()
	time.Sleep(s.delay)
}

// runFor runs l for d and returns how long Run took.
func runFor(l *Load, d time.Duration) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	began := time.Now()
	l.Run(ctx)
	return time.Since(began)
}

func only(url string) func() []string { return func() []string { return []string{url} } }

func TestShapePath(t *testing.T) {
	for _, tc := range []struct {
		shape Shape
		want  string
	}{
		{Shape{}, "/work"},
		{Shape{Hold: time.Second}, "/work"},
		{Shape{Goroutines: 3, Hold: 2 * time.Second}, "/work?goroutines=3&hold=2s"},
	} {
		if got := tc.shape.Path(); got != tc.want {
			t.Errorf("%+v.Path() = %q, want %q", tc.shape, got, tc.want)
		}
	}
}

func TestLoadKeepsTheRate(t *testing.T) {
	const (
		rps      = 200.0
		duration = 1500 * time.Millisecond
		want     = int64(rps * 1.5)
	)
	srv := &countingServer{delay: 5 * time.Millisecond, queries: map[string]int{}}
	ts := httptest.NewServer(srv)
	defer ts.Close()

	l := New(Options{
		RPS: rps, Shape: Shape{Goroutines: 2, Hold: 3 * time.Second}, Targets: only(ts.URL),
		MaxInFlight: 100, Timeout: 5 * time.Second, ReconnectInterval: 100 * time.Millisecond,
	})
	if took := runFor(l, duration); took < duration || took > duration+2*time.Second {
		t.Errorf("Run took %s, want about %s", took, duration)
	}
	got := srv.requests.Load()
	// The generator catches up on late ticks, so the count is the rate times
	// the duration within a tick or two, whatever the scheduler does.
	if tolerance := want / 10; got < want-tolerance || got > want+tolerance {
		t.Errorf("server got %d requests in %s at %g rps, want %d ± 10%%", got, duration, rps, want)
	}
	s := l.Stats()
	if s.Sent != got || s.OK != got || s.Failed != 0 || s.Skipped != 0 {
		t.Errorf("stats = %+v, want %d sent and ok, none failed or skipped", s, got)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if n := srv.queries["goroutines=2&hold=3s"]; int64(n) != got {
		t.Errorf("queries = %v, want every request to carry goroutines=2&hold=3s", srv.queries)
	}
}

// TestLoadSpreadsOverTargets checks the local stack's use: the rate is
// split round robin over the targets of the moment, and requests due
// while there are none are skipped, not sent later.
func TestLoadSpreadsOverTargets(t *testing.T) {
	var servers [3]*countingServer
	var urls []string
	for i := range servers {
		servers[i] = &countingServer{queries: map[string]int{}}
		ts := httptest.NewServer(servers[i])
		defer ts.Close()
		urls = append(urls, ts.URL)
	}
	var none atomic.Bool
	l := New(Options{RPS: 300, Targets: func() []string {
		if none.Load() {
			return nil
		}
		return urls
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx)
	}()
	waitFor(t, "100 requests sent", func() bool { return l.Stats().Sent >= 100 })
	none.Store(true)
	sent := l.Stats().Sent
	waitFor(t, "20 requests skipped", func() bool { return l.Stats().Skipped >= 20 })
	cancel()
	<-done

	s := l.Stats()
	// A tick may have read the targets just before they went away.
	if s.Sent > sent+3 || s.OK != s.Sent || s.Failed != 0 {
		t.Errorf("stats = %+v, want the %d requests sent before the targets went away, all ok", s, sent)
	}
	var total int64
	for i, srv := range servers {
		n := srv.requests.Load()
		total += n
		if lo, hi := s.Sent/3, s.Sent/3+1; n < lo || n > hi {
			t.Errorf("target %d got %d of %d requests, want %d or %d (round robin)", i, n, s.Sent, lo, hi)
		}
	}
	if total != s.Sent {
		t.Errorf("targets got %d requests, want the %d sent", total, s.Sent)
	}
}

// TestLoadSkipsInsteadOfQueueingBeyondMaxInFlight also checks that Run
// waits for the requests in flight: they are bounded by Timeout, not by
// Run's context, so each ends failed by its own timeout before Run returns.
func TestLoadSkipsInsteadOfQueueingBeyondMaxInFlight(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // answers nothing; the client gives up
	}))
	defer ts.Close()

	const timeout = 500 * time.Millisecond
	l := New(Options{RPS: 500, Targets: only(ts.URL), MaxInFlight: 5, Timeout: timeout})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	began := time.Now()
	go func() {
		defer close(done)
		l.Run(ctx)
	}()
	waitFor(t, "the load to skip requests", func() bool { return l.Stats().Skipped > 50 })
	cancel()
	<-done
	if took := time.Since(began); took < timeout {
		t.Errorf("Run returned after %s, before its requests' %s timeout", took, timeout)
	}
	if s := l.Stats(); s.Sent != 5 || s.Failed != 5 || s.OK != 0 {
		t.Errorf("stats = %+v, want exactly MaxInFlight=5 sent and failed by their timeout when Run returns", s)
	}
}

func TestLoadCountsFailures(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "queue full", http.StatusServiceUnavailable)
	}))
	defer ts.Close()
	l := New(Options{RPS: 100, Targets: only(ts.URL), MaxInFlight: 10, Timeout: time.Second})
	runFor(l, 300*time.Millisecond)
	if s := l.Stats(); s.Sent == 0 || s.Failed != s.Sent || s.OK != 0 {
		t.Errorf("stats = %+v, want every sent request failed", s)
	}
}

func TestLoadWithoutRateSendsNothing(t *testing.T) {
	called := false
	l := New(Options{RPS: 0, Targets: func() []string { called = true; return nil }})
	l.Run(context.Background()) // returns at once: the context never ends
	if s := l.Stats(); s != (Stats{}) || called {
		t.Errorf("stats = %+v, targets asked: %v; want nothing done", s, called)
	}
}

// TestLoadMovesToNewConnections checks ReconnectInterval: kube-proxy
// balances connections, so only new connections reach pods added by a
// scale-out.
func TestLoadMovesToNewConnections(t *testing.T) {
	for _, tc := range []struct {
		name      string
		reconnect time.Duration
		min, max  int64
	}{
		// 1s of load: a new pool every 100ms, each opening at least one
		// connection.
		{"every 100ms", 100 * time.Millisecond, 8, 1000},
		// Connections are kept: never more than MaxInFlight (10) of them
		// for the ~50 requests, however the scheduler bunches them.
		{"never", 0, 1, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var conns atomic.Int64
			ts := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			ts.Start()
			defer ts.Close()
			l := New(Options{RPS: 50, Targets: only(ts.URL), MaxInFlight: 10, Timeout: time.Second, ReconnectInterval: tc.reconnect})
			runFor(l, time.Second)
			if s := l.Stats(); s.Failed != 0 || s.OK != s.Sent {
				t.Errorf("stats = %+v, want every request answered 200", s)
			}
			if n := conns.Load(); n < tc.min || n > tc.max {
				t.Errorf("%d connections in 1s, want %d to %d", n, tc.min, tc.max)
			}
		})
	}
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
