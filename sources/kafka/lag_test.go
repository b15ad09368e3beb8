package kafka

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hpa-signals/hpa-signals/config"
)

func evaluate(t *testing.T, s *Source, q Query) Result {
	t.Helper()
	r, err := s.Evaluate(context.Background(), q)
	if err != nil {
		t.Fatalf("Evaluate(%s %s): %v", q.Group, q.Signal, err)
	}
	return r
}

func lagsOf(r Result) map[string]int64 {
	m := map[string]int64{}
	for _, p := range r.Partitions {
		m[p.Topic+"/"+strconv.Itoa(int(p.Partition))] = p.Lag
	}
	return m
}

func TestLagExact(t *testing.T) { forEachMode(t, testLagExact) }

func testLagExact(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("orders", 6)
	produced := []int{10, 0, 5, 7, 3, 1}
	for p, n := range produced {
		if n > 0 {
			b.produce("orders", int32(p), n, nil)
		}
	}
	// p5 has no committed offset; p2 is caught up; p4 committed past its
	// end (truncation) counts 0.
	b.commit("billing", map[string]map[int32]int64{"orders": {0: 4, 1: 0, 2: 5, 3: 1, 4: 9}})
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{})

	for _, tc := range []struct {
		name      string
		reset     string
		wantLags  map[string]int64
		wantTotal float64
		wantMax   float64
	}{
		{"latest", config.OffsetResetLatest, map[string]int64{"orders/0": 6, "orders/1": 0, "orders/2": 0, "orders/3": 6, "orders/4": 0, "orders/5": 0}, 12, 6},
		{"earliest", config.OffsetResetEarliest, map[string]int64{"orders/0": 6, "orders/1": 0, "orders/2": 0, "orders/3": 6, "orders/4": 0, "orders/5": 1}, 13, 6},
		{"default is latest", "", map[string]int64{"orders/0": 6, "orders/1": 0, "orders/2": 0, "orders/3": 6, "orders/4": 0, "orders/5": 0}, 12, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := fromCatalog(t, Query{Cluster: "main", Group: "billing", Topics: []string{"orders"}, Signal: config.KafkaLag, OffsetReset: tc.reset})
			r := evaluate(t, s, q)
			if r.Value != tc.wantTotal {
				t.Errorf("lag = %v, want %v", r.Value, tc.wantTotal)
			}
			if got := lagsOf(r); !maps.Equal(got, tc.wantLags) {
				t.Errorf("per-partition lag = %v, want %v", got, tc.wantLags)
			}
			q.Signal = config.KafkaLagMax
			if r := evaluate(t, s, q); r.Value != tc.wantMax {
				t.Errorf("lag_max = %v, want %v", r.Value, tc.wantMax)
			}
		})
	}

	r := evaluate(t, s, fromCatalog(t, Query{Cluster: "main", Group: "billing", Topics: []string{"orders"}}))
	for _, p := range r.Partitions {
		if p.End != int64(produced[p.Partition]) || p.LogStart != 0 {
			t.Errorf("%s/%d: end %d log start %d, want %d and 0", p.Topic, p.Partition, p.End, p.LogStart, produced[p.Partition])
		}
	}
	if r.Partitions[5].Committed != -1 || r.Partitions[0].Committed != 4 {
		t.Errorf("committed offsets = %d, %d, want -1 for p5 and 4 for p0", r.Partitions[5].Committed, r.Partitions[0].Committed)
	}
}

// Messages removed by retention (DeleteRecords moves the log start) never
// count: not for a committed offset below the new start, not under
// earliest for an uncommitted partition.
func TestLagIgnoresDeletedRecords(t *testing.T) { forEachMode(t, testLagIgnoresDeletedRecords) }

func testLagIgnoresDeletedRecords(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("events", 3)
	for p := int32(0); p < 3; p++ {
		b.produce("events", p, 10, nil)
	}
	b.commit("audit", map[string]map[int32]int64{"events": {0: 2, 1: 8}})
	for p, off := range map[int32]int64{0: 6, 1: 4, 2: 7} {
		if err := b.c.DeleteRecords("events", p, off); err != nil {
			t.Fatalf("DeleteRecords: %v", err)
		}
	}
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{})
	r := evaluate(t, s, fromCatalog(t, Query{Cluster: "main", Group: "audit", Topics: []string{"events"}, OffsetReset: config.OffsetResetEarliest}))
	// p0: committed 2 < log start 6 -> 10-6; p1: 10-8; p2 uncommitted -> 10-7.
	want := map[string]int64{"events/0": 4, "events/1": 2, "events/2": 3}
	if got := lagsOf(r); !maps.Equal(got, want) {
		t.Errorf("lags = %v, want %v", got, want)
	}
	if r.Value != 9 {
		t.Errorf("lag = %v, want 9", r.Value)
	}
	if r.Partitions[0].LogStart != 6 {
		t.Errorf("log start of p0 = %d, want 6", r.Partitions[0].LogStart)
	}
}

