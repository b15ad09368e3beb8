package localstack

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/hpa-signals/hpa-signals/internal/loadgen"
)

// loadGenerator runs one load per Deployment.
type loadGenerator struct {
	pods *podRunner

	mu      sync.Mutex
	loads   map[string]*load // by namespace/deployment
	running sync.WaitGroup   // every load's Run, replaced ones included
}

type load struct {
	rps    float64
	gen    *loadgen.Load
	cancel context.CancelFunc
}

func newLoadGenerator(pods *podRunner) *loadGenerator {
	return &loadGenerator{pods: pods, loads: map[string]*load{}}
}

// SetLoad sends totalRPS requests per second to /work of the ready
// processes of namespace/deployment, round robin like a load balancer
// (so each of n processes gets totalRPS/n, and scaling out lowers the
// per-pod rate), replacing the Deployment's previous load, whose requests
// in flight still get their answers. totalRPS <= 0 stops the load. With
// shape.Goroutines, each request holds that many goroutines in the
// sample-app for shape.Hold after it is answered, so each process'
// go_goroutines rises by about Goroutines x Hold x its request rate.
// Loads stop at Stop.
func (s *Stack) SetLoad(_ context.Context, namespace, deployment string, totalRPS float64, shape loadgen.Shape) error {
	s.loads.set(namespace, deployment, totalRPS, shape)
	return nil
}

// LoadStats returns the counters of a Deployment's current load (zero if
// none).
func (s *Stack) LoadStats(namespace, deployment string) loadgen.Stats {
	s.loads.mu.Lock()
	defer s.loads.mu.Unlock()
	if l := s.loads.loads[namespace+"/"+deployment]; l != nil {
		return l.gen.Stats()
	}
	return loadgen.Stats{}
}

func (g *loadGenerator) set(namespace, deployment string, rps float64, shape loadgen.Shape) {
	key := namespace + "/" + deployment
	g.mu.Lock()
	defer g.mu.Unlock()
	if old := g.loads[key]; old != nil {
		old.cancel()
		delete(g.loads, key)
	}
	if rps <= 0 {
		return
	}
	gen := loadgen.New(loadgen.Options{
		RPS:     rps,
		Shape:   shape,
		Targets: func() []string { return g.pods.endpoints(namespace, deployment) },
	})
	ctx, cancel := context.WithCancel(context.Background())
	g.loads[key] = &load{rps: rps, gen: gen, cancel: cancel}
	g.running.Go(func() { gen.Run(ctx) })
}

func (g *loadGenerator) summary() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(g.loads)) {
		l := g.loads[k]
		fmt.Fprintf(&b, "  load %s: %g rps: %s\n", k, l.rps, l.gen.Stats())
	}
	return b.String()
}

// stopAll stops every load and waits for their requests in flight.
func (g *loadGenerator) stopAll() {
	g.mu.Lock()
	for k, l := range g.loads {
		l.cancel()
		delete(g.loads, k)
	}
	g.mu.Unlock()
	g.running.Wait()
}
