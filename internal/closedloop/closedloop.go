// Package closedloop measures an HTTPS server under a closed-loop load:
// a fixed number of workers GET one URL over HTTP/2, each sending its next
// request only when the answer to its previous one has arrived, as an HPA
// controller or any client that waits for its answers does. The load is
// bounded by a duration or a request count and stops by itself; the result
// is the throughput of 200 answers, their latency percentiles and every
// other outcome counted by status code. The e2e benchmarks measure the
// adapters, directly and through the kube-apiserver, with it.
//
// Unlike package loadgen, which holds a rate whatever the server does, the
// rate here is what the server sustains at the given concurrency.
package closedloop

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultTimeout bounds each request when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Options configure a Run.
type Options struct {
	// URL is what every request GETs, an https URL. Required.
	URL string
	// TLS configures the connection (roots, client certificate, server
	// name). Required: the load is HTTP/2 over TLS, as Kubernetes API
	// servers serve it; a server that does not negotiate h2 fails the run.
	TLS *tls.Config
	// Header is added to every request (e.g. Authorization). Nil adds
	// nothing.
	Header http.Header
	// Concurrency is the number of workers, so the most requests in
	// flight. If zero, 1.
	Concurrency int
	// Duration stops the workers from sending after this long; Requests
	// stops them once that many requests were sent. At least one must be
	// positive; with both, whichever comes first ends the run.
	Duration time.Duration
	Requests int
	// Timeout bounds each request. If zero, DefaultTimeout.
	Timeout time.Duration
}

func (o *Options) validate() error {
	var errs []error
	if !strings.HasPrefix(o.URL, "https://") {
		errs = append(errs, fmt.Errorf("closedloop: Options.URL %q: want an https:// URL (the load is HTTP/2 over TLS)", o.URL))
	}
	if o.TLS == nil {
		errs = append(errs, errors.New("closedloop: Options.TLS is nil: give the server's roots (and a client certificate if it asks for one)"))
	}
	if o.Duration <= 0 && o.Requests <= 0 {
		errs = append(errs, errors.New("closedloop: neither Options.Duration nor Options.Requests is positive: set one, so the load stops by itself"))
	}
	if o.Concurrency < 0 || o.Timeout < 0 || o.Duration < 0 || o.Requests < 0 {
		errs = append(errs, fmt.Errorf("closedloop: negative option (Concurrency %d, Timeout %s, Duration %s, Requests %d): use zero for the default", o.Concurrency, o.Timeout, o.Duration, o.Requests))
	}
	return errors.Join(errs...)
}

// Result is what a Run measured.
type Result struct {
	// Requests is how many requests were sent and finished (answered or
	// failed); OK how many were answered 200, the only success.
	Requests, OK int
	// Failed counts the other requests by the status code of their
	// answer; key 0 counts requests that got no answer (a connection
	// error, a timeout), the first of whose errors is FirstError.
	Failed     map[int]int
	FirstError string
	// Elapsed is from the first worker's first request to the last
	// worker's last answer.
	Elapsed time.Duration
	// P50 and P99 are latency percentiles (nearest rank) of the 200
	// answers, from sending the request to reading the whole body; zero
	// when none was answered 200.
	P50, P99 time.Duration
	// Concurrency is the number of workers the run had.
	Concurrency int
}

// PerSecond is the throughput of 200 answers.
func (r Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

func (r Result) String() string {
	s := fmt.Sprintf("%d requests at c=%d in %s: %d ok (%.0f/s), p50 %s, p99 %s",
		r.Requests, r.Concurrency, r.Elapsed.Round(time.Millisecond), r.OK, r.PerSecond(),
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond))
	if len(r.Failed) > 0 {
		var parts []string
		for _, code := range slices.Sorted(maps.Keys(r.Failed)) {
			parts = append(parts, fmt.Sprintf("%d×%d", r.Failed[code], code))
		}
		s += ", failed " + strings.Join(parts, " ")
		if r.FirstError != "" {
			s += " (first error: " + r.FirstError + ")"
		}
	}
	return s
}

