package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseFlagsLoadAndProduce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"load", []string{"--mode=load", "--target-url=http://sample-app.demo.svc", "--rps=150"}, ""},
		{"load holding goroutines", []string{"--mode=load", "--target-url=http://sample-app-goroutines.demo.svc:80", "--rps=20", "--goroutines=50", "--hold=5s"}, ""},
		{"load without target", []string{"--mode=load", "--rps=10"}, "load mode needs --target-url"},
		{"load with a relative target", []string{"--mode=load", "--target-url=sample-app.demo.svc"},
			`--target-url "sample-app.demo.svc": want an http(s) base URL such as http://sample-app.demo.svc`},
		{"load with a query", []string{"--mode=load", "--target-url=http://a/?goroutines=1"},
			`--target-url "http://a/?goroutines=1": want a base URL without query or fragment; use --goroutines and --hold for the query`},
		{"load at zero rps", []string{"--mode=load", "--target-url=http://a", "--rps=0"}, "--rps must be positive, got 0"},
		{"load with negative goroutines", []string{"--mode=load", "--target-url=http://a", "--goroutines=-1"}, "--goroutines must not be negative, got -1"},
		{"load without in-flight room", []string{"--mode=load", "--target-url=http://a", "--max-in-flight=0"}, "--max-in-flight must be at least 1, got 0"},
		{"load with every error", []string{"--mode=load", "--rps=-1", "--request-timeout=0s", "--duration=-1s"},
			"load mode needs --target-url\n--rps must be positive, got -1\n--request-timeout must be positive, got 0s\n--reconnect-interval and --duration must not be negative"},
		{"produce", []string{"--mode=produce", "--brokers=kafka.kafka.svc:9092", "--topic=demo.orders", "--messages=3000"}, ""},
		{"produce without topic", []string{"--mode=produce", "--brokers=kafka.kafka.svc:9092"}, "produce mode needs --brokers and --topic"},
		{"produce nothing", []string{"--mode=produce", "--brokers=a:9092", "--topic=demo.orders", "--messages=0"}, "--messages must be at least 1, got 0"},
		{"produce without time", []string{"--mode=produce", "--brokers=a:9092", "--topic=demo.orders", "--produce-timeout=0s"}, "--produce-timeout must be positive, got 0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args, io.Discard)
			if got := errString(err); got != tc.wantErr {
				t.Errorf("parseFlags(%q) error = %q, want %q", tc.args, got, tc.wantErr)
			}
		})
	}
}

func TestParseFlagsFillsTheModeConfigs(t *testing.T) {
	c, err := parseFlags([]string{"--mode=produce", "--brokers=a:9092,b:9092", "--topic=demo.orders", "--messages=7"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.produce; len(got.Brokers) != 2 || got.Brokers[1] != "b:9092" || got.Topic != "demo.orders" || got.Messages != 7 {
		t.Errorf("produce config = %+v, want brokers [a:9092 b:9092], topic demo.orders, 7 messages", got)
	}
	c, err = parseFlags([]string{"--mode=load", "--target-url=http://svc.ns.svc/", "--goroutines=3", "--hold=2s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	u, err := c.load.workURL()
	if want := "http://svc.ns.svc/work?goroutines=3&hold=2s"; err != nil || u != want {
		t.Errorf("workURL() = %q, %v, want %q", u, err, want)
	}
}

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

func TestLoadKeepsTheRate(t *testing.T) {
	const (
		rps      = 200.0
		duration = 1500 * time.Millisecond
		want     = int64(rps * 1.5)
	)
	srv := &countingServer{delay: 5 * time.Millisecond, queries: map[string]int{}}
	ts := httptest.NewServer(srv)
	defer ts.Close()

	l, err := NewLoad(LoadConfig{
		TargetURL: ts.URL, RPS: rps, Goroutines: 2, Hold: 3 * time.Second,
		MaxInFlight: 100, Timeout: 5 * time.Second, ReconnectInterval: 100 * time.Millisecond,
		Duration: duration,
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	l.Run(context.Background())
	if took := time.Since(began); took < duration || took > duration+2*time.Second {
		t.Errorf("Run took %s, want about --duration %s", took, duration)
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

func TestLoadSkipsInsteadOfQueueingBeyondMaxInFlight(t *testing.T) {
	release := make(chan struct{})
	var requests atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		<-release
	}))
	defer ts.Close()

	l, err := NewLoad(LoadConfig{
		TargetURL: ts.URL, RPS: 500, MaxInFlight: 5, Timeout: 5 * time.Second, Duration: 300 * time.Millisecond,
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(context.Background())
	}()
	// Answer everything before the server closes, and let Run return
	// before the test does.
	defer func() {
		close(release)
		<-done
	}()
	waitFor(t, "the load to skip requests", func() bool { return l.Stats().Skipped > 50 })
	if s := l.Stats(); s.Sent != 5 {
		t.Errorf("stats = %+v, want exactly --max-in-flight=5 sent while the server holds them", s)
	}
	release <- struct{}{} // answer one; the other four answer when release closes
	select {
	case <-done:
		t.Error("Run returned while requests were still in flight")
	case <-time.After(400 * time.Millisecond):
	}
}

func TestLoadCountsFailures(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "queue full", http.StatusServiceUnavailable)
	}))
	defer ts.Close()
	l, err := NewLoad(LoadConfig{TargetURL: ts.URL, RPS: 100, MaxInFlight: 10, Timeout: time.Second, Duration: 300 * time.Millisecond}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	l.Run(context.Background())
	if s := l.Stats(); s.Sent == 0 || s.Failed != s.Sent || s.OK != 0 {
		t.Errorf("stats = %+v, want every sent request failed", s)
	}
}

// TestLoadMovesToNewConnections checks --reconnect-interval: kube-proxy
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
		// Connections are kept: never more than --max-in-flight (10) of
		// them for the ~50 requests, however the scheduler bunches them.
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
			l, err := NewLoad(LoadConfig{TargetURL: ts.URL, RPS: 50, MaxInFlight: 10, Timeout: time.Second,
				ReconnectInterval: tc.reconnect, Duration: time.Second}, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			l.Run(context.Background())
			if s := l.Stats(); s.Failed != 0 || s.OK != s.Sent {
				t.Errorf("stats = %+v, want every request answered 200", s)
			}
			if n := conns.Load(); n < tc.min || n > tc.max {
				t.Errorf("%d connections in 1s, want %d to %d", n, tc.min, tc.max)
			}
		})
	}
}
