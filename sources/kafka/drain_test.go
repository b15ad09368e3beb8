package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/hpa-signals/hpa-signals/config"
)

// entryQueries parses a catalog of kafka entries (name: settings) and
// returns each entry's Query for group on cluster main.
func entryQueries(t *testing.T, group string, entries map[string]string) map[string]Query {
	t.Helper()
	doc := "presets: false\nmetrics:\n"
	for name, settings := range entries {
		doc += fmt.Sprintf("  - {name: %s, apis: [external], source: kafka, kafka: {%s}}\n", name, settings)
	}
	cat, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("catalog: %v", err)
	}
	qs := map[string]Query{}
	for name := range entries {
		q, err := QueryFromSelector(cat.Lookup(name), []string{"main"}, labels.SelectorFromSet(labels.Set{"group": group}))
		if err != nil {
			t.Fatalf("query of %s: %v", name, err)
		}
		qs[name] = q
	}
	return qs
}

// A consumer drains a backlog at 10 messages/s and commits every 1 s, 5 s
// or 30 s; the HPA reads every 15 s. Over a 1m drain window every commit
// interval that divides it gives the rate exactly, 10/s, at every read:
// the time to drain is backlog / 10. Reads shorter than the window apart
// no longer measure the rate between two reads (which read 0 progress,
// "no progress", between two 30 s commits). Before a window of history
// the answer is "no data"; without backlog it is 0 at once.
func TestTimeToDrainCommitIntervals(t *testing.T) {
	for _, interval := range []int{1, 5, 30} {
		t.Run(fmt.Sprintf("commit every %ds", interval), func(t *testing.T) {
			b := newBroker(t, kafka4)
			b.createTopic("q", 1)
			b.produce("q", 0, 3000, nil)
			b.commit("drain", map[string]map[int32]int64{"q": {0: 0}})
			fc := testingclock.NewFakeClock(t0)
			s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{Clock: fc})
			q := entryQueries(t, "drain", map[string]string{"drain": "signal: time_to_drain_seconds, drainWindow: 1m, stallWindow: 2m"})["drain"]

			committed := int64(0)
			for sec := 0; sec <= 180; sec++ {
				if sec > 0 && sec%interval == 0 {
					committed = int64(10 * sec)
					b.commit("drain", map[string]map[int32]int64{"q": {0: committed}})
				}
				if sec%15 != 0 {
					fc.Step(time.Second)
					continue
				}
				r, err := s.Evaluate(context.Background(), q)
				switch {
				case sec < 60:
					if !errors.Is(err, ErrNoData) {
						t.Errorf("t=%ds, less than a drain window of history: %v, %v; want ErrNoData", sec, r.Value, err)
					}
				case err != nil:
					t.Errorf("t=%ds: %v", sec, err)
				case r.Value != float64(3000-committed)/10:
					t.Errorf("t=%ds: time to drain = %v, want %v (backlog %d at 10/s)", sec, r.Value, float64(3000-committed)/10, 3000-committed)
				}
				fc.Step(time.Second)
			}
		})
	}
}

// Entries of the same group keep their own history: reads of other
// signals and of an entry with another window, interleaved a second
// apart, do not shorten the drain window of the first. Reads of the same
// entry closer together than the window answer the same rate.
func TestTimeToDrainInterleavedSignals(t *testing.T) {
	b := newBroker(t, kafka4)
	b.createTopic("q", 2)
	b.produce("q", 0, 2000, nil)
	b.produce("q", 1, 2000, nil)
	b.commit("g", map[string]map[int32]int64{"q": {0: 0, 1: 0}})
	fc := testingclock.NewFakeClock(t0)
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{Clock: fc})
	qs := entryQueries(t, "g", map[string]string{
		"drain_1m": "signal: time_to_drain_seconds, drainWindow: 1m, stallWindow: 2m",
		"drain_2m": "signal: time_to_drain_seconds, drainWindow: 2m, stallWindow: 2m",
		"lag":      "signal: lag",
		"stalled":  "signal: stalled_partitions, stallWindow: 2m",
	})
	order := []string{"drain_1m", "lag", "drain_2m", "stalled", "drain_1m"}
	committed := int64(0) // per partition; 4/s each, committed every 5s
	for sec := 0; sec <= 240; sec++ {
		if sec > 0 && sec%5 == 0 {
			committed = int64(4 * sec)
			b.commit("g", map[string]map[int32]int64{"q": {0: committed, 1: committed}})
		}
		name := order[sec%len(order)]
		r, err := s.Evaluate(context.Background(), qs[name])
		backlog := 2 * (2000 - committed)
		switch {
		case name == "lag":
			if err != nil || r.Value != float64(backlog) {
				t.Errorf("t=%ds lag = %v, %v; want %d", sec, r.Value, err, backlog)
			}
		case name == "stalled":
			if err != nil || r.Value != 0 {
				t.Errorf("t=%ds stalled = %v, %v; want 0", sec, r.Value, err)
			}
		case name == "drain_1m" && sec < 60, name == "drain_2m" && sec < 120:
			if !errors.Is(err, ErrNoData) {
				t.Errorf("t=%ds %s before its window: %v, %v; want ErrNoData", sec, name, r.Value, err)
			}
		case err != nil:
			t.Errorf("t=%ds %s: %v", sec, name, err)
		default:
			// 8 messages/s over both partitions, up to one commit (40
			// messages) more or less in the window.
			window := map[string]float64{"drain_1m": 60, "drain_2m": 120}[name]
			lo, hi := float64(backlog)/((8*window+40)/window), float64(backlog)/((8*window-40)/window)
			if r.Value < lo || r.Value > hi {
				t.Errorf("t=%ds %s = %v, want %v-%v (backlog %d at 8/s)", sec, name, r.Value, lo, hi, backlog)
			}
		}
		fc.Step(time.Second)
	}
}

