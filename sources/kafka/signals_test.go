package kafka

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/hpa-signals/hpa-signals/config"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)

func TestLagSeconds(t *testing.T) { forEachMode(t, testLagSeconds) }

func testLagSeconds(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("jobs", 3)
	at := func(base time.Duration) func(int) time.Time {
		return func(i int) time.Time { return t0.Add(base + time.Duration(i)*time.Second) }
	}
	b.produce("jobs", 0, 10, at(0))               // records at t0+0s .. t0+9s
	b.produce("jobs", 1, 10, at(100*time.Second)) // t0+100s .. t0+109s
	b.produce("jobs", 2, 4, at(0))
	b.commit("workers", map[string]map[int32]int64{"jobs": {0: 3, 1: 7, 2: 4}})
	fc := testingclock.NewFakeClock(t0.Add(1000 * time.Second))
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{Clock: fc, LagSecondsConcurrency: 2})
	q := fromCatalog(t, Query{Cluster: "main", Group: "workers", Signal: config.KafkaLagSeconds})

	// Worst partition: p0, oldest unconsumed record is offset 3 at t0+3s.
	r := evaluate(t, s, q)
	if r.Value != 997 {
		t.Errorf("lag_seconds = %v, want 997", r.Value)
	}
	if got := r.Partitions[1].Oldest; !got.Equal(t0.Add(107 * time.Second)) {
		t.Errorf("oldest unconsumed of p1 = %v, want t0+107s", got)
	}
	if !r.Partitions[2].Oldest.IsZero() {
		t.Errorf("caught-up p2 was read: oldest %v", r.Partitions[2].Oldest)
	}

	// Records below the log start are gone: the oldest existing one counts.
	if err := b.c.DeleteRecords("jobs", 0, 6); err != nil {
		t.Fatal(err)
	}
	if r := evaluate(t, s, q); r.Value != 994 {
		t.Errorf("lag_seconds after DeleteRecords = %v, want 994 (record 6 at t0+6s)", r.Value)
	}

	b.commit("workers", map[string]map[int32]int64{"jobs": {0: 10, 1: 10}})
	if r := evaluate(t, s, q); r.Value != 0 {
		t.Errorf("lag_seconds when caught up = %v, want 0", r.Value)
	}
}