func TestPartitionLagArithmetic(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		committed, start, end int64
		earliest              bool
		want                  int64
	}{
		{"committed behind", 3, 0, 10, false, 7},
		{"caught up", 10, 0, 10, false, 0},
		{"committed past end", 12, 0, 10, false, 0},
		{"committed below log start", 2, 6, 10, false, 4},
		{"uncommitted latest", -1, 6, 10, false, 0},
		{"uncommitted earliest", -1, 6, 10, true, 4},
		{"uncommitted earliest empty log", -1, 10, 10, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := partitionLag(tc.committed, tc.start, tc.end, tc.earliest); got != tc.want {
				t.Errorf("partitionLag(%d, %d, %d, %v) = %d, want %d", tc.committed, tc.start, tc.end, tc.earliest, got, tc.want)
			}
		})
	}
}

// With no topic in the selector, only topics the group committed to count;
// an unrelated topic with a backlog never does.
func TestLagDefaultTopicsAreTheGroupsOwn(t *testing.T) {
	forEachMode(t, testLagDefaultTopicsAreTheGroupsOwn)
}

func testLagDefaultTopicsAreTheGroupsOwn(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("mine", 2)
	b.createTopic("other", 2)
	b.createTopic("mine-too", 1)
	b.produce("mine", 0, 5, nil)
	b.produce("mine", 1, 3, nil)
	b.produce("mine-too", 0, 4, nil)
	b.produce("other", 0, 100, nil)
	b.commit("g", map[string]map[int32]int64{"mine": {0: 1}, "mine-too": {0: 4}})
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{})

	r := evaluate(t, s, fromCatalog(t, Query{Cluster: "main", Group: "g", OffsetReset: config.OffsetResetEarliest}))
	// mine/0: 5-1; mine/1 uncommitted under earliest: 3; mine-too: 0.
	want := map[string]int64{"mine/0": 4, "mine/1": 3, "mine-too/0": 0}
	if got := lagsOf(r); !maps.Equal(got, want) {
		t.Errorf("lags = %v, want %v (never topic other)", got, want)
	}
	// Naming the unrelated topic is answered as if it did not exist, unless
	// the entry allows it: then the reset policy applies to it.
	q := fromCatalog(t, Query{Cluster: "main", Group: "g", Topics: []string{"other"}, OffsetReset: config.OffsetResetEarliest})
	if _, err := s.Evaluate(context.Background(), q); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("named topic other, not allowed: error %v, want ErrUnknownTopic", err)
	}
	q.AllowedTopics = []string{"oth*"}
	if r := evaluate(t, s, q); r.Value != 100 {
		t.Errorf("lag on allowed topic other = %v, want 100", r.Value)
	}
}

func TestUnknownGroupAndTopic(t *testing.T) { forEachMode(t, testUnknownGroupAndTopic) }

func testUnknownGroupAndTopic(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("orders", 3)
	b.produce("orders", 0, 3, nil)
	b.commit("known", map[string]map[int32]int64{"orders": {0: 1}})
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{})

	for _, q := range []Query{
		{Cluster: "main", Group: "nobody"},
		{Cluster: "main", Group: "nobody", Topics: []string{"orders"}},
	} {
		_, err := s.Evaluate(context.Background(), fromCatalog(t, q))
		if !errors.Is(err, ErrUnknownGroup) {
			t.Fatalf("Evaluate(unknown group, topics %v) error = %v, want ErrUnknownGroup", q.Topics, err)
		}
		if !strings.Contains(err.Error(), `"nobody"`) || !strings.Contains(err.Error(), `"main"`) {
			t.Errorf("error %q should name the group and the cluster", err)
		}
	}
	_, err := s.Evaluate(context.Background(), fromCatalog(t, Query{Cluster: "main", Group: "known", Topics: []string{"missing"}}))
	if !errors.Is(err, ErrUnknownTopic) || !errors.Is(err, ErrNoData) || !strings.Contains(err.Error(), `"missing"`) {
		t.Errorf("unknown topic error = %v, want ErrUnknownTopic (an ErrNoData) naming the topic", err)
	}
	_, err = s.Evaluate(context.Background(), fromCatalog(t, Query{Cluster: "elsewhere", Group: "known"}))
	if !errors.Is(err, ErrInvalidSelector) {
		t.Errorf("unknown cluster error = %v, want ErrInvalidSelector", err)
	}
}

func TestTimeoutIsAnError(t *testing.T) { forEachMode(t, testTimeoutIsAnError) }

func testTimeoutIsAnError(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("orders", 1)
	b.commit("g", map[string]map[int32]int64{"orders": {0: 0}})
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	time.Sleep(time.Millisecond)
	if r, err := s.Evaluate(ctx, fromCatalog(t, Query{Cluster: "main", Group: "g"})); err == nil {
		t.Fatalf("Evaluate with an expired context = %v, want an error", r.Value)
	}
}

// A per-partition error fails the evaluation (no value from a partial
// read) and is counted in hpa_signals_kafka_partition_errors_total.
func TestPartitionErrorFailsEvaluation(t *testing.T) {
	forEachMode(t, testPartitionErrorFailsEvaluation)
}

