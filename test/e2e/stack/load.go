package stack

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hpa-signals/hpa-signals/test/e2e/env"
)

// Bounds of one load: a request due while maxInFlight requests wait for
// an answer is skipped and counted, never queued, so an overloaded
// Deployment cannot make the load generator itself grow without bound.
const (
	maxInFlight    = 1000
	requestTimeout = 15 * time.Second
)

// LoadStats counts what one load has done since SetLoad.
type LoadStats struct {
	// RPS is the requested total rate.
	RPS float64
	// Sent requests got an answer or an error; OK ones answered 200.
	Sent, OK int64
	// Failed requests got an error or a status other than 200.
	Failed int64
	// Skipped requests were due while no process was ready or MaxInFlight
	// requests were waiting.
	Skipped int64
}

func (s LoadStats) String() string {
	return fmt.Sprintf("%g rps: %d sent, %d ok, %d failed, %d skipped", s.RPS, s.Sent, s.OK, s.Failed, s.Skipped)
}

// loadGenerator runs one load per Deployment.
type loadGenerator struct {
	pods   *podRunner
	client *http.Client

	mu    sync.Mutex
	loads map[string]*load // by namespace/deployment
}

type load struct {
	rps                       float64
	cancel                    context.CancelFunc
	done                      chan struct{}
	sent, ok, failed, skipped atomic.Int64
}

func newLoadGenerator(pods *podRunner) *loadGenerator {
	return &loadGenerator{
		pods:  pods,
		loads: map[string]*load{},
		client: &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     10 * time.Second,
			DisableCompression:  true,
		}},
	}
}

// SetLoad sends totalRPS requests per second to /work of the ready
// processes of namespace/deployment, round robin like a load balancer
// (so each of n processes gets totalRPS/n, and scaling out lowers the
// per-pod rate), replacing the Deployment's previous load. The rate is
// kept on average even when ticks are late. totalRPS <= 0 stops the load.
// With load.Goroutines, each request holds that many goroutines in the
// sample-app for load.Hold after it is answered, so each process'
// go_goroutines rises by about Goroutines x Hold x its request rate.
// Loads stop at Stop.
func (s *Stack) SetLoad(_ context.Context, namespace, deployment string, totalRPS float64, load env.Load) error {
	s.loads.set(namespace, deployment, totalRPS, load)
	return nil
}

// LoadStats returns the counters of a Deployment's current load (zero if
// none).
func (s *Stack) LoadStats(namespace, deployment string) LoadStats {
	return s.loads.stats(namespace + "/" + deployment)
}

func (g *loadGenerator) set(namespace, deployment string, rps float64, shape env.Load) {
	key := namespace + "/" + deployment
	g.mu.Lock()
	defer g.mu.Unlock()
	if old := g.loads[key]; old != nil {
		old.cancel()
		<-old.done
		delete(g.loads, key)
	}
	if rps <= 0 {
		return
	}
	path := "/work"
	if shape.Goroutines > 0 {
		path += "?" + url.Values{"goroutines": {strconv.Itoa(shape.Goroutines)}, "hold": {shape.Hold.String()}}.Encode()
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{rps: rps, cancel: cancel, done: make(chan struct{})}
	g.loads[key] = l
	go g.run(ctx, l, namespace, deployment, path)
}

func (g *loadGenerator) run(ctx context.Context, l *load, namespace, deployment, path string) {
	defer close(l.done)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	slots := make(chan struct{}, maxInFlight)
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var due, rr int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		eps := g.pods.endpoints(namespace, deployment)
		target := int64(time.Since(start).Seconds() * l.rps)
		for ; due < target; due++ {
			if len(eps) == 0 {
				l.skipped.Add(1)
				continue
			}
			select {
			case slots <- struct{}{}:
			default:
				l.skipped.Add(1)
				continue
			}
			addr := eps[rr%int64(len(eps))]
			rr++
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				defer func() { <-slots }()
				g.do(ctx, l, "http://"+addr+path, requestTimeout)
			}()
		}
	}
}

func (g *loadGenerator) do(ctx context.Context, l *load, url string, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		l.failed.Add(1)
		return
	}
	resp, err := g.client.Do(req)
	l.sent.Add(1)
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

func (g *loadGenerator) stats(key string) LoadStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.loads[key]
	if l == nil {
		return LoadStats{}
	}
	return LoadStats{RPS: l.rps, Sent: l.sent.Load(), OK: l.ok.Load(), Failed: l.failed.Load(), Skipped: l.skipped.Load()}
}

func (g *loadGenerator) summary() string {
	g.mu.Lock()
	keys := make([]string, 0, len(g.loads))
	for k := range g.loads {
		keys = append(keys, k)
	}
	g.mu.Unlock()
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  load %s: %s\n", k, g.stats(k))
	}
	return b.String()
}

func (g *loadGenerator) stopAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, l := range g.loads {
		l.cancel()
		<-l.done
		delete(g.loads, k)
	}
	g.client.CloseIdleConnections()
}
