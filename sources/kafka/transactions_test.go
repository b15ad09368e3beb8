package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/hpa-signals/hpa-signals/config"
)

// txProducer is a franz-go transactional producer.
type txProducer struct {
	t  *testing.T
	cl *kgo.Client
}

func (b *broker) txProducer(t *testing.T, id string) *txProducer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.c.ListenAddrs()...), kgo.TransactionalID(id),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatalf("transactional producer: %v", err)
	}
	t.Cleanup(cl.Close)
	return &txProducer{t: t, cl: cl}
}

// begin starts a transaction and writes n records to topic/partition,
// stamped at ts(i).
func (p *txProducer) begin(topic string, partition int32, n int, ts func(int) time.Time) {
	p.t.Helper()
	if err := p.cl.BeginTransaction(); err != nil {
		p.t.Fatal(err)
	}
	rs := make([]*kgo.Record, n)
	for i := range rs {
		rs[i] = &kgo.Record{Topic: topic, Partition: partition, Value: []byte(fmt.Sprint(i)), Timestamp: ts(i)}
	}
	if err := p.cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		p.t.Fatal(err)
	}
}

// end commits or aborts the open transaction.
func (p *txProducer) end(commit bool) {
	p.t.Helper()
	if err := p.cl.EndTransaction(context.Background(), kgo.TransactionEndTry(commit)); err != nil {
		p.t.Fatal(err)
	}
}

// Transaction markers are never received, so a partition whose only
// records after the committed offset are markers is caught up: lag 0, lag
// seconds 0, time to drain 0, never stalled. Under read_committed, records
// of aborted transactions and of transactions still open do not count
// either. franz-go's consumers commit the offset after the last record
// they received, i.e. the marker's; the commits below are those offsets.
func TestTransactions(t *testing.T) { forEachMode(t, testTransactions) }

