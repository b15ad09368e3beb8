// Package loadgen sends HTTP requests to the sample-app's /work at a fixed
// average rate, with a bounded number of requests in flight. It is the one
// load generator of the project: the sample-app's load mode runs it in a
// cluster against a Service, the local stack against the pod processes it
// runs, spreading the rate over them like a load balancer.
package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Shape shapes each request; the zero value sends plain /work.
type Shape struct {
	// Goroutines and Hold make each request hold that many goroutines in
	// the sample-app for that long after it is answered
	// (/work?goroutines=K&hold=D).
	Goroutines int
	Hold       time.Duration
}

// Path is the path and query a request of this shape asks for.
func (s Shape) Path() string {
	if s.Goroutines <= 0 {
		return "/work"
	}
	return "/work?" + url.Values{"goroutines": {strconv.Itoa(s.Goroutines)}, "hold": {s.Hold.String()}}.Encode()
}

// Options configure a Load.
type Options struct {
	// RPS is the total request rate, kept on average even when ticks run
	// late. Zero or less sends nothing.
	RPS float64
	// Shape shapes every request.
	Shape Shape
	// Targets returns the base URLs (http://host:port, no path) requests
	// go to, round robin, so each of n targets gets RPS/n. It is called on
	// every tick (5 ms), so the set may change while the load runs; a
	// request due while it returns none is skipped and counted.
	Targets func() []string
	// MaxInFlight bounds the requests waiting for an answer; a request due
	// while the bound is reached is skipped and counted, never queued, so
	// an overloaded workload cannot make the generator grow without bound.
	// If zero, 1000.
	MaxInFlight int
	// Timeout bounds each request. If zero, 15s.
	Timeout time.Duration
	// ReconnectInterval is how often requests move to new connections, so
	// a Kubernetes Service spreads them over pods added since (kube-proxy
	// balances connections, not requests). Zero keeps connections.
	ReconnectInterval time.Duration
}

// Stats counts what a load has done.
type Stats struct {
	// Sent requests were started; OK ones answered 200.
	Sent, OK int64
	// Failed requests got an error or a status other than 200.
	Failed int64
	// Skipped requests were due while no target was known or MaxInFlight
	// requests were waiting.
	Skipped int64
}

func (s Stats) String() string {
	return fmt.Sprintf("%d sent, %d ok, %d failed, %d skipped", s.Sent, s.OK, s.Failed, s.Skipped)
}

// Load sends requests at a fixed average rate. Run it once; Stats may be
// called concurrently with Run.
type Load struct {
	opts Options
	path string

	sent, ok, failed, skipped atomic.Int64
}

// New returns a load that sends nothing until Run.
func New(opts Options) *Load {
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 1000
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 15 * time.Second
	}
	return &Load{opts: opts, path: opts.Shape.Path()}
}

// Stats returns the counters so far.
func (l *Load) Stats() Stats {
	return Stats{Sent: l.sent.Load(), OK: l.ok.Load(), Failed: l.failed.Load(), Skipped: l.skipped.Load()}
}

// connPool is one generation of connections. Every ReconnectInterval Run
// sends new requests through a new pool and closes the old one's
// connections once its requests are answered: closing idle connections of
// a transport still in use can break a connection a request is about to
// reuse.
type connPool struct {
	tr       *http.Transport
	client   *http.Client
	inflight sync.WaitGroup
}

func (l *Load) newPool() *connPool {
	tr := &http.Transport{
		MaxIdleConnsPerHost: min(l.opts.MaxInFlight, 256),
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &connPool{tr: tr, client: &http.Client{Transport: tr}}
}

// retire closes p's connections once its requests are answered.
func (p *connPool) retire() {
	p.inflight.Wait()
	p.tr.CloseIdleConnections()
}

// Run sends requests until ctx is done, then waits for the requests in
// flight (each bounded by Options.Timeout, not by ctx, so stopping does not
// turn them into failures).
func (l *Load) Run(ctx context.Context) {
	if l.opts.RPS <= 0 {
		return
	}
	// inflight holds the requests and the retiring pools.
	var inflight sync.WaitGroup
	defer inflight.Wait()
	pool := l.newPool()
	defer func() { inflight.Go(pool.retire) }()
	slots := make(chan struct{}, l.opts.MaxInFlight)
	start := time.Now()
	lastReconnect := start
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var due, rr int64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if l.opts.ReconnectInterval > 0 && now.Sub(lastReconnect) >= l.opts.ReconnectInterval {
				inflight.Go(pool.retire)
				pool, lastReconnect = l.newPool(), now
			}
		}
		targets := l.opts.Targets()
		// Catch up on every request due by now, so the average rate holds
		// when a tick is late.
		target := int64(time.Since(start).Seconds() * l.opts.RPS)
		for ; due < target; due++ {
			if len(targets) == 0 {
				l.skipped.Add(1)
				continue
			}
			select {
			case slots <- struct{}{}:
			default:
				l.skipped.Add(1)
				continue
			}
			url := targets[rr%int64(len(targets))] + l.path
			rr++
			l.sent.Add(1)
			// Added here, before the pool can be retired by this loop.
			p := pool
			p.inflight.Add(1)
			inflight.Go(func() {
				defer func() { <-slots }()
				defer p.inflight.Done()
				l.do(p.client, url)
			})
		}
	}
}

func (l *Load) do(client *http.Client, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		l.failed.Add(1)
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		l.failed.Add(1)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		l.ok.Add(1)
	} else {
		l.failed.Add(1)
	}
}
