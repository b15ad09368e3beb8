package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hpa-signals/hpa-signals/internal/loadgen"
)

// Driver is what the story needs from the running stack; *localstack.Stack
// implements it.
type Driver interface {
	// SetLoad makes the load generator send rps requests per second in
	// total to /work of the pods of deployment in namespace, spread over
	// its live pods as a load balancer would, until the next call; 0
	// stops it.
	SetLoad(ctx context.Context, namespace, deployment string, rps float64, load loadgen.Shape) error
	// ProduceBurst produces n messages to topic as fast as it can and
	// returns when the broker has them.
	ProduceBurst(ctx context.Context, topic string, n int) error
}

// Action is one thing a step does to the stack: set a Deployment's load,
// or, when Burst > 0, produce a burst of messages to Topic.
type Action struct {
	Deployment string
	RPS        float64
	Load       loadgen.Shape

	Topic string
	Burst int
}

// Do applies the action to the stack through d.
func (a Action) Do(ctx context.Context, d Driver, namespace string) error {
	if a.Burst > 0 {
		if err := d.ProduceBurst(ctx, a.Topic, a.Burst); err != nil {
			return fmt.Errorf("%s: %w", a, err)
		}
		return nil
	}
	if err := d.SetLoad(ctx, namespace, a.Deployment, a.RPS, a.Load); err != nil {
		return fmt.Errorf("%s: %w", a, err)
	}
	return nil
}

func (a Action) String() string {
	if a.Burst > 0 {
		return fmt.Sprintf("produce %d messages to %s", a.Burst, a.Topic)
	}
	s := fmt.Sprintf("load %s at %g req/s", a.Deployment, a.RPS)
	if a.Load.Goroutines > 0 {
		s += fmt.Sprintf(", each holding %d goroutines for %s", a.Load.Goroutines, a.Load.Hold)
	}
	return s
}

// noMax is Goal.Max for a goal without an upper bound.
const noMax = -1

// Goal is a state of one HPA a step waits for: current replicas within
// [Min, Max] and, with Known, a value for every metric.
type Goal struct {
	HPA      string
	Min, Max int32
	Known    bool
}

// AtLeast is met when hpa runs at least n replicas.
func AtLeast(hpa string, n int32) Goal { return Goal{HPA: hpa, Min: n, Max: noMax} }

// AtMost is met when hpa runs at most n replicas.
func AtMost(hpa string, n int32) Goal { return Goal{HPA: hpa, Max: n} }

// Reporting is met when hpa has a current value for every metric.
func Reporting(hpa string) Goal { return Goal{HPA: hpa, Max: noMax, Known: true} }

// Met reports whether h satisfies the goal.
func (g Goal) Met(h HPAView) bool {
	if h.CurrentReplicas < g.Min || (g.Max != noMax && h.CurrentReplicas > g.Max) {
		return false
	}
	if g.Known {
		for _, m := range h.Metrics {
			if m.Current == nil {
				return false
			}
		}
	}
	return true
}

func (g Goal) String() string {
	switch {
	case g.Known:
		return g.HPA + " reports its metrics"
	case g.Max == noMax:
		return fmt.Sprintf("%s at >=%d replicas", g.HPA, g.Min)
	default:
		return fmt.Sprintf("%s at <=%d replicas", g.HPA, g.Max)
	}
}

// Step is one scene of the story: its actions, then a wait until every goal
// holds (at most Timeout) and at least Hold has passed, so the picture shows
// the plateau.
type Step struct {
	Title   string
	Expect  string // what the viewer should see happen
	Actions []Action
	Goals   []Goal
	Hold    time.Duration
	Timeout time.Duration
}

// Story is the scripted run against the example HPAs.
type Story struct {
	Namespace string
	Steps     []Step
}

// Example HPAs and workloads (manifests/examples) the story drives.
const (
	demoNamespace = "demo"
	demoTopic     = "demo.orders"

	qpsHPA, qpsApp               = "sample-app-qps", "sample-app"
	latencyHPA, latencyApp       = "sample-app-latency-p99", "sample-app-latency"
	goroutinesHPA, goroutinesApp = "sample-app-goroutines", "sample-app-goroutines"
	billingHPA, auditHPA         = "billing-consumer", "audit-consumer"
	shippingHPA                  = "shipping-consumer"
)

// Baseline loads: below every target, so each HPA sits at minReplicas.
var (
	qpsBase        = Action{Deployment: qpsApp, RPS: 40}
	latencyBase    = Action{Deployment: latencyApp, RPS: 100}
	goroutinesBase = Action{Deployment: goroutinesApp, RPS: 10}
	goroutineBurst = Action{Deployment: goroutinesApp, RPS: 50, Load: loadgen.Shape{Goroutines: 20, Hold: 2 * time.Second}}
)

