package kafka

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/hpa-signals/hpa-signals/config"
)

// consumerProtocolMember joins group with the consumer group protocol of
// KIP-848 (ConsumerGroupHeartbeat; franz-go's ServerSideBalancer), as
// clients on Kafka 4.x do by default, and returns once the broker has
// assigned it partitions of topic. It commits only when told to.
func (b *broker) consumerProtocolMember(group, topic string) *kgo.Client {
	b.t.Helper()
	b.markNextGen(group)
	assigned := make(chan struct{}, 1)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(b.c.ListenAddrs()...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ServerSideBalancer(),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			select {
			case assigned <- struct{}{}:
			default:
			}
		}),
	)
	if err != nil {
		b.t.Fatalf("franz-go consumer: %v", err)
	}
	b.t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		cl.PollFetches(pctx)
		pcancel()
		select {
		case <-assigned:
			return cl
		case <-ctx.Done():
			b.t.Fatalf("consumer of group %s got no partitions within 10s", group)
		default:
		}
	}
}

// commitAs commits offsets as member cl of its group (with its member ID
// and epoch, as a consumer does).
func commitAs(t *testing.T, cl *kgo.Client, offsets map[string]map[int32]int64) {
	t.Helper()
	eo := map[string]map[int32]kgo.EpochOffset{}
	for topic, ps := range offsets {
		eo[topic] = map[int32]kgo.EpochOffset{}
		for p, o := range ps {
			eo[topic][p] = kgo.EpochOffset{Epoch: -1, Offset: o}
		}
	}
	var commitErr error
	cl.CommitOffsetsSync(context.Background(), eo, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		commitErr = err
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if rp.ErrorCode != 0 && commitErr == nil {
					commitErr = errors.New(kmsg.NameForKey(int16(rp.ErrorCode)))
				}
			}
		}
	})
	if commitErr != nil {
		t.Fatalf("commit %v: %v", offsets, commitErr)
	}
}

// A group of the consumer protocol (KIP-848) that has not committed yet is
// a known group: Kafka 4 describes it as Dead without members through
// DescribeGroups, so ConsumerGroupDescribe is asked. Once it commits, every
// signal is exact, as for a classic group. Kafka 4 only: 2.8 has no such
// groups.
func TestConsumerProtocolGroup(t *testing.T) {
	b := newBroker(t, kafka4)
	b.createTopic("orders", 3)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	b.produce("orders", 0, 10, at) // t0 .. t0+9s
	b.produce("orders", 1, 4, at)
	member := b.consumerProtocolMember("g848", "orders")
	if n := b.counts.total("ConsumerGroupHeartbeat"); n == 0 {
		t.Fatalf("the member sent no ConsumerGroupHeartbeat; requests: %s", b.counts)
	}
	if n := b.counts.total("JoinGroup"); n != 0 {
		t.Fatalf("the member joined with the classic protocol (%d JoinGroup)", n)
	}

	fc := testingclock.NewFakeClock(t0.Add(100 * time.Second))
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{Clock: fc})
	q := Query{Cluster: "main", Group: "g848", Topics: []string{"orders"}, AllowedTopics: []string{"orders"}}

	b.counts.reset()
	for _, tc := range []struct {
		reset string
		want  float64
	}{{config.OffsetResetEarliest, 14}, {config.OffsetResetLatest, 0}} {
		q.OffsetReset = tc.reset
		if r := evaluate(t, s, fromCatalog(t, q)); r.Value != tc.want {
			t.Errorf("lag of the member's group before it commits, offsetReset %s = %v, want %v", tc.reset, r.Value, tc.want)
		}
	}
	if got := b.counts.versionsOf("ConsumerGroupDescribe"); !slices.Equal(got, []int16{0}) {
		t.Errorf("ConsumerGroupDescribe versions = %v, want [0]; requests: %s", got, b.counts)
	}
	if got := b.counts.versionsOf("DescribeGroups"); len(got) == 0 {
		t.Errorf("no DescribeGroups: a classic group must still be asked that way first")
	}

	d, err := s.DescribeGroup(context.Background(), "main", "g848")
	if err != nil || d.State != "Stable" || len(d.Topics) != 0 {
		t.Errorf("DescribeGroup of the member's group before it commits = %+v, %v; want state Stable without committed topics", d, err)
	}

	commitAs(t, member, map[string]map[int32]int64{"orders": {0: 3, 1: 4}})
	q.OffsetReset = config.OffsetResetLatest
	for _, tc := range []struct {
		signal config.KafkaSignal
		want   float64
	}{
		{config.KafkaLag, 7},               // p0 10-3, p1 caught up, p2 empty
		{config.KafkaLagMax, 7},            //
		{config.KafkaLagSeconds, 100 - 3},  // record 3 of p0, at t0+3s
		{config.KafkaStalledPartitions, 0}, // not watched for a stall window yet
	} {
		q.Signal = tc.signal
		if r := evaluate(t, s, fromCatalog(t, q)); r.Value != tc.want {
			t.Errorf("%s after the member committed = %v, want %v", tc.signal, r.Value, tc.want)
		}
	}
	q.Signal, q.StallWindow = config.KafkaStalledPartitions, time.Minute
	fc.Step(time.Minute)
	if r := evaluate(t, s, fromCatalog(t, q)); r.Value != 1 {
		t.Errorf("stalled partitions a minute later = %v, want 1 (p0)", r.Value)
	}
}

// On a cluster without the consumer group protocol (2.8), a group that
// DescribeGroups does not know is unknown, without a request the cluster
// would not understand.
func TestUnknownGroupOnKafka28(t *testing.T) {
	b := newBroker(t, kafka28)
	b.createTopic("orders", 1)
	b.commit("nothing-yet", map[string]map[int32]int64{"orders": {0: -1}})
	s := newSource(t, []config.KafkaCluster{b.clusterConfig("main")}, Options{})
	b.c.Control(func(r kmsg.Request) (kmsg.Response, error, bool) {
		if r.Key() == int16(kmsg.DescribeGroups) {
			resp := r.ResponseKind().(*kmsg.DescribeGroupsResponse)
			g := kmsg.NewDescribeGroupsResponseGroup()
			g.Group, g.State = "nothing-yet", "Dead"
			resp.Groups = append(resp.Groups, g)
			return resp, nil, true
		}
		return nil, nil, false
	})
	_, err := s.Evaluate(context.Background(), fromCatalog(t, Query{Cluster: "main", Group: "nothing-yet", Topics: []string{"orders"}, AllowedTopics: []string{"*"}}))
	if !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("error = %v, want ErrUnknownGroup", err)
	}
	if n := b.counts.total("ConsumerGroupDescribe"); n != 0 {
		t.Errorf("%d ConsumerGroupDescribe sent to a 2.8 cluster", n)
	}
}
