package kafka

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/hpa-signals/hpa-signals/config"
)

// The kafka4 broker refuses what Kafka 4.0 removed, as Kafka 4.0 does: it
// closes the connection. Without this, the suite's kafka4 mode would pass
// whatever versions the adapter sent.
func TestKafka4BrokerRefusesRemovedVersions(t *testing.T) {
	b := newBroker(t, kafka4)
	b.createTopic("orders", 1)
	old := kversion.V4_0_0()
	old.SetMaxKeyVersion(int16(kmsg.ListOffsets), 0)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.c.ListenAddrs()...), kgo.MaxVersions(old), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "orders"
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	if _, err := cl.Broker(int(b.c.LeaderFor("orders", 0))).Request(ctx, req); err == nil {
		t.Fatal("ListOffsets v0 was answered, want the connection closed")
	}
	b.mu.Lock()
	refused := b.refused
	b.refused = nil // refused on purpose; the cleanup check is for the adapter's requests
	b.mu.Unlock()
	if !slices.Equal(refused, []string{"ListOffsets v0"}) {
		t.Errorf("refused %v, want [ListOffsets v0]", refused)
	}
}

// kafka-go picks each request's version through ApiVersions: the highest
// both sides support. These are the versions the adapter sends, for every
// API it uses, on a Kafka 4 broker and on one capped at 2.8; none is below
// Kafka 4.0's floor (kip896Min, which the kafka4 broker also enforces).
func TestNegotiatedVersions(t *testing.T) { forEachMode(t, testNegotiatedVersions) }

func testNegotiatedVersions(t *testing.T, mode brokerMode) {
	b := newBroker(t, mode)
	b.createTopic("orders", 3)
	b.produce("orders", 0, 5, nil)
	b.commit("known", map[string]map[int32]int64{"orders": {0: 2}})
	b.commit("nothing-yet", map[string]map[int32]int64{"orders": {0: -1}}) // exists, no offsets
	b.counts.reset()
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{})
	ctx := context.Background()
	for _, q := range []Query{
		{Cluster: "main", Group: "known", Signal: config.KafkaLag},
		{Cluster: "main", Group: "known", Signal: config.KafkaLagSeconds},
		{Cluster: "main", Group: "nothing-yet", Topics: []string{"orders"}}, // DescribeGroups
	} {
		_, _ = s.Evaluate(ctx, q)
	}
	for api, want := range map[string][]int16{
		"ApiVersions":     {0}, // kafka-go's handshake, answered in full at any version
		"Metadata":        {8},
		"FindCoordinator": {2},
		"OffsetFetch":     {5},
		"ListOffsets":     {5},
		"Fetch":           {11},
		"DescribeGroups":  {5},
	} {
		got := b.counts.versionsOf(api)
		if !slices.Equal(got, want) {
			t.Errorf("%s sent at versions %v, want %v", api, got, want)
		}
		key := int16(-1)
		for k := range int16(100) {
			if kmsg.NameForKey(k) == api {
				key = k
			}
		}
		if min, ok := kip896Min[key]; ok && len(got) > 0 && got[0] < min {
			t.Errorf("%s v%d is below Kafka 4.0's v%d", api, got[0], min)
		}
	}
}
