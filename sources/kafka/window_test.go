package kafka

import (
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/hpa-signals/hpa-signals/config"
)

// With window=1m, lag and lag_max answer the largest value read within the
// last minute; the same query without a window answers the value now.
func TestWindowedLag(t *testing.T) {
	b := newBroker(t, kafka4)
	b.createTopic("w", 2)
	b.produce("w", 0, 100, nil)
	b.produce("w", 1, 100, nil)
	fc := testingclock.NewFakeClock(t0)
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{Clock: fc})
	lag := fromCatalog(t, Query{Cluster: "main", Group: "g"})
	lagMax := fromCatalog(t, Query{Cluster: "main", Group: "g", Signal: config.KafkaLagMax})

	for i, st := range []struct {
		advance             time.Duration
		committed           [2]int64
		now, windowed       float64 // lag
		nowMax, windowedMax float64 // lag_max
	}{
		{0, [2]int64{90, 100}, 10, 10, 10, 10},
		{20 * time.Second, [2]int64{50, 70}, 80, 80, 50, 50}, // a burst
		{20 * time.Second, [2]int64{95, 100}, 5, 80, 5, 50},  // drained: the burst 20s ago counts
		{40 * time.Second, [2]int64{96, 100}, 4, 80, 4, 50},  // 60s after the burst: still in
		{1 * time.Second, [2]int64{96, 99}, 5, 5, 4, 5},      // 61s: the burst left the window; t=40s (5) has not
		{10 * time.Minute, [2]int64{100, 100}, 0, 0, 0, 0},
	} {
		fc.Step(st.advance)
		b.commit("g", map[string]map[int32]int64{"w": {0: st.committed[0], 1: st.committed[1]}})
		for _, c := range []struct {
			name string
			q    Query
			want float64
		}{
			{"lag", lag, st.now},
			{"lag window=1m", withWindow(lag, time.Minute), st.windowed},
			{"lag_max", lagMax, st.nowMax},
			{"lag_max window=1m", withWindow(lagMax, time.Minute), st.windowedMax},
		} {
			if r := evaluate(t, s, c.q); r.Value != c.want {
				t.Errorf("step %d: %s = %v, want %v", i, c.name, r.Value, c.want)
			}
		}
	}
}
