package kafka

import (
	"context"
	"maps"
	"reflect"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/hpa-signals/hpa-signals/config"
)

// The rules deciding whether a cached log start may be used.
func TestLogStartCacheRules(t *testing.T) {
	const ttl = 30 * time.Second
	tp := topicPartition{"t", 0}
	for _, tc := range []struct {
		name      string
		cached    bool
		offset    int64 // cached log start, read at t0
		now       time.Time
		end       int64
		committed int64
		wantStale bool
	}{
		{"never read", false, 0, t0, 10, 3, true},
		{"fresh", true, 4, t0.Add(ttl - time.Nanosecond), 10, 6, false},
		{"a TTL old", true, 4, t0.Add(ttl), 10, 6, true},
		{"end below it: the log went backward", true, 4, t0, 3, 1, true},
		{"end equal to it: an empty log", true, 4, t0, 4, 4, false},
		{"committed below it: retention overtook the group", true, 4, t0, 10, 2, false},
		{"no commit", true, 4, t0, 10, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newLogStartCache(ttl)
			c.lastPrune = t0 // prune is tested below
			if tc.cached {
				c.store(map[topicPartition]int64{tp: tc.offset}, t0)
			}
			parts := []PartitionLag{{Topic: tp.topic, Partition: tp.partition, Committed: tc.committed, End: tc.end, LogStart: -7}}
			stale := c.fill(parts, tc.now)
			if got := len(stale) == 1; got != tc.wantStale {
				t.Fatalf("stale = %v, want %v", got, tc.wantStale)
			}
			want := tc.offset
			if tc.wantStale {
				want = -7 // left for the caller to read
			}
			if parts[0].LogStart != want {
				t.Errorf("LogStart = %d, want %d", parts[0].LogStart, want)
			}
		})
	}

	t.Run("a later read is not replaced by an earlier one", func(t *testing.T) {
		c := newLogStartCache(ttl)
		c.store(map[topicPartition]int64{tp: 9}, t0.Add(time.Second))
		c.store(map[topicPartition]int64{tp: 5}, t0)
		parts := []PartitionLag{{Topic: tp.topic, Partition: tp.partition, End: 20}}
		if stale := c.fill(parts, t0.Add(2*time.Second)); len(stale) != 0 || parts[0].LogStart != 9 {
			t.Errorf("stale %v, LogStart %d; want the read of t0+1s, 9", stale, parts[0].LogStart)
		}
	})

	t.Run("prune drops expired entries once per TTL", func(t *testing.T) {
		c := newLogStartCache(ttl)
		old, recent := topicPartition{"old", 0}, topicPartition{"recent", 0}
		c.store(map[topicPartition]int64{old: 1}, t0)
		c.store(map[topicPartition]int64{recent: 1}, t0.Add(ttl/2))
		c.fill(nil, t0.Add(ttl))
		if _, ok := c.entries[old]; ok {
			t.Errorf("an entry a TTL old survived the prune")
		}
		if _, ok := c.entries[recent]; !ok {
			t.Errorf("an entry half a TTL old was pruned")
		}
		c.fill(nil, t0.Add(ttl+ttl/2)) // recent has expired, but the last prune was less than a TTL ago
		if _, ok := c.entries[recent]; !ok {
			t.Errorf("pruned twice within one TTL")
		}
	})
}

// DeleteRecords moves the log start. Within the TTL the cached value is
// used (the lag counts the deleted records the group had not consumed, and
// only one ListOffsets goes to each leader); once the TTL has passed the
// log start is read again and they stop counting.
func TestLagPicksUpDeletedRecordsAfterTTL(t *testing.T) {
	forEachMode(t, testLagPicksUpDeletedRecordsAfterTTL)
}

func testLagPicksUpDeletedRecordsAfterTTL(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("events", 6)
	leaders := map[int32]bool{}
	for p := int32(0); p < 6; p++ {
		b.produce("events", p, 10, nil)
		leaders[b.c.LeaderFor("events", p)] = true
	}
	// p0 and p3 committed, the others not (earliest: they count from the
	// log start).
	b.commit("audit", map[string]map[int32]int64{"events": {0: 2, 3: 8}})
	const ttl = 30 * time.Second
	cfg := b.clusterConfig("main")
	cfg.MetadataTTL = config.Duration{Duration: ttl}
	fc := testingclock.NewFakeClock(t0)
	s := newSource(t, []config.KafkaCluster{cfg}, Options{Clock: fc})
	q := fromCatalog(t, Query{Cluster: "main", Group: "audit", Topics: []string{"events"}, OffsetReset: config.OffsetResetEarliest})

	if r := evaluate(t, s, q); r.Value != 8+10+10+2+10+10 {
		t.Fatalf("lag = %v, want 50", r.Value)
	}
	// p0: committed 2 now below the log start 6; p1 uncommitted, 7 gone.
	for p, off := range map[int32]int64{0: 6, 1: 7} {
		if err := b.c.DeleteRecords("events", p, off); err != nil {
			t.Fatalf("DeleteRecords: %v", err)
		}
	}
	for _, st := range []struct {
		name     string
		advance  time.Duration
		want     map[string]int64
		logStart int // log-start ListOffsets per leader
	}{
		{"cached log starts, 1ns before the TTL", ttl - time.Nanosecond,
			map[string]int64{"events/0": 8, "events/1": 10, "events/2": 10, "events/3": 2, "events/4": 10, "events/5": 10}, 0},
		{"read again at the TTL", time.Nanosecond,
			map[string]int64{"events/0": 4, "events/1": 3, "events/2": 10, "events/3": 2, "events/4": 10, "events/5": 10}, 1},
		{"warm again", time.Second,
			map[string]int64{"events/0": 4, "events/1": 3, "events/2": 10, "events/3": 2, "events/4": 10, "events/5": 10}, 0},
	} {
		t.Run(st.name, func(t *testing.T) {
			fc.Step(st.advance)
			b.counts.reset()
			r := evaluate(t, s, q)
			if got := lagsOf(r); !maps.Equal(got, st.want) {
				t.Errorf("lags = %v, want %v", got, st.want)
			}
			for node := range leaders {
				if n := b.counts.byBroker("kind:ListOffsets(-1)")[node]; n != 1 {
					t.Errorf("end-offset ListOffsets to broker %d = %d, want 1", node, n)
				}
				if n := b.counts.byBroker("kind:ListOffsets(-2)")[node]; n != st.logStart {
					t.Errorf("log-start ListOffsets to broker %d = %d, want %d", node, n, st.logStart)
				}
			}
		})
	}
	if r := evaluate(t, s, q); r.Partitions[0].LogStart != 6 || r.Partitions[1].LogStart != 7 {
		t.Errorf("log starts of p0, p1 = %d, %d; want 6, 7", r.Partitions[0].LogStart, r.Partitions[1].LogStart)
	}
}