// A consumer that really stops: the time to drain grows as its progress
// leaves the drain window, is measured over the stall window once none is
// left in the drain window, and reads "no progress" only when the
// committed offset has not moved for the stall window, when the partition
// is also stalled.
func TestTimeToDrainConsumerStops(t *testing.T) {
	b := newBroker(t, kafka4)
	b.createTopic("q", 1)
	b.produce("q", 0, 5000, nil)
	b.commit("g", map[string]map[int32]int64{"q": {0: 0}})
	fc := testingclock.NewFakeClock(t0)
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{Clock: fc})
	qs := entryQueries(t, "g", map[string]string{
		"drain":   "signal: time_to_drain_seconds, drainWindow: 1m, stallWindow: 3m",
		"stalled": "signal: stalled_partitions, stallWindow: 3m",
	})
	const stop = 300 // the consumer commits 10/s every 5s until then
	last := 0.0
	for sec := 0; sec <= stop+240; sec += 5 {
		if sec > 0 && sec <= stop {
			b.commit("g", map[string]map[int32]int64{"q": {0: int64(10 * sec)}})
		}
		drain, err := s.Evaluate(context.Background(), qs["drain"])
		stalled := evaluate(t, s, qs["stalled"])
		if sec < 60 {
			if !errors.Is(err, ErrNoData) {
				t.Errorf("t=%ds: %v, %v; want ErrNoData", sec, drain.Value, err)
			}
			fc.Step(5 * time.Second)
			continue
		}
		if err != nil {
			t.Fatalf("t=%ds: %v", sec, err)
		}
		backlog := float64(5000 - 10*min(sec, stop))
		switch {
		case sec <= stop:
			if drain.Value != backlog/10 || stalled.Value != 0 {
				t.Errorf("t=%ds, consuming: time to drain %v, stalled %v; want %v, 0", sec, drain.Value, stalled.Value, backlog/10)
			}
		case sec < stop+180:
			if drain.Value <= last || drain.Value == NoProgressDrainSeconds || stalled.Value != 0 {
				t.Errorf("t=%ds, %ds after the stop: time to drain %v (before %v), stalled %v; want a finite, growing value and 0", sec, sec-stop, drain.Value, last, stalled.Value)
			}
		default:
			if drain.Value != NoProgressDrainSeconds || stalled.Value != 1 {
				t.Errorf("t=%ds, a stall window after the stop: time to drain %v, stalled %v; want %v, 1", sec, drain.Value, stalled.Value, float64(NoProgressDrainSeconds))
			}
		}
		last = drain.Value
		fc.Step(5 * time.Second)
	}
}

func TestTimeToDrainArithmetic(t *testing.T) {
	for _, tc := range []struct {
		backlog int64
		d       drain
		want    float64
		ok      bool
	}{
		{0, drain{}, 0, true},
		{0, drain{rate: 5, known: true}, 0, true},
		{100, drain{}, 0, false},
		{100, drain{known: true, stopped: true}, NoProgressDrainSeconds, true},
		{100, drain{rate: 4, known: true}, 25, true},
	} {
		if got, ok := timeToDrain(tc.backlog, tc.d); got != tc.want || ok != tc.ok {
			t.Errorf("timeToDrain(%d, %+v) = %v, %v; want %v, %v", tc.backlog, tc.d, got, ok, tc.want, tc.ok)
		}
	}
}