// kfake (and kafka-go's producer) always stamp records, so the "no
// timestamp" decision is tested on the record reader the Fetch returns.
func TestFirstRecordTime(t *testing.T) {
	rec := func(off int64, ts time.Time) kafkago.Record {
		return kafkago.Record{Offset: off, Time: ts, Value: kafkago.NewBytes([]byte("v"))}
	}
	for _, tc := range []struct {
		name    string
		records []kafkago.Record
		offset  int64
		want    time.Time
		wantErr error
	}{
		{"batch starts before the offset", []kafkago.Record{rec(3, t0), rec(4, t0.Add(time.Second)), rec(5, t0.Add(2*time.Second))}, 4, t0.Add(time.Second), nil},
		{"compacted: next record counts", []kafkago.Record{rec(7, t0)}, 5, t0, nil},
		{"timestamp -1 or 0", []kafkago.Record{rec(5, time.Time{})}, 5, time.Time{}, errNoTimestamp},
		{"no record", nil, 5, time.Time{}, ErrNoData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := firstRecordTime(kafkago.NewRecordReader(tc.records...), tc.offset)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr != nil && !errors.Is(err, ErrNoData)) {
				t.Fatalf("error = %v, want %v (an ErrNoData)", err, tc.wantErr)
			}
			if !got.Equal(tc.want) {
				t.Errorf("time = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTimeToDrain(t *testing.T) { forEachMode(t, testTimeToDrain) }

func testTimeToDrain(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("q", 2)
	b.produce("q", 0, 100, nil)
	b.produce("q", 1, 20, nil)
	b.commit("drain", map[string]map[int32]int64{"q": {0: 0, 1: 20}})
	fc := testingclock.NewFakeClock(t0)
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{Clock: fc, RateMinInterval: 5 * time.Second})
	q := fromCatalog(t, Query{Cluster: "main", Group: "drain", Signal: config.KafkaTimeToDrain})

	if _, err := s.Evaluate(context.Background(), q); !errors.Is(err, ErrNoData) {
		t.Fatalf("first sample: error %v, want ErrNoData", err)
	}
	fc.Step(time.Second) // closer than RateMinInterval: still no rate
	if _, err := s.Evaluate(context.Background(), q); !errors.Is(err, ErrNoData) {
		t.Fatalf("second sample 1s later: error %v, want ErrNoData", err)
	}
	fc.Step(9 * time.Second)
	b.commit("drain", map[string]map[int32]int64{"q": {0: 30}})
	// 30 messages in 10s = 3/s; backlog 70 -> 23.33s.
	if r := evaluate(t, s, q); math.Abs(r.Value-70.0/3) > 1e-9 {
		t.Errorf("time to drain = %v, want %v", r.Value, 70.0/3)
	}
	fc.Step(time.Second) // too soon for a new rate: the last one is reused
	if r := evaluate(t, s, q); math.Abs(r.Value-70.0/3) > 1e-9 {
		t.Errorf("time to drain 1s later = %v, want %v", r.Value, 70.0/3)
	}
	fc.Step(10 * time.Second) // no progress with a backlog
	if r := evaluate(t, s, q); r.Value != NoProgressDrainSeconds {
		t.Errorf("time to drain of a stopped consumer = %v, want %v", r.Value, NoProgressDrainSeconds)
	}
	b.commit("drain", map[string]map[int32]int64{"q": {0: 100}})
	fc.Step(10 * time.Second)
	if r := evaluate(t, s, q); r.Value != 0 {
		t.Errorf("time to drain without backlog = %v, want 0", r.Value)
	}
}

func TestStalledPartitions(t *testing.T) { forEachMode(t, testStalledPartitions) }

func testStalledPartitions(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("s", 3)
	for p := int32(0); p < 3; p++ {
		b.produce("s", p, 50, nil)
	}
	b.commit("st", map[string]map[int32]int64{"s": {0: 10, 1: 10, 2: 50}})
	fc := testingclock.NewFakeClock(t0)
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{Clock: fc})
	q := fromCatalog(t, Query{Cluster: "main", Group: "st", Signal: config.KafkaStalledPartitions}) // default window 5m

	steps := []struct {
		advance time.Duration
		commit  map[int32]int64
		want    float64
	}{
		{0, nil, 0}, // first look: nothing can be stalled yet
		{4 * time.Minute, map[int32]int64{0: 20}, 0}, // p0 moves
		{2 * time.Minute, nil, 1},                    // p1 still at 10 after 6m, lagging: stalled
		{5 * time.Minute, nil, 2},                    // p0 at 20 for 7m: stalled too; p2 caught up never is
		{time.Second, map[int32]int64{1: 11}, 1},
	}
	for i, st := range steps {
		fc.Step(st.advance)
		if st.commit != nil {
			b.commit("st", map[string]map[int32]int64{"s": st.commit})
		}
		r := evaluate(t, s, q)
		if r.Value != st.want {
			t.Errorf("step %d: stalled partitions = %v, want %v", i, r.Value, st.want)
		}
	}

	// A shorter window from the catalog applies per query.
	q = fromCatalog(t, Query{Cluster: "main", Group: "st", Signal: config.KafkaStalledPartitions, StallWindow: time.Second})
	fc.Step(2 * time.Second)
	if r := evaluate(t, s, q); r.Value != 2 {
		t.Errorf("stalled with a 1s window = %v, want 2", r.Value)
	}
}

func TestTimeToDrainArithmetic(t *testing.T) {
	for _, tc := range []struct {
		backlog int64
		rate    float64
		want    float64
	}{
		{0, 0, 0}, {0, 5, 0}, {100, 0, NoProgressDrainSeconds}, {100, 4, 25},
	} {
		if got := timeToDrain(tc.backlog, tc.rate); got != tc.want {
			t.Errorf("timeToDrain(%d, %v) = %v, want %v", tc.backlog, tc.rate, got, tc.want)
		}
	}
}