func testPartitionErrorFailsEvaluation(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("orders", 3)
	b.produce("orders", 0, 5, nil)
	b.commit("g", map[string]map[int32]int64{"orders": {0: 1}})
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{})
	q := fromCatalog(t, Query{Cluster: "main", Group: "g"})
	evaluate(t, s, q)

	b.c.ControlKey(int16(kmsg.ListOffsets), func(r kmsg.Request) (kmsg.Response, error, bool) {
		req := r.(*kmsg.ListOffsetsRequest)
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for i, rt := range req.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for j, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition, sp.Offset = rp.Partition, 1000
				if i == 0 && j == 0 {
					sp.ErrorCode = kerr.NotLeaderForPartition.Code
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true // handled once, then dropped
	})
	r, err := s.Evaluate(context.Background(), q)
	if !errors.Is(err, kafkago.NotLeaderForPartition) {
		t.Fatalf("Evaluate with a partition error = %v, %v; want NOT_LEADER_FOR_PARTITION", r.Value, err)
	}
	if n := testutil.ToFloat64(s.metrics.partitionErrors.WithLabelValues("main", "list_offsets", kafkago.NotLeaderForPartition.Title())); n != 1 {
		t.Errorf("partition errors counted = %v, want 1", n)
	}
	if r := evaluate(t, s, q); r.Value != 4 {
		t.Errorf("lag after the error cleared = %v, want 4", r.Value)
	}
}

// Scale from zero: a group that has never existed (a new workload at 0
// replicas), asked about named topics under offsetReset earliest, lags by
// everything retained in them, as its consumers will start at the log
// start; the coordinator is not asked about it. Under latest, or without
// a topic, it is still an unknown group; a topic allowedTopics does not
// allow is still answered like one that does not exist.
func TestScaleFromZero(t *testing.T) { forEachMode(t, testScaleFromZero) }

func testScaleFromZero(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("reports", 3)
	b.createTopic("other", 1)
	for p, n := range []int{10, 4, 0} {
		if n > 0 {
			b.produce("reports", int32(p), n, nil)
		}
	}
	if err := b.c.DeleteRecords("reports", 0, 6); err != nil { // retention
		t.Fatal(err)
	}
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{})
	b.counts.reset()
	q := Query{Cluster: "main", Group: "never-existed", Topics: []string{"reports"}, AllowedTopics: []string{"rep*"}, OffsetReset: config.OffsetResetEarliest}
	r := evaluate(t, s, fromCatalog(t, q))
	if want := map[string]int64{"reports/0": 4, "reports/1": 4, "reports/2": 0}; r.Value != 8 || !maps.Equal(lagsOf(r), want) {
		t.Errorf("lag of a group that never existed = %v %v, want 8 %v", r.Value, lagsOf(r), want)
	}
	for _, api := range []string{"DescribeGroups", "ConsumerGroupDescribe"} {
		if n := b.counts.total(api); n != 0 {
			t.Errorf("%d %s requests, want 0", n, api)
		}
	}
	q.Signal = config.KafkaLagMax
	if r := evaluate(t, s, fromCatalog(t, q)); r.Value != 4 {
		t.Errorf("lag_max = %v, want 4", r.Value)
	}

	for _, tc := range []struct {
		name string
		q    Query
		want error
	}{
		{"latest", Query{Cluster: "main", Group: "never-existed", Topics: []string{"reports"}, AllowedTopics: []string{"rep*"}, OffsetReset: config.OffsetResetLatest}, ErrUnknownGroup},
		{"no topic", Query{Cluster: "main", Group: "never-existed", AllowedTopics: []string{"rep*"}, OffsetReset: config.OffsetResetEarliest}, ErrUnknownGroup},
		{"topic not allowed", Query{Cluster: "main", Group: "never-existed", Topics: []string{"other"}, AllowedTopics: []string{"rep*"}, OffsetReset: config.OffsetResetEarliest}, ErrUnknownTopic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Evaluate(context.Background(), fromCatalog(t, tc.q)); !errors.Is(err, tc.want) {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
		})
	}
	_, notAllowed := s.Evaluate(context.Background(), fromCatalog(t, Query{Cluster: "main", Group: "never-existed", Topics: []string{"other"}, AllowedTopics: []string{"rep*"}, OffsetReset: config.OffsetResetEarliest}))
	_, missing := s.Evaluate(context.Background(), fromCatalog(t, Query{Cluster: "main", Group: "never-existed", Topics: []string{"rep-missing"}, AllowedTopics: []string{"rep*"}, OffsetReset: config.OffsetResetEarliest}))
	if notAllowed == nil || missing == nil || strings.ReplaceAll(notAllowed.Error(), "other", "T") != strings.ReplaceAll(missing.Error(), "rep-missing", "T") {
		t.Errorf("a topic not allowed and one that does not exist read differently:\n %v\n %v", notAllowed, missing)
	}
}
