package closedloop

import (
	"context"
	"crypto/tls"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// h2Server starts an httptest TLS server that speaks HTTP/2 and counts the
// requests that reached it, and those that did not come over HTTP/2 or
// without the header the tests send.
type h2Server struct {
	*httptest.Server
	seen, notH2, noHeader atomic.Int64
}

func startH2(t *testing.T, handle func(n int64, w http.ResponseWriter, r *http.Request)) *h2Server {
	t.Helper()
	s := &h2Server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.seen.Add(1)
		if r.ProtoMajor != 2 {
			s.notH2.Add(1)
		}
		if r.Header.Get("Authorization") != "Bearer t" {
			s.noHeader.Add(1)
		}
		handle(n, w, r)
	}))
	s.EnableHTTP2 = true
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *h2Server) options() Options {
	return Options{
		URL:    s.URL + "/apis/x",
		TLS:    s.Client().Transport.(*http.Transport).TLSClientConfig,
		Header: http.Header{"Authorization": {"Bearer t"}},
	}
}

func run(t *testing.T, opts Options) Result {
	t.Helper()
	r, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	return r
}

// Request n (the first is the connection's, not counted) fails in two
// ways: each tenth counted request is answered 503, each tenth from the
// fifth gets its stream reset with no answer. Only the 200s are OK.
func TestRunCountsOutcomes(t *testing.T) {
	s := startH2(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		switch (n - 1) % 10 {
		case 0:
			if n > 1 {
				http.Error(w, "unavailable", http.StatusServiceUnavailable)
			}
		case 5:
			panic(http.ErrAbortHandler)
		}
	})
	opts := s.options()
	opts.Concurrency, opts.Requests = 4, 200
	r := run(t, opts)
	if r.Requests != 200 || r.OK != 160 || r.Concurrency != 4 {
		t.Errorf("requests %d, ok %d, concurrency %d; want 200, 160, 4", r.Requests, r.OK, r.Concurrency)
	}
	if want := map[int]int{503: 20, 0: 20}; !maps.Equal(r.Failed, want) {
		t.Errorf("failed %v, want %v", r.Failed, want)
	}
	if !strings.Contains(r.FirstError, "INTERNAL_ERROR") {
		t.Errorf("first error %q, want the stream reset (INTERNAL_ERROR)", r.FirstError)
	}
	if got := s.seen.Load(); got != 201 {
		t.Errorf("the server saw %d requests, want 201 (200 and the connection's)", got)
	}
	if s.notH2.Load() != 0 || s.noHeader.Load() != 0 {
		t.Errorf("%d requests not over HTTP/2, %d without the header", s.notH2.Load(), s.noHeader.Load())
	}
	if r.P50 <= 0 || r.P99 < r.P50 || r.PerSecond() <= 0 {
		t.Errorf("p50 %s, p99 %s, %g/s: want 0 < p50 <= p99 and a rate", r.P50, r.P99, r.PerSecond())
	}
}

// The first c counted requests are held until c are in flight at once
// (or 5 seconds pass): fewer workers would leave the gate closed, more
// would show as more in flight.
func TestRunKeepsConcurrency(t *testing.T) {
	for _, c := range []int{1, 3, 16} {
		t.Run("c="+strconv.Itoa(c), func(t *testing.T) {
			var mu sync.Mutex
			inflight, most := 0, 0
			gate := make(chan struct{})
			var once sync.Once
			s := startH2(t, func(n int64, w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				inflight++
				most = max(most, inflight)
				if inflight == c {
					once.Do(func() { close(gate) })
				}
				mu.Unlock()
				if n > 1 && n <= int64(c)+1 {
					select {
					case <-gate:
					case <-time.After(5 * time.Second):
					}
				}
				mu.Lock()
				inflight--
				mu.Unlock()
			})
			opts := s.options()
			opts.Concurrency, opts.Requests = c, 10*c
			began := time.Now()
			r := run(t, opts)
			if r.Requests != 10*c || r.OK != 10*c {
				t.Errorf("requests %d, ok %d, want %d each", r.Requests, r.OK, 10*c)
			}
			if most != c {
				t.Errorf("at most %d requests in flight, want %d", most, c)
			}
			if took := time.Since(began); took > 4*time.Second {
				t.Errorf("the run took %s: the gate of %d requests opened only by its timeout", took, c)
			}
		})
	}
}

// Each answer takes 10ms, so two workers over 300ms send at most 62
// requests, and the run ends by itself soon after 300ms.
func TestRunStopsAfterDuration(t *testing.T) {
	s := startH2(t, func(int64, http.ResponseWriter, *http.Request) { time.Sleep(10 * time.Millisecond) })
	opts := s.options()
	opts.Concurrency, opts.Duration = 2, 300*time.Millisecond
	r := run(t, opts)
	if r.Elapsed < 300*time.Millisecond || r.Elapsed > 2*time.Second {
		t.Errorf("elapsed %s, want 300ms plus the last answers", r.Elapsed)
	}
	if r.Requests < 2 || r.Requests > 62 || r.OK != r.Requests || len(r.Failed) != 0 {
		t.Errorf("requests %d, ok %d, failed %v: want 2 to 62, all ok", r.Requests, r.OK, r.Failed)
	}
	if r.P50 < 10*time.Millisecond || r.P99 < r.P50 {
		t.Errorf("p50 %s, p99 %s: want 10ms <= p50 <= p99", r.P50, r.P99)
	}
	if got := r.PerSecond(); got <= 0 || got > 200 {
		t.Errorf("%g/s: two workers at 10ms each send at most 200/s", got)
	}
}

// A server that does not negotiate h2 serves nothing: the run fails at
// its first request.
func TestRunNeedsHTTP2(t *testing.T) {
	var seen atomic.Int64
	s := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { seen.Add(1) }))
	defer s.Close()
	_, err := Run(context.Background(), Options{URL: s.URL, TLS: s.Client().Transport.(*http.Transport).TLSClientConfig, Requests: 10})
	if err == nil || !strings.Contains(err.Error(), "open the connection") {
		t.Errorf("Run against an HTTP/1 server: %v, want an error opening the connection", err)
	}
	if seen.Load() != 0 {
		t.Errorf("the HTTP/1 server saw %d requests", seen.Load())
	}
}

func TestRunRefusesOptions(t *testing.T) {
	cfg := &tls.Config{}
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no bound", Options{URL: "https://x", TLS: cfg}, "neither Options.Duration nor Options.Requests is positive"},
		{"plain http", Options{URL: "http://x", TLS: cfg, Requests: 1}, `Options.URL "http://x": want an https:// URL`},
		{"no TLS", Options{URL: "https://x", Requests: 1}, "Options.TLS is nil"},
		{"negative", Options{URL: "https://x", TLS: cfg, Requests: 1, Concurrency: -1}, "negative option (Concurrency -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run(%+v) = %v, want an error with %q", tc.opts, err, tc.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"none", nil, 0.5, 0},
		{"one", []time.Duration{7}, 0.99, 7},
		{"p50 of 100", hundred, 0.50, 50 * time.Millisecond},
		{"p99 of 100", hundred, 0.99, 99 * time.Millisecond},
		{"p100 of 100", hundred, 1, 100 * time.Millisecond},
		{"p99 of 10", hundred[:10], 0.99, 10 * time.Millisecond},
		{"p50 of 3", []time.Duration{1, 2, 3}, 0.5, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("Percentile(%d values, %g) = %s, want %s", len(tc.sorted), tc.p, got, tc.want)
			}
		})
	}
}