// An end offset below the cached log start means the log went backward
// (here: the topic was deleted and created again): the cached value is
// wrong, not old, and is read again at once, only from that leader.
func TestLogStartReadAgainWhenEndIsBelowIt(t *testing.T) {
	forEachMode(t, testLogStartReadAgainWhenEndIsBelowIt)
}

func testLogStartReadAgainWhenEndIsBelowIt(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("anchor", 1)
	b.createTopic("jobs", 1)
	b.produce("jobs", 0, 10, nil)
	if err := b.c.DeleteRecords("jobs", 0, 8); err != nil {
		t.Fatal(err)
	}
	b.commit("g", map[string]map[int32]int64{"anchor": {0: 0}}) // the group exists, no offset on jobs
	fc := testingclock.NewFakeClock(t0)
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{Clock: fc}) // TTL 200ms, never reached on fc
	q := fromCatalog(t, Query{Cluster: "main", Group: "g", Topics: []string{"jobs"}, AllowedTopics: []string{"jobs"}, OffsetReset: config.OffsetResetEarliest})
	if r := evaluate(t, s, q); r.Value != 2 {
		t.Fatalf("lag = %v, want 10-8", r.Value)
	}

	if err := b.c.DeleteTopic("jobs"); err != nil {
		t.Fatal(err)
	}
	b.createTopic("jobs", 1)
	b.seedClient() // a new producer: the old one knows the deleted topic's ID
	b.produce("jobs", 0, 3, nil)
	leader := b.c.LeaderFor("jobs", 0)
	// The transport's metadata may still name the old leader for up to its
	// TTL (real time): evaluate until the new topic is read.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.counts.reset()
		r, err := s.Evaluate(context.Background(), q)
		if err == nil {
			if r.Value != 3 || r.Partitions[0].LogStart != 0 {
				t.Errorf("lag %v, log start %d after the topic was recreated; want 3 and 0", r.Value, r.Partitions[0].LogStart)
			}
			if got, want := b.counts.byBroker("kind:ListOffsets(-2)"), map[int32]int{leader: 1}; !reflect.DeepEqual(got, want) {
				t.Errorf("log-start ListOffsets per broker = %v, want %v", got, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recreated topic was not read within 10s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.counts.reset()
	evaluate(t, s, q)
	if n := b.counts.total("kind:ListOffsets(-2)"); n != 0 {
		t.Errorf("log-start ListOffsets after the re-read = %d, want 0", n)
	}
}

// lag_seconds fetches the record at max(committed, log start). When
// retention moved the log start past the committed offset after the cached
// read, that Fetch is out of range: the log start is read again (one
// ListOffsets, to that partition's leader) and the record after it is used,
// in the same evaluation.
func TestLagSecondsReadsMovedLogStart(t *testing.T) { forEachMode(t, testLagSecondsReadsMovedLogStart) }

func testLagSecondsReadsMovedLogStart(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("jobs", 3)
	for p := int32(0); p < 3; p++ {
		b.produce("jobs", p, 10, func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) })
	}
	b.commit("workers", map[string]map[int32]int64{"jobs": {0: 3, 1: 5, 2: 10}})
	fc := testingclock.NewFakeClock(t0.Add(100 * time.Second))
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{Clock: fc}) // TTL never reached on fc
	q := fromCatalog(t, Query{Cluster: "main", Group: "workers", Signal: config.KafkaLagSeconds})
	if r := evaluate(t, s, q); r.Value != 97 {
		t.Fatalf("lag_seconds = %v, want 97 (p0 record 3)", r.Value)
	}

	if err := b.c.DeleteRecords("jobs", 0, 6); err != nil {
		t.Fatal(err)
	}
	b.counts.reset()
	r := evaluate(t, s, q)
	// p0's oldest existing record is 6, at t0+6s; p1's is 5.
	if r.Value != 95 || r.Partitions[0].LogStart != 6 || r.Partitions[0].Lag != 4 {
		t.Errorf("lag_seconds %v, p0 log start %d lag %d; want 95, 6, 4", r.Value, r.Partitions[0].LogStart, r.Partitions[0].Lag)
	}
	if got, want := b.counts.byBroker("kind:ListOffsets(-2)"), map[int32]int{b.c.LeaderFor("jobs", 0): 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("log-start ListOffsets per broker = %v, want %v (p0's leader)", got, want)
	}
	if n := b.counts.total("Fetch"); n != 3 {
		t.Errorf("Fetch requests = %d, want 3 (p0 twice, p1 once)", n)
	}
}