func testTransactions(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("tx", 3)
	p := b.txProducer(t, "orders-writer")
	// p0: one committed transaction: records 0-2, its marker at 3.
	p.begin("tx", 0, 3, secondsFrom(0))
	p.end(true)
	// p1: committed (0-1, marker 2), then aborted (3-5, abort marker 6).
	p.begin("tx", 1, 2, secondsFrom(0))
	p.end(true)
	p.begin("tx", 1, 3, secondsFrom(10*time.Second))
	p.end(false)
	b.commit("idle", map[string]map[int32]int64{"tx": {0: 3}})                // read all of p0
	b.commit("uncommitted-reader", map[string]map[int32]int64{"tx": {1: 6}})  // read_uncommitted: read the aborted records too
	b.commit("committed-reader", map[string]map[int32]int64{"tx": {1: 2}})    // read_committed: never received them
	b.commit("committed-reader-ru", map[string]map[int32]int64{"tx": {1: 2}}) // the same offsets, read by a read_uncommitted entry

	fc := testingclock.NewFakeClock(t0.Add(100 * time.Second))
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{Clock: fc})
	ru, rc := config.IsolationReadUncommitted, config.IsolationReadCommitted
	for _, tc := range []struct {
		group, isolation string
		signal           config.KafkaSignal
		want             float64
	}{
		{"idle", ru, config.KafkaLag, 0},
		{"idle", rc, config.KafkaLag, 0},
		{"idle", ru, config.KafkaLagSeconds, 0},
		{"idle", rc, config.KafkaLagSeconds, 0},
		{"idle", ru, config.KafkaStalledPartitions, 0},
		{"uncommitted-reader", ru, config.KafkaLag, 0},
		{"uncommitted-reader", ru, config.KafkaLagSeconds, 0},
		{"committed-reader", rc, config.KafkaLag, 0},
		{"committed-reader", rc, config.KafkaLagSeconds, 0},
		// A read_uncommitted consumer does receive the aborted records 3-5:
		// they count, and the markers around them with them (a lag over 4
		// is not read for markers alone).
		{"committed-reader-ru", ru, config.KafkaLag, 5},
		{"committed-reader-ru", ru, config.KafkaLagSeconds, 100 - 10}, // record 3, at t0+10s
	} {
		q := Query{Cluster: "main", Group: tc.group, Topics: []string{"tx"}, Signal: tc.signal, IsolationLevel: tc.isolation, StallWindow: time.Minute}
		if r := evaluate(t, s, fromCatalog(t, q)); r.Value != tc.want {
			t.Errorf("%s of %s (%s) = %v, want %v (per partition %v)", tc.signal, tc.group, tc.isolation, r.Value, tc.want, lagsOf(r))
		}
	}

	// Neither drains nor stalls: a stall window later, with nothing
	// moving, the caught-up partitions are not stalled, and time to drain
	// is 0, not "no progress".
	for _, signal := range []config.KafkaSignal{config.KafkaStalledPartitions, config.KafkaTimeToDrain} {
		q := Query{Cluster: "main", Group: "idle", Topics: []string{"tx"}, Signal: signal, StallWindow: time.Minute}
		_, _ = s.Evaluate(context.Background(), fromCatalog(t, q))
		fc.Step(2 * time.Minute)
		if r := evaluate(t, s, fromCatalog(t, q)); r.Value != 0 {
			t.Errorf("%s of an idle transactional partition a stall window later = %v, want 0", signal, r.Value)
		}
		fc.Step(-2 * time.Minute)
	}

	// An open transaction: under read_committed its records do not count
	// until it commits (the end is the last stable offset), then they do,
	// with their marker.
	p2 := b.txProducer(t, "open-writer")
	p2.begin("tx", 2, 2, secondsFrom(50*time.Second))
	q := Query{Cluster: "main", Group: "fresh", Topics: []string{"tx"}, AllowedTopics: []string{"tx"}, OffsetReset: config.OffsetResetEarliest, IsolationLevel: rc}
	if r := evaluate(t, s, fromCatalog(t, q)); lagsOf(r)["tx/2"] != 0 {
		t.Errorf("read_committed lag of p2 with its transaction open = %d, want 0", lagsOf(r)["tx/2"])
	}
	q.IsolationLevel = ru
	if r := evaluate(t, s, fromCatalog(t, q)); lagsOf(r)["tx/2"] != 2 {
		t.Errorf("read_uncommitted lag of p2 with its transaction open = %d, want 2", lagsOf(r)["tx/2"])
	}
	p2.end(true)
	q.IsolationLevel, q.Signal = rc, config.KafkaLagSeconds
	if r := evaluate(t, s, fromCatalog(t, q)); lagsOf(r)["tx/2"] != 3 || r.Value != 100-0 {
		t.Errorf("read_committed p2 after the commit: lag %d, lag_seconds %v; want 3 (2 records and the marker) and 100 (p0's record 0 is the oldest)", lagsOf(r)["tx/2"], r.Value)
	}
}

// Without Read on the topic, the marker check cannot fetch: the lag stays
// as the offsets give it (the marker counts), while lag_seconds, which
// needs the record, fails with the authorization error.
func TestTransactionsWithoutRead(t *testing.T) {
	b := newBroker(t, kafka4)
	b.createTopic("tx", 1)
	p := b.txProducer(t, "orders-writer")
	p.begin("tx", 0, 3, func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) })
	p.end(true)
	b.commit("idle", map[string]map[int32]int64{"tx": {0: 3}})
	var fetches atomic.Int32
	b.c.ControlKey(int16(kmsg.Fetch), func(r kmsg.Request) (kmsg.Response, error, bool) {
		b.c.KeepControl()
		fetches.Add(1)
		req := r.(*kmsg.FetchRequest)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{Clock: testingclock.NewFakeClock(t0.Add(time.Minute))})
	q := Query{Cluster: "main", Group: "idle", Topics: []string{"tx"}}
	if r := evaluate(t, s, fromCatalog(t, q)); r.Value != 1 {
		t.Errorf("lag without Read = %v, want 1 (the marker counts)", r.Value)
	}
	q.Signal = config.KafkaLagSeconds
	if _, err := s.Evaluate(context.Background(), fromCatalog(t, q)); !errors.Is(err, kafkago.TopicAuthorizationFailed) {
		t.Errorf("lag_seconds without Read: error %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("Fetch requests = %d, want 2 (one per evaluation)", n)
	}
}