// NewClient returns a client that speaks HTTP/2 only, over TLS configured
// by cfg, keeping one connection per server for all its requests (as
// client-go does).
func NewClient(cfg *tls.Config, timeout time.Duration) *http.Client {
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig:    cfg.Clone(),
		Protocols:          &protocols,
		ForceAttemptHTTP2:  true,
		DisableCompression: true,
		IdleConnTimeout:    time.Minute,
	}}
}

// Run sends the load and returns what it measured. Before the workers
// start, one request opens the connection (its TLS and HTTP/2 handshakes)
// and is not counted; Run fails if it gets no answer, since then nothing
// can be measured. After the bound, no worker sends again and Run waits
// for the answers in flight, each bounded by Options.Timeout; cancelling
// ctx stops the workers at once and counts their requests as failed.
func Run(ctx context.Context, opts Options) (Result, error) {
	if err := opts.validate(); err != nil {
		return Result{}, err
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = 1
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	client := NewClient(opts.TLS, opts.Timeout)
	defer client.CloseIdleConnections()
	if _, _, err := get(ctx, client, opts); err != nil {
		return Result{}, fmt.Errorf("closedloop: open the connection: %w", err)
	}

	workers := make([]worker, opts.Concurrency)
	var sent atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	var deadline time.Time
	if opts.Duration > 0 {
		deadline = began.Add(opts.Duration)
	}
	for i := range workers {
		w := &workers[i]
		wg.Go(func() {
			for ctx.Err() == nil {
				if !deadline.IsZero() && !time.Now().Before(deadline) {
					return
				}
				if opts.Requests > 0 && sent.Add(1) > int64(opts.Requests) {
					return
				}
				w.record(get(ctx, client, opts))
			}
		})
	}
	wg.Wait()
	r := Result{Elapsed: time.Since(began), Failed: map[int]int{}, Concurrency: opts.Concurrency}
	var latencies []time.Duration
	for _, w := range workers {
		r.Requests += w.requests
		r.OK += len(w.ok)
		latencies = append(latencies, w.ok...)
		for code, n := range w.failed {
			r.Failed[code] += n
		}
		if r.FirstError == "" {
			r.FirstError = w.firstError
		}
	}
	slices.Sort(latencies)
	r.P50, r.P99 = Percentile(latencies, 0.50), Percentile(latencies, 0.99)
	return r, nil
}

// worker is one worker's counts, merged after the run, so the workers
// share nothing while they send.
type worker struct {
	requests   int
	ok         []time.Duration
	failed     map[int]int
	firstError string
}

func (w *worker) record(code int, took time.Duration, err error) {
	w.requests++
	if code == http.StatusOK && err == nil {
		w.ok = append(w.ok, took)
		return
	}
	if w.failed == nil {
		w.failed = map[int]int{}
	}
	if err != nil {
		code = 0
		if w.firstError == "" {
			w.firstError = err.Error()
		}
	}
	w.failed[code]++
}

// get sends one request and reads its answer to the end; an error means
// no whole answer arrived.
func get(ctx context.Context, client *http.Client, opts Options) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, opts.URL, nil)
	if err != nil {
		return 0, 0, err
	}
	for k, v := range opts.Header {
		req.Header[k] = v
	}
	began := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, 0, fmt.Errorf("read the answer (%d): %w", resp.StatusCode, err)
	}
	return resp.StatusCode, time.Since(began), nil
}

// Percentile returns the p-quantile (0 < p <= 1) of sorted by nearest
// rank: the smallest value at least a fraction p of the values are not
// above. Zero for no values.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps 100*0.99, which is not exact in floating point,
	// at rank 99.
	rank := int(math.Ceil(float64(len(sorted))*p-1e-9)) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}
