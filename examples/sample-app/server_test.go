package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func testServer(t *testing.T, cfg ServerConfig) (*Server, *httptest.Server) {
	t.Helper()
	if cfg.Queue == 0 {
		cfg.Queue = 1000
	}
	if cfg.MaxHeld == 0 {
		cfg.MaxHeld = 100000
	}
	s := NewServer(cfg, testLogger(t))
	s.Start()
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		s.Stop()
	})
	return s, ts
}

func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// p50 runs `clients` goroutines that each send `each` /work requests one
// after the other, and returns the median latency.
func p50(t *testing.T, ts *httptest.Server, clients, each int) time.Duration {
	t.Helper()
	var (
		mu   sync.Mutex
		lats []time.Duration
		wg   sync.WaitGroup
	)
	for range clients {
		wg.Go(func() {
			for range each {
				start := time.Now()
				resp, err := ts.Client().Get(ts.URL + "/work")
				if err != nil {
					t.Errorf("GET /work: %v", err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("GET /work: status %d", resp.StatusCode)
				}
				mu.Lock()
				lats = append(lats, time.Since(start))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(lats) == 0 {
		t.Fatal("no request succeeded")
	}
	slices.Sort(lats)
	return lats[len(lats)/2]
}

func TestLatencyGrowsWithConcurrencyBeyondThePool(t *testing.T) {
	const workers, serviceTime = 2, 20 * time.Millisecond
	_, ts := testServer(t, ServerConfig{Workers: workers, ServiceTime: serviceTime})

	alone := p50(t, ts, 1, 10)
	// 4x the pool: each request waits behind about three rounds of work.
	loaded := p50(t, ts, 4*workers, 5)
	t.Logf("p50 with 1 client: %s, with %d clients: %s", alone, 4*workers, loaded)
	if alone < serviceTime {
		t.Errorf("p50 with 1 client = %s, want at least the service time %s", alone, serviceTime)
	}
	if ratio := float64(loaded) / float64(alone); ratio < 2.5 {
		t.Errorf("p50 grew %.1fx from 1 to %d concurrent clients, want at least 2.5x (queueing behind %d workers)", ratio, 4*workers, workers)
	}
}

func TestWorkStatus(t *testing.T) {
	_, ts := testServer(t, ServerConfig{Workers: 1, MaxHeld: 10})
	for _, tc := range []struct {
		name, query string
		want        int
	}{
		{"plain", "", http.StatusOK},
		{"holds goroutines", "?goroutines=5&hold=10ms", http.StatusOK},
		{"hold defaults to 1s", "?goroutines=1", http.StatusOK},
		{"negative goroutines", "?goroutines=-1", http.StatusBadRequest},
		{"bad hold", "?goroutines=1&hold=soon", http.StatusBadRequest},
		{"over the held cap", "?goroutines=11", http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, body := get(t, ts.Client(), ts.URL+"/work"+tc.query); got != tc.want {
				t.Errorf("GET /work%s = %d %q, want %d", tc.query, got, body, tc.want)
			}
		})
	}
}

func TestFullQueueAnswers503AtOnce(t *testing.T) {
	// The service time is the window in which both requests must have
	// arrived, one at the worker and one queued: long enough for a loaded
	// machine.
	s, ts := testServer(t, ServerConfig{Workers: 1, Queue: 1, ServiceTime: 2 * time.Second})
	// One request occupies the worker, one waits in the queue.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { get(t, ts.Client(), ts.URL+"/work") })
	}
	waitFor(t, "the worker to be busy and the queue full", func() bool { return s.busy.Load() == 1 && len(s.jobs) == 1 })
	start := time.Now()
	if got, _ := get(t, ts.Client(), ts.URL+"/work"); got != http.StatusServiceUnavailable {
		t.Errorf("GET /work with a full queue = %d, want 503", got)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("the 503 took %s, want it at once", d)
	}
	wg.Wait()
}

func TestMetricsExposeTheFamiliesThePresetsRead(t *testing.T) {
	_, ts := testServer(t, ServerConfig{Workers: 2, ServiceTime: time.Millisecond})
	for range 3 {
		get(t, ts.Client(), ts.URL+"/work")
	}
	get(t, ts.Client(), ts.URL+"/work?goroutines=x")
	get(t, ts.Client(), ts.URL+"/readyz")
	code, body := get(t, ts.Client(), ts.URL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", code)
	}
	for _, want := range []string{
		`(?m)^# TYPE http_requests_total counter$`,
		`(?m)^http_requests_total\{code="200",handler="work",method="get"\} 3$`,
		`(?m)^http_requests_total\{code="400",handler="work",method="get"\} 1$`,
		`(?m)^# TYPE http_request_duration_seconds histogram$`,
		`(?m)^http_request_duration_seconds_bucket\{code="200",handler="work",method="get",le="0.25"\} 3$`,
		`(?m)^http_request_duration_seconds_count\{code="200",handler="work",method="get"\} 3$`,
		`(?m)^http_request_duration_seconds_sum\{code="200",handler="work",method="get"\} \S+$`,
		`(?m)^# TYPE go_goroutines gauge$`,
		`(?m)^go_goroutines [0-9]+$`,
		`(?m)^process_cpu_seconds_total \S+$`,
		`(?m)^sample_app_workers_busy 0$`,
	} {
		if !regexp.MustCompile(want).MatchString(body) {
			t.Errorf("/metrics has no line matching %s", want)
		}
	}
	// Probes and scrapes are not load.
	if m := regexp.MustCompile(`handler="(readyz|metrics|healthz)"`).FindString(body); m != "" {
		t.Errorf("/metrics counts non-work requests: %s", m)
	}
}

func TestHeldGoroutinesShowInNumGoroutine(t *testing.T) {
	const k = 500
	s, ts := testServer(t, ServerConfig{Workers: 1})
	before := runtime.NumGoroutine()
	if code, body := get(t, ts.Client(), ts.URL+"/work?goroutines=500&hold=300ms"); code != http.StatusOK {
		t.Fatalf("GET /work?goroutines=500 = %d %q", code, body)
	}
	if during := runtime.NumGoroutine(); during < before+k {
		t.Errorf("NumGoroutine = %d right after the request, want at least %d + %d", during, before, k)
	}
	_, metrics := get(t, ts.Client(), ts.URL+"/metrics")
	if !regexp.MustCompile(`(?m)^sample_app_held_goroutines 500$`).MatchString(metrics) {
		t.Error("/metrics does not report sample_app_held_goroutines 500")
	}
	waitFor(t, "the held goroutines to end after 300ms", func() bool {
		return s.held.Load() == 0 && runtime.NumGoroutine() < before+k/10
	})

	// Stop releases goroutines held for much longer.
	get(t, ts.Client(), ts.URL+"/work?goroutines=100&hold=1h")
	stopped := make(chan struct{})
	go func() { s.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not release goroutines held for 1h")
	}
}

// serve runs Serve on a loopback port and returns its base URL and a
// channel with Serve's result.
func serve(t *testing.T, ctx context.Context, s *Server) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	return "http://" + ln.Addr().String(), done
}

func TestReadinessFailsWhileDrainingAndInFlightFinishes(t *testing.T) {
	s := NewServer(ServerConfig{Workers: 1, Queue: 10, ServiceTime: 400 * time.Millisecond, MaxHeld: 10,
		DrainDelay: 300 * time.Millisecond, GracePeriod: 5 * time.Second}, testLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, done := serve(t, ctx, s)
	probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}

	waitFor(t, "/readyz to answer 200", func() bool {
		resp, err := probe.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	inFlight := make(chan int, 1)
	go func() {
		resp, err := probe.Get(url + "/work")
		if err != nil {
			t.Errorf("in-flight request: %v", err)
			inFlight <- 0
			return
		}
		resp.Body.Close()
		inFlight <- resp.StatusCode
	}()
	waitFor(t, "the request to reach a worker", func() bool { return s.busy.Load() == 1 })

	cancel() // what SIGTERM does
	if code, _ := get(t, probe, url+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining = %d, want 503", code)
	}
	if code, _ := get(t, probe, url+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while draining = %d, want 200: draining is not a liveness failure", code)
	}
	if code := <-inFlight; code != http.StatusOK {
		t.Errorf("in-flight request = %d, want 200: it should finish during the grace period", code)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after draining")
	}
	if resp, err := probe.Get(url + "/readyz"); err == nil {
		resp.Body.Close()
		t.Error("the server still accepts connections after Serve returned")
	}
}

func TestGracePeriodBoundsShutdown(t *testing.T) {
	const grace = 200 * time.Millisecond
	s := NewServer(ServerConfig{Workers: 1, Queue: 10, ServiceTime: time.Minute, MaxHeld: 10, GracePeriod: grace}, testLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, done := serve(t, ctx, s)
	inFlight := make(chan error, 1)
	go func() {
		resp, err := http.Get(url + "/work")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				err = errors.New("a minute of work finished within the grace period")
			}
		}
		inFlight <- err
	}()
	waitFor(t, "the request to reach a worker", func() bool { return s.busy.Load() == 1 })

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil after cutting off in-flight work", err)
		}
	case <-time.After(10 * grace):
		t.Fatalf("Serve still running %s after shutdown began; grace period %s", 10*grace, grace)
	}
	if d := time.Since(start); d < grace {
		t.Errorf("Serve returned after %s, before the %s grace period", d, grace)
	}
	if err := <-inFlight; err == nil {
		t.Error("the in-flight request succeeded")
	}
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"consumer", []string{"--mode=consumer", "--brokers=a:9092,b:9092", "--topic=demo.orders", "--group=demo.billing", "--rate=5"}, ""},
		{"consumer without brokers", []string{"--mode=consumer", "--topic=demo.orders", "--group=demo.billing"}, "consumer mode needs --brokers, --topic and --group"},
		{"share consumer", []string{"--mode=share-consumer", "--brokers=a:9092", "--topic=demo.jobs", "--group=demo.workers"}, ""},
		{"share consumer without a group", []string{"--mode=share-consumer", "--brokers=a:9092", "--topic=demo.jobs"}, "share-consumer mode needs --brokers, --topic and --group"},
		{"unknown mode", []string{"--mode=batch"}, `--mode "batch": want server, consumer, share-consumer, load or produce`},
		{"no workers", []string{"--workers=0"}, "--workers must be at least 1, got 0"},
		{"stray argument", []string{"extra"}, `unexpected arguments ["extra"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args, io.Discard)
			if got := errString(err); got != tc.wantErr {
				t.Errorf("parseFlags(%q) error = %q, want %q", tc.args, got, tc.wantErr)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
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
