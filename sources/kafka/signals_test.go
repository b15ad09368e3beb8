package kafka

import (
	"errors"
	"testing"
	"time"

	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/fetch"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/hpa-signals/hpa-signals/config"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)

// secondsFrom gives record i the time t0 + base + i seconds.
func secondsFrom(base time.Duration) func(int) time.Time {
	return func(i int) time.Time { return t0.Add(base + time.Duration(i)*time.Second) }
}

// produceDated writes the records the age tests read: topic/0 records 0-9
// at t0+0s..9s, topic/1 records 0-9 at t0+100s..109s, topic/2 records 0-3
// at t0+0s..3s.
func (b *broker) produceDated(topic string) {
	b.t.Helper()
	b.produce(topic, 0, 10, secondsFrom(0))
	b.produce(topic, 1, 10, secondsFrom(100*time.Second))
	b.produce(topic, 2, 4, secondsFrom(0))
}

// checkDatedAges checks an age read at t0+1000s from the records of
// produceDated with offsets 3, 7 and 4 as the first not consumed: the worst
// partition is p0, whose record 3 is at t0+3s; p1's record 7 is at
// t0+107s; p2, caught up, is not read.
func checkDatedAges(t *testing.T, r Result) {
	t.Helper()
	if r.Value != 997 {
		t.Errorf("age = %v, want 997 (p0's record 3 at t0+3s)", r.Value)
	}
	if got := r.Partitions[1].Oldest; !got.Equal(t0.Add(107 * time.Second)) {
		t.Errorf("oldest of p1 = %v, want t0+107s (record 7)", got)
	}
	if !r.Partitions[2].Oldest.IsZero() {
		t.Errorf("p2 has nothing to read but was dated %v", r.Partitions[2].Oldest)
	}
}

func TestLagSeconds(t *testing.T) { forEachMode(t, testLagSeconds) }

func testLagSeconds(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("jobs", 3)
	b.produceDated("jobs")
	b.commit("workers", map[string]map[int32]int64{"jobs": {0: 3, 1: 7, 2: 4}})
	fc := testingclock.NewFakeClock(t0.Add(1000 * time.Second))
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{Clock: fc, LagSecondsConcurrency: 2})
	q := fromCatalog(t, Query{Cluster: "main", Group: "workers", Signal: config.KafkaLagSeconds})

	checkDatedAges(t, evaluate(t, s, q))

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

// What a consumer receives, read from one Fetch answer built by hand:
// markers never, records of aborted transactions not under
// read_committed, and a record without a timestamp is no data (kfake
// always stamps records, so that case is only reachable here).
func TestFirstReceivedIn(t *testing.T) {
	rec := func(off int64, ts time.Time) protocol.Record {
		return protocol.Record{Offset: off, Time: ts, Value: protocol.NewBytes([]byte("v"))}
	}
	data := func(base, producer int64, txn bool, recs ...protocol.Record) *protocol.RecordBatch {
		b := &protocol.RecordBatch{BaseOffset: base, ProducerID: producer, Records: protocol.NewRecordReader(recs...)}
		if txn {
			b.Attributes = protocol.Transactional
		}
		return b
	}
	marker := func(off, producer int64, typ int16) *protocol.ControlBatch {
		b := protocol.NewControlBatch(protocol.ControlRecord{Offset: off, Time: t0, Type: typ})
		b.BaseOffset, b.ProducerID, b.Attributes = off, producer, protocol.Control|protocol.Transactional
		return b
	}
	const commit, abort = 1, 0
	for _, tc := range []struct {
		name          string
		batches       []protocol.RecordReader
		aborted       []fetch.ResponseTransaction
		from          int64
		readCommitted bool
		want          int64 // -1: none received
		wantTime      time.Time
		wantAfter     int64
		wantErr       error
	}{
		{"batch starts before the offset", []protocol.RecordReader{data(3, -1, false, rec(3, t0), rec(4, t0.Add(time.Second)), rec(5, t0.Add(2*time.Second)))}, nil, 4, false, 4, t0.Add(time.Second), 5, nil},
		{"compacted: the next record counts", []protocol.RecordReader{data(7, -1, false, rec(7, t0))}, nil, 5, false, 7, t0, 8, nil},
		{"timestamp -1 or 0", []protocol.RecordReader{data(5, -1, false, rec(5, time.Time{}))}, nil, 5, false, 0, time.Time{}, 0, errNoTimestamp},
		{"no record", nil, nil, 5, false, -1, time.Time{}, 5, nil},
		{"a commit marker only", []protocol.RecordReader{marker(10, 7, commit)}, nil, 10, false, -1, time.Time{}, 11, nil},
		{"markers, then a record", []protocol.RecordReader{marker(10, 7, commit), marker(11, 8, commit), data(12, 7, true, rec(12, t0))}, nil, 10, false, 12, t0, 13, nil},
		{"aborted records, read_uncommitted", []protocol.RecordReader{data(11, 7, true, rec(11, t0), rec(12, t0)), marker(13, 7, abort), data(14, 8, false, rec(14, t0.Add(time.Minute)))},
			[]fetch.ResponseTransaction{{ProducerID: 7, FirstOffset: 11}}, 11, false, 11, t0, 12, nil},
		{"aborted records, read_committed", []protocol.RecordReader{data(11, 7, true, rec(11, t0), rec(12, t0)), marker(13, 7, abort), data(14, 8, false, rec(14, t0.Add(time.Minute)))},
			[]fetch.ResponseTransaction{{ProducerID: 7, FirstOffset: 11}}, 11, true, 14, t0.Add(time.Minute), 15, nil},
		{"an aborted tail, read_committed", []protocol.RecordReader{data(11, 7, true, rec(11, t0), rec(12, t0)), marker(13, 7, abort)},
			[]fetch.ResponseTransaction{{ProducerID: 7, FirstOffset: 11}}, 11, true, -1, time.Time{}, 14, nil},
		{"a committed transaction of the same producer after an aborted one", []protocol.RecordReader{data(11, 7, true, rec(11, t0)), marker(12, 7, abort), data(13, 7, true, rec(13, t0.Add(time.Second))), marker(14, 7, commit)},
			[]fetch.ResponseTransaction{{ProducerID: 7, FirstOffset: 11}}, 11, true, 13, t0.Add(time.Second), 14, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &fetch.ResponsePartition{AbortedTransactions: tc.aborted}
			if tc.batches != nil {
				p.RecordSet.Records = &protocol.RecordStream{Records: tc.batches}
			}
			off, ts, found, after, err := firstReceivedIn(p, tc.from, tc.readCommitted)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !errors.Is(err, ErrNoData) {
					t.Fatalf("error = %v, want %v (an ErrNoData)", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if found != (tc.want >= 0) || found && (off != tc.want || !ts.Equal(tc.wantTime)) {
				t.Errorf("first received = %d at %v (found %v), want %d at %v", off, ts, found, tc.want, tc.wantTime)
			}
			if after != tc.wantAfter {
				t.Errorf("read up to %d, want %d", after, tc.wantAfter)
			}
		})
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