// NewStory returns the full story (about 15 minutes), or with short the
// CI variant (a few minutes): every signal up at once, then all down.
// Replica counts assume the demo's HPA behaviours (demo/hpas).
func NewStory(short bool) Story {
	baseline := Step{
		Title:   "Baseline: light load everywhere",
		Expect:  "every HTTP HPA reports a value (no <unknown>) at minReplicas",
		Actions: []Action{qpsBase, latencyBase, goroutinesBase},
		Goals: []Goal{Reporting(qpsHPA), Reporting(latencyHPA), Reporting(goroutinesHPA),
			AtMost(qpsHPA, 2), AtMost(latencyHPA, 2), AtMost(goroutinesHPA, 1)},
		Hold:    10 * time.Second,
		Timeout: 3 * time.Minute,
	}
	if short {
		return Story{Namespace: demoNamespace, Steps: []Step{baseline, {
			Title: "Everything at once: QPS, latency, goroutines, Kafka",
			Expect: "sample-app-qps 2→3 (150 req/s ÷ 50), sample-app-latency-p99 2→3+ (p99 over 250ms), " +
				"sample-app-goroutines 1→3+ (2000 held ÷ 500), billing-consumer 1→3 (lag 3000 ÷ 1000)",
			Actions: []Action{{Deployment: qpsApp, RPS: 150}, {Deployment: latencyApp, RPS: 600}, goroutineBurst,
				{Topic: demoTopic, Burst: 3000}},
			Goals: []Goal{AtLeast(qpsHPA, 3), AtLeast(latencyHPA, 3), AtLeast(goroutinesHPA, 3), AtLeast(billingHPA, 3)},
			Hold:  10 * time.Second, Timeout: 3 * time.Minute,
		}, {
			Title:   "Load off, backlog drained",
			Expect:  "every HPA back to minReplicas",
			Actions: []Action{qpsBase, latencyBase, goroutinesBase},
			Goals:   []Goal{AtMost(qpsHPA, 2), AtMost(latencyHPA, 2), AtMost(goroutinesHPA, 1), AtMost(billingHPA, 1), AtMost(shippingHPA, 1)},
			Timeout: 3 * time.Minute,
		}}}
	}
	return Story{Namespace: demoNamespace, Steps: []Step{baseline, {
		Title:   "QPS wave: rising to 150 req/s",
		Expect:  "sample-app-qps scales 2→3 (150 req/s ÷ 50 per pod)",
		Actions: []Action{{Deployment: qpsApp, RPS: 150}},
		Goals:   []Goal{AtLeast(qpsHPA, 3)},
		Hold:    30 * time.Second, Timeout: 2 * time.Minute,
	}, {
		Title:   "QPS wave: peak at 250 req/s",
		Expect:  "sample-app-qps scales 3→5",
		Actions: []Action{{Deployment: qpsApp, RPS: 250}},
		Goals:   []Goal{AtLeast(qpsHPA, 5)},
		Hold:    30 * time.Second, Timeout: 2 * time.Minute,
	}, {
		Title:   "QPS wave: falling to 40 req/s",
		Expect:  "sample-app-qps scales back in 5→2",
		Actions: []Action{qpsBase},
		Goals:   []Goal{AtMost(qpsHPA, 2)},
		Hold:    15 * time.Second, Timeout: 3 * time.Minute,
	}, {
		Title:   "Latency spike: 600 req/s on 2 pods of ~200 req/s capacity",
		Expect:  "p99 climbs over 250ms; sample-app-latency-p99 scales 2→3+ until p99 is back under target",
		Actions: []Action{{Deployment: latencyApp, RPS: 600}},
		Goals:   []Goal{AtLeast(latencyHPA, 3)},
		Hold:    30 * time.Second, Timeout: 2 * time.Minute,
	}, {
		Title:   "Latency spike over: 100 req/s",
		Expect:  "sample-app-latency-p99 scales back in to 2",
		Actions: []Action{latencyBase},
		Goals:   []Goal{AtMost(latencyHPA, 2)},
		Hold:    15 * time.Second, Timeout: 3 * time.Minute,
	}, {
		Title:   "Goroutine burst: 50 req/s, each holding 20 goroutines for 2s",
		Expect:  "~2000 goroutines held; sample-app-goroutines scales 1→4 (500 per pod)",
		Actions: []Action{goroutineBurst},
		Goals:   []Goal{AtLeast(goroutinesHPA, 3)},
		Hold:    30 * time.Second, Timeout: 2 * time.Minute,
	}, {
		Title:   "Goroutines released",
		Expect:  "sample-app-goroutines scales back in to 1",
		Actions: []Action{goroutinesBase},
		Goals:   []Goal{AtMost(goroutinesHPA, 1)},
		Hold:    15 * time.Second, Timeout: 3 * time.Minute,
	}, {
		Title: "Kafka burst: 6000 messages to " + demoTopic,
		Expect: "billing-consumer scales 1→6 (lag 6000 ÷ 1000 per replica), audit-consumer wakes from 0, " +
			"shipping-consumer follows its lag in seconds",
		Actions: []Action{{Topic: demoTopic, Burst: 6000}},
		Goals:   []Goal{AtLeast(billingHPA, 4), AtLeast(auditHPA, 1)},
		Timeout: 2 * time.Minute,
	}, {
		Title:  "Kafka backlog drains",
		Expect: "the consumers work the backlog off; billing-consumer and shipping-consumer back to 1, audit-consumer back to 0",
		Goals:  []Goal{AtMost(billingHPA, 1), AtMost(auditHPA, 0), AtMost(shippingHPA, 1)},
		Hold:   15 * time.Second, Timeout: 4 * time.Minute,
	}}}
}

// StepResult is how one step went.
type StepResult struct {
	Title string
	// Met is false when the goals did not all hold within the timeout;
	// Unmet lists them.
	Met   bool
	Unmet []string
	Took  time.Duration
}

// RunOptions configure Story.Run.
type RunOptions struct {
	// Latest returns the watcher's newest frame. Required.
	Latest func() (Snapshot, bool)
	// OnStep is called as step i starts, e.g. to show it and mark the
	// timeline. May be nil.
	OnStep func(i int, s Step)
	// Poll is how often goals are checked. If zero, 500ms.
	Poll time.Duration
}

// Run plays the steps in order. A step whose goals time out is recorded as
// unmet and the story goes on; an action that fails or a done ctx ends it
// with an error.
func (st Story) Run(ctx context.Context, d Driver, opts RunOptions) ([]StepResult, error) {
	if opts.Poll == 0 {
		opts.Poll = 500 * time.Millisecond
	}
	var results []StepResult
	for i, step := range st.Steps {
		if opts.OnStep != nil {
			opts.OnStep(i, step)
		}
		began := time.Now()
		for _, a := range step.Actions {
			if err := a.Do(ctx, d, st.Namespace); err != nil {
				return results, fmt.Errorf("step %d (%s): %w", i+1, step.Title, err)
			}
		}
		unmet, err := st.await(ctx, step, began, opts)
		results = append(results, StepResult{Title: step.Title, Met: len(unmet) == 0, Unmet: unmet, Took: time.Since(began)})
		if err != nil {
			return results, fmt.Errorf("step %d (%s): %w", i+1, step.Title, err)
		}
	}
	return results, nil
}

// await waits until every goal of step holds and Hold has passed, or until
// Timeout, and returns the goals that did not hold.
func (st Story) await(ctx context.Context, step Step, began time.Time, opts RunOptions) ([]string, error) {
	ticker := time.NewTicker(opts.Poll)
	defer ticker.Stop()
	for {
		unmet := st.unmet(step.Goals, opts.Latest)
		elapsed := time.Since(began)
		if (len(unmet) == 0 && elapsed >= step.Hold) || elapsed >= max(step.Timeout, step.Hold) {
			return unmet, nil
		}
		select {
		case <-ctx.Done():
			return unmet, ctx.Err()
		case <-ticker.C:
		}
	}
}

func (st Story) unmet(goals []Goal, latest func() (Snapshot, bool)) []string {
	snap, ok := latest()
	var unmet []string
	for _, g := range goals {
		met := false
		if ok {
			for _, h := range snap.HPAs {
				if h.Namespace == st.Namespace && h.Name == g.HPA {
					met = g.Met(h)
					break
				}
			}
		}
		if !met {
			unmet = append(unmet, g.String())
		}
	}
	return unmet
}

// Summary is one line per step result, for the end of the run.
func Summary(results []StepResult) string {
	var b strings.Builder
	for i, r := range results {
		mark := "ok  "
		if !r.Met {
			mark = "MISS"
		}
		fmt.Fprintf(&b, "%s %d. %s (%s)", mark, i+1, r.Title, r.Took.Round(time.Second))
		if !r.Met {
			fmt.Fprintf(&b, ": not reached: %s", strings.Join(r.Unmet, ", "))
		}
		b.WriteString("\n")
	}
	return b.String()
}
